//! The one table: rows of figures, ratios to named baselines and targets.

use std::collections::BTreeMap;

use serde::Serialize;

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// A stable key, such as `strive.durable.c64`.
    pub key: String,
    /// The section (limits, peers, strive, ...).
    pub section: &'static str,
    /// What was measured, for people.
    pub name: String,
    /// The median of the repeats (`None` when skipped).
    pub value: Option<f64>,
    /// Every repeat's figure.
    pub samples: Vec<f64>,
    /// The unit of `value`.
    pub unit: &'static str,
    /// A note: why skipped, what exactly was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A ratio to report: `row / baseline`, optionally with a target.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// The measured row's key.
    pub row: String,
    /// The baseline row's key.
    pub baseline: String,
    /// `row / baseline`, or `baseline / row` when `lower_is_better`.
    pub ratio: Option<f64>,
    /// The target ratio, if the issue sets one.
    pub target: Option<f64>,
    /// Whether the target holds.
    pub met: Option<bool>,
}

/// An absolute target: a row's value against a bound.
#[derive(Debug, Clone, Serialize)]
pub struct Bound {
    /// The row's key.
    pub row: String,
    /// `>=` or `<=`.
    pub op: &'static str,
    /// The bound, in the row's unit.
    pub bound: f64,
    /// Whether it holds.
    pub met: Option<bool>,
}

/// Facts about the machine and the run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Facts {
    pub entries: BTreeMap<String, String>,
}

/// Everything one run measured.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub facts: Facts,
    pub rows: Vec<Row>,
    pub ratios: Vec<Ratio>,
    pub bounds: Vec<Bound>,
}

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

impl Report {
    pub fn fact(&mut self, key: &str, value: impl Into<String>) {
        self.facts.entries.insert(key.to_owned(), value.into());
    }

    /// Adds a measured row from its repeats.
    pub fn add(
        &mut self,
        key: &str,
        section: &'static str,
        name: &str,
        unit: &'static str,
        samples: Vec<f64>,
    ) {
        self.rows.push(Row {
            key: key.to_owned(),
            section,
            name: name.to_owned(),
            value: median(&samples),
            samples,
            unit,
            note: None,
        });
    }

    /// Adds a row that was not measured, with the reason.
    pub fn skip(
        &mut self,
        key: &str,
        section: &'static str,
        name: &str,
        unit: &'static str,
        note: &str,
    ) {
        self.rows.push(Row {
            key: key.to_owned(),
            section,
            name: name.to_owned(),
            value: None,
            samples: Vec::new(),
            unit,
            note: Some(note.to_owned()),
        });
    }

    /// Attaches a note to the last row added.
    pub fn note(&mut self, note: impl Into<String>) {
        if let Some(row) = self.rows.last_mut() {
            row.note = Some(note.into());
        }
    }

    pub fn value(&self, key: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.key == key)
            .and_then(|r| r.value)
    }

    /// Records `row / baseline` with an optional minimum target.
    pub fn ratio(&mut self, row: &str, baseline: &str, target: Option<f64>) {
        let ratio = match (self.value(row), self.value(baseline)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        self.ratios.push(Ratio {
            row: row.to_owned(),
            baseline: baseline.to_owned(),
            ratio,
            target,
            met: target.and_then(|t| ratio.map(|r| r >= t)),
        });
    }

    /// Records an absolute bound on a row's value.
    pub fn bound(&mut self, row: &str, op: &'static str, bound: f64) {
        let met = self.value(row).map(|v| match op {
            "<=" => v <= bound,
            "<" => v < bound,
            _ => v >= bound,
        });
        self.bounds.push(Bound {
            row: row.to_owned(),
            op,
            bound,
            met,
        });
    }

    /// The aligned text table.
    pub fn render(&self) -> String {
        let mut lines: Vec<[String; 5]> = vec![[
            "benchmark".into(),
            "value".into(),
            "unit".into(),
            "ratio / target".into(),
            "note".into(),
        ]];
        let mut section = "";
        for row in &self.rows {
            if row.section != section {
                section = row.section;
                lines.push([
                    format!("-- {section}"),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
            let value = row.value.map(format_value).unwrap_or_else(|| "-".into());
            let spread = spread(&row.samples);
            let mut checks: Vec<String> = Vec::new();
            for ratio in self.ratios.iter().filter(|r| r.row == row.key) {
                let shown = ratio
                    .ratio
                    .map(|r| format!("{r:.2}x"))
                    .unwrap_or_else(|| "-".into());
                let target = match (ratio.target, ratio.met) {
                    (Some(t), Some(true)) => format!(" (>= {t}x ok)"),
                    (Some(t), Some(false)) => format!(" (>= {t}x MISSED)"),
                    (Some(t), None) => format!(" (>= {t}x ?)"),
                    (None, _) => String::new(),
                };
                checks.push(format!("{shown} {}{target}", self.short(&ratio.baseline)));
            }
            for bound in self.bounds.iter().filter(|b| b.row == row.key) {
                let verdict = match bound.met {
                    Some(true) => "ok",
                    Some(false) => "MISSED",
                    None => "?",
                };
                checks.push(format!(
                    "{} {} {verdict}",
                    bound.op,
                    format_value(bound.bound)
                ));
            }
            let mut note = row.note.clone().unwrap_or_default();
            if let Some(spread) = spread {
                note = if note.is_empty() {
                    spread
                } else {
                    format!("{spread}; {note}")
                };
            }
            lines.push([
                format!("  {}", row.name),
                value,
                row.unit.to_owned(),
                checks.join("; "),
                note,
            ]);
        }
        let mut widths = [0usize; 5];
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line.iter()) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in &lines {
            let mut text = String::new();
            for (index, cell) in line.iter().enumerate() {
                let pad = widths[index].saturating_sub(cell.chars().count());
                if index == 1 {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    if index + 1 < line.len() {
                        text.push_str(&" ".repeat(pad));
                    }
                }
                if index + 1 < line.len() {
                    text.push_str("  ");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    /// A baseline's name for the ratio column.
    fn short(&self, key: &str) -> String {
        let name = self
            .rows
            .iter()
            .find(|r| r.key == key)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| key.to_owned());
        format!("vs {name}")
    }
}

/// The spread of repeats as `±x%` (half the range over the median).
fn spread(samples: &[f64]) -> Option<String> {
    if samples.len() < 2 {
        return None;
    }
    let median = median(samples)?;
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if median == 0.0 {
        return None;
    }
    Some(format!(
        "n={} ±{:.0}%",
        samples.len(),
        (max - min) / 2.0 / median * 100.0
    ))
}

/// A count with thousands separators.
pub fn format_count(count: usize) -> String {
    let digits = count.to_string();
    let mut out = String::new();
    for (index, ch) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Numbers with thousands separators and sensible precision.
pub fn format_value(value: f64) -> String {
    if value.abs() >= 1000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.unsigned_abs().to_string();
        let mut out = String::new();
        for (index, ch) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        if rounded < 0 {
            out.insert(0, '-');
        }
        out
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_formatting() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(format_value(1_234_567.4), "1,234,567");
        assert_eq!(format_value(12.345), "12.3");
        assert_eq!(format_value(0.5), "0.50");
        assert_eq!(format_count(12), "12");
        assert_eq!(format_count(100_000), "100,000");
    }
}
