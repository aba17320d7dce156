//! Static validation: every semantic diagnostic for a parsed definition.
//!
//! The loader ([`crate::parse`]) guarantees the shape of a definition; this
//! module checks its meaning. It runs as a series of independent passes over
//! the definition, each pushing diagnostics into one [`Checker`]:
//!
//! | pass | codes |
//! |---|---|
//! | `names` | L003, L004, S001, S017, S023, W104 |
//! | `types` | S018 |
//! | `transitions` (with `expressions`) | S002, S003, S004, S006, S010, S013 (empty `from`), S014, S016, S020, S021, S023, S024, W105 |
//! | `deadlines` | S004, S005, S015, S019, S022 |
//! | `flow` | S007, S008, S009, S011, S012, S013, W101 |
//! | `lifecycle` | S003, S026, S027, W106, W107 |
//! | `usage` | W102, W103 |
//!
//! Passes do not depend on each other's findings (only `usage` reads which
//! variables the earlier passes saw used), so a definition with many faults
//! gets all of them in one run. Limits (L003, L004) are the exception: they
//! end validation, like the loader's limits, because the other passes are
//! only bounded in time for definitions within the limits.
//!
//! Architecture Invariant: validation is pure. It reads the definition and a
//! [`Catalog`] of other workflows, never a store or a file.

mod catalog;
mod deadlines;
mod domains;
mod expressions;
mod flow;
mod lifecycle;
mod names;
mod transitions;
mod types;
mod usage;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

pub use catalog::Catalog;

use crate::definition::{ANY_STAGE, Definition, Field, StageKind, Transition};
use crate::diagnostic::{Code, Diagnostic};
use crate::load::{Parsed, parse};

/// All semantic diagnostics for one parsed definition, sorted by line,
/// column and code. Never panics, whatever the definition holds.
///
/// `catalog` names the other workflows this one may spawn or read children
/// of; the definition's own id always counts as known.
pub fn validate(parsed: &Parsed, catalog: &Catalog) -> Vec<Diagnostic> {
    let limits = names::limits(parsed);
    if !limits.is_empty() {
        return sorted(limits);
    }
    let mut checker = Checker::new(parsed, catalog);
    names::check(&mut checker);
    types::check(&mut checker);
    transitions::check(&mut checker);
    deadlines::check(&mut checker);
    flow::check(&mut checker);
    lifecycle::check(&mut checker);
    usage::check(&mut checker);
    sorted(checker.out)
}

/// Parses `text` and validates it. A syntax, structure or size failure of
/// the loader is returned alone, since there is no definition to validate.
pub fn check(file: Option<&str>, text: &str, catalog: &Catalog) -> Vec<Diagnostic> {
    match parse(file, text) {
        Ok(parsed) => validate(&parsed, catalog),
        Err(diagnostics) => diagnostics,
    }
}

/// Sorts by position, then code, then pointer and message so that the order
/// never depends on the order the passes ran in, and drops exact repeats.
fn sorted(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.sort_by(|a, b| {
        (a.line, a.column, a.code, &a.pointer, &a.message)
            .cmp(&(b.line, b.column, b.code, &b.pointer, &b.message))
    });
    diagnostics.dedup();
    diagnostics
}

/// The stages a transition leaves from, as the flow checks need them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sources {
    /// `"*"`: every non-terminal stage. Kept symbolic so that a definition
    /// with many stages and many wildcard transitions costs no product.
    Any,
    /// The declared, non-terminal stages named in `from` (first declarations
    /// only), in order, without repeats.
    Some(Vec<usize>),
}

/// Shared state of one validation run: the definition, indices built once,
/// and the diagnostics found so far.
struct Checker<'a> {
    parsed: &'a Parsed,
    def: &'a Definition,
    catalog: &'a Catalog,
    /// Each stage id with the index of its first declaration. Later
    /// declarations of the same id are reported (S001) and otherwise ignored.
    stages: BTreeMap<&'a str, usize>,
    /// Declared role ids.
    roles: BTreeSet<&'a str>,
    /// Declared variables by id (first declaration).
    vars: BTreeMap<&'a str, &'a Field>,
    /// Variables some guard, effect or deadline reads or writes (for W103).
    used_vars: BTreeSet<&'a str>,
    /// How many "did you mean" hints were computed (see [`Checker::hint`]).
    hints: Cell<usize>,
    out: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    fn new(parsed: &'a Parsed, catalog: &'a Catalog) -> Checker<'a> {
        let def = &parsed.definition;
        let mut stages = BTreeMap::new();
        for (index, stage) in def.stages.iter().enumerate() {
            // A stage named `*` is reported (S023) and otherwise ignored, so
            // that it neither receives edges nor counts as reachable.
            if stage.id != ANY_STAGE {
                stages.entry(stage.id.as_str()).or_insert(index);
            }
        }
        let mut vars = BTreeMap::new();
        for field in &def.data {
            vars.entry(field.id.as_str()).or_insert(field);
        }
        Checker {
            parsed,
            def,
            catalog,
            stages,
            roles: def.roles.iter().map(|role| role.id.as_str()).collect(),
            vars,
            used_vars: BTreeSet::new(),
            hints: Cell::new(0),
            out: Vec::new(),
        }
    }

    /// Records a diagnostic at `pointer`, placed on its line.
    fn report(&mut self, code: Code, pointer: &str, message: impl Into<String>) {
        let diagnostic = self.parsed.diagnostic(code, pointer, message);
        self.out.push(diagnostic);
    }

    /// A [`did_you_mean`] hint, for the first [`MAX_HINTS`] diagnostics of
    /// a run only: a definition with thousands of misspellings needs a few
    /// hints, not the cost of all of them.
    fn hint<'c>(&self, name: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
        let used = self.hints.get();
        if used >= MAX_HINTS {
            return String::new();
        }
        self.hints.set(used + 1);
        did_you_mean(name, candidates)
    }

    /// Marks variable `id` as used, if it is declared.
    fn use_var(&mut self, id: &str) {
        if let Some((&declared, _)) = self.vars.get_key_value(id) {
            self.used_vars.insert(declared);
        }
    }

    /// Whether `index` is the first declaration of its stage id.
    fn is_canonical(&self, index: usize) -> bool {
        self.def
            .stages
            .get(index)
            .and_then(|stage| self.stages.get(stage.id.as_str()))
            == Some(&index)
    }

    fn is_terminal(&self, index: usize) -> bool {
        self.def
            .stages
            .get(index)
            .is_some_and(|stage| stage.kind == StageKind::Terminal)
    }

    /// The stages `transition` can fire from: `"*"` stays symbolic, unknown
    /// and terminal stages are left out (S002 and S010 report them).
    fn sources(&self, transition: &Transition) -> Sources {
        if transition.from.is_any() {
            return Sources::Any;
        }
        let mut found: Vec<usize> = Vec::new();
        let mut seen = BTreeSet::new();
        for id in transition.from.ids() {
            if let Some(&index) = self.stages.get(id.as_str())
                && !self.is_terminal(index)
                && seen.insert(index)
            {
                found.push(index);
            }
        }
        Sources::Some(found)
    }

    /// The stage ids of workflow `id`: this definition's own, or the
    /// catalog's. `None` when the workflow is unknown.
    fn workflow_stages(&self, id: &str) -> Option<Vec<&'a str>> {
        if id == self.def.id {
            return Some(self.def.stages.iter().map(|s| s.id.as_str()).collect());
        }
        self.catalog
            .stages(id)
            .map(|stages| stages.iter().map(String::as_str).collect())
    }
}

/// How many "did you mean" hints one validation run computes at most.
const MAX_HINTS: usize = 100;

/// A short " (did you mean `x`?)" hint naming the closest of `candidates`
/// within two edits, or nothing. Skipped for long candidate lists, where the
/// search would cost more than the hint is worth.
fn did_you_mean<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    const MAX_CANDIDATES: usize = 500;
    let candidates: Vec<&str> = candidates.into_iter().take(MAX_CANDIDATES + 1).collect();
    if candidates.len() > MAX_CANDIDATES {
        return String::new();
    }
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = edit_distance(name, candidate);
        if distance <= 2 && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    match best {
        Some((_, candidate)) if candidate != name => format!(" (did you mean `{candidate}`?)"),
        _ => String::new(),
    }
}

/// Levenshtein distance over characters, for ids of at most a few hundred
/// bytes (longer ones fail L004 before this runs).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let delete = previous.get(j + 1).copied().unwrap_or(0) + 1;
            let insert = current.get(j).copied().unwrap_or(0) + 1;
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}

/// Lists ids as "`a`, `b` and `c`", at most `limit` of them.
fn list_ids<'i>(ids: impl IntoIterator<Item = &'i str>, limit: usize) -> String {
    let ids: Vec<&str> = ids.into_iter().collect();
    let shown: Vec<String> = ids.iter().take(limit).map(|id| format!("`{id}`")).collect();
    let mut text = match shown.split_last() {
        None => return "none".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    };
    if ids.len() > limit {
        text = format!("{} and {} more", shown.join(", "), ids.len() - limit);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<String> {
        check(None, text, &Catalog::new())
            .iter()
            .map(|d| format!("{} {}", d.code, d.pointer))
            .collect()
    }

    const MINIMAL: &str = r#"{
      "id": "wf", "title": "t",
      "roles": [{"id": "admin"}],
      "stages": [{"id": "a", "kind": "initial"}, {"id": "z", "kind": "terminal"}],
      "transitions": [{"event": "finish", "from": "a", "to": "z", "roles": ["admin"]}]
    }"#;

    #[test]
    fn a_minimal_workflow_is_clean() {
        assert_eq!(codes(MINIMAL), Vec::<String>::new());
    }

    #[test]
    fn loader_failures_come_back_alone() {
        assert_eq!(codes("{"), ["P001 "]);
    }

    #[test]
    fn catalog_knows_added_workflows() {
        let parsed = parse(None, MINIMAL).expect("parses");
        let mut catalog = Catalog::new();
        assert!(!catalog.contains("wf"));
        catalog.add(&parsed.definition);
        assert!(catalog.contains("wf"));
        assert_eq!(
            catalog.stages("wf"),
            Some(&["a".to_owned(), "z".to_owned()][..])
        );
        assert_eq!(catalog.stage_kind("wf", "z"), Some(StageKind::Terminal));
        assert_eq!(catalog.stages("other"), None);
    }

    #[test]
    fn limits_end_validation() {
        let mut parsed = parse(None, MINIMAL).expect("parses");
        let stage = parsed.definition.stages[0].clone();
        parsed.definition.stages = vec![stage; crate::load::MAX_ITEMS + 1];
        let found = validate(&parsed, &Catalog::new());
        let codes: Vec<Code> = found.iter().map(|d| d.code).collect();
        assert_eq!(codes, [Code::TooMany]);
    }

    #[test]
    fn hints_name_close_ids_only() {
        assert_eq!(
            did_you_mean("comended", ["commended", "rectify"]),
            " (did you mean `commended`?)"
        );
        assert_eq!(did_you_mean("zzz", ["commended"]), "");
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(list_ids(["a", "b", "c"], 2), "`a`, `b` and 1 more");
        assert_eq!(list_ids(["a", "b"], 5), "`a` and `b`");
    }
}
