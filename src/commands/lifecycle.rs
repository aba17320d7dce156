//! `strive suspend`, `resume`, `cancel` and `terminate` (issue #13, item
//! 3), on the local store or, with `--server`, a running `strive serve`.

use std::process::ExitCode;

use strive_store::{CommandOptions, LifecycleRequest, Operation};

use crate::cli::{Cli, LifecycleArgs};
use crate::commands::actor_of;
use crate::failure::Outcome;

/// Runs `op` on the instance `args` names.
pub(crate) fn run(cli: &Cli, op: Operation, args: &LifecycleArgs, json: bool) -> Outcome {
    let store = crate::client::store_for_writing(cli)?;
    let actor = actor_of(cli, &args.actor)?;
    let request = LifecycleRequest {
        instance: &args.instance,
        op,
        actor: &actor,
        reason: &args.reason,
        options: CommandOptions {
            expected_seq: args.expect_seq,
            command_id: args.command_id.clone(),
            ..CommandOptions::default()
        },
    };
    let outcome = store.lifecycle(&request)?;
    crate::commands::instances::print_outcome(&outcome, json);
    Ok(ExitCode::SUCCESS)
}
