//! Migration of running instances to another version of their workflow
//! (issue #13 item 1): the plan, its checks, and what it makes of one
//! instance. Pure: the engine applies it and records a `migrate` event per
//! instance, whose payload carries the plan's rules (all but its
//! selection), so that replay and `verify` compute the same migration
//! again from the event alone.
//!
//! A plan names the workflow, the source and target versions, a stage map
//! (a stage not in it keeps its name, which the target must have), a data
//! map (defaults for new variables, renames, drops with a reason), the
//! selection and a reason. Migrating an instance:
//!
//! 1. its stage is mapped; the target must have it, not as its initial
//!    stage unless the instance is there already, and some terminal stage
//!    must be reachable from it in the target;
//! 2. its data is renamed, dropped and completed (the plan's defaults,
//!    else the target's declared defaults), and every variable left must be
//!    declared by the target with a value of its type;
//! 3. it moves to the target version; it keeps the time it entered its
//!    stage when the stage keeps its name (its deadline is the target's,
//!    counted from then), and enters the mapped stage at the migration
//!    time otherwise.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::machine::{Instance, Workflow};

/// Which instances a plan moves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Only these instances (every running one of the source version when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<String>>,
    /// Only instances in these stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<String>>,
}

/// A migration plan, as an admin writes it in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationPlan {
    /// The workflow.
    pub workflow: String,
    /// The version the instances run on now.
    pub from_version: u32,
    /// The version they move to.
    pub to_version: u32,
    /// Why, recorded in every migrate event.
    pub reason: String,
    /// Source stage to target stage; an unmapped stage keeps its name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stages: BTreeMap<String, String>,
    /// Values for the target's variables the source lacks.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub defaults: Map<String, Value>,
    /// Source variable to target variable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub renames: BTreeMap<String, String>,
    /// Source variables the target does not keep, each with why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drops: BTreeMap<String, String>,
    /// Which instances move. Not part of the rules an event records: each
    /// migrate event names its own instance.
    #[serde(default, skip_serializing_if = "Selection::is_everything")]
    pub select: Selection,
}

impl Selection {
    /// Whether it selects every running instance of the source version.
    pub fn is_everything(&self) -> bool {
        self.instances.is_none() && self.stages.is_none()
    }
}

/// Why a plan, or one instance under it, cannot migrate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// The plan itself is inconsistent with the two definitions.
    Plan {
        /// The JSON pointer into the plan.
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// One instance cannot be moved by the plan.
    Instance {
        /// The instance.
        instance: String,
        /// Why.
        message: String,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Plan { pointer, message } if pointer.is_empty() => {
                write!(f, "the plan: {message}")
            }
            PlanError::Plan { pointer, message } => write!(f, "plan {pointer}: {message}"),
            PlanError::Instance { instance, message } => write!(f, "{instance}: {message}"),
        }
    }
}

impl std::error::Error for PlanError {}

/// What migrating one instance makes of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Migrated {
    /// The instance after the migration, before its event's hash is known
    /// (the caller sets `head` and `seq` is already advanced).
    pub instance: Instance,
    /// The variables whose value changed, appeared or went, with the old
    /// and new values (`null` for none).
    pub changes: BTreeMap<String, (Value, Value)>,
}

impl MigrationPlan {
    /// Reads a plan from JSON, refusing unknown fields.
    pub fn from_json(text: &str) -> Result<MigrationPlan, PlanError> {
        serde_json::from_str(text).map_err(|e| PlanError::Plan {
            pointer: String::new(),
            message: format!("line {}, column {}: {e}", e.line(), e.column()),
        })
    }

    /// The plan's rules: the plan without its selection, which is what a
    /// migrate event records. Each event names its own instance, so a plan
    /// that lists thousands of instances does not copy the list into each
    /// of their events.
    pub fn rules(&self) -> MigrationPlan {
        MigrationPlan {
            select: Selection::default(),
            ..self.clone()
        }
    }

    /// The hash of the plan's rules: SHA-256 over
    /// `strive/migration-plan/v1\0` and their canonical JSON, hex. Every
    /// migrate event names it; plans that differ only in their selection
    /// share it.
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"strive/migration-plan/v1\0");
        hasher.update(serde_json::to_vec(&self.rules()).unwrap_or_default());
        hex::encode(hasher.finalize())
    }

    /// The plan's rules as the payload of its migrate events.
    pub fn payload(&self) -> Value {
        serde_json::json!({"plan": self.rules(), "plan_hash": self.hash()})
    }

    /// The plan a migrate event's payload carries, checked against the
    /// hash beside it.
    pub fn from_payload(payload: &Value) -> Result<MigrationPlan, PlanError> {
        let bad = |message: &str| PlanError::Plan {
            pointer: "/payload".to_owned(),
            message: message.to_owned(),
        };
        let plan: MigrationPlan = payload
            .get("plan")
            .cloned()
            .ok_or_else(|| bad("a migrate event carries its plan"))
            .and_then(|p| serde_json::from_value(p).map_err(|e| bad(&e.to_string())))?;
        if payload.get("plan_hash").and_then(Value::as_str) != Some(plan.hash().as_str()) {
            return Err(bad("the plan's hash is not the one the event states"));
        }
        Ok(plan)
    }

    /// Checks the plan against the source and target definitions, before
    /// any instance: every mapped stage exists, renames and drops name
    /// source variables, renames and defaults name target variables with
    /// values of their types.
    pub fn check(&self, source: &Workflow, target: &Workflow) -> Result<(), PlanError> {
        let plan = |pointer: String, message: String| PlanError::Plan { pointer, message };
        if self.workflow != source.id() || self.workflow != target.id() {
            return Err(plan(
                "/workflow".into(),
                format!("the definitions are of {} and {}", source.id(), target.id()),
            ));
        }
        if self.to_version <= self.from_version {
            return Err(plan(
                "/to_version".into(),
                format!(
                    "migrate forward only: {} is not after {}",
                    self.to_version, self.from_version
                ),
            ));
        }
        if self.reason.trim().is_empty() {
            return Err(plan("/reason".into(), "say why: it is recorded".into()));
        }
        for (from, to) in &self.stages {
            let pointer = format!("/stages/{from}");
            if !source.has_stage(from) {
                return Err(plan(
                    pointer,
                    format!("v{} has no stage `{from}`", self.from_version),
                ));
            }
            if !target.has_stage(to) {
                return Err(plan(
                    pointer,
                    format!("v{} has no stage `{to}`", self.to_version),
                ));
            }
        }
        let declared = |w: &Workflow, id: &str| w.definition().data.iter().any(|f| f.id == id);
        for (from, to) in &self.renames {
            let pointer = format!("/renames/{from}");
            if !declared(source, from) {
                return Err(plan(
                    pointer,
                    format!("v{} has no variable `{from}`", self.from_version),
                ));
            }
            if !declared(target, to) {
                return Err(plan(
                    pointer,
                    format!("v{} has no variable `{to}`", self.to_version),
                ));
            }
        }
        for (variable, reason) in &self.drops {
            let pointer = format!("/drops/{variable}");
            if !declared(source, variable) {
                return Err(plan(
                    pointer,
                    format!("v{} has no variable `{variable}`", self.from_version),
                ));
            }
            if reason.trim().is_empty() {
                return Err(plan(pointer, "say why the variable is dropped".into()));
            }
        }
        for (variable, value) in &self.defaults {
            let pointer = format!("/defaults/{variable}");
            let Some(field) = target.definition().data.iter().find(|f| f.id == *variable) else {
                return Err(plan(
                    pointer,
                    format!("v{} has no variable `{variable}`", self.to_version),
                ));
            };
            crate::types::check(&field.spec, value)
                .map_err(|m| plan(format!("{pointer}{}", m.pointer), m.reason))?;
        }
        Ok(())
    }

    /// Whether the plan selects `instance` (of the source version, running).
    pub fn selects(&self, instance: &Instance) -> bool {
        instance.workflow == self.workflow
            && instance.version == self.from_version
            && !instance.finished
            && !instance.status.has_ended()
            && self
                .select
                .instances
                .as_ref()
                .is_none_or(|ids| ids.contains(&instance.id))
            && self
                .select
                .stages
                .as_ref()
                .is_none_or(|stages| stages.contains(&instance.stage))
    }

    /// What the plan makes of `instance` at `now`, moving it from `source`
    /// to `target` (`to_version`). Refused when the instance is not on the
    /// source version, is finished, or would land where the target cannot
    /// take it.
    pub fn migrate(
        &self,
        source: &Workflow,
        target: &Workflow,
        instance: &Instance,
        now: jiff::Timestamp,
    ) -> Result<Migrated, PlanError> {
        let refuse = |message: String| PlanError::Instance {
            instance: instance.id.clone(),
            message,
        };
        if instance.workflow != self.workflow || instance.version != self.from_version {
            return Err(refuse(format!(
                "runs {} v{}, not {} v{}",
                instance.workflow, instance.version, self.workflow, self.from_version
            )));
        }
        if instance.finished || source.is_terminal(&instance.stage) {
            return Err(refuse(format!(
                "is finished (in `{}`): finished instances stay on their version",
                instance.stage
            )));
        }
        if instance.status.has_ended() {
            return Err(refuse(format!(
                "was {}: ended instances stay on their version",
                instance.status
            )));
        }
        let stage = self
            .stages
            .get(&instance.stage)
            .cloned()
            .unwrap_or_else(|| instance.stage.clone());
        if !target.has_stage(&stage) {
            return Err(refuse(format!(
                "is in `{}`, which v{} lacks; map it in the plan's `stages`",
                instance.stage, self.to_version
            )));
        }
        if !target.can_finish_from(&stage) {
            return Err(refuse(format!(
                "would be in `{stage}`, from which v{} reaches no terminal stage",
                self.to_version
            )));
        }
        let data = self.migrated_data(target, instance).map_err(refuse)?;
        let mut changes = BTreeMap::new();
        for key in instance.data.keys().chain(data.keys()) {
            let old = instance.data.get(key).cloned().unwrap_or(Value::Null);
            let new = data.get(key).cloned().unwrap_or(Value::Null);
            if old != new {
                changes.insert(key.clone(), (old, new));
            }
        }
        let renamed_stage = stage != instance.stage;
        let next = Instance {
            id: instance.id.clone(),
            workflow: instance.workflow.clone(),
            version: self.to_version,
            definition_hash: target.hash().to_owned(),
            finished: target.is_terminal(&stage),
            stage,
            data,
            seq: instance.seq + 1,
            head: instance.head.clone(),
            parent: instance.parent.clone(),
            created_at: instance.created_at,
            updated_at: now,
            stage_entered_at: if renamed_stage {
                now
            } else {
                instance.stage_entered_at
            },
            // A suspended instance stays suspended on the new version.
            status: instance.status,
        };
        Ok(Migrated {
            instance: next,
            changes,
        })
    }

    /// The instance's data under the target: renamed, dropped, completed,
    /// and checked against the target's declarations.
    fn migrated_data(
        &self,
        target: &Workflow,
        instance: &Instance,
    ) -> Result<Map<String, Value>, String> {
        let mut data = Map::new();
        for (key, value) in &instance.data {
            if self.drops.contains_key(key) {
                continue;
            }
            let name = self.renames.get(key).unwrap_or(key);
            data.insert(name.clone(), value.clone());
        }
        let fields = &target.definition().data;
        for field in fields {
            if !data.contains_key(&field.id) {
                let value = self
                    .defaults
                    .get(&field.id)
                    .cloned()
                    .unwrap_or_else(|| crate::types::initial_value(field));
                data.insert(field.id.clone(), value);
            }
        }
        for (key, value) in &data {
            let Some(field) = fields.iter().find(|f| f.id == *key) else {
                return Err(format!(
                    "has variable `{key}`, which v{} does not declare; rename or drop it in \
                     the plan (with a reason)",
                    self.to_version
                ));
            };
            crate::types::check(&field.spec, value).map_err(|m| {
                format!(
                    "variable `{key}{}` does not fit v{}: {}",
                    m.pointer, self.to_version, m.reason
                )
            })?;
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> MigrationPlan {
        MigrationPlan::from_json(
            r#"{"workflow": "w", "from_version": 1, "to_version": 2, "reason": "r",
                "stages": {"a": "b"}}"#,
        )
        .expect("a plan")
    }

    #[test]
    fn an_event_carries_its_plan_and_the_hash_pins_it() {
        let plan = plan();
        let payload = plan.payload();
        assert_eq!(MigrationPlan::from_payload(&payload), Ok(plan.clone()));
        let mut altered = payload.clone();
        altered["plan"]["stages"]["a"] = Value::from("c");
        assert!(MigrationPlan::from_payload(&altered).is_err());
        // The hash is over the canonical JSON: the same plan, the same hash.
        let again =
            MigrationPlan::from_json(&serde_json::to_string(&plan).expect("JSON")).expect("a plan");
        assert_eq!(again.hash(), plan.hash());
        assert!(MigrationPlan::from_json(r#"{"workflow": "w"}"#).is_err());
        // The selection is not recorded: each event names its instance.
        let mut selective = plan.clone();
        selective.select.instances = Some(vec!["i-1".into(), "i-2".into()]);
        assert_eq!(selective.payload(), payload);
    }
}
