//! Many engine processes writing one PostgreSQL store (issue #15, item 2;
//! docs/storage.md, "Several processes"). Two engines opened with
//! `?shared=true` in one test process share nothing in memory, so they
//! behave as two processes would; two real `strive stress` processes race
//! and one is killed. Each test makes its own database; without a server
//! the tests say they were skipped, except under `CI=true`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::json;
use strive_store::{Actor, CommandError, CommandOptions, Engine, ManualClock, OpenError, Options};

use crate::util::{TestStore, strive, text};

/// The URL of `store` opened for several processes at once.
fn shared_url(store: &TestStore) -> String {
    format!("{}?{}=true", store.url(), strive_store::SHARED_PARAMETER)
}

/// Opens the store as a sharer. A store it creates has one partition,
/// whatever the partition matrix asks (`STRIVE_PARTITIONS`): with several,
/// a deployment made through one sharer after another opened is not yet
/// installed in the other's partitions but 0, so its catch-up of a start
/// there fails (docs/scale.md, "What is not built").
fn open_shared(store: &TestStore, options: Options) -> Engine {
    let options = Options {
        partitions: 1,
        ..options
    };
    Engine::open_url(&shared_url(store), options).expect("a sharer opens")
}

fn clerk() -> Actor {
    Actor::new("li", &["clerk"])
}

fn admin() -> Actor {
    Actor::new("admin", &["admin"])
}

fn start(engine: &Engine, id: &str) -> Result<strive_store::Outcome, CommandError> {
    engine.start(
        "notes",
        id,
        &clerk(),
        Default::default(),
        None,
        CommandOptions::default(),
    )
}

fn expecting(seq: u64) -> CommandOptions {
    CommandOptions {
        expected_seq: Some(seq),
        ..CommandOptions::default()
    }
}

/// `strive verify` on the store says everything holds.
fn verified(store: &TestStore) {
    let output = strive(&store.location, &["verify"]);
    assert!(
        text(&output).contains("everything holds"),
        "{}",
        text(&output)
    );
}

/// A round of the race as one engine saw it: the sequence it won, or the
/// conflict's (expected, actual), or another error.
type Round = Result<u64, Result<(u64, u64), String>>;

/// Two engines race on one instance for 1,000 rounds, each firing with
/// the sequence the round expects: exactly one wins each round and the
/// other is refused with the expected-sequence conflict, naming the
/// sequence the winner left. Every round's winner is a different event
/// of one unforked chain, and `verify` holds.
#[test]
fn two_engines_race_for_a_thousand_rounds_and_exactly_one_wins_each() {
    let Some(store) = TestStore::postgres("two_engines_race_for_a_thousand_rounds") else {
        return;
    };
    const ROUNDS: u64 = 1_000;
    let first = open_shared(&store, Options::default());
    let second = open_shared(&store, Options::default());
    first
        .deploy(crate::storage::NOTES, &admin())
        .expect("deploy");
    // The second engine sees the first's deployment and instance.
    start(&first, "doc").expect("start");
    let barrier = Barrier::new(2);
    // Each round's answer: the sequence won, or the conflict's (expected,
    // actual), or another error. Nothing panics between the barriers, so
    // a failing round fails the test instead of leaving the other waiting.
    let race = |engine: &Engine| -> Vec<Round> {
        (1..=ROUNDS)
            .map(|seq| {
                barrier.wait();
                let fired = engine.fire("doc", "note", &clerk(), json!(null), expecting(seq));
                barrier.wait();
                match fired {
                    Ok(outcome) => Ok(outcome.seq),
                    Err(CommandError::Conflict {
                        expected, actual, ..
                    }) => Err(Ok((expected, actual))),
                    Err(error) => Err(Err(error.to_string())),
                }
            })
            .collect()
    };
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| race(&first));
        let b = scope.spawn(|| race(&second));
        (a.join().expect("first"), b.join().expect("second"))
    });
    let mut wins = [0u64; 2];
    for (round, (a, b)) in a.iter().zip(&b).enumerate() {
        let seq = round as u64 + 1;
        // The loser is refused with the sequence the winner left.
        let refused = Err(Ok((seq, seq + 1)));
        match (a, b) {
            (Ok(won), lost) if *won == seq + 1 && *lost == refused => wins[0] += 1,
            (lost, Ok(won)) if *won == seq + 1 && *lost == refused => wins[1] += 1,
            other => panic!("round {seq}: not exactly one winner: {other:?}"),
        }
    }
    assert_eq!(wins[0] + wins[1], ROUNDS);
    for engine in [&first, &second] {
        let history = engine.history("doc").expect("history");
        assert_eq!(history.len() as u64, ROUNDS + 1, "one chain, no fork");
        let seqs: Vec<u64> = history.iter().map(|e| e.event.seq).collect();
        assert_eq!(seqs, (1..=ROUNDS + 1).collect::<Vec<_>>());
    }
    drop((first, second));
    verified(&store);
}

/// Expected sequence and idempotency hold across engines: a command id
/// used through one engine gets its first answer, replayed, through the
/// other; the same id with another request is refused; an expected
/// sequence the other engine moved past is a conflict.
#[test]
fn expected_sequence_and_idempotency_hold_across_engines() {
    let Some(store) = TestStore::postgres("expected_sequence_and_idempotency_across_engines")
    else {
        return;
    };
    let first = open_shared(&store, Options::default());
    first
        .deploy(crate::storage::NOTES, &admin())
        .expect("deploy");
    let second = open_shared(&store, Options::default());
    start(&second, "doc").expect("the second engine starts an instance");
    let once = CommandOptions {
        command_id: Some("note-1".to_owned()),
        ..CommandOptions::default()
    };
    let answered = first
        .fire("doc", "note", &clerk(), json!(null), once.clone())
        .expect("the first engine fires");
    let replayed = second
        .fire("doc", "note", &clerk(), json!(null), once.clone())
        .expect("the retry is answered");
    assert!(replayed.replayed, "the retry writes nothing");
    assert_eq!(
        (replayed.seq, &replayed.hash, replayed.gseq),
        (answered.seq, &answered.hash, answered.gseq)
    );
    let reused = second
        .fire("doc", "close", &clerk(), json!(null), once)
        .expect_err("another request under the same id");
    assert!(
        matches!(reused, CommandError::CommandIdReused { .. }),
        "{reused:?}"
    );
    let stale = first
        .fire("doc", "note", &clerk(), json!(null), expecting(1))
        .expect_err("the instance moved past 1");
    assert!(
        matches!(stale, CommandError::Conflict { actual: 2, .. }),
        "{stale:?}"
    );
    second
        .fire("doc", "close", &clerk(), json!(null), expecting(2))
        .expect("the expected sequence");
    // A start of an instance the other engine started is refused.
    let exists = start(&first, "doc").expect_err("doc exists");
    assert!(
        matches!(exists, CommandError::InstanceExists { .. }),
        "{exists:?}"
    );
    assert_eq!(first.history("doc").expect("history").len(), 3);
    drop((first, second));
    verified(&store);
}

/// A stage whose deadline lapses the instance.
const LAPSE: &str = r#"{
  "id": "lapse", "title": "Lapse", "roles": [{"id": "clerk"}, {"id": "system"}],
  "stages": [
    {"id": "open", "kind": "initial", "deadline": {"after": "PT1H", "event": "lapse"}},
    {"id": "lapsed", "kind": "terminal"}
  ],
  "transitions": [{"event": "lapse", "from": "open", "to": "lapsed", "roles": ["system"]}]
}"#;

/// A deadline fires once when two engines tick at the same moment: both
/// see it due, one fires it, and the other finds it consumed.
#[test]
fn a_deadline_fires_once_when_two_engines_tick() {
    let Some(store) = TestStore::postgres("a_deadline_fires_once_when_two_engines_tick") else {
        return;
    };
    let at = |text: &str| text.parse::<jiff::Timestamp>().expect("a time");
    let clock = Arc::new(ManualClock::new(at("2026-05-01T00:00:00Z")));
    let options = Options {
        clock: clock.clone(),
        ..Options::default()
    };
    const INSTANCES: usize = 20;
    let first = open_shared(&store, options.clone());
    first.deploy(LAPSE, &admin()).expect("deploy");
    for i in 0..INSTANCES {
        first
            .start(
                "lapse",
                &format!("l-{i}"),
                &clerk(),
                Default::default(),
                None,
                CommandOptions::default(),
            )
            .expect("start");
    }
    // Opened after the starts, the second engine sees the deadlines too
    // (its open writes the state it caught up with back).
    let second = open_shared(&store, options);
    let now = at("2026-05-01T02:00:00Z");
    clock.set(now);
    let barrier = Barrier::new(2);
    let tick = |engine: &Engine| {
        barrier.wait();
        engine.fire_due(now).expect("tick")
    };
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| tick(&first));
        let b = scope.spawn(|| tick(&second));
        (a.join().expect("first"), b.join().expect("second"))
    });
    let fired: Vec<_> = a.iter().chain(&b).filter(|f| f.result.is_ok()).collect();
    assert_eq!(fired.len(), INSTANCES, "each deadline fires once");
    for i in 0..INSTANCES {
        let history = second.history(&format!("l-{i}")).expect("history");
        let events: Vec<&str> = history.iter().map(|e| e.event.event.as_str()).collect();
        assert_eq!(events, ["start", "lapse"], "l-{i}");
    }
    for engine in [&first, &second] {
        assert!(engine.fire_due(now).expect("tick again").is_empty());
    }
    drop((first, second));
    verified(&store);
}

/// A sharer and a process that writes alone exclude each other: each is
/// refused with `Locked` while the other has the store open.
#[test]
fn sharers_and_a_process_alone_exclude_each_other() {
    let Some(store) = TestStore::postgres("sharers_and_a_process_alone_exclude_each_other") else {
        return;
    };
    let sharer = open_shared(&store, Options::default());
    let alone = Engine::open_url(store.url(), Options::default()).expect_err("refused");
    assert!(matches!(alone, OpenError::Locked { .. }), "{alone:?}");
    drop(sharer);
    let alone = Engine::open_url(store.url(), Options::default()).expect("alone");
    let sharer = Engine::open_url(&shared_url(&store), Options::default()).expect_err("refused");
    assert!(matches!(sharer, OpenError::Locked { .. }), "{sharer:?}");
    drop(alone);
    let bad = Engine::open_url(&format!("{}?shared=maybe", store.url()), Options::default())
        .expect_err("a bad value");
    assert!(bad.to_string().contains("shared=true"), "{bad}");
}

/// One `strive stress` acknowledgement: `ack <instance> <seq> <p>:<gseq> <hash>`.
fn ack(line: &str) -> Option<(String, u64, String)> {
    let parts: Vec<&str> = line.split(' ').collect();
    match parts.as_slice() {
        ["ack", instance, seq, _, hash] => Some((
            (*instance).to_owned(),
            seq.parse().ok()?,
            (*hash).to_owned(),
        )),
        _ => None,
    }
}

/// Starts `strive stress` on the shared store with instance ids from
/// `prefix`, so that two of them race on the same instances.
fn stress(store: &TestStore, prefix: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_strive"))
        .arg("--db")
        .arg(shared_url(store))
        .args(["stress", "--threads", "2", "--prefix", prefix])
        .env("STRIVE_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the writer starts")
}

/// Reads a writer's acknowledgements until it ends.
fn acks_of(child: &mut std::process::Child) -> std::thread::JoinHandle<Vec<(String, u64, String)>> {
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| ack(&line))
            .collect()
    })
}

/// Two real `strive` processes race on the same instances (each writer
/// thread of one fires on the instances of the same thread of the other),
/// and one is killed with SIGKILL in the middle of its run: every event
/// either acknowledged is in the store with the hash it was acknowledged
/// with, no (instance, sequence) was acknowledged by both, and `verify`
/// holds.
#[test]
fn two_processes_race_and_one_killed_loses_nothing_acknowledged() {
    let Some(store) = TestStore::postgres("two_processes_race_and_one_killed") else {
        return;
    };
    // The store and its schema exist before the two open it at once.
    drop(open_shared(&store, Options::default()));
    let (mut killed, mut survivor) = (stress(&store, "race"), stress(&store, "race"));
    let (killed_acks, survivor_acks) = (acks_of(&mut killed), acks_of(&mut survivor));
    std::thread::sleep(Duration::from_secs(4));
    let _ = killed.kill();
    let _ = killed.wait();
    std::thread::sleep(Duration::from_secs(2));
    let _ = survivor.kill();
    let _ = survivor.wait();
    let (killed_acks, survivor_acks) = (
        killed_acks.join().expect("reader"),
        survivor_acks.join().expect("reader"),
    );
    assert!(
        killed_acks.len() > 10 && survivor_acks.len() > 10,
        "both wrote: {} and {}",
        killed_acks.len(),
        survivor_acks.len()
    );
    let mut acknowledged: HashMap<(String, u64), String> = HashMap::new();
    for (instance, seq, hash) in killed_acks.into_iter().chain(survivor_acks) {
        let previous = acknowledged.insert((instance.clone(), seq), hash);
        assert!(
            previous.is_none(),
            "{instance} #{seq} was acknowledged twice: a fork"
        );
    }
    let engine = Engine::open_existing_url(store.url(), Options::default()).expect("reopen");
    let mut instances: Vec<&String> = acknowledged.keys().map(|(id, _)| id).collect();
    instances.sort();
    instances.dedup();
    let mut raced = 0;
    for instance in instances {
        let history = engine.history(instance).expect("history");
        let stored: HashMap<u64, &str> = history
            .iter()
            .map(|e| (e.event.seq, e.hash.as_str()))
            .collect();
        for ((id, seq), hash) in acknowledged.iter().filter(|((id, _), _)| id == instance) {
            assert_eq!(stored.get(seq), Some(&hash.as_str()), "{id} #{seq} is lost");
        }
        raced += 1;
    }
    assert!(raced > 0);
    drop(engine);
    verified(&store);
}
