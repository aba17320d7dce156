//! Diagrams of a definition: Graphviz DOT and Mermaid `stateDiagram-v2`.
//!
//! Both formats draw the same picture, built once as a [`Diagram`]:
//!
//! - stages are nodes, labelled in the requested language; the initial stage
//!   is entered from a start marker, terminal stages are marked as ends, and a
//!   deadline shows on its stage as `⏰ when → event`;
//! - transitions are edges labelled with their event and, below it, the roles
//!   that may fire it (`Publish the plan` / `[Branch secretary]`); a guarded
//!   transition is marked, and so is the fallback after a guarded one for the
//!   same event, since the first match wins; spawned children and parent
//!   notifications are listed under the roles;
//! - `from: "*"` is drawn from every non-terminal stage;
//! - record-only transitions (no `to`) stay on their stage: one dashed
//!   self-loop per stage in DOT, one `↺` description line each in Mermaid,
//!   which reads better than a knot of self-loops.
//!
//! Output is a pure function of the definition and the language, so diagrams
//! can be snapshot-tested and pasted into documents. Nothing here validates:
//! a definition the validator would reject (an undeclared stage, no initial
//! stage) still gets a diagram, never a panic.

use std::collections::{HashMap, HashSet};

use crate::definition::{ANY_STAGE, Definition, Label, StageKind, Transition};

/// The definition as a Graphviz DOT digraph, with labels in `lang` (`zh`,
/// `en`, ...; each label falls back to English, then to the id).
///
/// Render it with `dot -Tsvg`. Graphviz needs a CJK font installed to draw
/// Chinese labels, and an emoji font for the deadline clock.
pub fn to_dot(definition: &Definition, lang: &str) -> String {
    let diagram = Diagram::new(definition, lang);
    let font = "Helvetica,Arial,sans-serif";
    let mut out = String::new();
    out.push_str(&format!("digraph {} {{\n", dot_quote(&diagram.id)));
    out.push_str(&format!(
        "  graph [label={}, labelloc=t, fontname={}];\n",
        dot_quote(&diagram.title),
        dot_quote(font)
    ));
    out.push_str(&format!(
        "  node [shape=box, style=rounded, fontname={}];\n",
        dot_quote(font)
    ));
    out.push_str(&format!(
        "  edge [fontname={}, fontsize=10];\n",
        dot_quote(font)
    ));

    // The start marker's id cannot clash with a valid stage id, which never
    // holds parentheses.
    let start = dot_quote("(start)");
    if diagram.nodes.iter().any(|node| node.initial) {
        out.push_str(&format!(
            "\n  {start} [shape=point, width=0.15, label=\"\"];\n"
        ));
    }
    out.push('\n');
    for node in &diagram.nodes {
        let mut label = node.label.clone();
        if let Some(deadline) = &node.deadline {
            label.push('\n');
            label.push_str(deadline);
        }
        let mut attributes = vec![format!("label={}", dot_quote(&label))];
        if node.terminal {
            attributes.push("shape=doubleoctagon".to_owned());
        }
        if node.initial {
            attributes.push("style=\"rounded,bold\"".to_owned());
        }
        out.push_str(&format!(
            "  {} [{}];\n",
            dot_quote(&node.id),
            attributes.join(", ")
        ));
    }

    out.push('\n');
    for node in diagram.nodes.iter().filter(|node| node.initial) {
        out.push_str(&format!("  {start} -> {};\n", dot_quote(&node.id)));
    }
    for edge in &diagram.edges {
        out.push_str(&format!(
            "  {} -> {} [label={}];\n",
            dot_quote(&edge.from),
            dot_quote(&edge.to),
            dot_quote(&edge.text.lines().join("\n"))
        ));
    }
    for node in diagram.nodes.iter().filter(|node| !node.records.is_empty()) {
        // One loop per stage, its events left-aligned one per line (`\l`
        // ends a left-justified line in a DOT label).
        let label: String = node
            .records
            .iter()
            .map(|record| format!("{}\\l", dot_escape(&record.one_line())))
            .collect();
        out.push_str(&format!(
            "  {id} -> {id} [label=\"{label}\", style=dashed, color=gray40, fontcolor=gray25];\n",
            id = dot_quote(&node.id)
        ));
    }
    out.push_str("}\n");
    out
}

/// The definition as a Mermaid `stateDiagram-v2`, with labels in `lang`
/// (`zh`, `en`, ...; each label falls back to English, then to the id).
///
/// Stage ids may hold `-`, `.` and `:`, which Mermaid does not accept in a
/// state id, so every stage gets a safe id (`s_` and the id with those
/// characters replaced by `_`) and its label through `state "…" as s_…`.
/// Characters Mermaid would read as syntax (`:` `;` `#` `"` `<` `>`, the
/// backtick and the backslash) are written as Mermaid entity codes such as `#58;`, which render
/// as the character itself.
pub fn to_mermaid(definition: &Definition, lang: &str) -> String {
    let diagram = Diagram::new(definition, lang);
    let ids = MermaidIds::new(diagram.nodes.iter().map(|node| node.id.as_str()));
    let mut out = String::from("stateDiagram-v2\n");
    for node in &diagram.nodes {
        let id = ids.get(&node.id);
        out.push_str(&format!(
            "  state \"{}\" as {id}\n",
            mermaid_escape(&node.label)
        ));
        if let Some(deadline) = &node.deadline {
            out.push_str(&format!("  {id} : {}\n", mermaid_escape(deadline)));
        }
        for record in &node.records {
            out.push_str(&format!(
                "  {id} : ↺ {}\n",
                mermaid_escape(&record.one_line())
            ));
        }
    }
    out.push('\n');
    for node in diagram.nodes.iter().filter(|node| node.initial) {
        out.push_str(&format!("  [*] --> {}\n", ids.get(&node.id)));
    }
    for edge in &diagram.edges {
        let label: Vec<String> = edge
            .text
            .lines()
            .iter()
            .map(|line| mermaid_escape(line))
            .collect();
        out.push_str(&format!(
            "  {} --> {} : {}\n",
            ids.get(&edge.from),
            ids.get(&edge.to),
            label.join("<br/>")
        ));
    }
    for node in diagram.nodes.iter().filter(|node| node.terminal) {
        out.push_str(&format!("  {} --> [*]\n", ids.get(&node.id)));
    }
    out
}

/// What both formats draw, with every label already in the chosen language.
struct Diagram {
    id: String,
    title: String,
    /// Declared stages in document order, then stages that transitions name
    /// but the definition does not declare.
    nodes: Vec<Node>,
    /// Transitions that change stage, in document order, `from` expanded.
    edges: Vec<Edge>,
}

struct Node {
    id: String,
    label: String,
    initial: bool,
    terminal: bool,
    /// `⏰ when → event`.
    deadline: Option<String>,
    /// The record-only transitions that can fire here.
    records: Vec<EdgeText>,
}

struct Edge {
    from: String,
    to: String,
    text: EdgeText,
}

/// The label of a transition.
struct EdgeText {
    /// The event's label, with the guard or fallback marker.
    event: String,
    /// `[role, role]`.
    roles: String,
    /// Spawned children and parent notifications.
    extras: Vec<String>,
}

impl EdgeText {
    /// The same label with `marker` after the event.
    fn marked(&self, marker: &str) -> EdgeText {
        EdgeText {
            event: format!("{}{marker}", self.event),
            roles: self.roles.clone(),
            extras: self.extras.clone(),
        }
    }

    fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.event.clone(), self.roles.clone()];
        lines.extend(self.extras.iter().cloned());
        lines
    }

    fn one_line(&self) -> String {
        let mut line = format!("{} {}", self.event, self.roles);
        for extra in &self.extras {
            line.push_str(" · ");
            line.push_str(extra);
        }
        line
    }
}

/// The few fixed words a diagram needs, per language.
struct Words {
    guarded: &'static str,
    otherwise: &'static str,
    spawns: &'static str,
    notifies: &'static str,
    role_separator: &'static str,
}

const ENGLISH: Words = Words {
    guarded: " (guarded)",
    otherwise: " (otherwise)",
    spawns: "spawns",
    notifies: "notifies parent",
    role_separator: ", ",
};

const CHINESE: Words = Words {
    guarded: "（有条件）",
    otherwise: "（否则）",
    spawns: "启动子流程",
    notifies: "通知上级",
    role_separator: "，",
};

fn words(lang: &str) -> &'static Words {
    if lang == "zh" { &CHINESE } else { &ENGLISH }
}

/// A label's text in `lang`, or `fallback` when there is no label or it is
/// empty.
fn text(label: Option<&Label>, lang: &str, fallback: &str) -> String {
    match label.map(|label| label.get(lang)) {
        Some(text) if !text.trim().is_empty() => text.to_owned(),
        _ => fallback.to_owned(),
    }
}

impl Diagram {
    fn new(definition: &Definition, lang: &str) -> Diagram {
        let words = words(lang);
        let labels = Labels::new(definition, lang);
        let non_terminal: Vec<&str> = definition
            .stages
            .iter()
            .filter(|stage| stage.kind != StageKind::Terminal)
            .map(|stage| stage.id.as_str())
            .collect();
        // `from` as stage ids, `*` expanded, each id once, in order.
        let expanded: Vec<Vec<&str>> = definition
            .transitions
            .iter()
            .map(|transition| {
                let mut seen = HashSet::new();
                let mut sources = Vec::new();
                for id in transition.from.ids() {
                    if id == ANY_STAGE {
                        sources.extend(non_terminal.iter().copied().filter(|id| seen.insert(*id)));
                    } else if seen.insert(id.as_str()) {
                        sources.push(id.as_str());
                    }
                }
                sources
            })
            .collect();

        let mut nodes: Vec<Node> = definition
            .stages
            .iter()
            .map(|stage| Node {
                id: stage.id.clone(),
                label: text(stage.label.as_ref(), lang, &stage.id),
                initial: stage.kind == StageKind::Initial,
                terminal: stage.kind == StageKind::Terminal,
                deadline: stage.deadline.as_ref().map(|deadline| {
                    let when = match (&deadline.at, &deadline.after, &deadline.at_data) {
                        (Some(at), _, _) => at.clone(),
                        (None, Some(after), _) => after.clone(),
                        (None, None, Some(var)) => {
                            let field = definition.data.iter().find(|field| &field.id == var);
                            text(field.and_then(|field| field.label.as_ref()), lang, var)
                        }
                        (None, None, None) => "?".to_owned(),
                    };
                    format!("⏰ {when} → {}", labels.event(&deadline.event))
                }),
                records: Vec::new(),
            })
            .collect();
        // The first declaration of a stage id is its node; then come the
        // stages that transitions name without declaring them.
        let mut index: HashMap<String, usize> = HashMap::new();
        for (at, node) in nodes.iter().enumerate() {
            index.entry(node.id.clone()).or_insert(at);
        }
        for (transition, from) in definition.transitions.iter().zip(&expanded) {
            for id in from.iter().copied().chain(transition.to.as_deref()) {
                if !index.contains_key(id) {
                    index.insert(id.to_owned(), nodes.len());
                    nodes.push(Node {
                        id: id.to_owned(),
                        label: id.to_owned(),
                        initial: false,
                        terminal: false,
                        deadline: None,
                        records: Vec::new(),
                    });
                }
            }
        }

        let mut edges = Vec::new();
        // (event, stage) pairs some earlier transition already handles.
        let mut handled: HashSet<(&str, &str)> = HashSet::new();
        for (transition, from) in definition.transitions.iter().zip(&expanded) {
            let text = labels.transition(transition);
            for &source in from {
                // Among transitions for the same event, the first that
                // matches wins: an unguarded one after another for the same
                // event and stage is the "otherwise" branch.
                let follows_another = !handled.insert((transition.event.as_str(), source));
                let marker = if transition.guard.is_some() {
                    words.guarded
                } else if follows_another {
                    words.otherwise
                } else {
                    ""
                };
                let text = text.marked(marker);
                match &transition.to {
                    Some(to) => edges.push(Edge {
                        from: source.to_owned(),
                        to: to.clone(),
                        text,
                    }),
                    None => {
                        if let Some(node) = index.get(source).and_then(|&at| nodes.get_mut(at)) {
                            node.records.push(text);
                        }
                    }
                }
            }
        }

        Diagram {
            id: definition.id.clone(),
            title: text(Some(&definition.title), lang, &definition.id),
            nodes,
            edges,
        }
    }
}

/// Looks up the labels of events and roles in one language.
struct Labels<'a> {
    lang: &'a str,
    words: &'static Words,
    /// Each event's label: that of the first transition for it that has one.
    events: HashMap<&'a str, &'a Label>,
    /// Each role's label, from its first declaration.
    roles: HashMap<&'a str, &'a Label>,
}

impl<'a> Labels<'a> {
    fn new(definition: &'a Definition, lang: &'a str) -> Labels<'a> {
        let mut events = HashMap::new();
        for transition in &definition.transitions {
            if let Some(label) = &transition.label {
                events.entry(transition.event.as_str()).or_insert(label);
            }
        }
        let mut roles = HashMap::new();
        for role in &definition.roles {
            if let Some(label) = &role.label {
                roles.entry(role.id.as_str()).or_insert(label);
            }
        }
        Labels {
            lang,
            words: words(lang),
            events,
            roles,
        }
    }

    /// An event's label, or the event id.
    fn event(&self, event: &str) -> String {
        text(self.events.get(event).copied(), self.lang, event)
    }

    /// A transition's label, without the guard marker.
    fn transition(&self, transition: &Transition) -> EdgeText {
        let event = match &transition.label {
            Some(label) => text(Some(label), self.lang, &transition.event),
            None => self.event(&transition.event),
        };
        let roles: Vec<String> = transition
            .roles
            .iter()
            .map(|id| text(self.roles.get(id.as_str()).copied(), self.lang, id))
            .collect();
        let mut extras = Vec::new();
        if let Some(spawn) = &transition.spawn {
            extras.push(format!("{} {}", self.words.spawns, spawn.workflow));
        }
        if let Some(event) = &transition.notify_parent {
            extras.push(format!("{} {event}", self.words.notifies));
        }
        EdgeText {
            event,
            roles: format!("[{}]", roles.join(self.words.role_separator)),
            extras,
        }
    }
}

/// `text` as a double-quoted DOT string.
fn dot_quote(text: &str) -> String {
    format!("\"{}\"", dot_escape(text))
}

/// Escapes `text` for the inside of a double-quoted DOT string. Backslashes
/// are doubled so that Graphviz's own escapes (`\N`, `\l`, ...) cannot be
/// smuggled in through a label; line breaks become `\n`.
fn dot_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `text` for a Mermaid label, state description or quoted state
/// name. Characters that are Mermaid syntax become entity codes (`#58;` is
/// `:`), which Mermaid renders as the character; line breaks become spaces.
fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' | ';' | ':' | '"' | '<' | '>' | '`' | '\\' => {
                out.push_str(&format!("#{};", u32::from(c)));
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Safe Mermaid state ids for stage ids, stable for a given list of stages.
struct MermaidIds {
    ids: HashMap<String, String>,
}

impl MermaidIds {
    fn new<'a>(stages: impl Iterator<Item = &'a str>) -> MermaidIds {
        let mut taken = HashSet::new();
        let mut ids = HashMap::new();
        for stage in stages {
            if ids.contains_key(stage) {
                continue;
            }
            // The `s_` prefix keeps ids clear of Mermaid's keywords (`state`,
            // `note`, `end`, `direction`, ...) and of a leading digit.
            let base: String = "s_"
                .chars()
                .chain(stage.chars().map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                }))
                .collect();
            let mut id = base.clone();
            let mut suffix = 2;
            while !taken.insert(id.clone()) {
                id = format!("{base}_{suffix}");
                suffix += 1;
            }
            ids.insert(stage.to_owned(), id);
        }
        MermaidIds { ids }
    }

    /// The safe id of `stage`. Every node's stage is registered, so the
    /// fallback never shows in practice; it keeps the function total.
    fn get(&self, stage: &str) -> &str {
        self.ids.get(stage).map(String::as_str).unwrap_or("s_")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn definition(value: serde_json::Value) -> Definition {
        match serde_json::from_value(value) {
            Ok(definition) => definition,
            Err(error) => panic!("test definition: {error}"),
        }
    }

    #[test]
    fn mermaid_ids_are_safe_and_distinct() {
        let ids = MermaidIds::new(["a-b", "a_b", "a.b:c", "end", "1st", "a_b_2"].into_iter());
        let safe: Vec<&str> = ["a-b", "a_b", "a.b:c", "end", "1st", "a_b_2"]
            .iter()
            .map(|stage| ids.get(stage))
            .collect();
        assert_eq!(
            safe,
            ["s_a_b", "s_a_b_2", "s_a_b_c", "s_end", "s_1st", "s_a_b_2_2"]
        );
    }

    #[test]
    fn special_characters_are_escaped() {
        assert_eq!(dot_escape("a \"b\" \\N\nc"), "a \\\"b\\\" \\\\N\\nc");
        assert_eq!(
            mermaid_escape("a:b; #c \"d\" <e>\n"),
            "a#58;b#59; #35;c #34;d#34; #60;e#62; "
        );
    }

    #[test]
    fn wildcard_record_only_and_undeclared_stages() {
        let definition = definition(json!({
            "id": "w",
            "title": {"en": "W \"quoted\"", "zh": "流程"},
            "stages": [
                {"id": "a", "kind": "initial", "deadline": {"after": "P1D", "event": "late"}},
                {"id": "b:1"},
                {"id": "z", "kind": "terminal"}
            ],
            "transitions": [
                {"event": "go", "from": "a", "to": "b:1", "roles": ["r"], "guard": {"==": [1, 1]}},
                {"event": "go", "from": "a", "to": "z", "roles": ["r"]},
                {"event": "late", "from": "a", "roles": ["system"]},
                {"event": "stop", "from": "*", "to": "z", "roles": ["r"]},
                {"event": "lost", "from": "b:1", "to": "nowhere", "roles": []}
            ]
        }));
        let dot = to_dot(&definition, "en");
        assert!(dot.contains("label=\"W \\\"quoted\\\"\""), "{dot}");
        assert!(
            dot.contains("\"a\" -> \"b:1\" [label=\"go (guarded)\\n[r]\"]"),
            "{dot}"
        );
        assert!(
            dot.contains("\"a\" -> \"z\" [label=\"go (otherwise)\\n[r]\"]"),
            "{dot}"
        );
        assert!(
            dot.contains("\"a\" -> \"a\" [label=\"late [system]\\l\", style=dashed"),
            "{dot}"
        );
        assert!(
            dot.contains("\"b:1\" -> \"z\" [label=\"stop\\n[r]\"]"),
            "{dot}"
        );
        assert!(!dot.contains("\"z\" -> \"z\""), "{dot}");
        assert!(dot.contains("\"nowhere\" [label=\"nowhere\"]"), "{dot}");

        let mermaid = to_mermaid(&definition, "zh");
        assert!(mermaid.contains("state \"b#58;1\" as s_b_1"), "{mermaid}");
        assert!(mermaid.contains("s_a : ⏰ P1D → late"), "{mermaid}");
        assert!(mermaid.contains("s_a : ↺ late [system]"), "{mermaid}");
        assert!(
            mermaid.contains("s_a --> s_z : go（否则）<br/>[r]"),
            "{mermaid}"
        );
        assert!(mermaid.contains("[*] --> s_a\n"), "{mermaid}");
        assert!(mermaid.contains("s_z --> [*]\n"), "{mermaid}");
        assert_eq!(to_mermaid(&definition, "zh"), mermaid);
    }

    #[test]
    fn degenerate_definitions_still_render() {
        let empty = definition(json!({"id": "e", "title": "", "stages": []}));
        assert_eq!(to_mermaid(&empty, "en"), "stateDiagram-v2\n\n");
        assert!(to_dot(&empty, "en").contains("label=\"e\""));
        let odd = definition(json!({
            "id": "o",
            "title": {"fr": "seulement"},
            "stages": [{"id": "a", "label": {}}, {"id": "a"}, {"id": "*", "kind": "terminal"}],
            "transitions": [{"event": "x", "from": ["*", "a", "b"], "roles": []}]
        }));
        for lang in ["en", "zh", "fr", ""] {
            let dot = to_dot(&odd, lang);
            let mermaid = to_mermaid(&odd, lang);
            assert!(dot.contains("\"b\" -> \"b\""), "{dot}");
            assert!(mermaid.contains("s_b : ↺ x []"), "{mermaid}");
        }
    }
}
