//! The instance commands: `start`, `fire`, `show`, `list`, `history` and
//! `versions`, on the local store or, with `--server`, a running
//! `strive serve` (`crate::client`).

use std::process::ExitCode;

use serde_json::{Map, Value, json};
use strive_core::{Claim, SignedKind};
use strive_store::{CommandOptions, ListQuery};

use crate::cli::{Cli, FireArgs, ListArgs, StartArgs};
use crate::commands::{actor_of, parse_json, shown};
use crate::failure::{Failure, Outcome};
use crate::output;

/// `strive start`.
pub(crate) fn start(cli: &Cli, args: &StartArgs, json: bool) -> Outcome {
    let StartArgs {
        workflow,
        instance,
        actor,
        data,
        parent,
        command_id,
        sign_key,
        ..
    } = args;
    let engine = crate::client::store_for_writing(cli)?;
    let data = match parse_json("--data", data.as_deref())? {
        Value::Null => Map::new(),
        Value::Object(map) => map,
        _ => return Err(Failure::usage("--data must be a JSON object")),
    };
    let actor = actor_of(cli, actor)?;
    let signature = match sign_key {
        None => None,
        Some(path) => {
            // A start's signature binds the version it starts: the latest.
            let version = engine
                .versions(workflow)?
                .last()
                .map(|info| info.version)
                .ok_or_else(|| {
                    Failure::new(
                        "unknown_workflow",
                        format!(
                            "no workflow `{}` is deployed; deploy it first",
                            shown(workflow)
                        ),
                    )
                })?;
            let payload = strive_core::start_payload(&data, parent.as_deref());
            let claim = Claim {
                kind: SignedKind::Start { workflow, version },
                event: "start",
                payload: &payload,
                expected_seq: None,
                ..crate::commands::keys::claim(&actor, instance, command_id.as_deref())?
            };
            Some(crate::commands::keys::sign(path, &claim)?)
        }
    };
    let options = CommandOptions {
        expected_seq: None,
        command_id: command_id.clone(),
        signature,
    };
    let outcome = engine.start(workflow, instance, &actor, data, parent.as_deref(), options)?;
    print_outcome(&outcome, json);
    Ok(ExitCode::SUCCESS)
}

/// `strive fire`.
pub(crate) fn fire(cli: &Cli, args: &FireArgs, json: bool) -> Outcome {
    let FireArgs {
        instance,
        event,
        actor,
        payload,
        expect_seq,
        command_id,
        sign_key,
        ..
    } = args;
    let engine = crate::client::store_for_writing(cli)?;
    let payload = parse_json("--payload", payload.as_deref())?;
    let actor = actor_of(cli, actor)?;
    let signature = match sign_key {
        None => None,
        Some(path) => {
            let claim = Claim {
                event,
                payload: &payload,
                expected_seq: *expect_seq,
                ..crate::commands::keys::claim(&actor, instance, command_id.as_deref())?
            };
            Some(crate::commands::keys::sign(path, &claim)?)
        }
    };
    let options = CommandOptions {
        expected_seq: *expect_seq,
        command_id: command_id.clone(),
        signature,
    };
    let outcome = engine.fire(instance, event, &actor, payload, options)?;
    print_outcome(&outcome, json);
    Ok(ExitCode::SUCCESS)
}

/// `strive show`.
pub(crate) fn show(cli: &Cli, instance: &str, json: bool) -> Outcome {
    let engine = crate::client::store(cli)?;
    let snapshot = engine.instance(instance)?.ok_or_else(|| {
        Failure::new(
            "unknown_instance",
            format!(
                "no instance `{}`; check the id with `strive list`",
                shown(instance)
            ),
        )
    })?;
    if json {
        output::json(&snapshot);
    } else {
        let i = &snapshot.instance;
        output::line(format!("{} ({} v{})", shown(&i.id), i.workflow, i.version));
        output::line(format!(
            "  stage:    {}{}",
            i.stage,
            if i.finished { " (finished)" } else { "" }
        ));
        if !i.status.is_running() {
            output::line(format!("  status:   {}", i.status));
        }
        output::line(format!("  seq:      {}", i.seq));
        output::line(format!("  head:     {}", i.head));
        output::line(format!("  started:  {}", i.created_at));
        output::line(format!("  updated:  {}", i.updated_at));
        if let Some(parent) = &i.parent {
            output::line(format!("  parent:   {}", shown(parent)));
        }
        if let Some(due) = &snapshot.due {
            let waits = if i.status.is_running() {
                ""
            } else {
                " (waits until resumed)"
            };
            output::line(format!(
                "  deadline: {} fires `{}`{waits}",
                due.at, due.event
            ));
        }
        if !snapshot.children.is_empty() {
            output::line(format!(
                "  children: {}",
                shown(&snapshot.children.join(", "))
            ));
        }
        output::line(format!(
            "  data:     {}",
            serde_json::to_string_pretty(&i.data)
                .unwrap_or_default()
                .replace('\n', "\n            ")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `strive list`.
pub(crate) fn list(cli: &Cli, args: &ListArgs, json: bool) -> Outcome {
    let ListArgs {
        workflow,
        stage,
        parent,
        after,
        limit,
        ..
    } = args;
    if *limit == 0 {
        return Err(Failure::usage(
            "--limit 0 would list nothing; give 1 or more",
        ));
    }
    if stage.is_some() && workflow.is_none() && parent.is_none() {
        return Err(Failure::usage("--stage needs --workflow (or --parent)"));
    }
    let engine = crate::client::store(cli)?;
    let page = engine.list(&ListQuery {
        workflow: workflow.clone(),
        stage: stage.clone(),
        parent: parent.clone(),
        after: after.clone(),
        limit: Some(*limit),
    })?;
    if json {
        output::json(&page);
    } else {
        for s in &page.items {
            let i = &s.instance;
            // A suspended, cancelled or terminated instance says so at
            // the end of its line; running ones are as they always were.
            let status = if i.status.is_running() {
                String::new()
            } else {
                format!(" {}", i.status)
            };
            output::line(format!(
                "{:<24} {:<20} {:<16} seq {:<4} {}{status}",
                shown(&i.id),
                i.workflow,
                i.stage,
                i.seq,
                i.updated_at
            ));
        }
        if let Some(next) = &page.next {
            output::line(format!("... more: --after {}", shown(next)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `strive history`.
pub(crate) fn history(cli: &Cli, instance: &str, json: bool) -> Outcome {
    let engine = crate::client::store(cli)?;
    let history = engine.history(instance)?;
    if history.is_empty() && engine.instance(instance)?.is_none() {
        return Err(Failure::new(
            "unknown_instance",
            format!("no history for `{}`", shown(instance)),
        ));
    }
    if json {
        let events: Vec<Value> = history
            .iter()
            .map(|e| json!({"hash": e.hash, "event": e.event}))
            .collect();
        output::json(&events);
    } else {
        for stored in &history {
            let e = &stored.event;
            let from = e.from.as_deref().unwrap_or("-");
            output::line(format!(
                "#{:<3} g{:<6} {} {}[{}] {} -> {} {} {}",
                e.seq,
                e.gseq,
                e.at,
                shown(&e.actor.id),
                shown(&e.actor.roles.join(",")),
                from,
                if e.to.is_empty() { "-" } else { &e.to },
                e.event,
                if e.payload.is_null() {
                    String::new()
                } else {
                    shown(&e.payload.to_string()).into_owned()
                }
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `strive versions`.
pub(crate) fn versions(cli: &Cli, workflow: Option<&str>, json: bool) -> Outcome {
    let engine = crate::client::store(cli)?;
    let infos = match workflow {
        Some(workflow) => engine.versions(workflow)?,
        None => engine.workflows()?,
    };
    if let (Some(workflow), true) = (workflow, infos.is_empty()) {
        return Err(Failure::new(
            "unknown_workflow",
            format!(
                "no workflow `{}` is deployed; see `strive versions`",
                shown(workflow)
            ),
        ));
    }
    if json {
        output::json(&infos);
    } else {
        for info in &infos {
            output::line(format!(
                "{} v{} {} deployed {}",
                info.workflow, info.version, info.hash, info.deployed_at
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what a command produced: `id: event -> stage (seq, gseq, hash)`.
pub(crate) fn print_outcome(outcome: &strive_store::Outcome, json: bool) {
    if json {
        output::json(outcome);
    } else {
        let replayed = if outcome.replayed {
            " (retry: original outcome)"
        } else {
            ""
        };
        output::line(format!(
            "{}: {} -> {} (seq {}, gseq {}, hash {}){replayed}",
            shown(&outcome.instance),
            outcome.event,
            outcome.stage,
            outcome.seq,
            outcome.gseq,
            outcome.hash
        ));
    }
}
