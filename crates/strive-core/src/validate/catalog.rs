//! What the validator knows about other workflows.

use std::collections::BTreeMap;

use crate::definition::{ANY_STAGE, Definition, StageKind};

/// What the validator knows about other workflows: their ids, stages and
/// stage kinds. It checks `spawn` targets and the `children_*` operators of
/// guards, which name another workflow and its stages.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    workflows: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    stages: Vec<String>,
    kinds: Vec<StageKind>,
    /// The moves between stages, by index, whatever their guards: for each
    /// stage, the stages a transition takes it to.
    next: Vec<Vec<usize>>,
}

impl Entry {
    /// The stages reachable from `start` (itself included), walking
    /// through every stage except those `stop` says to stop at.
    fn reach(&self, start: usize, stop: &dyn Fn(usize) -> bool) -> Vec<bool> {
        let mut seen = vec![false; self.stages.len()];
        let mut stack = vec![start];
        while let Some(stage) = stack.pop() {
            if seen.get(stage).copied().unwrap_or(true) {
                continue;
            }
            seen[stage] = true;
            if stop(stage) {
                continue;
            }
            stack.extend(self.next.get(stage).into_iter().flatten().copied());
        }
        seen
    }
}

impl Catalog {
    /// An empty catalog: only a definition's own id is known.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds `definition`'s id and stages, replacing any earlier workflow with
    /// the same id (the later deployment wins).
    pub fn add(&mut self, definition: &Definition) {
        let stages: Vec<String> = definition.stages.iter().map(|s| s.id.clone()).collect();
        let kinds: Vec<StageKind> = definition.stages.iter().map(|s| s.kind).collect();
        let index = |id: &str| stages.iter().position(|s| s == id);
        let mut next = vec![Vec::new(); stages.len()];
        for transition in &definition.transitions {
            let Some(to) = transition.to.as_deref().and_then(index) else {
                continue;
            };
            let from = transition.from.ids();
            for (k, kind) in kinds.iter().enumerate() {
                let leaves = if from.iter().any(|f| f == ANY_STAGE) {
                    *kind != StageKind::Terminal
                } else {
                    from.iter().any(|f| *f == stages[k])
                };
                if leaves {
                    next[k].push(to);
                }
            }
        }
        let entry = Entry {
            stages,
            kinds,
            next,
        };
        self.workflows.insert(definition.id.clone(), entry);
    }

    /// Whether workflow `id` is known.
    pub fn contains(&self, id: &str) -> bool {
        self.workflows.contains_key(id)
    }

    /// The stage ids of workflow `id`, in declaration order.
    pub fn stages(&self, id: &str) -> Option<&[String]> {
        self.workflows.get(id).map(|entry| entry.stages.as_slice())
    }

    /// The kind of `stage` in workflow `id`.
    pub fn stage_kind(&self, id: &str, stage: &str) -> Option<StageKind> {
        let entry = self.workflows.get(id)?;
        let index = entry.stages.iter().position(|s| s == stage)?;
        entry.kinds.get(index).copied()
    }

    /// A stage of workflow `id` where a child can come to rest without
    /// ever having been in one of `awaited`, and from which no stage of
    /// `awaited` can be reached whatever the guards: a parent waiting for
    /// all its children to be in `awaited` then waits forever. `None` when
    /// every child that has not yet been in `awaited` can still get there
    /// (guards are not read, so a `Some` is certain, a `None` is not).
    pub fn stranding_stage(&self, id: &str, awaited: &[&str]) -> Option<&str> {
        let entry = self.workflows.get(id)?;
        let initial = entry.kinds.iter().position(|k| *k == StageKind::Initial)?;
        let is_awaited = |k: usize| awaited.contains(&entry.stages[k].as_str());
        let before = entry.reach(initial, &is_awaited);
        (0..entry.stages.len())
            .filter(|&k| before[k] && !is_awaited(k))
            .find(|&k| {
                let from_here = entry.reach(k, &|_| false);
                !(0..entry.stages.len()).any(|j| from_here[j] && is_awaited(j))
            })
            .map(|k| entry.stages[k].as_str())
    }

    /// Whether some terminal stage of workflow `id` can be reached from
    /// `stage`, whatever the guards (`false` for an unknown one).
    pub fn reaches_terminal(&self, id: &str, stage: &str) -> bool {
        let Some(entry) = self.workflows.get(id) else {
            return false;
        };
        let Some(start) = entry.stages.iter().position(|s| s == stage) else {
            return false;
        };
        let reached = entry.reach(start, &|_| false);
        (0..entry.stages.len()).any(|k| reached[k] && entry.kinds[k] == StageKind::Terminal)
    }

    /// The ids of the known workflows, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.workflows.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let definition: Definition = serde_json::from_value(serde_json::json!({
            "id": "doc",
            "title": "t",
            "roles": [{"id": "r"}],
            "stages": [
                {"id": "draft", "kind": "initial"},
                {"id": "review"},
                {"id": "approved"},
                {"id": "archived", "kind": "terminal"},
                {"id": "rejected", "kind": "terminal"}
            ],
            "transitions": [
                {"event": "submit", "from": "draft", "to": "review", "roles": ["r"]},
                {"event": "approve", "from": "review", "to": "approved", "roles": ["r"]},
                {"event": "archive", "from": "approved", "to": "archived", "roles": ["r"]},
                {"event": "reject", "from": "review", "to": "rejected", "roles": ["r"]},
                {"event": "redo", "from": "*", "to": "draft", "roles": ["r"]}
            ]
        }))
        .expect("a definition");
        let mut catalog = Catalog::new();
        catalog.add(&definition);
        catalog
    }

    #[test]
    fn a_child_that_can_finish_elsewhere_strands_a_parent_waiting_for_all() {
        let catalog = catalog();
        // Rejected, without ever having been approved, and for good.
        assert_eq!(
            catalog.stranding_stage("doc", &["approved"]),
            Some("rejected")
        );
        assert_eq!(
            catalog.stranding_stage("doc", &["approved", "rejected"]),
            None
        );
        // Archived comes only after approved: waiting for approved or
        // archived is never stranded by it.
        assert_eq!(
            catalog.stranding_stage("doc", &["approved", "archived", "rejected"]),
            None
        );
        // Every child passes through review on its way anywhere, so a
        // parent waiting for review is never stranded; one waiting for
        // archived is, by a child rejected on the way.
        assert_eq!(catalog.stranding_stage("doc", &["review"]), None);
        assert_eq!(
            catalog.stranding_stage("doc", &["archived"]),
            Some("rejected")
        );
        assert_eq!(catalog.stranding_stage("unknown", &["x"]), None);
    }
}
