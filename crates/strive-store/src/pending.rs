//! A command's answer that arrives later: what [`Engine::fire_pending`]
//! returns, a future any async runtime can await (no runtime is named
//! here). An async service awaits it instead of parking a thread per
//! command in flight until the writer's group is durable: `strive serve`
//! does, so the commands in flight are not bounded by a thread pool.
//!
//! [`Engine::fire_pending`]: crate::Engine::fire_pending

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{CommandError, StorageError};
use crate::records::Outcome;

/// What a command gives: the outcome, or why it was refused.
type Answer = Result<Outcome, CommandError>;

/// The slot the writer fills and the future reads.
#[derive(Default)]
struct Slot {
    answer: Option<Answer>,
    waker: Option<Waker>,
}

/// A command sent to the writer, answered once its group is durable or
/// refused: `.await` it for the same result [`Engine::fire`] returns.
///
/// Dropping it does not withdraw the command (the writer decides it all
/// the same); it only drops the answer.
///
/// [`Engine::fire`]: crate::Engine::fire
#[must_use = "the command is sent either way; await it for its answer"]
pub struct Pending {
    slot: Arc<Mutex<Slot>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let answered = self.slot.lock().map(|s| s.answer.is_some()).unwrap_or(true);
        f.debug_struct("Pending")
            .field("answered", &answered)
            .finish()
    }
}

impl Pending {
    /// A future and the writer's side of it.
    pub(crate) fn new() -> (Pending, Completer) {
        let slot = Arc::new(Mutex::new(Slot::default()));
        (
            Pending { slot: slot.clone() },
            Completer { slot: Some(slot) },
        )
    }

    /// A future that is answered already (a command refused before it
    /// reached the writer).
    pub(crate) fn ready(answer: Answer) -> Pending {
        let (pending, completer) = Pending::new();
        completer.complete(answer);
        pending
    }
}

impl Future for Pending {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let Ok(mut slot) = self.slot.lock() else {
            return Poll::Ready(Err(StorageError::Closed.into()));
        };
        match slot.answer.take() {
            Some(answer) => Poll::Ready(answer),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The writer's side of a [`Pending`]. Dropped unanswered (the writer
/// gone, the queue closed), it answers that the store is closed, so no
/// future waits forever.
pub(crate) struct Completer {
    slot: Option<Arc<Mutex<Slot>>>,
}

impl Completer {
    /// Answers the future and wakes whoever awaits it.
    pub(crate) fn complete(mut self, answer: Answer) {
        if let Some(slot) = self.slot.take() {
            fill(&slot, answer);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            fill(&slot, Err(StorageError::Closed.into()));
        }
    }
}

fn fill(slot: &Mutex<Slot>, answer: Answer) {
    let waker = match slot.lock() {
        Ok(mut slot) => {
            slot.answer = Some(answer);
            slot.waker.take()
        }
        Err(_) => None,
    };
    // Woken outside the lock: the awaiting task may poll at once.
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::task::Wake;

    use super::*;

    struct Flag(std::sync::atomic::AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn poll(pending: &mut Pending, flag: &Arc<Flag>) -> Poll<Answer> {
        let waker = Waker::from(flag.clone());
        Pin::new(pending).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn an_answer_wakes_the_waiting_task_and_a_dropped_completer_answers_closed() {
        let flag = Arc::new(Flag(Default::default()));
        let (mut pending, completer) = Pending::new();
        assert!(poll(&mut pending, &flag).is_pending());
        drop(completer);
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst), "woken");
        assert!(matches!(
            poll(&mut pending, &flag),
            Poll::Ready(Err(CommandError::Storage(StorageError::Closed)))
        ));
        let mut ready = Pending::ready(Err(StorageError::Closed.into()));
        assert!(poll(&mut ready, &flag).is_ready());
    }
}
