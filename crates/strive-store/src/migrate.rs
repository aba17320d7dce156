//! `Engine::migrate`: moving running instances to another version of their
//! workflow by a [`MigrationPlan`] (issue #13 item 1). The rules are the
//! core's (`strive_core::MigrationPlan`); this module selects the
//! instances, checks the whole plan against each before anything is
//! written, and hands the writer one command per partition, which moves
//! its instances all or none, one `migrate` event each.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use strive_core::{Actor, MigrationPlan, PlanError};

use crate::Engine;
use crate::error::CommandError;
use crate::records::{ListQuery, Outcome};
use crate::writer::{Cmd, Reply, Request};

/// What a plan does, or did, to one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedMove {
    /// The instance.
    pub instance: String,
    /// Its stage before.
    pub from_stage: String,
    /// Its stage after.
    pub to_stage: String,
    /// Each variable that changes: its value before and after (`null` for
    /// none).
    pub changes: BTreeMap<String, (Value, Value)>,
    /// The event that recorded it, once migrated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// How many instances a plan's selection may hold in one call.
pub const MAX_MIGRATED: usize = 100_000;

impl Engine {
    /// What `plan` would do to each instance it selects, writing nothing:
    /// the same checks as [`Engine::migrate`], so a plan this accepts
    /// migrates (unless the instances change meanwhile).
    pub fn migrate_dry_run(&self, plan: &MigrationPlan) -> Result<Vec<PlannedMove>, CommandError> {
        let (source, target) = self.plan_versions(plan)?;
        let now = jiff::Timestamp::now();
        let mut moves = Vec::new();
        for snapshot in self.selected(plan)? {
            let migrated = plan
                .migrate(&source, &target, &snapshot.instance, now)
                .map_err(|reason| CommandError::Migration { reason })?;
            moves.push(PlannedMove {
                instance: snapshot.instance.id.clone(),
                from_stage: snapshot.instance.stage.clone(),
                to_stage: migrated.instance.stage,
                changes: migrated.changes,
                outcome: None,
            });
        }
        Ok(moves)
    }

    /// Moves every instance `plan` selects to its target version, one
    /// `migrate` event each in its chain, naming the plan's hash and both
    /// versions. The whole plan is checked against every instance first,
    /// and nothing is written if any is refused. On a store of one
    /// partition the move is all or none; on several, each partition's
    /// instances move all or none, in partition order, and a refusal in a
    /// later partition (only if an instance changed since the check)
    /// leaves the earlier ones moved: the error says which.
    pub fn migrate(
        &self,
        plan: &MigrationPlan,
        actor: &Actor,
    ) -> Result<Vec<PlannedMove>, CommandError> {
        let actor = crate::guard::caller(actor)?;
        let mut moves = self.migrate_dry_run(plan)?;
        let mut by_partition: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for planned in &moves {
            let partition = self.partition_of(&planned.instance)?;
            by_partition
                .entry(partition)
                .or_default()
                .push(planned.instance.clone());
        }
        let plan = Arc::new(plan.clone());
        let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
        for (partition, instances) in by_partition {
            let cmd = Cmd::Migrate {
                plan: plan.clone(),
                instances,
                actor: actor.clone(),
            };
            let done = self.send(partition, |reply| Request {
                cmd,
                reply: Reply::Migrate(reply),
            })??;
            outcomes.extend(done.into_iter().map(|o| (o.instance.clone(), o)));
        }
        for planned in &mut moves {
            planned.outcome = outcomes.remove(&planned.instance);
        }
        Ok(moves)
    }

    /// The plan's source and target definitions, checked against it.
    fn plan_versions(
        &self,
        plan: &MigrationPlan,
    ) -> Result<(Arc<strive_core::Workflow>, Arc<strive_core::Workflow>), CommandError> {
        let version = |v: u32, pointer: &str| {
            self.workflow(&plan.workflow, Some(v))
                .ok_or_else(|| CommandError::Migration {
                    reason: PlanError::Plan {
                        pointer: pointer.to_owned(),
                        message: format!("{} v{v} is not deployed", plan.workflow),
                    },
                })
        };
        let source = version(plan.from_version, "/from_version")?;
        let target = version(plan.to_version, "/to_version")?;
        plan.check(&source, &target)
            .map_err(|reason| CommandError::Migration { reason })?;
        Ok((source, target))
    }

    /// The running instances of the source version the plan selects, in
    /// id order. An instance the plan names that is not one of them
    /// refuses the plan.
    fn selected(&self, plan: &MigrationPlan) -> Result<Vec<crate::Snapshot>, CommandError> {
        let mut selected = Vec::new();
        if let Some(ids) = &plan.select.instances {
            for id in ids {
                let snapshot = self
                    .instance(id)?
                    .ok_or_else(|| CommandError::UnknownInstance {
                        instance: id.clone(),
                    })?;
                if !plan.selects(&snapshot.instance) {
                    return Err(CommandError::Migration {
                        reason: PlanError::Instance {
                            instance: id.clone(),
                            message: format!(
                                "is not a running instance of {} v{}{} (it is on v{} in `{}`)",
                                plan.workflow,
                                plan.from_version,
                                plan.select
                                    .stages
                                    .as_ref()
                                    .map(|s| format!(" in {}", s.join(", ")))
                                    .unwrap_or_default(),
                                snapshot.instance.version,
                                snapshot.instance.stage
                            ),
                        },
                    });
                }
                selected.push(snapshot);
            }
            selected.sort_by(|a, b| a.instance.id.cmp(&b.instance.id));
            selected.dedup_by(|a, b| a.instance.id == b.instance.id);
        } else {
            let mut after = None;
            loop {
                let page = self.list(&ListQuery {
                    workflow: Some(plan.workflow.clone()),
                    after,
                    limit: Some(1000),
                    ..ListQuery::default()
                })?;
                selected.extend(page.items.into_iter().filter(|s| plan.selects(&s.instance)));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        if selected.len() > MAX_MIGRATED {
            return Err(CommandError::Migration {
                reason: PlanError::Plan {
                    pointer: "/select".to_owned(),
                    message: format!(
                        "selects {} instances, more than the {MAX_MIGRATED} one call moves; \
                         narrow it by stage or by instance",
                        selected.len()
                    ),
                },
            });
        }
        Ok(selected)
    }
}
