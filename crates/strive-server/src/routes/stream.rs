//! Server-sent events: the log of every partition from a position, live.
//! Each event's id is the cursor after it (`crate::cursor`): with one
//! partition its position, with more the last position received in every
//! partition. A client that lost the connection resumes with
//! `Last-Event-ID`, so it misses nothing and sees nothing twice.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::mpsc;

use strive_store::Subscription;

use crate::cursor::Cursor;
use crate::model::{EventBody, StreamParams};
use crate::openapi::QueryProblems;
use crate::problem::Problem;
use crate::routes::Q;
use crate::state::{Caller, Shared};

/// How long the follower waits for a new event before it checks whether
/// the client is still there and the server still running.
const POLL: Duration = Duration::from_millis(250);

/// How long a follower of several partitions rests when none had a new
/// event (one partition's follower waits on the engine instead).
const IDLE: Duration = Duration::from_millis(20);

/// Events queued for a slow client before the follower waits for it.
const QUEUE: usize = 256;

/// Follows the log of every partition: every durable event from `from`
/// (or after `Last-Event-ID`) on, as `event: event` with the event body as
/// data and the cursor after it as id.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", params(
        StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "the id of the last event received: resume after it (with one partition a position; with more `partition:position` pairs)"),
    ),
    responses((status = 200, description = "a text/event-stream of events", content_type = "text/event-stream", body = String), QueryProblems))]
pub(crate) async fn stream(
    State(state): State<Shared>,
    _caller: Caller,
    headers: HeaderMap,
    Q(params): Q<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let partitions = state.engine.partitions();
    let from = match headers.get("last-event-id") {
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                Problem::bad_request("Last-Event-ID must be the id of an event received")
            })?;
            Cursor::parse_last_event_id(text, partitions)?
        }
        None => Cursor::parse_from(params.from.as_deref().unwrap_or(""), partitions)?,
    };
    let (sender, receiver) = mpsc::channel::<Event>(QUEUE);
    let follower = state.clone();
    tokio::task::spawn_blocking(move || follow(&follower, from, &sender));
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Sends events from `cursor` on until the client leaves, the server shuts
/// down or the store fails (then the stream ends; the client resumes). With
/// several partitions it takes at most one event of each in turn, so a busy
/// partition cannot hold back the others.
fn follow(state: &Shared, mut cursor: Cursor, sender: &mpsc::Sender<Event>) {
    let mut subscriptions: Vec<Subscription> = (0..cursor.partitions())
        .map(|p| state.engine.subscribe_in(p, cursor.next(p)))
        .collect();
    let wait = if subscriptions.len() == 1 {
        POLL
    } else {
        Duration::ZERO
    };
    while !sender.is_closed() && !state.shutting_down() {
        let mut idle = true;
        for subscription in &mut subscriptions {
            match subscription.next_timeout(wait) {
                Ok(None) => {}
                Ok(Some(stored)) => {
                    idle = false;
                    cursor.read(subscription.partition(), stored.event.gseq);
                    let body = EventBody::from(stored);
                    let Ok(event) = Event::default()
                        .event("event")
                        .id(cursor.to_event_id())
                        .json_data(&body)
                    else {
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
        if idle && wait.is_zero() {
            std::thread::sleep(IDLE);
        }
    }
}
