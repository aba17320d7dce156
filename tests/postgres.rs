//! The PostgreSQL backend (issue #15): the backend against sled's as the
//! reference, the versioned schema, `--db postgres://…` in the CLI, its
//! errors, and moving a store between the backends. Each test makes its
//! own database and drops it; without a server the tests say they were
//! skipped, except under `CI=true`, where they fail. The engine suites
//! themselves run on PostgreSQL in `.ci/check-postgres.sh`.

use strive_store::{Backend, Engine, OpenError, Options, PostgresBackend, SledBackend, Write};

use crate::util::{Lcg, TestStore, strive, text};

/// A key from a small alphabet that includes 0x00 and 0xFF, so that
/// prefixes, terminators and the end of the key space all occur.
fn key(rng: &mut Lcg) -> Vec<u8> {
    const BYTES: [u8; 5] = [0x00, 0x01, b'b', 0x7F, 0xFF];
    let len = 1 + rng.below(4) as usize;
    (0..len)
        .map(|_| BYTES[rng.below(BYTES.len() as u64) as usize])
        .collect()
}

/// The small demo every test here writes.
const DEMO: [&str; 7] = [
    "demo",
    "--organisations",
    "3",
    "--members",
    "12",
    "--seed",
    "7",
];

/// The backend answers every read as sled does after the same random
/// batches: puts, deletes, a key written twice in one batch (the last
/// write wins), ranges longer than one page of the keyset scan, and the
/// last entry of a range.
#[test]
fn the_backend_answers_as_sled_does() {
    let Some(store) = TestStore::postgres("the_backend_answers_as_sled_does") else {
        return;
    };
    let postgres = &PostgresBackend::open(store.url()).expect("the backend opens");
    let sled = SledBackend::temporary().expect("sled");
    let mut rng = Lcg(0x15_2026);
    // Many keys in one range, so a scan needs several pages.
    let bulk: Vec<Write> = (0..700u32)
        .map(|i| {
            let mut key = vec![b'b'];
            key.extend_from_slice(&i.to_be_bytes());
            (key, Some(i.to_le_bytes().to_vec()))
        })
        .collect();
    for backend in [postgres as &dyn Backend, &sled] {
        backend.apply(bulk.clone()).expect("bulk");
    }
    for round in 0..60 {
        let writes: Vec<Write> = (0..1 + rng.below(12))
            .map(|_| {
                let value = (rng.below(3) > 0).then(|| key(&mut rng));
                (key(&mut rng), value)
            })
            .collect();
        postgres.apply(writes.clone()).expect("postgres apply");
        sled.apply(writes).expect("sled apply");
        let (start, end) = (key(&mut rng), key(&mut rng));
        let read = |b: &dyn Backend| {
            let range: Vec<_> = b.range(&start, &end).map(|e| e.expect("read")).collect();
            let last = b.last_in(&start, &end).expect("last");
            let got = b.get(&start).expect("get");
            (range, last, got)
        };
        assert_eq!(
            read(postgres),
            read(&sled),
            "round {round}: {start:?}..{end:?}"
        );
    }
    let everything = |b: &dyn Backend| b.range(&[], &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).count();
    assert_eq!(everything(postgres), everything(&sled));
    assert!(everything(postgres) > 700, "the scan crossed pages");
    assert_eq!(
        postgres.flush(),
        Ok(()),
        "flush is a no-op: commit is durable"
    );
}

/// The schema is versioned: a new database gets every migration, in
/// order, recorded in `strive_schema`; one migrated by a newer strive is
/// refused with what to do, rather than written.
#[test]
fn the_schema_is_versioned_and_a_newer_one_is_refused() {
    let Some(store) = TestStore::postgres("the_schema_is_versioned_and_a_newer_one_is_refused")
    else {
        return;
    };
    drop(store.open(Options::default()));
    let mut client = postgres::Client::connect(store.url(), postgres::NoTls).expect("connect");
    let versions: Vec<i32> = client
        .query("SELECT version FROM strive_schema ORDER BY version", &[])
        .expect("versions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<i32> = strive_store::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(versions, expected);
    // The view for operators counts the records by kind.
    let kinds: i64 = client
        .query_one("SELECT count(DISTINCT kind) FROM strive_records", &[])
        .expect("the view")
        .get(0);
    assert!(kinds >= 1, "the format record at least");
    client
        .execute(
            "INSERT INTO strive_schema (version, description) VALUES (999, 'from the future')",
            &[],
        )
        .expect("insert");
    let refused = Engine::open_url(store.url(), Options::default()).expect_err("refused");
    assert!(
        matches!(refused, OpenError::Schema { found: 999, .. }),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("use a strive release"),
        "{refused}"
    );
}

/// A URL that cannot be read and a server that does not answer each get
/// a message that says what to do; neither needs a server to check.
#[test]
fn bad_urls_and_unreachable_servers_say_what_to_do() {
    let cases = [
        (
            "postgres://127.0.0.1:notaport/x",
            "write it as postgres://USER@HOST:PORT/DATABASE",
        ),
        (
            "postgres://root@127.0.0.1:1/x",
            "pg_ctlcluster 15 main start",
        ),
        ("postgres://li:secret@127.0.0.1:1/x", "li:***@127.0.0.1:1"),
    ];
    for (url, expected) in cases {
        let output = strive(std::path::Path::new(url), &["list"]);
        let said = text(&output);
        assert!(!output.status.success(), "{url}: {said}");
        assert!(said.contains(expected), "{url}: {said}");
        assert!(
            !said.contains("secret"),
            "{url}: the password is shown: {said}"
        );
    }
}

/// The CLI on `--db postgres://…`: a store is created on first write,
/// survives the process, verifies and checkpoints; a database without a
/// store is refused by a reading command, not given one.
#[test]
fn the_cli_runs_on_a_database() {
    let Some(store) = TestStore::postgres("the_cli_runs_on_a_database") else {
        return;
    };
    let db = &store.location;
    let empty = strive(db, &["list"]);
    assert!(!empty.status.success(), "{}", text(&empty));
    assert!(
        text(&empty).contains("is not a strive store"),
        "{}",
        text(&empty)
    );
    let ok = |args: &[&str]| {
        let output = strive(db, args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        text(&output)
    };
    assert!(ok(&DEMO).contains("everything holds"));
    let listed = ok(&["list", "--format", "json"]);
    assert!(listed.contains("org-"), "{listed}");
    assert!(ok(&["verify"]).contains("everything holds"));
    assert!(ok(&["checkpoint"]).contains('\n'));
}

/// Moving between the backends (issue #15, item 5): a store exported
/// from sled and imported into PostgreSQL, exported again and imported
/// back into sled, has the same checkpoint root at every step.
#[test]
fn a_store_moves_from_sled_to_postgres_and_back_with_equal_roots() {
    let Some(database) = TestStore::postgres("a_store_moves_from_sled_to_postgres_and_back") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = dir.path().join("sled");
    let demo = strive(&sled, &DEMO);
    assert!(demo.status.success(), "{}", text(&demo));
    let bundle = |db: &std::path::Path, name: &str| {
        let out = dir.path().join(name);
        let output = strive(db, &["export", "--out", out.to_str().expect("utf-8")]);
        assert!(output.status.success(), "{}", text(&output));
        out
    };
    let import = |db: &std::path::Path, bundle: &std::path::Path| {
        let output = strive(db, &["import", bundle.to_str().expect("utf-8")]);
        assert!(output.status.success(), "{}", text(&output));
    };
    let root = |db: &std::path::Path| {
        let engine = Engine::open_existing_url(db.to_str().expect("utf-8"), Options::default())
            .expect("open");
        strive_core::combined_head(&engine.partition_heads().expect("heads")).expect("head")
    };
    let original = root(&sled);
    assert!(original.0 > 10, "the demo wrote events: {original:?}");
    let first = bundle(&sled, "from-sled.jsonl");
    import(&database.location, &first);
    assert_eq!(root(&database.location), original, "sled -> PostgreSQL");
    let verified = strive(&database.location, &["verify"]);
    assert!(
        text(&verified).contains("everything holds"),
        "{}",
        text(&verified)
    );
    let second = bundle(&database.location, "from-postgres.jsonl");
    let back = dir.path().join("back");
    import(&back, &second);
    assert_eq!(root(&back), original, "PostgreSQL -> sled");
}

/// Many processes over one database (issue #15, item 2), as far as this
/// backend goes: one process writes a store at a time. A second open is
/// refused while the first holds the owner lock; a process that lost the
/// lock (here its lock connection is ended, as a network partition or a
/// server restart would) and was taken over is fenced: its next write
/// fails and writes nothing, the new owner writes, and the log verifies
/// with no fork.
#[test]
fn a_second_process_is_refused_and_one_taken_over_is_fenced() {
    let Some(store) =
        TestStore::postgres("a_second_process_is_refused_and_one_taken_over_is_fenced")
    else {
        return;
    };
    let admin = strive_store::Actor::new("admin", &["admin"]);
    let clerk = strive_store::Actor::new("li", &["clerk"]);
    let first = store.open(Options::default());
    first.deploy(crate::storage::NOTES, &admin).expect("deploy");
    let start = |engine: &Engine, id: &str| {
        engine.start(
            "notes",
            id,
            &clerk,
            Default::default(),
            None,
            Default::default(),
        )
    };
    start(&first, "n-1").expect("the owner writes");
    let refused = Engine::open_url(store.url(), Options::default()).expect_err("locked");
    assert!(matches!(refused, OpenError::Locked { .. }), "{refused:?}");
    assert!(
        refused.to_string().contains("in use by another process"),
        "{refused}"
    );

    // The owner loses its lock: its lock connection is ended.
    let mut client = postgres::Client::connect(store.url(), postgres::NoTls).expect("connect");
    let ended = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .expect("terminate");
    assert_eq!(ended.len(), 1, "one process held the store");
    let second = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Engine::open_url(store.url(), Options::default()) {
                Ok(engine) => break engine,
                Err(OpenError::Locked { .. }) if std::time::Instant::now() < deadline => {}
                Err(error) => panic!("the second process opens: {error}"),
            }
        }
    };
    let fenced = start(&first, "n-2").expect_err("the old owner is fenced");
    assert!(
        fenced.to_string().contains("took over the store"),
        "{fenced}"
    );
    start(&second, "n-3").expect("the new owner writes");
    assert_eq!(
        second.instance("n-2").expect("read"),
        None,
        "the fenced write is not there"
    );
    drop((first, second));
    let verified = strive(&store.location, &["verify"]);
    assert!(
        text(&verified).contains("everything holds"),
        "{}",
        text(&verified)
    );
}

/// `apply` commits without waiting for the disk and `flush` waits: after
/// a flush the server's WAL is on disk at least up to where it stood when
/// the batch was applied (`pg_current_wal_flush_lsn`), which a flush that
/// wrote no WAL of its own would not have waited for.
#[test]
fn a_flush_waits_for_the_wal_of_what_was_applied() {
    let Some(store) = TestStore::postgres("a_flush_waits_for_the_wal_of_what_was_applied") else {
        return;
    };
    let backend = PostgresBackend::open(store.url()).expect("the backend opens");
    let mut client = postgres::Client::connect(store.url(), postgres::NoTls).expect("connect");
    let lsn_gap = |client: &mut postgres::Client, query: &str| -> i64 {
        let sql = format!("SELECT ({query})::BIGINT");
        client.query_one(sql.as_str(), &[]).expect("lsn").get(0)
    };
    for round in 0..5u8 {
        let writes: Vec<Write> = (0..200u32)
            .map(|i| (i.to_be_bytes().to_vec(), Some(vec![round; 512])))
            .collect();
        backend.apply(writes).expect("apply");
        // How far the WAL is written now, relative to a fixed origin.
        let applied = lsn_gap(&mut client, "pg_current_wal_insert_lsn() - '0/0'::pg_lsn");
        backend.flush().expect("flush");
        let flushed = lsn_gap(&mut client, "pg_current_wal_flush_lsn() - '0/0'::pg_lsn");
        assert!(
            flushed >= applied,
            "round {round}: flushed to {flushed}, applied up to {applied}"
        );
    }
}

/// Two processes race on the same instances of one database (issue #15's
/// race, at the scale a CLI process per command allows): each round, two
/// `strive fire … close` run at once on one instance, and exactly one
/// closes it (the other is refused, or finds the store held and says so);
/// then two `strive fire … note` with one command id run at once, and the
/// instance gets exactly one note. No chain forks, and `verify` holds.
#[test]
fn two_processes_racing_on_one_database_never_both_win() {
    let Some(store) = TestStore::postgres("two_processes_racing_on_one_database_never_both_win")
    else {
        return;
    };
    const ROUNDS: usize = 12;
    {
        let engine = store.open(Options::default());
        let admin = strive_store::Actor::new("admin", &["admin"]);
        let clerk = strive_store::Actor::new("li", &["clerk"]);
        engine
            .deploy(crate::storage::NOTES, &admin)
            .expect("deploy");
        for round in 0..ROUNDS {
            for id in [format!("a-{round}"), format!("b-{round}")] {
                engine
                    .start(
                        "notes",
                        &id,
                        &clerk,
                        Default::default(),
                        None,
                        Default::default(),
                    )
                    .expect("start");
            }
        }
    }
    let race = |args: &[String]| -> Vec<std::process::Output> {
        let spawn = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_strive"))
                .arg("--db")
                .arg(&store.location)
                .args(args)
                .args(["--actor", "li", "--role", "clerk"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("strive runs")
        };
        let (first, second) = (spawn(), spawn());
        [first, second]
            .into_iter()
            .map(|child| child.wait_with_output().expect("it ends"))
            .collect()
    };
    let lost = |output: &std::process::Output| {
        let said = text(output);
        assert!(
            said.contains("in use by another process") || said.contains("rejected"),
            "a loser says why: {said}"
        );
    };
    for round in 0..ROUNDS {
        let outputs = race(&["fire".into(), format!("a-{round}"), "close".into()]);
        let won: Vec<_> = outputs.iter().filter(|o| o.status.success()).collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one closes");
        outputs
            .iter()
            .filter(|o| !o.status.success())
            .for_each(lost);
        let args = [
            "fire".into(),
            format!("b-{round}"),
            "note".into(),
            "--command-id".into(),
            format!("note-{round}"),
        ];
        for output in race(&args).iter().filter(|o| !o.status.success()) {
            lost(output);
        }
    }
    let engine = Engine::open_existing_url(store.url(), Options::default()).expect("open");
    for round in 0..ROUNDS {
        let closes = engine.history(&format!("a-{round}")).expect("history");
        assert_eq!(closes.len(), 2, "round {round}: start and one close");
        let notes = engine.history(&format!("b-{round}")).expect("history");
        assert!(
            notes.len() <= 2,
            "round {round}: at most one note: {}",
            notes.len()
        );
    }
    drop(engine);
    let verified = strive(&store.location, &["verify"]);
    assert!(
        text(&verified).contains("everything holds"),
        "{}",
        text(&verified)
    );
}
