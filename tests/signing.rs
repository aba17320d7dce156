//! Actors' signed commands (issue #11, item 5): an actor holding a
//! registered Ed25519 key signs its start or fire, the writer checks the
//! signature before writing anything, the event keeps it, and `verify`
//! checks it against the key the access chain gave the actor. Through the
//! library, the CLI (`--sign-key`) and HTTP; with every refusal's stable
//! code, and a forger's rewritten log caught by verify.

use std::path::Path;

use serde_json::{Map, Value, json};
use strive_audit::SigningKey;
use strive_core::{Claim, CommandSignature, SignatureError, SignedKind};
use strive_store::{Actor, CommandError, CommandOptions, Engine, Options};

use crate::util::{root, strive, text};

const WORKFLOW: &str = "document-approval";

fn li() -> Actor {
    Actor::new("li", &["author"])
}

fn admin() -> Actor {
    Actor::new("root", &["admin"])
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed("li", [seed; 32]).expect("a key")
}

fn deploy(engine: &Engine) {
    let text = std::fs::read_to_string(root().join("workflows/document-approval.json"))
        .expect("the workflow");
    engine
        .deploy_all(&[(Some("document-approval.json"), text.as_str())], &admin())
        .expect("deploy");
}

/// A store at `db` with the document workflow deployed and li's key
/// (`key(1)`) registered.
fn store_with_key(db: &Path) -> (Engine, SigningKey) {
    let engine = Engine::open(db, Options::default()).expect("open");
    deploy(&engine);
    let li_key = key(1);
    engine
        .register_key("li", &li_key.verifier(), &admin())
        .expect("register");
    (engine, li_key)
}

/// A signed start of `instance` by `actor` with `key`, binding the version
/// the engine will start.
fn signed_start(
    engine: &Engine,
    key: &SigningKey,
    actor: &Actor,
    instance: &str,
) -> CommandOptions {
    let version = engine
        .versions(WORKFLOW)
        .expect("versions")
        .last()
        .expect("deployed")
        .version;
    let payload = strive_core::start_payload(&Map::new(), None);
    let claim = Claim {
        origin: None,
        kind: SignedKind::Start {
            workflow: WORKFLOW,
            version,
        },
        instance,
        event: "start",
        payload: &payload,
        expected_seq: None,
        command_id: None,
        actor,
        at: None,
    };
    CommandOptions {
        signature: Some(sign(key, &claim)),
        ..CommandOptions::default()
    }
}

fn sign(key: &SigningKey, claim: &Claim<'_>) -> CommandSignature {
    claim.sign(key.verifier().key_id(), |message| key.sign(message))
}

fn submit_payload() -> Value {
    json!({"title": "t", "body": "b"})
}

/// A signed `submit` of `instance` at sequence 1, signed now, without a
/// command id.
fn signed_submit(
    key: &SigningKey,
    actor: &Actor,
    instance: &str,
    payload: &Value,
) -> CommandOptions {
    let claim = Claim {
        origin: None,
        kind: SignedKind::Fire,
        instance,
        event: "submit",
        payload,
        expected_seq: Some(1),
        command_id: None,
        actor,
        at: Some(jiff::Timestamp::now()),
    };
    CommandOptions {
        expected_seq: Some(1),
        command_id: None,
        signature: Some(sign(key, &claim)),
    }
}

fn refusal(result: Result<strive_store::Outcome, CommandError>) -> SignatureError {
    match result {
        Err(CommandError::Signature { reason }) => reason,
        other => panic!("expected a signature refusal, got {other:?}"),
    }
}

fn verify(engine: &Engine, require: bool) -> strive_audit::Report {
    strive_audit::store::verify(
        engine,
        strive_audit::VerifyOptions {
            require_signatures: require,
            ..strive_audit::VerifyOptions::default()
        },
        |_| {},
    )
}

#[test]
fn signed_commands_are_checked_kept_and_verified_through_the_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("store");
    let (engine, li_key) = store_with_key(&db);

    // Signed start and fire are accepted, and the events keep the
    // signatures (with the expected sequence the fire bound).
    engine
        .start(
            WORKFLOW,
            "doc-1",
            &li(),
            Map::new(),
            None,
            signed_start(&engine, &li_key, &li(), "doc-1"),
        )
        .expect("a signed start");
    let payload = submit_payload();
    let submit = signed_submit(&li_key, &li(), "doc-1", &payload);
    engine
        .fire("doc-1", "submit", &li(), payload.clone(), submit.clone())
        .expect("a signed fire");
    let history = engine.history("doc-1").expect("history");
    let signature = history[1].event.signature.clone().expect("kept");
    assert_eq!(signature.expected_seq, Some(1));
    assert!(history[0].event.signature.is_some());
    let report = verify(&engine, true);
    assert!(report.ok(), "{:?}", report.problems);

    // Every refusal writes nothing.
    engine
        .start(
            WORKFLOW,
            "doc-2",
            &li(),
            Map::new(),
            None,
            CommandOptions::default(),
        )
        .expect("unsigned is fine while not required");
    let before = crate::util::sizes(&engine);
    // The same signature replayed on another instance does not verify.
    let error = refusal(engine.fire("doc-2", "submit", &li(), payload.clone(), submit.clone()));
    assert_eq!(error.code(), "bad_signature", "{error}");
    // The payload altered after signing does not verify.
    let altered = signed_submit(&li_key, &li(), "doc-2", &payload);
    let error = refusal(engine.fire(
        "doc-2",
        "submit",
        &li(),
        json!({"title": "T", "body": "b"}),
        altered,
    ));
    assert_eq!(error.code(), "bad_signature");
    // Other roles than the ones signed do not verify either.
    let chief = Actor::new("li", &["author", "director"]);
    let error = refusal(engine.fire(
        "doc-2",
        "submit",
        &chief,
        payload.clone(),
        signed_submit(&li_key, &li(), "doc-2", &payload),
    ));
    assert_eq!(error.code(), "bad_signature");
    // A key li does not hold.
    let error = refusal(engine.fire(
        "doc-2",
        "submit",
        &li(),
        payload.clone(),
        signed_submit(&key(2), &li(), "doc-2", &payload),
    ));
    assert_eq!(error.code(), "unknown_key", "{error}");
    assert_eq!(
        crate::util::sizes(&engine),
        before,
        "refusals write nothing"
    );

    // Retired: refused from then on, and never registered again.
    engine
        .retire_key("li", &li_key.verifier(), &admin())
        .expect("retire");
    let error = refusal(engine.fire(
        "doc-2",
        "submit",
        &li(),
        payload.clone(),
        signed_submit(&li_key, &li(), "doc-2", &payload),
    ));
    assert_eq!(error.code(), "retired_key", "{error}");
    assert!(matches!(
        engine.register_key("li", &li_key.verifier(), &admin()),
        Err(CommandError::Access {
            reason: strive_core::AccessError::KeyKnown { .. }
        })
    ));
    let keys = engine.keys(Some("li")).expect("keys");
    assert_eq!(keys.len(), 1);
    assert!(keys[0].retired.is_some());
    drop(engine);

    // Recovery decides the signed commands again, byte for byte.
    crate::util::keep_only_the_log(&db);
    let engine = Engine::open(&db, Options::default()).expect("reopen");
    assert_eq!(
        engine.history("doc-1").expect("history")[1].event.signature,
        Some(signature)
    );
    let report = verify(&engine, false);
    assert!(report.ok(), "{:?}", report.problems);
    // doc-2 was started unsigned while li held a key: an auditor who
    // requires signatures sees exactly that.
    let report = verify(&engine, true);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].code, strive_audit::ProblemCode::Unsigned);
    assert_eq!(report.problems[0].instance.as_deref(), Some("doc-2"));
}

#[test]
fn required_signatures_are_asked_of_key_holders_only() {
    let engine = Engine::temporary_with(Options {
        require_signatures: true,
        ..Options::default()
    })
    .expect("engine");
    deploy(&engine);
    // Nobody holds a key: nothing is asked.
    engine
        .start(
            WORKFLOW,
            "doc-1",
            &li(),
            Map::new(),
            None,
            CommandOptions::default(),
        )
        .expect("no key, no signature needed");
    let li_key = key(1);
    engine
        .register_key("li", &li_key.verifier(), &admin())
        .expect("register");
    let before = crate::util::sizes(&engine);
    let payload = submit_payload();
    let missing = CommandOptions {
        expected_seq: Some(1),
        ..CommandOptions::default()
    };
    let error = refusal(engine.fire("doc-1", "submit", &li(), payload.clone(), missing));
    assert_eq!(error.code(), "signature_required", "{error}");
    assert_eq!(crate::util::sizes(&engine), before);
    // Others still act unsigned; li signs.
    engine
        .start(
            WORKFLOW,
            "doc-9",
            &Actor::new("wang", &["author"]),
            Map::new(),
            None,
            CommandOptions::default(),
        )
        .expect("wang holds no key");
    engine
        .fire(
            "doc-1",
            "submit",
            &li(),
            payload.clone(),
            signed_submit(&li_key, &li(), "doc-1", &payload),
        )
        .expect("signed");
    // A signature stated too long ago is stale.
    let old = Claim {
        origin: None,
        kind: SignedKind::Fire,
        instance: "doc-9",
        event: "submit",
        payload: &payload,
        expected_seq: None,
        command_id: None,
        actor: &li(),
        at: Some(jiff::Timestamp::now() - jiff::SignedDuration::from_mins(30)),
    };
    let stale = CommandOptions {
        signature: Some(sign(&li_key, &old)),
        ..CommandOptions::default()
    };
    let error = refusal(engine.fire("doc-9", "submit", &li(), payload, stale));
    assert_eq!(error.code(), "stale_signature", "{error}");
}

/// One forgery of the tamper corpus: what the forger changes in the
/// event, and what verify (with `verify` flags) must report.
struct Tamper {
    name: &'static str,
    alter: Box<dyn FnOnce(&mut strive_core::Event)>,
    verify: &'static [&'static str],
    code: &'static str,
    rule: &'static str,
}

#[test]
fn verify_catches_forged_transplanted_and_stripped_signatures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("base");
    let (engine, li_key) = store_with_key(&base);
    let payload = submit_payload();
    for id in ["doc-1", "doc-2"] {
        engine
            .start(
                WORKFLOW,
                id,
                &li(),
                Map::new(),
                None,
                signed_start(&engine, &li_key, &li(), id),
            )
            .expect("start");
        engine
            .fire(
                id,
                "submit",
                &li(),
                payload.clone(),
                signed_submit(&li_key, &li(), id, &payload),
            )
            .expect("fire");
    }
    let gseq = |id: &str| engine.history(id).expect("history")[1].event.gseq;
    let (one, two) = (gseq("doc-1"), gseq("doc-2"));
    let donor = engine.history("doc-2").expect("history")[1]
        .event
        .signature
        .clone();
    drop(engine);
    let (code, report) = crate::util::verify_report(&base, &["--require-signatures"]);
    assert_eq!(code, Some(0), "{report:#}");

    let cases = [
        // What the actor asked changed (the command id, which replay does
        // not check), the signature kept: it no longer verifies.
        Tamper {
            name: "altered",
            alter: Box::new(|e| e.command_id = Some("c-forged".into())),
            verify: &[],
            code: "bad_signature",
            rule: "bad_signature",
        },
        // Another event's signature put on this one.
        Tamper {
            name: "transplanted",
            alter: Box::new(move |e| e.signature = donor),
            verify: &[],
            code: "bad_signature",
            rule: "bad_signature",
        },
        // A signature naming a key nobody registered.
        Tamper {
            name: "forged",
            alter: Box::new(|e| {
                let kept = e.signature.clone().expect("signed");
                e.signature = Some(CommandSignature {
                    key: "00000000".into(),
                    ..kept
                });
            }),
            verify: &[],
            code: "bad_signature",
            rule: "unknown_key",
        },
        // Stripped: caught when the auditor requires signatures.
        Tamper {
            name: "stripped",
            alter: Box::new(|e| e.signature = None),
            verify: &["--require-signatures"],
            code: "unsigned",
            rule: "signature_required",
        },
    ];
    for Tamper {
        name,
        alter,
        verify,
        code,
        rule,
    } in cases
    {
        let copy = dir.path().join(name);
        crate::util::copy_dir(&base, &copy);
        crate::util::forge_event(&copy, "doc-1", one, alter);
        let (status, report) = crate::util::verify_report(&copy, verify);
        assert_eq!(status, Some(1), "{name}: {report:#}");
        let problems = report["problems"].as_array().expect("problems");
        assert_eq!(problems.len(), 1, "{name}: {report:#}");
        assert_eq!(problems[0]["code"], code, "{name}");
        assert_eq!(problems[0]["rule"], rule, "{name}");
        assert_eq!(problems[0]["gseq"], one, "{name}");
        // The sequential verifier says the same.
        let mut sequential = verify.to_vec();
        sequential.extend_from_slice(&["--jobs", "1"]);
        let (_, again) = crate::util::verify_report(&copy, &sequential);
        assert_eq!(again["problems"], report["problems"], "{name}");
    }
    // Stripping is not a problem for an auditor who does not require
    // signatures (the store may not have).
    let copy = dir.path().join("stripped-lenient");
    crate::util::copy_dir(&base, &copy);
    crate::util::forge_event(&copy, "doc-2", two, |e| e.signature = None);
    let (status, report) = crate::util::verify_report(&copy, &[]);
    assert_eq!(status, Some(0), "{report:#}");
}

/// `strive start` and `strive fire doc-1 submit` as li, signed with the
/// private key file `key`.
fn signed_cli(key: &str) -> [Vec<&str>; 2] {
    let sign = ["--actor", "li", "--role", "author", "--sign-key", key];
    let mut start = vec!["start", WORKFLOW, "doc-1"];
    start.extend_from_slice(&sign);
    let submit = r#"{"title":"t","body":"b"}"#;
    let mut fire = vec![
        "fire",
        "doc-1",
        "submit",
        "--payload",
        submit,
        "--expect-seq",
        "1",
    ];
    fire.extend_from_slice(&sign);
    [start, fire]
}

/// The CLI: `key generate` writes a 0600 private key and prints the vkey,
/// `key register` records it, `fire --sign-key` signs locally, `verify`
/// checks, and a key file of another actor's key is refused.
#[test]
fn the_cli_generates_registers_and_signs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("store");
    let key_file = dir.path().join("li.key");
    let key_text = key_file.display().to_string();
    let file = root().join("workflows/document-approval.json");
    let run = |args: &[&str]| {
        let output = strive(&db, args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    run(&["deploy", &file.display().to_string()]);
    let vkey = run(&["key", "generate", "--actor", "li", "--out", &key_text]);
    assert!(vkey.starts_with("li+"), "{vkey}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("the key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let registered = run(&["key", "register", "--actor", "li", "--vkey", &vkey]);
    assert!(registered.starts_with("registered: key "), "{registered}");
    let [start, fire] = signed_cli(&key_text);
    run(&start);
    run(&fire);
    let history = run(&["history", "doc-1", "--format", "json"]);
    assert!(history.contains("\"sig\""), "{history}");
    let (code, report) = crate::util::verify_report(&db, &["--require-signatures"]);
    assert_eq!(code, Some(0), "{report:#}");

    // Another actor's key file signs as li: unknown_key, exit 1.
    let other = dir.path().join("wang.key");
    run(&[
        "key",
        "generate",
        "--actor",
        "wang",
        "--out",
        &other.display().to_string(),
    ]);
    let output = strive(
        &db,
        &[
            "fire",
            "doc-1",
            "withdraw",
            "--actor",
            "li",
            "--role",
            "author",
            "--sign-key",
            &other.display().to_string(),
            "--format",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("unknown_key"), "{}", text(&output));
    let listed = run(&["key", "list"]);
    assert!(listed.contains("held"), "{listed}");
    let retired = run(&["key", "retire", "--actor", "li", "--vkey", &vkey]);
    assert!(retired.starts_with("retired: key "), "{retired}");
}

/// Over HTTP: keys registered through `/v1/keys` by an admin token, the
/// signature made by the CLI (the key never leaves it) and carried in the
/// body; a bad one is a 403 with the stable code.
#[test]
fn signatures_travel_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("store");
    let db_text = db.display().to_string();
    let local = |args: &[&str]| {
        let output = strive(&db, args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    local(&[
        "deploy",
        &root()
            .join("workflows/document-approval.json")
            .display()
            .to_string(),
    ]);
    local(&["grant", "li", "author"]);
    local(&["grant", "root", "admin"]);
    let issue = |actor: &str, roles: &str| {
        let issued = local(&["token", "issue", "--actor", actor, "--roles", roles]);
        issued.lines().last().unwrap_or_default().to_owned()
    };
    let (admin_token, li_token) = (issue("root", "admin"), issue("li", "author"));
    let key_file = dir.path().join("li.key");
    let key_text = key_file.display().to_string();
    let vkey = local(&["key", "generate", "--actor", "li", "--out", &key_text]);

    let server = crate::util::serving(&db, &["serve", "--listen", "127.0.0.1:0"]);
    let url = server.url.clone();
    let remote = |token: &str, args: &[&str]| {
        let mut all = vec![
            "--db",
            db_text.as_str(),
            "--server",
            url.as_str(),
            "--token",
            token,
        ];
        all.extend_from_slice(args);
        std::process::Command::new(env!("CARGO_BIN_EXE_strive"))
            .args(&all)
            .env_remove("STRIVE_DB")
            .output()
            .expect("the strive binary runs")
    };
    let registered = remote(
        &admin_token,
        &["key", "register", "--actor", "li", "--vkey", &vkey],
    );
    assert!(registered.status.success(), "{}", text(&registered));
    let not_admin = remote(
        &li_token,
        &["key", "register", "--actor", "li", "--vkey", &vkey],
    );
    assert!(!not_admin.status.success(), "{}", text(&not_admin));

    let [start, fire] = signed_cli(&key_text);
    let started = remote(&li_token, &start);
    assert!(started.status.success(), "{}", text(&started));
    // Signed for the author role while the token acts as author: fine; a
    // signature for other roles than the token's does not verify.
    let mut wrong_roles: Vec<&str> = fire
        .iter()
        .map(|arg| if *arg == "author" { "director" } else { arg })
        .collect();
    wrong_roles.extend_from_slice(&["--format", "json"]);
    let refused = remote(&li_token, &wrong_roles);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("\"bad_signature\""),
        "{}",
        text(&refused)
    );
    let fired = remote(&li_token, &fire);
    assert!(fired.status.success(), "{}", text(&fired));

    // What curl sends: `strive key sign` prints the body's `signature`
    // field for a command; the client sends the command itself.
    let field = local(&[
        "key",
        "sign",
        "--key",
        &key_text,
        "--actor",
        "li",
        "--role",
        "author",
        "doc-1",
        "withdraw",
        "--expect-seq",
        "2",
    ]);
    let field: Value = serde_json::from_str(&field).expect("the signature field");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let answer = agent
        .post(&format!("{url}/v1/instances/doc-1/events"))
        .header("Authorization", &format!("Bearer {li_token}"))
        .header("If-Match", "\"2\"")
        .send_json(json!({"event": "withdraw", "payload": null, "signature": field}))
        .expect("an answer");
    assert_eq!(answer.status().as_u16(), 200, "{field:#}");

    // The raw API: a signature by a key li does not hold is a 403
    // problem with the stable code. (Unsigned is fine: this server does
    // not require signatures.)
    let unsigned = remote(&li_token, &["start", WORKFLOW, "doc-2"]);
    assert!(unsigned.status.success(), "{}", text(&unsigned));
    let mut answer = agent
        .post(&format!("{url}/v1/instances/doc-2/events"))
        .header("Authorization", &format!("Bearer {li_token}"))
        .send_json(json!({"event": "withdraw", "payload": {},
            "signature": {"key": "00000000", "sig": "AAAA"}}))
        .expect("an answer");
    assert_eq!(answer.status().as_u16(), 403);
    let problem: Value = answer.body_mut().read_json().expect("a problem");
    assert_eq!(problem["code"], "unknown_key", "{problem:#}");
    let listed = remote(&admin_token, &["key", "list", "--format", "json"]);
    assert!(text(&listed).contains(&vkey), "{}", text(&listed));
    drop(server);
    let (code, report) = crate::util::verify_report(&db, &[]);
    assert_eq!(code, Some(0), "{report:#}");
}
