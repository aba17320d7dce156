//! Receipts (issue #14 item 4) through the binary, on copies of a seeded
//! campaign's store: a receipt proves its event offline, signed or not;
//! every alteration of the event, its place, the proof or the checkpoint,
//! and a checkpoint signed by another key, is refused with the reason; and
//! with `--check-store` a store rolled back to a backup from before the
//! event is caught although the receipt itself still holds.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::ocel::campaign_store;
use crate::util::{copy_dir, strive, text};

fn run(db: &Path, args: &[&str]) -> Output {
    strive(db, args)
}

fn ok(output: &Output) {
    assert!(output.status.success(), "{}", text(output));
}

/// Writes a receipt for `instance#seq` of `db`, signed by `key`, to `out`.
fn receipt(db: &Path, instance: &str, seq: u64, key: &Path, out: &Path) -> Value {
    ok(&run(
        db,
        &[
            "receipt",
            instance,
            &seq.to_string(),
            "--key",
            &key.display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
    ));
    serde_json::from_slice(&std::fs::read(out).expect("read")).expect("a receipt is JSON")
}

fn keygen(dir: &Path, name: &str) -> std::path::PathBuf {
    let key = dir.join(name);
    ok(&run(
        &dir.join("no-store"),
        &[
            "keygen",
            "--out",
            &key.display().to_string(),
            "--name",
            name,
        ],
    ));
    key
}

fn verify(db: &Path, file: &Path, public: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify-receipt",
        file.to_str().expect("utf-8 path"),
        "--public-key",
        public.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    run(db, &args)
}

#[test]
fn a_receipt_proves_its_event_offline_and_every_alteration_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    copy_dir(campaign_store(), &db);
    let key = keygen(dir.path(), "bureau-audit");
    let public = dir.path().join("bureau-audit.pub");
    let other = keygen(dir.path(), "someone-else");
    let file = dir.path().join("receipt.json");
    // A comment on an organisation, and a member's pledge.
    for (instance, seq, event) in [
        ("org-01", 5, "add_comment"),
        ("org-01-m01", 2, "submit_pledge"),
    ] {
        let value = receipt(&db, instance, seq, &key, &file);
        assert_eq!(value["format"], "strive-receipt/v1");
        let output = verify(&db, &file, &public, &["--format", "json"]);
        ok(&output);
        let report: Value = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["event"], event, "{report}");
        assert_eq!(report["signed"], true);
    }
    let good: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    let write = |value: &Value| {
        let path = dir.path().join("altered.json");
        std::fs::write(&path, value.to_string()).expect("write");
        path
    };
    let event = good["event"]
        .as_str()
        .expect("the event's bytes")
        .to_owned();
    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    let mut altered = good.clone();
    altered["event"] = Value::from(event.replacen("\"seq\":2", "\"seq\":3", 1));
    cases.push(("altered event", altered, "the event in it was altered"));
    let mut moved = good.clone();
    moved["gseq"] = Value::from(moved["gseq"].as_u64().expect("gseq") + 1);
    cases.push(("another place", moved, "but the receipt says"));
    let mut short = good.clone();
    short["proof"].as_array_mut().expect("proof").pop();
    cases.push(("a shortened proof", short, "does not lead from the event"));
    let mut forged = good.clone();
    forged["checkpoint"] = Value::from(
        good["checkpoint"]
            .as_str()
            .expect("checkpoint")
            .replacen('\n', "\nX", 1),
    );
    cases.push(("a forged checkpoint", forged, "checkpoint"));
    let mut unknown = good.clone();
    unknown["extra"] = Value::from(1);
    cases.push(("an unknown field", unknown, "not a receipt"));
    for (what, value, says) in cases {
        let output = verify(&db, &write(&value), &public, &[]);
        assert!(!output.status.success(), "{what}: {}", text(&output));
        assert!(text(&output).contains(says), "{what}: {}", text(&output));
    }
    // A checkpoint signed by another key than the one the member trusts.
    let signed_by_other = dir.path().join("other.json");
    receipt(&db, "org-01", 5, &other, &signed_by_other);
    let output = verify(&db, &signed_by_other, &public, &[]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("bureau-audit"), "{}", text(&output));
    // No such event.
    let missing = run(&db, &["receipt", "org-01", "999"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("has no event 999"),
        "{}",
        text(&missing)
    );
}

#[test]
fn a_receipt_checked_against_a_rolled_back_store_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    copy_dir(campaign_store(), &db);
    // The backup the store is later restored from, taken before the event.
    let backup = dir.path().join("backup");
    copy_dir(&db, &backup);
    let key = keygen(dir.path(), "bureau-audit");
    let public = dir.path().join("bureau-audit.pub");
    let fired = run(
        &db,
        &[
            "fire",
            "org-01",
            "correct_name",
            "--actor",
            "director-wang",
            "--role",
            "leading_group",
            "--payload",
            r#"{"name": {"zh": "局办公室第一党支部"}}"#,
            "--format",
            "json",
        ],
    );
    ok(&fired);
    let seq = serde_json::from_slice::<Value>(&fired.stdout).expect("json")["seq"]
        .as_u64()
        .expect("the new event's seq");
    let file = dir.path().join("receipt.json");
    receipt(&db, "org-01", seq, &key, &file);
    ok(&verify(&db, &file, &public, &["--check-store"]));
    // The receipt alone still holds against the restored backup...
    ok(&verify(&backup, &file, &public, &[]));
    // ...but the backup's log does not extend the receipt's checkpoint.
    let output = verify(&backup, &file, &public, &["--check-store"]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("rolled back"), "{}", text(&output));
}
