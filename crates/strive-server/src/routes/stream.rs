//! Server-sent events: the global log from a position, live. A client
//! that lost the connection resumes with `Last-Event-ID` (each event's id
//! is its global position), so it misses nothing and sees nothing twice.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::model::{EventBody, StreamParams};
use crate::openapi::QueryProblems;
use crate::problem::Problem;
use crate::routes::Q;
use crate::state::{Caller, Shared};

/// How long the follower waits for a new event before it checks whether
/// the client is still there and the server still running.
const POLL: Duration = Duration::from_millis(250);

/// Events queued for a slow client before the follower waits for it.
const QUEUE: usize = 256;

/// Follows the global log: every durable event from `from` (or after
/// `Last-Event-ID`) on, as `event: event` with the event body as data and
/// its global position as id.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", params(
        StreamParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "the id of the last event received: resume after it"),
    ),
    responses((status = 200, description = "a text/event-stream of events", content_type = "text/event-stream", body = String), QueryProblems))]
pub(crate) async fn stream(
    State(state): State<Shared>,
    _caller: Caller,
    headers: HeaderMap,
    Q(params): Q<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Problem::bad_request("Last-Event-ID must be the id of an event received")
                })?,
        ),
    };
    let from = match resume {
        Some(last) => last.saturating_add(1),
        None => params.from.unwrap_or(1).max(1),
    };
    let (sender, receiver) = mpsc::channel::<Event>(QUEUE);
    let follower = state.clone();
    tokio::task::spawn_blocking(move || follow(&follower, from, &sender));
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Sends events from `from` on until the client leaves, the server shuts
/// down or the store fails (then the stream ends; the client resumes).
fn follow(state: &Shared, from: u64, sender: &mpsc::Sender<Event>) {
    let mut subscription = state.engine.subscribe(from);
    while !sender.is_closed() && !state.shutting_down() {
        match subscription.next_timeout(POLL) {
            Ok(None) => {}
            Ok(Some(stored)) => {
                let id = stored.event.gseq.to_string();
                let body = EventBody::from(stored);
                let Ok(event) = Event::default().event("event").id(id).json_data(&body) else {
                    return;
                };
                if sender.blocking_send(event).is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "the event stream stops on a storage error");
                return;
            }
        }
    }
}
