//! Witnesses (issue #14 item 2) through the binary: two witnesses, one
//! run alone (`strive witness serve`) and one beside a store (`strive
//! serve --witness-state`), cosign a store's growing checkpoints; a
//! restored older backup and a fork are refused by both without the
//! auditor keeping any file; `verify --policy` takes a checkpoint only with
//! its quorum of cosignatures and names a forged one; the offline
//! `witness add-checkpoint` refuses what the HTTP witness refuses.
//!
//! The stores have one partition: witnessing a partitioned store is not
//! supported yet, and `witness cosign` says so (the last test).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use strive_store::{Engine, Options};

use crate::cli::{deploy_and_start_o1, scenario};
use crate::util::{Serving, copy_dir, serving, strive, text};

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "{}", text(output));
    text(output)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

struct Setup {
    dir: tempfile::TempDir,
    db: PathBuf,
    log_key: PathBuf,
}

impl Setup {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `strive witness cosign` against `urls`, with extra arguments.
    fn cosign(&self, db: &Path, urls: &[&str], extra: &[&str]) -> Output {
        let key = path(&self.log_key);
        let mut args = vec!["witness", "cosign", "--key", key.as_str()];
        for url in urls {
            args.extend(["--witness", url]);
        }
        args.extend_from_slice(extra);
        strive(db, &args)
    }
}

/// A one-partition store holding the organisation scenario's first
/// `steps` steps, and a log key.
fn setup(steps: usize) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("store");
    {
        let engine = Engine::open(
            &db,
            Options {
                partitions: 1,
                ..Options::default()
            },
        )
        .expect("open");
        deploy_and_start_o1(&engine);
        for step in scenario().iter().take(steps) {
            step.fire(&engine).expect("fires");
        }
    }
    let log_key = dir.path().join("log.key");
    ok(&strive(
        &db,
        &[
            "keygen",
            "--out",
            &path(&log_key),
            "--name",
            "bureau.example/log",
        ],
    ));
    Setup { dir, db, log_key }
}

/// Fires the scenario's steps `from..to` on the closed store `db`.
fn fire(db: &Path, from: usize, to: usize) {
    let engine = Engine::open_existing(db, Options::default()).expect("open");
    for step in &scenario()[from..to] {
        step.fire(&engine).expect("fires");
    }
}

/// Creates a witness named `name` that witnesses the setup's log.
fn witness(setup: &Setup, name: &str) -> (PathBuf, PathBuf) {
    let state = setup.file(&format!("{name}.state"));
    let key = setup.file(&format!("{name}.key"));
    let nowhere = setup.file("no-store");
    ok(&strive(
        &nowhere,
        &[
            "witness",
            "init",
            "--state",
            &path(&state),
            "--key",
            &path(&key),
            "--name",
            name,
        ],
    ));
    ok(&strive(
        &nowhere,
        &[
            "witness",
            "add-log",
            "--state",
            &path(&state),
            "--origin",
            "strive",
            "--log-key",
            &format!("{}.pub", path(&setup.log_key)),
        ],
    ));
    (state, key)
}

/// `strive witness serve` for the witness with `state` and `key`.
fn serve_witness(setup: &Setup, state: &Path, key: &Path) -> Serving {
    serving(
        &setup.file("no-store"),
        &[
            "witness",
            "serve",
            "--state",
            &path(state),
            "--key",
            &path(key),
            "--listen",
            "127.0.0.1:0",
        ],
    )
}

/// A policy asking for `quorum` of the two witnesses.
fn policy(setup: &Setup, quorum: &str) -> PathBuf {
    let vkey = |name: &str| {
        std::fs::read_to_string(setup.file(&format!("{name}.key.pub")))
            .expect("vkey")
            .trim()
            .to_owned()
    };
    let log = std::fs::read_to_string(format!("{}.pub", path(&setup.log_key))).expect("log key");
    let file = setup.file(&format!("policy-{quorum}"));
    std::fs::write(
        &file,
        format!(
            "# the bureau's auditors\nlog {}\nwitness w1 {}\nwitness w2 {}\ngroup both all w1 \
             w2\ngroup either any w1 w2\nquorum {quorum}\n",
            log.trim(),
            vkey("w1.example"),
            vkey("w2.example"),
        ),
    )
    .expect("policy written");
    file
}

#[test]
fn witnesses_cosign_growth_and_refuse_a_restored_backup_or_a_fork() {
    let s = setup(3);
    let (state1, key1) = witness(&s, "w1.example");
    let (state2, key2) = witness(&s, "w2.example");
    let alone = serve_witness(&s, &state1, &key1);
    let beside = serving(
        &s.file("witness-host"),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--witness-state",
            &path(&state2),
            "--witness-key",
            &path(&key2),
        ],
    );
    let beside_url = format!("{}/witness", beside.url);
    let urls = [alone.url.as_str(), beside_url.as_str()];

    // First contact (both witnesses start at size 0), then growth: the
    // second cosign proves consistency from the size each witness holds.
    let monday = s.file("monday.cp");
    ok(&s.cosign(&s.db, &urls, &["--out", &path(&monday)]));
    let backup = s.file("backup");
    copy_dir(&s.db, &backup);
    fire(&s.db, 3, 8);
    let friday = s.file("friday.cp");
    let said = ok(&s.cosign(&s.db, &urls, &["--out", &path(&friday)]));
    assert_eq!(said.matches("cosigned").count(), 2, "{said}");
    let note = std::fs::read_to_string(&friday).expect("note");
    assert_eq!(
        note.matches('\u{2014}').count(),
        3,
        "log + 2 witnesses:\n{note}"
    );

    // The auditor: Friday's checkpoint satisfies "both"; the store extends it.
    let both = policy(&s, "both");
    let verified = ok(&strive(
        &s.db,
        &[
            "verify",
            "--since",
            &path(&friday),
            "--policy",
            &path(&both),
        ],
    ));
    assert!(
        verified.contains("cosigned by w1 at") && verified.contains("w2 at"),
        "{verified}"
    );

    // A member's receipt proven to Friday's cosigned checkpoint: the
    // cosignatures date it, and the policy checks them offline.
    let receipt = s.file("pledge.json");
    ok(&strive(
        &s.db,
        &[
            "receipt",
            "o1",
            "5",
            "--checkpoint",
            &path(&friday),
            "--out",
            &path(&receipt),
        ],
    ));
    let checked = ok(&strive(
        &s.db,
        &["verify-receipt", &path(&receipt), "--policy", &path(&both)],
    ));
    assert!(
        checked.contains("the event was recorded no later than each of those times")
            && checked.contains("cosigned by w1 at"),
        "{checked}"
    );
    // Monday's checkpoint is too old for an event written after it.
    let output = strive(
        &s.db,
        &["receipt", "o1", "6", "--checkpoint", &path(&monday)],
    );
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("after the checkpoint's"),
        "{}",
        text(&output)
    );
    // A receipt whose checkpoint lacks the cosignatures fails the policy.
    let plain = s.file("plain.json");
    ok(&strive(
        &s.db,
        &[
            "receipt",
            "o1",
            "5",
            "--key",
            &path(&s.log_key),
            "--out",
            &path(&plain),
        ],
    ));
    let output = strive(
        &s.db,
        &["verify-receipt", &path(&plain), "--policy", &path(&both)],
    );
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("not met"), "{}", text(&output));

    // The restored backup (Monday's store): both witnesses refuse it, and
    // say why, though nobody kept a file of Friday's checkpoint.
    let refused = s.cosign(&backup, &urls, &["--out", &path(&s.file("restored.cp"))]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert_eq!(
        text(&refused).matches("rolled back").count(),
        2,
        "{}",
        text(&refused)
    );
    // Its checkpoint then lacks the cosignatures the policy asks for.
    let restored = s.file("restored.cp");
    let output = strive(
        &backup,
        &[
            "verify",
            "--since",
            &path(&restored),
            "--policy",
            &path(&both),
        ],
    );
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("quorum \"both\" is not met (cosigned by: none)"),
        "{}",
        text(&output)
    );

    // A fork: the backup goes on with other commands to more events than
    // the witnesses saw. Its proof from their size cannot verify.
    fire(&backup, 3, 12);
    let forked = s.cosign(&backup, &urls, &[]);
    assert!(!forked.status.success(), "{}", text(&forked));
    assert_eq!(
        text(&forked).matches("HTTP 422").count(),
        2,
        "{}",
        text(&forked)
    );
    // The refusals left the witnesses where they were: the real store
    // still gets cosigned, from Friday's size on.
    fire(&s.db, 8, 10);
    ok(&s.cosign(&s.db, &urls, &[]));
}

#[test]
fn verify_takes_a_checkpoint_only_with_its_quorum_and_names_a_forged_cosignature() {
    let s = setup(4);
    let (state1, key1) = witness(&s, "w1.example");
    witness(&s, "w2.example");
    let alone = serve_witness(&s, &state1, &key1);
    let one = s.file("one.cp");
    ok(&s.cosign(&s.db, &[alone.url.as_str()], &["--out", &path(&one)]));
    // One cosignature: enough for "either", not for "both".
    let either = policy(&s, "either");
    ok(&strive(
        &s.db,
        &["verify", "--since", &path(&one), "--policy", &path(&either)],
    ));
    let both = policy(&s, "both");
    let output = strive(
        &s.db,
        &["verify", "--since", &path(&one), "--policy", &path(&both)],
    );
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("cosigned by: w1)"),
        "{}",
        text(&output)
    );
    // `witness cosign --policy` says the same at the log's side.
    let output = s.cosign(&s.db, &[alone.url.as_str()], &["--policy", &path(&both)]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("not met"), "{}", text(&output));

    // Forge w1's cosignature: flip one byte of its signature.
    let note = std::fs::read_to_string(&one).expect("note");
    let line = note
        .lines()
        .find(|l| l.starts_with("\u{2014} w1.example "))
        .expect("w1's line");
    let blob = line.rsplit(' ').next().expect("blob");
    // A character in the signature's last bytes, before the padding.
    let at = blob.len() - 6;
    let flipped = if &blob[at..=at] == "A" { "B" } else { "A" };
    let altered = format!("{}{flipped}{}", &blob[..at], &blob[at + 1..]);
    let forged = note.replace(blob, &altered);
    let forged_file = s.file("forged.cp");
    std::fs::write(&forged_file, forged).expect("written");
    let output = strive(
        &s.db,
        &[
            "verify",
            "--since",
            &path(&forged_file),
            "--policy",
            &path(&either),
        ],
    );
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("cosignatures that do not verify, from: w1"),
        "{}",
        text(&output)
    );
    // And verify-bundle reads policies too.
    let bundle = s.file("bundle.jsonl");
    ok(&strive(&s.db, &["export", "--out", &path(&bundle)]));
    let output = strive(
        &s.db,
        &[
            "verify-bundle",
            &path(&bundle),
            "--checkpoint",
            &path(&forged_file),
            "--policy",
            &path(&either),
        ],
    );
    assert!(!output.status.success(), "{}", text(&output));
    ok(&strive(
        &s.db,
        &[
            "verify-bundle",
            &path(&bundle),
            "--checkpoint",
            &path(&one),
            "--policy",
            &path(&either),
        ],
    ));
}

#[test]
fn the_offline_witness_keeps_its_state_and_refuses_as_the_http_one_does() {
    use strive_audit::{AddCheckpoint, Checkpoint, SigningKey};
    let s = setup(2);
    let (state, key) = witness(&s, "w1.example");
    let log_key =
        SigningKey::parse(&std::fs::read_to_string(&s.log_key).expect("key")).expect("a key");
    let engine = Engine::open_existing(&s.db, Options::default()).expect("open");
    let size = engine.last_gseq();
    let root = engine.tree_head().expect("head").root;
    drop(engine);
    let request = AddCheckpoint {
        old: 0,
        proof: Vec::new(),
        checkpoint: Checkpoint::new("strive", size, root).to_note(Some(&log_key)),
    };
    let add = |body: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strive"))
            .args([
                "witness",
                "add-checkpoint",
                "--state",
                &path(&state),
                "--key",
                &path(&key),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("written");
        child.wait_with_output().expect("waits")
    };
    let line = ok(&add(&request.encode()));
    assert!(line.starts_with("\u{2014} w1.example "), "{line}");
    // The same request again: the witness now holds `size`.
    let again = add(&request.encode());
    assert!(!again.status.success());
    assert!(
        text(&again).contains("HTTP 409")
            && text(&again).contains(&format!("last cosigned size {size}")),
        "{}",
        text(&again)
    );
    // Garbage is a 400, and leaves the state as it was.
    let before = std::fs::read_to_string(&state).expect("state");
    let bad = add("old 1\nnot base64\n\nstrive\n1\n");
    assert!(text(&bad).contains("HTTP 400"), "{}", text(&bad));
    assert_eq!(std::fs::read_to_string(&state).expect("state"), before);
    assert!(before.contains(&format!("\"size\": {size}")), "{before}");
    // `init` never overwrites a witness's memory.
    let output = strive(
        &s.file("no-store"),
        &[
            "witness",
            "init",
            "--state",
            &path(&state),
            "--key",
            &path(&s.file("k2")),
            "--name",
            "w9",
        ],
    );
    assert!(!output.status.success());
    assert!(
        text(&output).contains("never overwrites"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_partitioned_store_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("store");
    drop(
        Engine::open(
            &db,
            Options {
                partitions: 2,
                ..Options::default()
            },
        )
        .expect("open"),
    );
    let key = dir.path().join("log.key");
    ok(&strive(
        &db,
        &["keygen", "--out", &path(&key), "--name", "log"],
    ));
    let output = strive(
        &db,
        &[
            "witness",
            "cosign",
            "--key",
            &path(&key),
            "--witness",
            "http://127.0.0.1:9",
        ],
    );
    assert!(!output.status.success());
    assert!(
        text(&output).contains(
            "2 partitions; witnessing a store of several partitions is not supported yet"
        ),
        "{}",
        text(&output)
    );
}
