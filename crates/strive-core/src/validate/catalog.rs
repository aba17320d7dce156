//! What the validator knows about other workflows.

use std::collections::BTreeMap;

use crate::definition::{Definition, StageKind};

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
}

impl Catalog {
    /// An empty catalog: only a definition's own id is known.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds `definition`'s id and stages, replacing any earlier workflow with
    /// the same id (the later deployment wins).
    pub fn add(&mut self, definition: &Definition) {
        let entry = Entry {
            stages: definition.stages.iter().map(|s| s.id.clone()).collect(),
            kinds: definition.stages.iter().map(|s| s.kind).collect(),
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

    /// The ids of the known workflows, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.workflows.keys().map(String::as_str)
    }
}
