//! Crash loops (issue #6): a writer process fires transitions from several
//! threads and prints each acknowledgement; the test kills it with SIGKILL
//! at random moments, reopens the store and checks that every acknowledged
//! transition is there, chains are intact, each partition's sequence is
//! gapless and heads equal last events. A negative control, where the writer
//! acknowledges before flushing, must make the same checker see a loss.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strive_store::{Engine, Options};

use crate::util::{Lcg, TestStore};

/// One acknowledged command, as the writer printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    instance: String,
    seq: u64,
    partition: u32,
    gseq: u64,
    hash: String,
}

/// Runs the writer for `millis` and kills it; returns what it acknowledged.
fn run_and_kill(db: &Path, millis: u64, buffered: bool) -> Vec<Ack> {
    let pause = || std::thread::sleep(Duration::from_millis(millis));
    run_during(db, buffered, Stdio::null(), pause)
}

/// Runs the writer while `during` runs, then kills it; returns what it
/// acknowledged. Its log (warnings and errors) goes to `stderr`.
fn run_during(db: &Path, buffered: bool, stderr: Stdio, during: impl FnOnce()) -> Vec<Ack> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strive"));
    command
        .arg("--db")
        .arg(db)
        .args(["stress", "--threads", "4"]);
    if buffered {
        command.arg("--buffered");
    }
    let mut child = command
        .env("STRIVE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("the writer starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                // `ack <instance> <seq> <partition>:<gseq> <hash>`
                let parts: Vec<&str> = line.split(' ').collect();
                match parts.as_slice() {
                    ["ack", instance, seq, position, hash] => {
                        let (partition, gseq) = position.split_once(':')?;
                        Some(Ack {
                            instance: (*instance).to_owned(),
                            seq: seq.parse().ok()?,
                            partition: partition.parse().ok()?,
                            gseq: gseq.parse().ok()?,
                            hash: (*hash).to_owned(),
                        })
                    }
                    _ => None,
                }
            })
            .collect::<Vec<Ack>>()
    });
    during();
    // `kill` sends SIGKILL on Unix: no destructor, no flush, no goodbye.
    let _ = child.kill();
    let _ = child.wait();
    reader.join().expect("the reader thread")
}

/// What the store holds, checked from the events alone, from where the
/// last check ended on.
struct Checked {
    /// Every event's (partition, position, hash) by (instance, seq).
    hashes: HashMap<(String, u64), (u32, u64, String)>,
    /// Each chain's last (seq, hash).
    heads: BTreeMap<String, (u64, String)>,
    /// Each partition's last position checked, by partition.
    last_gseq: Vec<u64>,
}

impl Checked {
    fn new() -> Checked {
        Checked {
            hashes: HashMap::new(),
            heads: BTreeMap::new(),
            last_gseq: Vec::new(),
        }
    }

    /// Reads the events written since the last check, in every partition,
    /// and checks them, the acknowledgements, and the snapshots they
    /// touched. Returns every problem found.
    fn check(&mut self, engine: &Engine, acks: &[Ack]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut touched = Vec::new();
        self.last_gseq.resize(engine.partitions() as usize, 0);
        for partition in 0..engine.partitions() {
            touched.extend(self.check_partition(engine, partition, &mut problems));
        }
        self.check_acks_and_snapshots(engine, acks, touched, &mut problems);
        problems
    }

    /// Checks `partition`'s new events; returns the subjects they touched.
    fn check_partition(
        &mut self,
        engine: &Engine,
        partition: u32,
        problems: &mut Vec<String>,
    ) -> Vec<String> {
        let mut touched = Vec::new();
        let last = &mut self.last_gseq[partition as usize];
        for stored in engine.events_in(partition, *last + 1) {
            let stored = match stored {
                Ok(stored) => stored,
                Err(error) => {
                    problems.push(format!(
                        "unreadable event after p{partition}:g{last}: {error}"
                    ));
                    break;
                }
            };
            let e = &stored.event;
            if e.gseq != *last + 1 || e.partition != partition {
                problems.push(format!(
                    "gap or reorder: p{}:g{} follows p{partition}:g{last}",
                    e.partition, e.gseq
                ));
            }
            *last = e.gseq;
            if strive_core::event_hash(&stored.bytes) != stored.hash {
                problems.push(format!(
                    "p{partition}:g{}: stored hash does not match the bytes",
                    e.gseq
                ));
            }
            let (prev_seq, prev_hash) = self
                .heads
                .get(&e.instance)
                .cloned()
                .unwrap_or((0, strive_core::GENESIS.to_owned()));
            if e.seq != prev_seq + 1 || e.prev != prev_hash {
                problems.push(format!(
                    "{} #{}: chain broken (after #{prev_seq}, prev {} != {prev_hash})",
                    e.instance, e.seq, e.prev
                ));
            }
            self.heads
                .insert(e.instance.clone(), (e.seq, stored.hash.clone()));
            self.hashes.insert(
                (e.instance.clone(), e.seq),
                (partition, e.gseq, stored.hash.clone()),
            );
            touched.push(e.instance.clone());
        }
        if engine.last_gseq_in(partition) != *last {
            problems.push(format!(
                "the engine says p{partition}:g{} is last, the log ends at g{last}",
                engine.last_gseq_in(partition),
            ));
        }
        touched
    }

    /// Checks that every acknowledgement is in the log, and that the
    /// snapshot of every touched instance is at its last event.
    fn check_acks_and_snapshots(
        &self,
        engine: &Engine,
        acks: &[Ack],
        mut touched: Vec<String>,
        problems: &mut Vec<String>,
    ) {
        for ack in acks {
            match self.hashes.get(&(ack.instance.clone(), ack.seq)) {
                Some((partition, gseq, hash))
                    if (*partition, *gseq, hash) == (ack.partition, ack.gseq, &ack.hash) => {}
                Some(other) => {
                    problems.push(format!("acknowledged {ack:?} but the store has {other:?}"))
                }
                None => problems.push(format!("acknowledged {ack:?} is lost")),
            }
        }
        touched.sort();
        touched.dedup();
        for id in touched.iter().filter(|id| !id.starts_with('@')) {
            let head = &self.heads[id];
            match engine.instance(id) {
                Ok(Some(snapshot))
                    if (snapshot.instance.seq, &snapshot.instance.head) == (head.0, &head.1) => {}
                Ok(Some(snapshot)) => problems.push(format!(
                    "{id}: snapshot at #{} {} but the last event is #{} {}",
                    snapshot.instance.seq, snapshot.instance.head, head.0, head.1
                )),
                other => problems.push(format!("{id}: events but no snapshot ({other:?})")),
            }
        }
    }
}

fn cycles() -> u64 {
    std::env::var("STRIVE_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200)
}

#[test]
fn acknowledged_transitions_survive_sigkill() {
    crash_loop(&TestStore::new(), cycles());
}

/// The same loop on PostgreSQL (issue #15): a kill in the middle of a
/// group leaves its transaction uncommitted, and every acknowledged group
/// committed. Fewer cycles than on sled: each reopen connects anew.
#[test]
fn acknowledged_transitions_survive_sigkill_on_postgres() {
    if let Some(store) = TestStore::postgres("acknowledged_transitions_survive_sigkill_on_postgres")
    {
        crash_loop(&store, cycles().min(30));
    }
}

/// Kills the writer `cycles` times at random moments on `store`, checking
/// after each kill that everything acknowledged is there.
fn crash_loop(store: &TestStore, cycles: u64) {
    let db = &store.location;
    let mut rng = Lcg(0x5eed_2026);
    let mut checked = Checked::new();
    let (mut acknowledged, started) = (0usize, Instant::now());
    for cycle in 0..cycles {
        // Most kills land while writing; some during start-up and recovery.
        let millis = 5 + rng.below(80);
        let acks = run_and_kill(db, millis, false);
        acknowledged += acks.len();
        let engine = store.open(Options::default());
        let problems = checked.check(&engine, &acks);
        assert!(
            problems.is_empty(),
            "cycle {cycle} (killed after {millis} ms):\n{}",
            problems.join("\n")
        );
    }
    // Every kill must also leave a store that the writer can continue.
    assert!(
        acknowledged > 0,
        "the writer acknowledged nothing: the test checked nothing"
    );
    println!(
        "crash loop on {}: {cycles} cycles, {acknowledged} acknowledgements checked, {} events, {:.1}s",
        db.display(),
        checked.last_gseq.iter().sum::<u64>(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_checker_sees_a_loss_when_acknowledging_before_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let mut rng = Lcg(0xbad_f1a5);
    let mut checked = Checked::new();
    for cycle in 0..40 {
        let acks = run_and_kill(&db, 50 + rng.below(150), true);
        let engine = Engine::open(&db, Options::default()).expect("the store reopens");
        let problems = checked.check(&engine, &acks);
        if problems.iter().any(|p| p.contains("is lost")) {
            println!("negative control: loss seen in cycle {cycle}");
            return;
        }
        // A lost tail may be rewritten with other content by the next run;
        // start the next cycle's check from what is actually there.
        checked = Checked::new();
        let _ = checked.check(&engine, &[]);
    }
    panic!("acknowledging before flushing lost nothing in 40 kills: the checker cannot see losses");
}

/// sled 0.34 writes its page-table snapshot to `snap.<lsn>.generating` and
/// renames it when done; a kill in between left the unfinished file, which
/// sled then read as the newest snapshot and refused every open as corrupt
/// (the crash loop above hit it in about one run in three). The file is
/// never a finished snapshot, so the backend removes it when sled refuses
/// the open, and the store opens with everything in it.
#[test]
fn a_snapshot_left_unfinished_by_a_kill_does_not_lock_the_store_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let run = run_and_kill(&db, 1_500, false);
    assert!(!run.is_empty(), "the writer acknowledged nothing");
    let mut checked = Checked::new();
    {
        let engine = Engine::open(&db, Options::default()).expect("reopen");
        assert!(checked.check(&engine, &run).is_empty());
    }
    // What a kill in the middle of `write_snapshot` leaves: a newer
    // snapshot's file, cut short (no length, no checksum).
    let unfinished = db.join("snap.7FFFFFFFFFFFFFFF.generating");
    std::fs::write(&unfinished, b"\x01\x02\x03").expect("write");
    let engine = Engine::open(&db, Options::default())
        .expect("the store opens despite the unfinished snapshot");
    let problems = checked.check(&engine, &run);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(!unfinished.exists(), "the unfinished snapshot is removed");
}

/// Issue #15: PostgreSQL restarts in the middle of a run (`pg_ctlcluster
/// 15 main restart`, which ends every connection). The writer reports the
/// lost connections, reconnects and goes on writing; after it is killed,
/// everything it acknowledged, before and after the restart, is there and
/// the chains hold. It restarts the shared server, so only
/// `.ci/check-postgres.sh` runs it (STRIVE_PG_RESTART=1), alone.
#[test]
fn acknowledged_writes_survive_a_server_restart() {
    if std::env::var_os("STRIVE_PG_RESTART").is_none() {
        eprintln!(
            "note: acknowledged_writes_survive_a_server_restart restarts the shared server, so \
             it runs in .ci/check-postgres.sh (STRIVE_PG_RESTART=1), not here"
        );
        return;
    }
    let Some(store) = TestStore::postgres("acknowledged_writes_survive_a_server_restart") else {
        return;
    };
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let records = || -> i64 {
        let mut client = postgres::Client::connect(store.url(), postgres::NoTls).expect("connect");
        client
            .query_one("SELECT count(*) FROM strive_kv", &[])
            .expect("count")
            .get(0)
    };
    let mut after_restart = 0;
    let acks = run_during(
        &store.location,
        false,
        log.reopen().expect("log").into(),
        || {
            std::thread::sleep(Duration::from_millis(800));
            let restart = Command::new("pg_ctlcluster")
                .args(["15", "main", "restart"])
                .status()
                .expect("pg_ctlcluster runs");
            assert!(restart.success(), "the server restarts");
            after_restart = records();
            std::thread::sleep(Duration::from_millis(1_500));
        },
    );
    let logged = std::fs::read_to_string(log.path()).expect("the log");
    assert!(
        logged.contains("reconnecting"),
        "the lost connection is reported: {logged}"
    );
    assert!(
        records() > after_restart,
        "the writer went on after the restart"
    );
    let engine = store.open(Options::default());
    let problems = Checked::new().check(&engine, &acks);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(!acks.is_empty(), "the writer acknowledged nothing");
}
