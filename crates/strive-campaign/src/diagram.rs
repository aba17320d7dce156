//! A workflow drawn as inline SVG for the HTML report, with each stage's
//! instance count on it. No script and no external file: the report must
//! open anywhere, offline, as one file.
//!
//! The layout is layered, top to bottom: a stage's row is its distance from
//! the initial stage, stages of a row sit side by side in document order.
//! Edges to the next row are curves labelled beside their middle; edges
//! that go back up (rectification and round again) or skip rows run in
//! lanes on the right and the left. Record-only events are listed inside
//! their stage (`↺`), and a deadline is shown under its stage's name, as in
//! the Mermaid diagrams of `docs/workflows.md`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use strive_core::{ANY_STAGE, Deadline, Definition, StageKind};

use crate::html::escape;
use crate::report::labels;

const NODE_HEIGHT: f64 = 52.0;
const LINE: f64 = 15.0;
const ROW_GAP: f64 = 64.0;
const COLUMN_GAP: f64 = 90.0;
const LANE: f64 = 26.0;
const MARGIN: f64 = 24.0;

/// Estimated width of `text` at `size` px: a Chinese character is about
/// one em, a Latin one a little over half.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars()
        .map(|c| match unicode_width::UnicodeWidthChar::width(c) {
            Some(2) => size,
            Some(_) if c.is_ascii_uppercase() => 0.66 * size,
            Some(_) => 0.55 * size,
            None => 0.0,
        })
        .sum()
}

/// Splits `text` into lines of at most `max` characters, at spaces.
fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= max => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

struct Node {
    id: String,
    zh: String,
    en: String,
    extra: Vec<(String, &'static str)>,
    initial: bool,
    terminal: bool,
    row: usize,
    x: f64,
    y: f64,
    height: f64,
}

struct Edge {
    from: usize,
    to: usize,
    zh: Vec<String>,
    en: Vec<String>,
}

/// How a deadline reads: `14天后` for a duration, the variable's label for
/// a date held in data, the date itself for a fixed time.
fn deadline_text(definition: &Definition, deadline: &Deadline) -> String {
    let event = definition
        .transitions
        .iter()
        .find(|t| t.event == deadline.event)
        .map(|t| labels(t.label.as_ref(), &t.event).0)
        .unwrap_or_else(|| deadline.event.clone());
    let when = if let Some(after) = &deadline.after {
        let days = after
            .strip_prefix('P')
            .and_then(|d| d.strip_suffix('D'))
            .and_then(|d| d.parse::<u32>().ok());
        match days {
            Some(days) => format!("{days}天后"),
            None => after.clone(),
        }
    } else if let Some(var) = &deadline.at_data {
        definition
            .data
            .iter()
            .find(|f| &f.id == var)
            .map(|f| labels(f.label.as_ref(), &f.id).0)
            .unwrap_or_else(|| var.clone())
    } else {
        deadline.at.clone().unwrap_or_default()
    };
    format!("期限 {when} → {event}")
}

/// The diagram's style rules, for every page that shows one: the report's
/// and the console's (issue #12). A stage's group carries its id in
/// `data-stage`, so a page can highlight one stage by a rule or a script.
pub const DIAGRAM_CSS: &str = r#"
.diagram-wrap { overflow-x: auto; border: 1px solid #edf0f4; border-radius: 10px; background: #fcfdfe; margin-bottom: 6px; }
svg.diagram { display: block; margin: 0 auto; font-family: inherit; }
svg.diagram rect.box { fill: #eef4fb; stroke: #2456a6; stroke-width: 1.5; }
svg.diagram .initial rect.box { fill: #e9f6ee; stroke: #1d6b35; }
svg.diagram .terminal rect.box { fill: #f2f2f4; stroke: #4a4f57; }
svg.diagram rect.inner { fill: none; stroke: #4a4f57; stroke-width: 1; }
svg.diagram .stage-zh { font-size: 15px; font-weight: 700; fill: #1f2d3d; }
svg.diagram .stage-en { font-size: 12px; fill: #5b6b7f; }
svg.diagram .deadline { font-size: 11px; fill: #a15c00; }
svg.diagram .loop { font-size: 11px; fill: #5b6b7f; }
svg.diagram rect.count { fill: #c8372d; }
svg.diagram rect.count.zero { fill: #b8c2cc; }
svg.diagram .count-text { font-size: 12px; font-weight: 700; fill: #fff; }
svg.diagram .edge-label { paint-order: stroke; stroke: #fcfdfe; stroke-width: 4px; stroke-linejoin: round; }
svg.diagram .edge-zh { font-size: 12px; fill: #1f2d3d; }
svg.diagram .edge-en { font-size: 11px; fill: #5b6b7f; }
"#;

/// A workflow's diagram as an inline SVG element, `counts` giving each
/// stage's instances (a stage not in it shows 0).
pub fn workflow_svg(definition: &Definition, counts: &HashMap<String, u64>) -> String {
    svg(definition, counts)
}

/// The workflow as an SVG element, `counts` giving each stage's instances.
pub(crate) fn svg(definition: &Definition, counts: &HashMap<String, u64>) -> String {
    let index: HashMap<&str, usize> = definition
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let non_terminal: Vec<usize> = definition
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind != StageKind::Terminal)
        .map(|(i, _)| i)
        .collect();

    // Edges, one per (from, to), labels of the transitions merged.
    let mut edges: Vec<Edge> = Vec::new();
    let mut loops: HashMap<usize, Vec<String>> = HashMap::new();
    let mut guarded_events: Vec<&str> = Vec::new();
    for transition in &definition.transitions {
        let (zh, en) = labels(transition.label.as_ref(), &transition.event);
        let mark = if transition.guard.is_some() {
            Some(("（有条件）", " (guarded)"))
        } else if guarded_events.contains(&transition.event.as_str()) {
            Some(("（否则）", " (otherwise)"))
        } else {
            None
        };
        if transition.guard.is_some() {
            guarded_events.push(&transition.event);
        }
        let (zh, en) = match mark {
            Some((z, e)) => (format!("{zh}{z}"), format!("{en}{e}")),
            None => (zh, en),
        };
        let froms: Vec<usize> = if transition.from.ids().iter().any(|s| s == ANY_STAGE) {
            non_terminal.clone()
        } else {
            transition
                .from
                .ids()
                .iter()
                .filter_map(|s| index.get(s.as_str()).copied())
                .collect()
        };
        let to = transition.to.as_deref().and_then(|t| index.get(t).copied());
        for from in froms {
            match to {
                Some(to) if to != from => {
                    match edges.iter_mut().find(|e| e.from == from && e.to == to) {
                        Some(edge) => {
                            if !edge.zh.contains(&zh) {
                                edge.zh.push(zh.clone());
                                edge.en.push(en.clone());
                            }
                        }
                        None => edges.push(Edge {
                            from,
                            to,
                            zh: vec![zh.clone()],
                            en: vec![en.clone()],
                        }),
                    }
                }
                _ => {
                    let entry = loops.entry(from).or_default();
                    let short = labels(transition.label.as_ref(), &transition.event).0;
                    if !entry.contains(&short) {
                        entry.push(short);
                    }
                }
            }
        }
    }

    // Rows: distance from the initial stage.
    let mut row: Vec<Option<usize>> = vec![None; definition.stages.len()];
    let initial = definition
        .stages
        .iter()
        .position(|s| s.kind == StageKind::Initial)
        .unwrap_or(0);
    let mut queue = VecDeque::from([initial]);
    if let Some(slot) = row.get_mut(initial) {
        *slot = Some(0);
    }
    while let Some(stage) = queue.pop_front() {
        let here = row.get(stage).copied().flatten().unwrap_or(0);
        for edge in edges.iter().filter(|e| e.from == stage) {
            if let Some(slot) = row.get_mut(edge.to)
                && slot.is_none()
            {
                *slot = Some(here + 1);
                queue.push_back(edge.to);
            }
        }
    }
    let deepest = row.iter().flatten().copied().max().unwrap_or(0);
    let rows: Vec<usize> = row.iter().map(|r| r.unwrap_or(deepest + 1)).collect();

    // Nodes, sized to the widest label.
    let mut nodes: Vec<Node> = definition
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let (zh, en) = labels(stage.label.as_ref(), &stage.id);
            let mut extra = Vec::new();
            if let Some(deadline) = &stage.deadline {
                extra.push((deadline_text(definition, deadline), "deadline"));
            }
            if let Some(events) = loops.get(&i) {
                extra.push((format!("↺ {}", events.join("、")), "loop"));
            }
            let height = NODE_HEIGHT + LINE * extra.len() as f64;
            Node {
                id: stage.id.clone(),
                zh,
                en,
                extra,
                initial: stage.kind == StageKind::Initial,
                terminal: stage.kind == StageKind::Terminal,
                row: rows.get(i).copied().unwrap_or(0),
                x: 0.0,
                y: 0.0,
                height,
            }
        })
        .collect();
    let width = nodes
        .iter()
        .map(|n| {
            let extra = n
                .extra
                .iter()
                .map(|(t, _)| text_width(t, 11.0))
                .fold(0.0, f64::max);
            text_width(&n.zh, 15.0)
                .max(text_width(&n.en, 12.0))
                .max(extra)
        })
        .fold(120.0, f64::max)
        + 56.0;

    // Places rows top to bottom, each centred.
    let row_count = nodes.iter().map(|n| n.row).max().unwrap_or(0) + 1;
    let per_row: Vec<Vec<usize>> = (0..row_count)
        .map(|r| {
            (0..nodes.len())
                .filter(|i| nodes.get(*i).is_some_and(|n| n.row == r))
                .collect()
        })
        .collect();
    let widest = per_row.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let left_lanes = edges.iter().filter(|e| long_forward(&nodes, e)).count() as f64;
    let right_lanes = edges.iter().filter(|e| backward(&nodes, e)).count() as f64;
    let label_room = 150.0;
    let content_width = widest * width + (widest - 1.0) * COLUMN_GAP;
    let left = MARGIN + label_room + left_lanes * LANE;
    let centre = left + content_width / 2.0;
    let mut y = MARGIN + 14.0;
    for members in &per_row {
        let row_height = members
            .iter()
            .filter_map(|i| nodes.get(*i))
            .map(|n| n.height)
            .fold(NODE_HEIGHT, f64::max);
        let count = members.len() as f64;
        let span = count * width + (count - 1.0) * COLUMN_GAP;
        for (k, i) in members.iter().enumerate() {
            if let Some(node) = nodes.get_mut(*i) {
                node.x = centre - span / 2.0 + k as f64 * (width + COLUMN_GAP);
                node.y = y + (row_height - node.height) / 2.0;
            }
        }
        y += row_height + ROW_GAP;
    }
    let total_height = y - ROW_GAP + MARGIN;
    let total_width = left + content_width + right_lanes * LANE + label_room + MARGIN;

    let id = svg_id(&definition.id);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="diagram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img" aria-label="{title}">"#,
        w = total_width,
        h = total_height,
        title = escape(&labels(Some(&definition.title), &definition.id).1),
    );
    let _ = write!(
        out,
        r##"<defs><marker id="{id}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#5b6b7f"/></marker></defs>"##
    );

    // Edges first, so that nodes and labels sit on top of them.
    let mut labels_svg = String::new();
    let (mut left_lane, mut right_lane) = (0.0, 0.0);
    for edge in &edges {
        let (Some(from), Some(to)) = (nodes.get(edge.from), nodes.get(edge.to)) else {
            continue;
        };
        let path;
        let (lx, ly, anchor);
        if backward(&nodes, edge) {
            right_lane += 1.0;
            let lane = left + content_width + right_lane * LANE;
            let (x1, y1) = (from.x + width, from.y + from.height / 2.0);
            let (x2, y2) = (to.x + width, to.y + to.height / 2.0);
            path = format!(
                "M{x1:.1},{y1:.1} C{a:.1},{y1:.1} {lane:.1},{y1:.1} {lane:.1},{m1:.1} L{lane:.1},{m2:.1} C{lane:.1},{y2:.1} {a2:.1},{y2:.1} {x2:.1},{y2:.1}",
                a = x1 + 20.0,
                m1 = y1 - 16.0,
                m2 = y2 + 16.0,
                a2 = x2 + 20.0,
            );
            (lx, ly, anchor) = (lane + 6.0, (y1 + y2) / 2.0, "start");
        } else if long_forward(&nodes, edge) {
            left_lane += 1.0;
            let lane = left - left_lane * LANE;
            let (x1, y1) = (from.x, from.y + from.height / 2.0);
            let (x2, y2) = (to.x, to.y + to.height / 2.0);
            path = format!(
                "M{x1:.1},{y1:.1} C{a:.1},{y1:.1} {lane:.1},{y1:.1} {lane:.1},{m1:.1} L{lane:.1},{m2:.1} C{lane:.1},{y2:.1} {a2:.1},{y2:.1} {x2:.1},{y2:.1}",
                a = x1 - 20.0,
                m1 = y1 + 16.0,
                m2 = y2 - 16.0,
                a2 = x2 - 20.0,
            );
            (lx, ly, anchor) = (lane - 6.0, (y1 + y2) / 2.0, "end");
        } else {
            let (x1, y1) = (from.x + width / 2.0, from.y + from.height);
            let (x2, y2) = (to.x + width / 2.0, to.y);
            let mid = (y1 + y2) / 2.0;
            path = format!("M{x1:.1},{y1:.1} C{x1:.1},{mid:.1} {x2:.1},{mid:.1} {x2:.1},{y2:.1}");
            let mx = (x1 + x2) / 2.0;
            (lx, ly, anchor) = if x2 < x1 - 1.0 {
                (mx - 10.0, mid, "end")
            } else {
                (mx + 10.0, mid, "start")
            };
        }
        let _ = write!(
            out,
            r##"<path d="{path}" fill="none" stroke="#5b6b7f" stroke-width="1.4" marker-end="url(#{id}-arrow)"/>"##
        );
        let mut lines: Vec<(String, &str)> = Vec::new();
        for (zh, en) in edge.zh.iter().zip(&edge.en) {
            lines.push((zh.clone(), "edge-zh"));
            for line in wrap(en, 30) {
                lines.push((line, "edge-en"));
            }
        }
        let top = ly - lines.len() as f64 * 13.0 / 2.0 + 10.0;
        let _ = write!(
            labels_svg,
            r#"<text x="{lx:.1}" y="{top:.1}" text-anchor="{anchor}" class="edge-label">"#
        );
        for (n, (text, class)) in lines.iter().enumerate() {
            let _ = write!(
                labels_svg,
                r#"<tspan x="{lx:.1}" dy="{dy}" class="{class}">{}</tspan>"#,
                escape(text),
                dy = if n == 0 { 0.0 } else { 13.0 },
            );
        }
        labels_svg.push_str("</text>");
    }
    out.push_str(&labels_svg);

    for node in &nodes {
        let count = counts.get(&node.id).copied().unwrap_or(0);
        let (x, y, h) = (node.x, node.y, node.height);
        let class = if node.terminal {
            "stage terminal"
        } else if node.initial {
            "stage initial"
        } else {
            "stage"
        };
        let _ = write!(
            out,
            r#"<g class="{class}" data-stage="{}"><rect class="box" x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{h:.1}" rx="10"/>"#,
            escape(&node.id)
        );
        if node.terminal {
            let _ = write!(
                out,
                r#"<rect class="inner" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="7"/>"#,
                x + 3.5,
                y + 3.5,
                width - 7.0,
                h - 7.0
            );
        }
        let cx = x + width / 2.0;
        let _ = write!(
            out,
            r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" class="stage-zh">{}</text><text x="{cx:.1}" y="{:.1}" text-anchor="middle" class="stage-en">{}</text>"#,
            y + 22.0,
            escape(&node.zh),
            y + 39.0,
            escape(&node.en),
        );
        for (n, (text, class)) in node.extra.iter().enumerate() {
            let _ = write!(
                out,
                r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" class="{class}">{}</text>"#,
                y + 54.0 + LINE * n as f64,
                escape(text),
            );
        }
        // The count sits on the top-right corner, a pill that grows with
        // the number's digits.
        let digits = count.to_string();
        let pill = 12.0 + 7.5 * digits.len() as f64;
        let px = x + width - pill / 2.0 - 4.0;
        let py = y;
        let _ = write!(
            out,
            r#"<rect class="{}" x="{:.1}" y="{:.1}" width="{pill:.1}" height="20" rx="10"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" class="count-text">{digits}</text></g>"#,
            if count > 0 { "count" } else { "count zero" },
            px - pill / 2.0,
            py - 10.0,
            py + 4.5,
        );
        if node.initial {
            let (sx, sy) = (x - 34.0, y + h / 2.0);
            let _ = write!(
                out,
                r##"<circle cx="{sx:.1}" cy="{sy:.1}" r="7" fill="#1f2d3d"/><path d="M{:.1},{sy:.1} L{:.1},{sy:.1}" stroke="#5b6b7f" stroke-width="1.4" marker-end="url(#{id}-arrow)"/>"##,
                sx + 7.0,
                x - 1.0
            );
        }
    }
    out.push_str("</svg>");
    out
}

fn backward(nodes: &[Node], edge: &Edge) -> bool {
    match (nodes.get(edge.from), nodes.get(edge.to)) {
        (Some(from), Some(to)) => to.row <= from.row,
        _ => false,
    }
}

fn long_forward(nodes: &[Node], edge: &Edge) -> bool {
    match (nodes.get(edge.from), nodes.get(edge.to)) {
        (Some(from), Some(to)) => to.row > from.row + 1,
        _ => false,
    }
}

/// An id usable in SVG `id` attributes: the workflow id's letters and
/// digits, so that two diagrams on one page never share a marker.
fn svg_id(workflow: &str) -> String {
    let cleaned: String = workflow
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("wf-{cleaned}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_campaign_workflow_draws_with_its_counts() {
        for (_, text) in crate::workflows::DEFINITIONS {
            let definition: Definition = serde_json::from_str(text).expect("a definition");
            let mut counts = HashMap::new();
            counts.insert(definition.stages[0].id.clone(), 12);
            let svg = svg(&definition, &counts);
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(svg.ends_with("</svg>"));
            assert!(svg.contains(">12</text>"));
            for stage in &definition.stages {
                let (zh, _) = labels(stage.label.as_ref(), &stage.id);
                assert!(svg.contains(&escape(&zh)), "{} is drawn", stage.id);
            }
        }
    }

    #[test]
    fn labels_wrap_at_spaces() {
        assert_eq!(
            wrap("Close the evaluation (otherwise)", 20),
            ["Close the evaluation", "(otherwise)"]
        );
    }
}
