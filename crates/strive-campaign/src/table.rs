//! Plain-text tables that line up in a terminal with Chinese in them: a
//! Chinese character takes two columns, so widths are display widths, not
//! character counts.

use unicode_width::UnicodeWidthStr;

/// The columns a text takes in a terminal.
pub(crate) fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` cut to at most `max` columns, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// A table: a two-line header (Chinese, then English), rows, and which
/// columns are numbers (right-aligned).
pub(crate) struct Table {
    zh: Vec<String>,
    en: Vec<String>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns: (Chinese header, English header,
    /// numeric).
    pub(crate) fn new(columns: &[(&str, &str, bool)]) -> Table {
        Table {
            zh: columns.iter().map(|c| c.0.to_owned()).collect(),
            en: columns.iter().map(|c| c.1.to_owned()).collect(),
            numeric: columns.iter().map(|c| c.2).collect(),
            rows: Vec::new(),
        }
    }

    /// A table whose columns are given as owned strings.
    pub(crate) fn with_columns(columns: Vec<(String, String, bool)>) -> Table {
        Table {
            zh: columns.iter().map(|c| c.0.clone()).collect(),
            en: columns.iter().map(|c| c.1.clone()).collect(),
            numeric: columns.iter().map(|c| c.2).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, each line indented by `indent`.
    pub(crate) fn render(&self, indent: &str) -> String {
        let columns = self.zh.len();
        let mut widths = vec![0; columns];
        for (index, slot) in widths.iter_mut().enumerate() {
            let header = self
                .zh
                .get(index)
                .map_or(0, |h| width(h))
                .max(self.en.get(index).map_or(0, |h| width(h)));
            let cells = self
                .rows
                .iter()
                .filter_map(|row| row.get(index))
                .map(|cell| width(cell))
                .max()
                .unwrap_or(0);
            *slot = header.max(cells);
        }
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let mut text = String::from(indent);
            for (index, w) in widths.iter().enumerate() {
                let cell = cells.get(index).map(String::as_str).unwrap_or("");
                let pad = w.saturating_sub(width(cell));
                if index > 0 {
                    text.push_str("  ");
                }
                if self.numeric.get(index) == Some(&true) {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&self.zh, &mut out);
        line(&self.en, &mut out);
        let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
        line(&rule, &mut out);
        for row in &self.rows {
            line(row, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_takes_two_columns() {
        assert_eq!(width("评为先进"), 8);
        assert_eq!(width("org-01"), 6);
        assert_eq!(truncate("一二三四五", 7), "一二三…");
        let mut table = Table::new(&[("单位", "Unit", false), ("分数", "Score", true)]);
        table.row(vec!["org-01".into(), "9".into()]);
        table.row(vec!["稽查支队".into(), "10".into()]);
        let text = table.render("");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "单位       分数");
        assert_eq!(lines[3], "org-01        9");
        assert_eq!(lines[4], "稽查支队     10");
    }
}
