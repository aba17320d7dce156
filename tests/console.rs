//! The console (issue #12): its pages' HTML over HTTP (statuses, content,
//! refusals without a session, CSRF refusals, firing through a form,
//! verification from the audit page), and the browser test: playwright-core
//! driving chromium against `strive demo --serve` (tests/console/e2e.mjs).
//!
//! The HTML tests run a small demo campaign in-process and serve it with
//! `strive_server::Background`; a tiny cookie-keeping client stands in for
//! the browser.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strive_campaign::DemoOptions;
use strive_server::{Background, Config, TokenFile};
use strive_store::Engine;

use crate::util::{demo_store, issue_token, root};

// ---------------------------------------------------------------------------
// A client that keeps cookies and does not follow redirects

struct Page {
    status: u16,
    location: Option<String>,
    policy: Option<String>,
    body: String,
}

struct Client {
    base: String,
    agent: ureq::Agent,
    cookies: HashMap<String, String>,
}

impl Client {
    fn new(server: &Background) -> Client {
        Client::at(format!("http://{}", server.addr()))
    }

    fn at(base: String) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Client {
            base,
            agent,
            cookies: HashMap::new(),
        }
    }

    fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let body = form
            .map(|fields| {
                fields
                    .iter()
                    .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default();
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Cookie", cookie.join("; "))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .expect("a request");
        let mut response = self.agent.run(request).expect("the server answers");
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let policy = response
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Page {
            status: response.status().as_u16(),
            location,
            policy,
            body: response.body_mut().read_to_string().expect("a body"),
        }
    }

    fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, None)
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send("POST", path, Some(form))
    }

    fn sign_in(&mut self, token: &str) {
        let form = self.get("/signin");
        assert_eq!(form.status, 200);
        // The sign-in form's own token: a signed-in page's sign-out form
        // carries the session's before it.
        let start = form
            .body
            .find(r#"action="/signin""#)
            .expect("the sign-in form");
        let csrf = hidden(&form.body[start..], "csrf");
        let answer = self.post("/signin", &[("token", token), ("csrf", &csrf)]);
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location.as_deref(), Some("/"));
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the first hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).expect("the hidden field") + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The form that fires `event` in an instance page.
fn action_form<'a>(html: &'a str, event: &str) -> &'a str {
    let start = html
        .find(&format!(r#"data-event="{event}""#))
        .expect("the event's form");
    let end = html[start..]
        .find("</form>")
        .map_or(html.len(), |e| start + e);
    &html[start..end]
}

// ---------------------------------------------------------------------------
// A served demo

struct Demo {
    server: Background,
    engine: Engine,
    admin: String,
    director: String,
    tokens: TokenFile,
    _dir: tempfile::TempDir,
}

fn demo() -> Demo {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("campaign.db");
    let engine = demo_store(&db, &DemoOptions::new(2, 6).with_seed(7));
    let tokens = TokenFile::beside(&db);
    let admin = issue_token(&tokens, "admin", &["admin", "leading_group"]);
    let director = issue_token(&tokens, "director-wang", &["leading_group"]);
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        fire_deadlines: false,
        ..Config::default()
    };
    let server =
        Background::start(engine.clone(), TokenFile::beside(&db), config).expect("it serves");
    Demo {
        server,
        engine,
        admin,
        director,
        tokens,
        _dir: dir,
    }
}

/// The pages that need a sign-in.
const PRIVATE: &[&str] = &[
    "/",
    "/instances",
    "/instances?workflow=org-campaign",
    "/instances/org-01",
    "/instances/org-01/at?seq=2",
    "/audit",
    "/audit/download/csv",
    "/definitions",
    "/definitions/org-campaign",
    "/access",
];

#[test]
fn without_a_session_every_page_but_the_pledges_is_refused() {
    let demo = demo();
    let mut client = Client::new(&demo.server);
    for path in PRIVATE {
        let page = client.get(path);
        assert_eq!(page.status, 401, "{path}");
        assert!(page.body.contains("需要登录"), "{path}: {}", page.body);
        assert!(page.body.contains(r#"href="/signin""#), "{path}");
    }
    let pledges = client.get("/pledges");
    assert_eq!(pledges.status, 200);
    assert!(pledges.body.contains("公开承诺") && pledges.body.contains("<table"));
    // A bearer token is not a session: the pages want a sign-in.
    let request = ureq::http::Request::builder()
        .uri(format!("http://{}/", demo.server.addr()))
        .header("Authorization", format!("Bearer {}", demo.admin))
        .body(())
        .expect("a request");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let answer = agent.run(request).expect("an answer");
    assert_eq!(answer.status().as_u16(), 401);
}

/// Each signed-in page: its path, its status and what it must say.
const SIGNED_IN: &[(&str, u16, &[&str])] = &[
    (
        "/",
        200,
        &[
            "各阶段数量",
            "评议进度",
            "逾期单位",
            "评选表彰名单",
            "未完成的整改事项",
            r#"data-workflow="org-campaign""#,
        ],
    ),
    (
        "/instances?workflow=org-campaign",
        200,
        &["org-01", "org-02"],
    ),
    (
        "/instances?workflow=org-campaign&q=no-such-text",
        200,
        &["没有符合条件的实例"],
    ),
    ("/instances?parent=org-01", 200, &["org-01-m01"]),
    (
        "/instances/org-01",
        200,
        &[
            "<svg",
            "data-current=\"true\"",
            "ol class=\"timeline\"",
            "时间回溯",
            r#"data-event="publish_plan" data-allowed="false""#,
        ],
    ),
    (
        "/instances/org-01?seq=1",
        200,
        &[
            r#"data-testid="travel-seq">1<"#,
            r#"data-stage="mobilisation""#,
        ],
    ),
    (
        "/instances/org-01/at?seq=1",
        200,
        &[r#"class="travel-state" data-stage="mobilisation""#],
    ),
    ("/instances/no-such", 404, &["no instance"]),
    (
        "/audit",
        200,
        &["最新检查点", "/audit/download/xes", "/audit/download/jsonl"],
    ),
    ("/audit/download/nope", 404, &["jsonl, csv, xes"]),
    ("/definitions", 200, &["org-campaign", "member-pledge"]),
    (
        "/definitions/org-campaign",
        200,
        &["<svg", "&quot;id&quot;: &quot;org-campaign&quot;"],
    ),
    (
        "/definitions/org-campaign?version=9",
        404,
        &["no such version"],
    ),
    ("/access", 403, &["admin"]),
    ("/pledges", 200, &["公开承诺"]),
];

#[test]
fn signed_in_pages_show_the_campaign() {
    let demo = demo();
    let mut client = Client::new(&demo.server);
    client.sign_in(&demo.director);
    for (path, status, needles) in SIGNED_IN {
        let page = client.get(path);
        assert_eq!(page.status, *status, "{path}: {}", page.body);
        // Everything a page loads is served by this server (issue #12: no
        // network to run it).
        for outside in [r#"src="http"#, r#"href="http"#, r#"src="//"#, r#"href="//"#] {
            assert!(!page.body.contains(outside), "{path} loads from outside");
        }
        let policy = page.policy.unwrap_or_default();
        assert!(
            policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        for needle in *needles {
            assert!(page.body.contains(needle), "{path} lacks {needle:?}");
        }
    }
    // English on request, Chinese by default.
    let switch = client.get("/lang/en?back=/instances");
    assert_eq!(switch.status, 303);
    assert_eq!(switch.location.as_deref(), Some("/instances"));
    let english = client.get("/");
    assert!(english.body.contains(r#"<html lang="en">"#) && english.body.contains("Stage counts"));
    // The switch returns only to a path on this site.
    let away = client.get("/lang/zh?back=//evil.example/");
    assert_eq!(away.location.as_deref(), Some("/"));
    // An admin sees the access page.
    let mut admin = Client::new(&demo.server);
    admin.sign_in(&demo.admin);
    let access = admin.get("/access");
    assert_eq!(access.status, 200);
    assert!(access.body.contains("director-wang"));
}

#[test]
fn definitions_show_versions_and_their_difference() {
    let demo = demo();
    let text =
        std::fs::read_to_string(root().join("workflows/member-pledge.json")).expect("the workflow");
    let changed = text.replacen("党员个人承诺", "党员个人承诺（第二版）", 1);
    assert_ne!(changed, text, "the title is there to change");
    let admin = strive_store::Actor::new("admin", &["admin"]);
    let info = demo
        .engine
        .deploy(&changed, &admin)
        .expect("version 2 deploys");
    assert_eq!(info.version, 2);
    let mut client = Client::new(&demo.server);
    client.sign_in(&demo.director);
    let page = client.get("/definitions/member-pledge?version=2&against=1");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("v1 → v2"), "the diff's heading");
    assert!(page.body.contains(r#"<span class="add">"#) && page.body.contains("第二版"));
    assert!(page.body.contains(r#"<span class="del">"#));
    let same = client.get("/definitions/member-pledge?version=1&against=1");
    assert!(same.body.contains("两个版本相同"));
}

#[test]
fn the_dashboard_counts_are_the_reports() {
    let demo = demo();
    let mut client = Client::new(&demo.server);
    client.sign_in(&demo.director);
    let page = client.get("/");
    let report = strive_campaign::Report::build(&demo.engine, &Default::default())
        .expect("the report builds");
    for workflow in &report.workflows {
        let start = page
            .body
            .find(&format!(r#"data-workflow="{}""#, workflow.workflow))
            .expect("the workflow's table");
        let table = &page.body[start..];
        let table = &table[..table.find("</table>").unwrap_or(table.len())];
        let shown: Vec<u64> = table
            .split(r#"data-testid="count">"#)
            .skip(1)
            .filter_map(|s| s.split('<').next()?.parse().ok())
            .collect();
        let counts: Vec<u64> = workflow.stages.iter().map(|s| s.count).collect();
        assert_eq!(shown, counts, "{}", workflow.workflow);
    }
}

#[test]
fn forms_fire_as_the_token_and_refusals_show_in_words() {
    let demo = demo();
    let mut client = Client::new(&demo.server);
    client.sign_in(&demo.director);
    let page = client.get("/instances/org-01");
    let csrf = hidden(&page.body, "csrf");
    let seq = demo
        .engine
        .instance("org-01")
        .expect("reads")
        .expect("org-01")
        .instance
        .seq;
    let seq_text = seq.to_string();
    let allowed = action_form(&page.body, "correct_name");
    assert!(allowed.contains(r#"data-allowed="true""#), "{allowed}");
    let forbidden = action_form(&page.body, "publish_plan");
    assert!(forbidden.contains("<fieldset disabled"), "{forbidden}");
    assert!(forbidden.contains("不可用"), "{forbidden}");

    // A wrong CSRF token is refused and changes nothing.
    let name = r#"{"zh": "局办公室党支部", "en": "Bureau office party branch"}"#;
    let fire = |csrf: &str, event: &str, expected: &str| -> Vec<(String, String)> {
        vec![
            ("csrf".into(), csrf.into()),
            ("event".into(), event.into()),
            ("expected_seq".into(), expected.into()),
            ("f.name".into(), name.into()),
        ]
    };
    let send = |client: &mut Client, form: Vec<(String, String)>| {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        client.post("/instances/org-01/fire", &pairs)
    };
    let refused = send(
        &mut client,
        fire("not-the-token", "correct_name", &seq_text),
    );
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("CSRF"));
    let missing = client.post("/signout", &[]);
    assert_eq!(missing.status, 403, "a form without its CSRF token");
    let unchanged = demo
        .engine
        .instance("org-01")
        .expect("reads")
        .expect("org-01");
    assert_eq!(unchanged.instance.seq, seq);

    // The allowed event fires, as the token's actor.
    let fired = send(&mut client, fire(&csrf, "correct_name", &seq_text));
    assert_eq!(fired.status, 303, "{}", fired.body);
    assert_eq!(fired.location.as_deref(), Some("/instances/org-01#history"));
    let history = demo.engine.history("org-01").expect("the history");
    let last = &history.last().expect("an event").event;
    assert_eq!(
        (last.event.as_str(), last.actor.id.as_str()),
        ("correct_name", "director-wang")
    );

    // The engine's refusals show in the page, in words, with their status.
    let stale = send(&mut client, fire(&csrf, "correct_name", &seq_text));
    assert_eq!(stale.status, 412, "the page's sequence is stale now");
    assert!(
        stale.body.contains(r#"data-testid="refusal""#) && stale.body.contains("别人刚刚操作过")
    );
    let next = (seq + 1).to_string();
    let wrong_stage = send(&mut client, fire(&csrf, "publish_plan", &next));
    assert_eq!(wrong_stage.status, 422);
    assert!(
        wrong_stage.body.contains("阶段不对"),
        "{}",
        wrong_stage.body
    );
    let bad_json = send(
        &mut client,
        vec![
            ("csrf".into(), csrf.clone()),
            ("event".into(), "correct_name".into()),
            ("expected_seq".into(), next.clone()),
            ("f.name".into(), "{not json".into()),
        ],
    );
    assert_eq!(bad_json.status, 422);
    assert!(bad_json.body.contains("填写有误"));

    // Revoking the token ends the session.
    let id = demo
        .tokens
        .load()
        .expect("the tokens")
        .into_iter()
        .find(|t| t.actor == "director-wang")
        .expect("the director's token")
        .id;
    demo.tokens
        .revoke(&id, jiff::Timestamp::now())
        .expect("revoked");
    // The server reads the token file again within a second or so.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get("/instances/org-01").status != 401 {
        assert!(
            Instant::now() < deadline,
            "the revoked token's session ends"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn with_grants_enforced_an_ungranted_role_disables_the_actions() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("campaign.db");
    drop(demo_store(&db, &DemoOptions::new(2, 6).with_seed(7)));
    let options = strive_store::Options {
        enforce_grants: true,
        ..strive_store::Options::default()
    };
    let engine = Engine::open(&db, options).expect("the store opens again");
    let tokens = TokenFile::beside(&db);
    let director = issue_token(&tokens, "director-wang", &["leading_group"]);
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        fire_deadlines: false,
        ..Config::default()
    };
    let server = Background::start(engine.clone(), tokens, config).expect("it serves");
    let mut client = Client::new(&server);
    client.sign_in(&director);
    let page = client.get("/instances/org-01");
    let form = action_form(&page.body, "correct_name");
    assert!(form.contains(r#"data-allowed="false""#), "{form}");
    assert!(
        form.contains("未授权") && form.contains("leading_group"),
        "{form}"
    );
    let admin = strive_store::Actor::new("admin", &["admin"]);
    let grant = strive_store::Grant::everywhere("director-wang", "leading_group");
    engine
        .grant(&grant, &admin)
        .expect("the bootstrap admin grants");
    let page = client.get("/instances/org-01");
    let form = action_form(&page.body, "correct_name");
    assert!(form.contains(r#"data-allowed="true""#), "{form}");
}

#[test]
fn admins_issue_and_revoke_tokens_from_the_access_page() {
    let demo = demo();
    let mut admin = Client::new(&demo.server);
    admin.sign_in(&demo.admin);
    let page = admin.get("/access");
    let csrf = hidden(&page.body, "csrf");
    let form = [
        ("csrf", csrf.as_str()),
        ("actor", "inspector-zhao"),
        ("roles", "auditor, member"),
        ("expires_at", ""),
    ];
    let issued = admin.post("/access/tokens", &form);
    assert_eq!(issued.status, 201, "{}", issued.body);
    let start = issued
        .body
        .find(r#"data-testid="issued""#)
        .expect("the new token");
    let token = issued.body[start..]
        .split("<code>")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .expect("the token's text")
        .to_owned();
    let mut inspector = Client::new(&demo.server);
    inspector.sign_in(&token);
    assert!(inspector.get("/").body.contains("inspector-zhao"));
    assert_eq!(
        inspector.get("/access").status,
        403,
        "an auditor is no admin"
    );

    // A wrong CSRF token, or a caller who is no admin, changes nothing.
    let forged = [
        ("csrf", "forged"),
        ("actor", "x"),
        ("roles", "admin"),
        ("expires_at", ""),
    ];
    assert_eq!(admin.post("/access/tokens", &forged).status, 403);
    let mut director = Client::new(&demo.server);
    director.sign_in(&demo.director);
    let theirs = hidden(&director.get("/").body, "csrf");
    let escalate = [
        ("csrf", theirs.as_str()),
        ("actor", "x"),
        ("roles", "admin"),
        ("expires_at", ""),
    ];
    assert_eq!(director.post("/access/tokens", &escalate).status, 403);

    let id = demo
        .tokens
        .load()
        .expect("the tokens")
        .into_iter()
        .find(|t| t.actor == "inspector-zhao")
        .expect("the issued token")
        .id;
    let revoked = admin.post(&format!("/access/tokens/{id}/revoke"), &[("csrf", &csrf)]);
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(
        inspector.get("/").status,
        401,
        "a revoked token's session ends at once"
    );
}

#[test]
fn the_audit_page_verifies_and_checks_a_kept_checkpoint() {
    let demo = demo();
    let mut client = Client::new(&demo.server);
    client.sign_in(&demo.director);
    let page = client.get("/audit");
    let csrf = hidden(&page.body, "csrf");
    let kept = strive_audit::Checkpoint::of_heads(
        "strive",
        &demo.engine.partition_heads().expect("the heads"),
    )
    .expect("a checkpoint")
    .to_note(None);
    let cases: &[(&str, bool)] = &[("", true), (&kept, true)];
    for (checkpoint, ok) in cases {
        let started = client.post(
            "/audit/verify",
            &[("csrf", &csrf), ("checkpoint", checkpoint)],
        );
        assert_eq!(started.status, 303, "{}", started.body);
        let location = started.location.expect("the job's page");
        let job = location
            .trim_start_matches("/audit?job=")
            .trim_end_matches("#job")
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        let report: Value = loop {
            let polled = client.get(&format!("/audit/verify/{job}"));
            assert_eq!(polled.status, 200, "{}", polled.body);
            let body: Value = serde_json::from_str(&polled.body).expect("JSON");
            if body["state"] == "done" {
                break body;
            }
            assert!(Instant::now() < deadline, "the verification finishes");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(report["ok"], *ok, "{report}");
        let shown = client.get(&location.replace("#job", ""));
        assert!(
            shown.body.contains(r#"data-testid="verify-result">✓"#),
            "{}",
            shown.body
        );
    }
    let bogus = client.post(
        "/audit/verify",
        &[("csrf", &csrf), ("checkpoint", "not a checkpoint\n")],
    );
    assert_eq!(bogus.status, 400);
    let csv = client.get("/audit/download/csv");
    assert_eq!(csv.status, 200);
    let rows = csv.body.lines().count() as u64;
    let org = demo
        .engine
        .instance("org-01")
        .expect("reads")
        .expect("org-01");
    assert!(
        csv.body
            .lines()
            .next()
            .is_some_and(|h| h.contains("instance"))
            && rows > org.instance.seq,
        "{rows} rows: {}",
        csv.body.lines().next().unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------
// The browser

/// What `.ci/setup-console.sh` exports, or `None` after a note that the
/// browser test did not run; under CI it must be there.
fn browser() -> Option<(String, std::path::PathBuf)> {
    let chromium = std::env::var("STRIVE_CHROMIUM").ok();
    let modules = root().join("tests/console/node_modules");
    match chromium {
        Some(chromium) if modules.is_dir() => Some((chromium, modules)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the console's browser test: .ci/setup-console.sh installs chromium and playwright-core and exports STRIVE_CHROMIUM"
            );
            eprintln!(
                "note: the console's browser test did not run; `source .ci/setup-console.sh` installs chromium and playwright-core and sets STRIVE_CHROMIUM"
            );
            None
        }
    }
}

/// `strive demo --serve` on an ephemeral port: its address and tokens from
/// what it prints.
fn serve_demo(db: &Path) -> (std::process::Child, String, HashMap<String, String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strive"))
        .arg("--db")
        .arg(db)
        .args([
            "demo",
            "--organisations",
            "3",
            "--members",
            "12",
            "--serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("strive demo --serve starts");
    let stdout = child.stdout.take().expect("its stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut url = None;
    let mut tokens = HashMap::new();
    for line in lines.by_ref() {
        let line = line.expect("a line");
        if let Some(rest) = line.strip_prefix("控制台 Console: ") {
            url = rest
                .split_whitespace()
                .next()
                .map(|u| u.trim_end_matches('/').to_owned());
        } else if let Some((who, token)) = line.trim().split_once(": strive_") {
            let actor = who.split_whitespace().next().unwrap_or_default().to_owned();
            tokens.insert(actor, format!("strive_{token}"));
        }
        if tokens.len() == 3 {
            break;
        }
    }
    // Keep reading so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url.expect("the console's address"), tokens)
}

#[test]
fn demo_serve_prints_the_console_and_tokens_that_sign_in() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut child, url, tokens) = serve_demo(&dir.path().join("campaign.db"));
    let mut client = Client::at(url);
    assert_eq!(client.get("/pledges").status, 200);
    assert_eq!(client.get("/").status, 401);
    for actor in ["admin", "director-wang", "inspector-zhao"] {
        client.sign_in(&tokens[actor]);
        let page = client.get("/");
        assert_eq!(page.status, 200, "{actor}");
        assert!(page.body.contains(actor), "{actor} is signed in");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// How long the browser test may take (it takes about 13 s here): a hung
/// browser must fail the test, not stall CI.
const BROWSER_TIME_BOX: Duration = Duration::from_secs(180);

/// Waits for `child` at most `limit`, killing it then; its output.
fn within(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("the child can be waited on") {
            Some(_) => return child.wait_with_output().expect("its output"),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let output = child.wait_with_output().expect("its output");
                panic!(
                    "the browser test took longer than {limit:?}:\n{}\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn the_console_works_in_a_real_browser() {
    let Some((chromium, _modules)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut child, url, tokens) = serve_demo(&dir.path().join("campaign.db"));
    let shots = root().join("target/console-screenshots");
    let node = Command::new("node")
        .arg(root().join("tests/console/e2e.mjs"))
        .current_dir(root().join("tests/console"))
        .env("STRIVE_CONSOLE_URL", &url)
        .env("STRIVE_CONSOLE_TOKEN", &tokens["director-wang"])
        .env("STRIVE_CHROMIUM", chromium)
        .env("STRIVE_CONSOLE_SHOTS", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let output = within(node, BROWSER_TIME_BOX);
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("the figures");
    assert_eq!(figures["violations"], 0);
    assert!(figures["pages_checked"].as_u64() >= Some(10), "{figures}");
    for name in [
        "dashboard-zh",
        "dashboard-en",
        "instance-zh",
        "instance-en",
        "audit-zh",
        "audit-en",
    ] {
        assert!(shots.join(format!("{name}.png")).is_file(), "{name}.png");
    }
}
