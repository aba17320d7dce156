//! `strive tick`: firing the deadlines that are due, by the engine's clock.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};
use strive_store::Options;

use crate::cli::Cli;
use crate::commands::parse_time;
use crate::failure::{Failure, Outcome};
use crate::output;

/// `strive tick`: fires every deadline due by `--now` (the clock when absent).
pub(crate) fn tick(cli: &Cli, now: Option<&str>, json: bool) -> Outcome {
    let clock = jiff::Timestamp::now();
    let now = match now {
        Some(text) => parse_time("--now", text)?,
        None => clock,
    };
    if now > clock && strive_store::location_text(&cli.db).is_none() {
        // Only an existing store can have run on a manual clock.
        strive_store::probe::require_store(&cli.db)?;
    }
    let tick = Arc::new(TickClock::default());
    let engine = crate::files::open_or_create(
        &cli.db,
        Options {
            clock: tick.clone(),
            ..Options::default()
        },
    )?;
    // The clock is the engine's: a deadline fires when it is due,
    // not when a caller says it is (issue #17). Only a simulation,
    // a store that ran on a manual clock and says so, moves on to
    // the time it is told.
    if now > clock {
        if !engine.ran_on_manual_clock()? {
            return Err(Failure::new(
                "future_time",
                format!(
                    "--now {now} is after the clock ({clock}); deadlines fire when they are due, \
                     so give a time up to now or leave --now out (only a store that ran on a \
                     manual clock, a simulation, moves on to a later time)"
                ),
            ));
        }
        tick.set(now);
    }
    let fired = engine.fire_due(now)?;
    if json {
        let rows: Vec<Value> = fired
            .iter()
            .map(|f| match &f.result {
                Ok(outcome) => json!({"instance": f.instance, "event": f.event, "due": f.due, "outcome": outcome}),
                Err(error) => json!({"instance": f.instance, "event": f.event, "due": f.due, "error": error.to_string()}),
            })
            .collect();
        output::json(&rows);
    } else {
        for f in &fired {
            match &f.result {
                Ok(outcome) => output::line(format!(
                    "{}: {} (due {}) -> {}",
                    f.instance, f.event, f.due, outcome.stage
                )),
                Err(error) => output::line(format!(
                    "{}: {} (due {}) refused: {error}",
                    f.instance, f.event, f.due
                )),
            }
        }
        output::line(format!("{} deadline(s) fired", fired.len()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The engine's clock in `tick`: the system's, until `tick --now` moves a
/// store that ran on a manual clock (a simulation) on to a later time. It
/// does not mark a store as manual itself: only a store marked so already
/// is moved.
#[derive(Debug, Default)]
struct TickClock {
    set: std::sync::OnceLock<jiff::Timestamp>,
}

impl TickClock {
    fn set(&self, at: jiff::Timestamp) {
        let _ = self.set.set(at);
    }
}

impl strive_store::Clock for TickClock {
    fn now(&self) -> jiff::Timestamp {
        self.set.get().copied().unwrap_or_else(jiff::Timestamp::now)
    }
}
