//! The negative controls: deliberately broken variants of the engine that
//! the simulator must catch, proving it can see each kind of loss.

use std::cell::Cell;

/// A deliberately broken variant of the engine (only with the `sim`
/// feature). Each must make the simulator report a failure within the
/// number of seeds `tests/sim.rs` states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// Commands are acknowledged before their group is flushed (the
    /// engine runs in `Durability::Buffered` while the simulator expects
    /// every acknowledgement to survive a crash).
    AckBeforeFlush,
    /// Recovery skips the log's tail: the state stays where it was last
    /// written back while new events go after the log's end.
    SkipRecoveryTail,
    /// A group whose batch writes the state back leaves its own events out
    /// of that batch: snapshots that no event explains.
    SnapshotWithoutEvent,
}

thread_local! {
    /// The control in force on this thread. Per thread because the
    /// deterministic mode runs the writers on the caller's thread, and
    /// tests run in parallel on other threads with the engine intact.
    static ACTIVE: Cell<Option<Control>> = const { Cell::new(None) };
}

/// Whether `control` is in force on this thread.
pub(crate) fn active(control: Control) -> bool {
    ACTIVE.with(|active| active.get() == Some(control))
}

/// Puts a control in force on this thread until dropped.
pub(crate) struct Armed {
    previous: Option<Control>,
}

impl Armed {
    pub(crate) fn new(control: Option<Control>) -> Armed {
        Armed {
            previous: ACTIVE.with(|active| active.replace(control)),
        }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        ACTIVE.with(|active| active.set(self.previous));
    }
}
