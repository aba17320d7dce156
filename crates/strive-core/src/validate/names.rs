//! Names: limits (L003, L004), id syntax (S017), the reserved `*` stage id
//! (S023), duplicate ids (S001) and half-translated labels (W104).

use std::collections::BTreeMap;

use super::Checker;
use super::types::{Owner, all_specs};
use crate::definition::{ANY_STAGE, Definition, Label};
use crate::diagnostic::{Code, Diagnostic};
use crate::load::{MAX_ID_BYTES, MAX_ITEMS, Parsed};

/// One id the definition declares or names, with what it is and where.
struct Id<'a> {
    kind: &'static str,
    text: &'a str,
    pointer: String,
}

/// Every id in the definition: workflow, roles, stages, variables, payload
/// and object fields, transition ids and event names. References to
/// declared things (`from`, `to`, `roles` of a transition) are not ids: they
/// are checked against the declarations instead.
fn ids(def: &Definition) -> Vec<Id<'_>> {
    let mut ids = vec![Id {
        kind: "workflow id",
        text: &def.id,
        pointer: "/id".to_owned(),
    }];
    let mut push = |kind, text, pointer| {
        ids.push(Id {
            kind,
            text,
            pointer,
        })
    };
    for (i, role) in def.roles.iter().enumerate() {
        push("role id", &role.id, format!("/roles/{i}/id"));
    }
    for (i, stage) in def.stages.iter().enumerate() {
        push("stage id", &stage.id, format!("/stages/{i}/id"));
        if let Some(deadline) = &stage.deadline {
            push(
                "event",
                &deadline.event,
                format!("/stages/{i}/deadline/event"),
            );
        }
    }
    for (i, transition) in def.transitions.iter().enumerate() {
        if let Some(id) = &transition.id {
            push("transition id", id, format!("/transitions/{i}/id"));
        }
        push(
            "event",
            &transition.event,
            format!("/transitions/{i}/event"),
        );
        if let Some(event) = &transition.notify_parent {
            push("event", event, format!("/transitions/{i}/notify_parent"));
        }
    }
    for at in all_specs(def) {
        if let Some(field) = at.field {
            let kind = match at.owner {
                Owner::Variable => "variable id",
                Owner::Payload => "payload field id",
                Owner::ObjectField | Owner::Element => "field id",
            };
            push(kind, &field.id, format!("{}/id", at.pointer));
        }
    }
    ids
}

/// L003 and L004. These end validation when they fire.
pub(super) fn limits(parsed: &Parsed) -> Vec<Diagnostic> {
    let def = &parsed.definition;
    let mut out = Vec::new();
    for (what, count, pointer) in [
        ("stages", def.stages.len(), "/stages"),
        ("transitions", def.transitions.len(), "/transitions"),
    ] {
        if count > MAX_ITEMS {
            out.push(parsed.diagnostic(
                Code::TooMany,
                pointer,
                format!(
                    "the workflow has {count} {what}; the limit is {MAX_ITEMS}. \
                     Split it into several workflows linked by `spawn`"
                ),
            ));
        }
    }
    // A hand-built definition far over the limits is refused without
    // listing its ids, which would cost time for nothing.
    if !out.is_empty() {
        return out;
    }
    for id in ids(def) {
        if id.text.len() > MAX_ID_BYTES {
            out.push(parsed.diagnostic(
                Code::IdTooLong,
                &id.pointer,
                format!(
                    "this {} is {} bytes long; the limit is {MAX_ID_BYTES}. \
                     Use a short id and put the long text in a `label`",
                    id.kind,
                    id.text.len()
                ),
            ));
        }
    }
    out
}

/// S017, S023 (stage `*`), S001 and W104.
pub(super) fn check(ck: &mut Checker<'_>) {
    id_syntax(ck);
    duplicates(ck);
    labels(ck);
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

fn id_syntax(ck: &mut Checker<'_>) {
    for id in ids(ck.def) {
        if id.kind == "stage id" && id.text == ANY_STAGE {
            ck.report(
                Code::ReservedName,
                &id.pointer,
                "`*` is reserved: in `from` it means every non-terminal stage, \
                 so it cannot name a stage; choose another id",
            );
        } else if id.text.is_empty() {
            ck.report(
                Code::InvalidId,
                &id.pointer,
                format!(
                    "this {} is empty; give it a name made of A-Z a-z 0-9 _ - . :",
                    id.kind
                ),
            );
        } else if !id.text.chars().all(is_id_char) {
            ck.report(
                Code::InvalidId,
                &id.pointer,
                format!(
                    "{} `{}` has characters outside A-Z a-z 0-9 _ - . : \
                     (ids appear in commands, JSON pointers and audit records); {}",
                    id.kind,
                    id.text,
                    rename_hint(id.text)
                ),
            );
        }
    }
}

/// Suggests an ASCII id, and says where display text belongs.
fn rename_hint(text: &str) -> String {
    let replaced: String = text
        .chars()
        .map(|c| if is_id_char(c) { c } else { '_' })
        .collect();
    if replaced.chars().any(|c| c.is_ascii_alphanumeric()) {
        format!("rename it, e.g. `{replaced}`, and put display text in a `label`")
    } else {
        "use an ASCII id such as `mobilisation` and put display text, \
         such as Chinese, in a `label`"
            .to_owned()
    }
}

fn duplicates(ck: &mut Checker<'_>) {
    let def = ck.def;
    let stages = def.stages.iter().enumerate();
    let stages = stages.map(|(i, s)| (s.id.as_str(), format!("/stages/{i}/id")));
    report_duplicates(ck, "stage", stages);
    let roles = def.roles.iter().enumerate();
    let roles = roles.map(|(i, r)| (r.id.as_str(), format!("/roles/{i}/id")));
    report_duplicates(ck, "role", roles);
    let data = def.data.iter().enumerate();
    let data = data.map(|(i, f)| (f.id.as_str(), format!("/data/{i}/id")));
    report_duplicates(ck, "variable", data);
    let explicit = def.transitions.iter().enumerate().filter_map(|(i, t)| {
        let id = t.id.as_deref()?;
        Some((id, format!("/transitions/{i}/id")))
    });
    report_duplicates(ck, "transition id", explicit);
    for (i, transition) in def.transitions.iter().enumerate() {
        let payload = transition.payload.iter().enumerate();
        let payload =
            payload.map(|(k, f)| (f.id.as_str(), format!("/transitions/{i}/payload/{k}/id")));
        report_duplicates(ck, "payload field", payload);
    }
    for at in all_specs(def) {
        let fields = at.spec.fields.iter().flatten().enumerate();
        let fields = fields.map(|(k, f)| (f.id.as_str(), format!("{}/fields/{k}/id", at.pointer)));
        report_duplicates(ck, "field", fields);
    }
}

/// S001 for every repeat of an id in one list, pointing at the repeat and
/// naming the first declaration.
fn report_duplicates<'i>(
    ck: &mut Checker<'_>,
    kind: &str,
    items: impl Iterator<Item = (&'i str, String)>,
) {
    let mut first: BTreeMap<&str, String> = BTreeMap::new();
    for (id, pointer) in items {
        match first.get(id) {
            Some(earlier) => {
                let message = format!(
                    "{kind} `{id}` is declared twice (first at {earlier}); \
                     rename or remove one"
                );
                ck.report(Code::DuplicateId, &pointer, message);
            }
            None => {
                first.insert(id, pointer);
            }
        }
    }
}

/// Every label and description with its pointer.
fn all_labels(def: &Definition) -> Vec<(&Label, String)> {
    let mut labels: Vec<(Option<&Label>, String)> = vec![
        (Some(&def.title), "/title".to_owned()),
        (def.description.as_ref(), "/description".to_owned()),
    ];
    for (i, role) in def.roles.iter().enumerate() {
        labels.push((role.label.as_ref(), format!("/roles/{i}/label")));
        labels.push((role.description.as_ref(), format!("/roles/{i}/description")));
    }
    for (i, stage) in def.stages.iter().enumerate() {
        labels.push((stage.label.as_ref(), format!("/stages/{i}/label")));
        labels.push((
            stage.description.as_ref(),
            format!("/stages/{i}/description"),
        ));
    }
    for (i, t) in def.transitions.iter().enumerate() {
        labels.push((t.label.as_ref(), format!("/transitions/{i}/label")));
        labels.push((
            t.description.as_ref(),
            format!("/transitions/{i}/description"),
        ));
    }
    for at in all_specs(def) {
        if let Some(field) = at.field {
            labels.push((field.label.as_ref(), format!("{}/label", at.pointer)));
            let description = field.description.as_ref();
            labels.push((description, format!("{}/description", at.pointer)));
        }
    }
    labels
        .into_iter()
        .filter_map(|(label, pointer)| Some((label?, pointer)))
        .collect()
}

/// W104: the campaign's users read Chinese and its auditors may read
/// English, so a label given in one of the two should be given in both.
fn labels(ck: &mut Checker<'_>) {
    for (label, pointer) in all_labels(ck.def) {
        let Label::Localized(texts) = label else {
            continue;
        };
        let (has_zh, has_en) = (texts.contains_key("zh"), texts.contains_key("en"));
        let missing = match (has_zh, has_en) {
            (true, false) => "en",
            (false, true) => "zh",
            _ => continue,
        };
        let given = if missing == "en" { "zh" } else { "en" };
        ck.report(
            Code::MissingTranslation,
            &pointer,
            format!(
                "this text is given in `{given}` but not in `{missing}`; add the `{missing}` \
                 text (the campaign's users read Chinese, auditors may read English)"
            ),
        );
    }
}
