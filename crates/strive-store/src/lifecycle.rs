//! `Engine::lifecycle`: suspending, resuming, cancelling and terminating an
//! instance (issue #13, item 3). The rules are the core's
//! (`strive_core::Workflow::lifecycle`); the writer records the instance's
//! event and its descendants' in one write (`writer/lifecycle.rs`).

use strive_core::{Actor, Operation};

use crate::Engine;
use crate::error::CommandError;
use crate::records::{CommandOptions, Outcome};
use crate::writer::{Cmd, Reply, Request};

/// A lifecycle operation to ask of an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleRequest<'a> {
    /// The instance.
    pub instance: &'a str,
    /// The operation.
    pub op: Operation,
    /// Who asks; one of their roles must be allowed the operation by the
    /// instance's definition (`lifecycle` section).
    pub actor: &'a Actor,
    /// Why, recorded in the event (1 to
    /// [`strive_core::MAX_REASON_CHARS`] characters).
    pub reason: &'a str,
    /// A command id for idempotent retries, and an expected sequence.
    pub options: CommandOptions,
}

impl Engine {
    /// Suspends, resumes, cancels or terminates an instance, with a
    /// reason. Its descendants follow in the same write as the definitions
    /// declare (terminate reaches them all). Returns the instance's
    /// outcome once durable, or the typed reason it was refused (and
    /// nothing was written).
    pub fn lifecycle(&self, request: &LifecycleRequest<'_>) -> Result<Outcome, CommandError> {
        let (actor, instance): (&Actor, &str) = (
            &crate::guard::caller(request.actor)?,
            &crate::guard::instance_id(request.instance)?,
        );
        crate::guard::command_id(&request.options)?;
        crate::engine::check_options(&request.options)?;
        let partition = self.partition_of(instance)?;
        let cmd = Cmd::Lifecycle {
            instance: instance.to_owned(),
            op: request.op,
            actor: actor.clone(),
            reason: request.reason.to_owned(),
            options: request.options.clone(),
        };
        self.send(partition, |reply| Request {
            cmd,
            reply: Reply::Command(reply),
        })?
    }

    /// Suspends `instance` ([`Engine::lifecycle`] with
    /// [`Operation::Suspend`]).
    pub fn suspend(
        &self,
        instance: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<Outcome, CommandError> {
        self.lifecycle_of(instance, Operation::Suspend, actor, reason)
    }

    /// Resumes a suspended `instance`.
    pub fn resume(
        &self,
        instance: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<Outcome, CommandError> {
        self.lifecycle_of(instance, Operation::Resume, actor, reason)
    }

    /// Cancels `instance`: an orderly end; children follow as declared.
    pub fn cancel(
        &self,
        instance: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<Outcome, CommandError> {
        self.lifecycle_of(instance, Operation::Cancel, actor, reason)
    }

    /// Terminates `instance`: a forced end that reaches every descendant.
    pub fn terminate(
        &self,
        instance: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<Outcome, CommandError> {
        self.lifecycle_of(instance, Operation::Terminate, actor, reason)
    }

    fn lifecycle_of(
        &self,
        instance: &str,
        op: Operation,
        actor: &Actor,
        reason: &str,
    ) -> Result<Outcome, CommandError> {
        self.lifecycle(&LifecycleRequest {
            instance,
            op,
            actor,
            reason,
            options: CommandOptions::default(),
        })
    }
}
