//! A definition as a Petri net in PNML (ISO/IEC 15909-2), for conformance
//! checking in PM4Py or ProM against the designed model.
//!
//! - every stage is a place;
//! - every transition is a Petri net transition labelled with its name (its
//!   `id`, or its event), the label the XES export gives events; one per
//!   stage it fires from (`"*"` is every non-terminal stage); a transition
//!   that only records data is a self-loop on its stage;
//! - the start of an instance is a transition labelled `start` from a
//!   source place `start`, which holds the initial marking, to the initial
//!   stage, because the XES log records the start event too;
//! - the final marking is the terminal stage; with several terminal stages,
//!   each feeds a silent transition into one `end` place, which is the
//!   final marking (PNML tools read one final marking).

use std::fmt::Write as _;

use strive_core::{Definition, StageKind};

use crate::export::xml_escape;

/// The PNML document of `definition`.
pub fn to_pnml(definition: &Definition) -> String {
    let mut places: Vec<(String, String, bool)> = Vec::new();
    let place_of = |stage: &str| {
        definition
            .stages
            .iter()
            .position(|s| s.id == stage)
            .map(|i| format!("p{i}"))
    };
    places.push(("source".to_owned(), "start".to_owned(), true));
    for (i, stage) in definition.stages.iter().enumerate() {
        places.push((format!("p{i}"), stage.id.clone(), false));
    }
    let terminals: Vec<String> = definition
        .stages
        .iter()
        .filter(|s| s.kind == StageKind::Terminal)
        .filter_map(|s| place_of(&s.id))
        .collect();
    // (id, label or None for silent, inputs, outputs)
    let mut transitions: Vec<(String, Option<String>, String, String)> = Vec::new();
    if let Some(initial) = definition
        .stages
        .iter()
        .find(|s| s.kind == StageKind::Initial)
        .and_then(|s| place_of(&s.id))
    {
        transitions.push((
            "t_start".to_owned(),
            Some("start".to_owned()),
            "source".to_owned(),
            initial,
        ));
    }
    for (n, transition) in definition.transitions.iter().enumerate() {
        let from: Vec<String> = if transition.from.is_any() {
            definition
                .stages
                .iter()
                .filter(|s| s.kind != StageKind::Terminal)
                .map(|s| s.id.clone())
                .collect()
        } else {
            transition.from.ids().to_vec()
        };
        for (k, stage) in from.iter().enumerate() {
            let (Some(input), Some(output)) = (
                place_of(stage),
                place_of(transition.to.as_deref().unwrap_or(stage)),
            ) else {
                continue;
            };
            transitions.push((
                format!("t{n}_{k}"),
                Some(transition.name().to_owned()),
                input,
                output,
            ));
        }
    }
    let final_place = match terminals.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        several => {
            places.push(("end".to_owned(), "end".to_owned(), false));
            for (k, terminal) in several.iter().enumerate() {
                transitions.push((format!("tau{k}"), None, terminal.clone(), "end".to_owned()));
            }
            Some("end".to_owned())
        }
    };

    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<pnml>\n");
    let _ = writeln!(
        out,
        "  <net id=\"{}\" type=\"http://www.pnml.org/version-2009/grammar/ptnet\">",
        xml_escape(&definition.id)
    );
    let _ = writeln!(
        out,
        "    <name><text>{}</text></name>",
        xml_escape(&definition.id)
    );
    out.push_str("    <page id=\"page\">\n");
    for (id, name, marked) in &places {
        let _ = write!(
            out,
            "      <place id=\"{id}\"><name><text>{}</text></name>",
            xml_escape(name)
        );
        if *marked {
            out.push_str("<initialMarking><text>1</text></initialMarking>");
        }
        out.push_str("</place>\n");
    }
    for (id, label, _, _) in &transitions {
        match label {
            Some(label) => {
                let _ = writeln!(
                    out,
                    "      <transition id=\"{id}\"><name><text>{}</text></name></transition>",
                    xml_escape(label)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "      <transition id=\"{id}\"><name><text>{id}</text></name><toolspecific tool=\"ProM\" version=\"6.4\" activity=\"$invisible$\" localNodeID=\"{id}\"/></transition>"
                );
            }
        }
    }
    for (id, _, input, output) in &transitions {
        let _ = writeln!(
            out,
            "      <arc id=\"a_{input}_{id}\" source=\"{input}\" target=\"{id}\"/>"
        );
        let _ = writeln!(
            out,
            "      <arc id=\"a_{id}_{output}\" source=\"{id}\" target=\"{output}\"/>"
        );
    }
    out.push_str("    </page>\n");
    if let Some(place) = final_place {
        let _ = writeln!(
            out,
            "    <finalmarkings><marking><place idref=\"{place}\"><text>1</text></place></marking></finalmarkings>"
        );
    }
    out.push_str("  </net>\n</pnml>\n");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn stages_are_places_and_record_only_transitions_self_loops() {
        let definition: Definition = serde_json::from_value(json!({
            "id": "d&d", "title": "t",
            "roles": [{"id": "a"}],
            "stages": [
                {"id": "draft", "kind": "initial"},
                {"id": "ok", "kind": "terminal"},
                {"id": "no", "kind": "terminal"}
            ],
            "transitions": [
                {"event": "note", "from": "draft", "roles": ["a"]},
                {"id": "accept", "event": "decide", "from": "draft", "to": "ok", "roles": ["a"]},
                {"event": "drop", "from": "*", "to": "no", "roles": ["a"]}
            ]
        }))
        .expect("a definition");
        let pnml = to_pnml(&definition);
        assert!(pnml.contains("<net id=\"d&amp;d\""), "{pnml}");
        assert!(
            pnml.contains("<place id=\"source\"><name><text>start</text></name><initialMarking>")
        );
        assert!(pnml.contains("<place id=\"p0\"><name><text>draft</text></name></place>"));
        // The self-loop of `note` on draft.
        assert!(pnml.contains("source=\"p0\" target=\"t0_0\""));
        assert!(pnml.contains("source=\"t0_0\" target=\"p0\""));
        assert!(pnml.contains("<text>accept</text>"));
        // `*` is every non-terminal stage: only draft here.
        assert!(pnml.contains("t2_0") && !pnml.contains("t2_1"));
        // Two terminal stages: silent transitions into one end place.
        assert!(pnml.contains("activity=\"$invisible$\""));
        assert!(pnml.contains("<place idref=\"end\">"));
    }
}
