//! Stage deadlines: well formed (S019, S004 for `at_data`), and their event
//! handled from the stage (S005, S015) by the `system` role (S022).

use std::collections::BTreeMap;

use super::{Checker, Sources, list_ids};
use crate::definition::{Deadline, Definition, SYSTEM_ROLE, Stage, ValueType};
use crate::diagnostic::Code;

/// The transitions that take one event: which stages they fire from, and
/// whether one there allows `system`.
#[derive(Default)]
struct Takers {
    /// Every transition for the event, in order.
    all: Vec<usize>,
    /// From `"*"`: the first such transition, and whether any allows `system`.
    anywhere: Option<(usize, bool)>,
    /// Per stage: the first transition leaving it, and whether any does so
    /// allowing `system`.
    per_stage: BTreeMap<usize, (usize, bool)>,
}

impl Takers {
    /// The first transition that takes the event in `stage`, and whether
    /// some transition there allows `system`.
    fn in_stage(&self, stage: usize) -> Option<(usize, bool)> {
        match (self.anywhere, self.per_stage.get(&stage).copied()) {
            (Some((a, sa)), Some((b, sb))) => Some((a.min(b), sa || sb)),
            (one, other) => one.or(other),
        }
    }
}

/// The [`Takers`] of every event, built once so that many deadlines cost no
/// product with many transitions.
fn takers<'a>(ck: &Checker<'a>) -> BTreeMap<&'a str, Takers> {
    let def: &'a Definition = ck.def;
    let mut by_event: BTreeMap<&'a str, Takers> = BTreeMap::new();
    for (k, transition) in def.transitions.iter().enumerate() {
        let takers = by_event.entry(transition.event.as_str()).or_default();
        takers.all.push(k);
        let system = transition.roles.iter().any(|role| role == SYSTEM_ROLE);
        let merge = |slot: &mut (usize, bool)| slot.1 |= system;
        match ck.sources(transition) {
            Sources::Any => merge(takers.anywhere.get_or_insert((k, system))),
            Sources::Some(stages) => {
                for stage in stages {
                    merge(takers.per_stage.entry(stage).or_insert((k, system)));
                }
            }
        }
    }
    by_event
}

pub(super) fn check(ck: &mut Checker<'_>) {
    let def = ck.def;
    if def.stages.iter().all(|stage| stage.deadline.is_none()) {
        return;
    }
    let handlers = takers(ck);
    for (i, stage) in def.stages.iter().enumerate() {
        let Some(deadline) = &stage.deadline else {
            continue;
        };
        let pointer = format!("/stages/{i}/deadline");
        form(ck, deadline, &pointer);
        if ck.is_terminal(i) {
            ck.report(
                Code::InvalidDeadline,
                &pointer,
                format!(
                    "stage `{}` is terminal: instances there are finished, so its deadline \
                     never fires; remove the deadline",
                    stage.id
                ),
            );
        } else if ck.is_canonical(i) {
            let pointer = format!("{pointer}/event");
            event(ck, &handlers, i, stage, deadline, &pointer);
        }
    }
}

/// Exactly one of `at`, `after`, `at_data`, each well formed.
fn form(ck: &mut Checker<'_>, deadline: &Deadline, pointer: &str) {
    let given: Vec<&str> = [
        ("at", deadline.at.is_some()),
        ("after", deadline.after.is_some()),
        ("at_data", deadline.at_data.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, present)| present.then_some(key))
    .collect();
    if given.len() != 1 {
        let found = match given.as_slice() {
            [] => "none".to_owned(),
            keys => keys.join(" and "),
        };
        ck.report(
            Code::InvalidDeadline,
            pointer,
            format!(
                "a deadline gives exactly one of `at` (a time), `after` (a duration from \
                 entering the stage) or `at_data` (a timestamp variable); this one gives \
                 {found}. Keep one"
            ),
        );
    }
    if let Some(at) = &deadline.at
        && let Err(error) = at.parse::<jiff::Timestamp>()
    {
        ck.report(
            Code::InvalidDeadline,
            &format!("{pointer}/at"),
            format!(
                "`at` is not an RFC 3339 time ({error}); write it with its offset, such \
                 as \"2026-05-31T23:59:59+08:00\""
            ),
        );
    }
    if let Some(after) = &deadline.after {
        after_duration(ck, after, &format!("{pointer}/after"));
    }
    if let Some(var) = &deadline.at_data {
        at_data(ck, var, &format!("{pointer}/at_data"));
    }
}

fn after_duration(ck: &mut Checker<'_>, after: &str, pointer: &str) {
    // The temporal parser takes ISO 8601 only; `str::parse` would also take
    // jiff's "friendly" form ("14 days"), which the language does not promise.
    let problem = match jiff::fmt::temporal::SpanParser::new().parse_span(after) {
        Err(error) => format!("`after` is not an ISO 8601 duration ({error})"),
        Ok(span) if !span.is_positive() => {
            format!("`after` is {after}, but a deadline must come after entering the stage")
        }
        Ok(span) if !crate::machine::span_in_range(span) => {
            ck.report(
                Code::DeadlineOutOfRange,
                pointer,
                format!(
                    "`after` is {after}, longer than the {} years a deadline may lie after \
                     entering its stage; it would fall outside the range of times strive keeps",
                    crate::machine::MAX_DEADLINE_YEARS
                ),
            );
            return;
        }
        Ok(_) => return,
    };
    ck.report(
        Code::InvalidDeadline,
        pointer,
        format!("{problem}; write a positive duration such as \"P14D\" or \"PT48H\""),
    );
}

fn at_data(ck: &mut Checker<'_>, var: &str, pointer: &str) {
    let Some(field) = ck.vars.get(var).copied() else {
        let hint = match var.strip_prefix("data.") {
            Some(bare) => format!(" (name the variable without `data.`: `{bare}`)"),
            None => ck.hint(var, ck.vars.keys().copied()),
        };
        ck.report(
            Code::UnknownVariable,
            pointer,
            format!(
                "`at_data` names `{var}`, which is not a declared variable{hint}; declare \
                 it under `data` with \"type\": \"timestamp\", or fix the name"
            ),
        );
        return;
    };
    ck.use_var(var);
    if field.spec.ty != ValueType::Timestamp {
        ck.report(
            Code::InvalidDeadline,
            pointer,
            format!(
                "`at_data` names `{var}`, a {} variable; it must be a timestamp: change \
                 its type to \"timestamp\" or use `at` or `after`",
                field.spec.ty.name()
            ),
        );
    }
}

/// S005, S015, S022: the engine fires the deadline's event as `system` in
/// this stage, so some transition must take it from here for that role.
fn event(
    ck: &mut Checker<'_>,
    handlers: &BTreeMap<&str, Takers>,
    index: usize,
    stage: &Stage,
    deadline: &Deadline,
    pointer: &str,
) {
    let def = ck.def;
    let event = deadline.event.as_str();
    let Some(takers) = handlers.get(event) else {
        let hint = ck.hint(event, handlers.keys().copied());
        ck.report(
            Code::UnknownEvent,
            pointer,
            format!(
                "stage `{}`'s deadline fires `{event}`, but no transition handles that \
                 event{hint}; add a transition with \"event\": \"{event}\", \"from\": \"{}\" \
                 and \"roles\": [\"system\"]",
                stage.id, stage.id
            ),
        );
        return;
    };
    match takers.in_stage(index) {
        None => {
            let mut elsewhere: Vec<&str> = takers
                .all
                .iter()
                .filter_map(|&k| def.transitions.get(k))
                .flat_map(|t| t.from.ids().iter().map(String::as_str))
                .take(10)
                .collect();
            elsewhere.dedup();
            ck.report(
                Code::DeadlineEvent,
                pointer,
                format!(
                    "stage `{}`'s deadline fires `{event}`, but no transition for `{event}` \
                     leaves from `{}` (they leave from {}); add `{}` to the `from` of one",
                    stage.id,
                    stage.id,
                    list_ids(elsewhere, 10),
                    stage.id
                ),
            );
        }
        Some((first, false)) => ck.report(
            Code::DeadlineNotSystem,
            pointer,
            format!(
                "stage `{}`'s deadline fires `{event}` as role `system`, but the transition \
                 that takes it (/transitions/{first}) does not allow `system`; add \
                 \"system\" to its roles",
                stage.id
            ),
        ),
        Some((_, true)) => {}
    }
}
