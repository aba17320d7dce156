//! Static publication (issue #14 item 3) through the binary, on a copy of
//! the seeded campaign's store: `strive publish` writes the C2SP tiles,
//! entry bundles and checkpoint; the Python verifier printed in
//! docs/audit.md checks them from the directory and over HTTP (a plain
//! static server) against a checkpoint kept earlier; a tile or an event
//! altered in the published files is refused; publishing again after the
//! log grew keeps the full files and still extends the kept checkpoint.
//! Runs on every partition count (the matrix's four publish under
//! `partition/<p>/`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use strive_store::{Engine, Options};

use crate::audit::python_verifier;
use crate::ocel::campaign_store;
use crate::util::{copy_dir, strive, text};

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "{}", text(output));
    text(output)
}

fn verify(script: &Path, source: &str, kept: &Path) -> Output {
    Command::new("python3")
        .arg(script)
        .arg("--published")
        .arg(source)
        .arg(kept)
        .output()
        .expect("python3 runs")
}

/// The published files of level-0 tiles, whichever partition they are in.
fn first_full_tile(dir: &Path) -> PathBuf {
    let single = dir.join("tile/0/000");
    if single.exists() {
        return single;
    }
    (0..16)
        .map(|p| dir.join(format!("partition/{p}/tile/0/000")))
        .find(|p| p.exists())
        .expect("a full level-0 tile: the campaign has more than 256 events in a partition")
}

/// A static HTTP server on `dir` (Python's), killed on drop.
struct Static(std::process::Child, String);

impl Drop for Static {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_statically(dir: &Path) -> Static {
    let mut child = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 serves");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its banner");
    // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
    let port = line
        .split(" port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
        .to_owned();
    Static(child, format!("http://127.0.0.1:{port}"))
}

#[test]
fn a_published_log_verifies_from_files_and_over_http_and_tampering_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("store");
    copy_dir(campaign_store(), &db);
    let script = dir.path().join("strive-verify.py");
    std::fs::write(&script, python_verifier()).expect("script");
    let published = dir.path().join("pub");
    let said = ok(&strive(
        &db,
        &["publish", published.to_str().expect("utf-8")],
    ));
    assert!(said.contains("0 full ones unchanged"), "{said}");
    // The published checkpoint is the store's own.
    let checkpoint = ok(&strive(&db, &["checkpoint"]));
    let kept = dir.path().join("kept.cp");
    std::fs::copy(published.join("checkpoint"), &kept).expect("kept");
    assert_eq!(
        std::fs::read_to_string(&kept).expect("read").trim_end(),
        checkpoint.trim_end(),
        "publish writes the checkpoint `strive checkpoint` prints"
    );

    let holds = ok(&verify(&script, published.to_str().expect("utf-8"), &kept));
    assert!(holds.contains("everything holds"), "{holds}");
    {
        let server = serve_statically(&published);
        let over_http = ok(&verify(&script, &server.1, &kept));
        assert_eq!(over_http, holds, "the same answer from a web server");
    }

    // Alter one hash of a full tile: the tile no longer holds the tree.
    let altered = dir.path().join("altered");
    copy_dir(&published, &altered);
    let tile = first_full_tile(&altered);
    let mut bytes = std::fs::read(&tile).expect("tile");
    bytes[40] ^= 1;
    std::fs::write(&tile, bytes).expect("written");
    let refused = verify(&script, altered.to_str().expect("utf-8"), &kept);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("tile/0/000 does not hold the tree's hashes"),
        "{}",
        text(&refused)
    );

    // Alter one event's bytes (same length) in an entry bundle: its hash,
    // its tile and the root all disagree.
    let altered = dir.path().join("altered-entry");
    copy_dir(&published, &altered);
    let bundle = first_full_tile(&altered)
        .to_str()
        .expect("utf-8")
        .replace("tile/0/000", "tile/entries/000");
    let mut bytes = std::fs::read(&bundle).expect("bundle");
    // The first letter of the first actor's id: `"actor":{"id":"`.
    let at = bytes
        .windows(15)
        .position(|w| w == b"\"actor\":{\"id\":\"")
        .expect("an actor")
        + 15;
    bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
    std::fs::write(&bundle, bytes).expect("written");
    let refused = verify(&script, altered.to_str().expect("utf-8"), &kept);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("does not hold the tree's hashes")
            && text(&refused).contains("the log's own checkpoint is not the root"),
        "{}",
        text(&refused)
    );

    // The log grows; publishing again keeps every full file and the new
    // log still extends the checkpoint kept before.
    {
        let engine = Engine::open_existing(&db, Options::default()).expect("open");
        engine
            .deploy(
                &std::fs::read_to_string(
                    crate::util::root().join("workflows/document-approval.json"),
                )
                .expect("workflow"),
                &strive_store::Actor::new("admin", &["admin"]),
            )
            .ok();
        for n in 0..3 {
            engine
                .start(
                    "document-approval",
                    &format!("published-doc-{n}"),
                    &strive_store::Actor::new("li", &["author"]),
                    serde_json::Map::new(),
                    None,
                    strive_store::CommandOptions::default(),
                )
                .expect("started");
        }
    }
    let again = ok(&strive(
        &db,
        &["publish", published.to_str().expect("utf-8")],
    ));
    assert!(!again.contains(" 0 full ones unchanged"), "{again}");
    let grown = ok(&verify(&script, published.to_str().expect("utf-8"), &kept));
    assert!(grown.contains("everything holds"), "{grown}");
    assert_ne!(grown, holds, "the log grew");
}
