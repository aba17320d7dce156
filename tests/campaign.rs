//! The campaign end to end (issue #5): the seeded demo with a snapshot of
//! its report, the hierarchy rules between the bureau, its organisations
//! and their members, one evaluator one vote, overdue escalation exactly
//! once across restarts, and the `demo`, `report` and `pledges` commands.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use strive_campaign::{
    DemoOptions, OverdueStatus, RenderOptions, Report, ReportFormat, ReportOptions,
};
use strive_core::Rejection;
use strive_store::{Actor, CommandError, CommandOptions, Engine, ManualClock, Options};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn at(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

fn none() -> CommandOptions {
    CommandOptions::default()
}

fn director() -> Actor {
    Actor::new("director", &["leading_group"])
}

fn party_group() -> Actor {
    Actor::new("party-group", &["party_committee"])
}

fn secretary() -> Actor {
    Actor::new("secretary", &["branch_secretary"])
}

fn evaluator(n: usize) -> Actor {
    Actor::new(format!("public-{n:02}"), &["evaluator"])
}

fn clocked(clock: &Arc<ManualClock>) -> Options {
    Options {
        clock: clock.clone(),
        ..Options::default()
    }
}

/// A store with the campaign's workflows deployed and bureau `b` started,
/// on a clock at 6 May 2026.
fn campaign(path: &Path) -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(at("2026-05-06T09:00:00+08:00")));
    let engine = Engine::open(path, clocked(&clock)).expect("open");
    strive_campaign::deploy_workflows(&engine, &Actor::new("admin", &["admin"]))
        .expect("the campaign's workflows deploy");
    engine
        .start(
            strive_campaign::BUREAU,
            "b",
            &director(),
            Map::new(),
            None,
            none(),
        )
        .expect("the bureau starts");
    (engine, clock)
}

/// The bureau deploys the campaign to `organisations`, due 31 May.
fn deploy(engine: &Engine, organisations: &[&str]) {
    let list: Vec<Value> = organisations
        .iter()
        .map(|id| json!({"id": id, "data": {"mobilisation_due": "2026-05-31T23:59:59+08:00"}}))
        .collect();
    engine
        .fire(
            "b",
            "deploy",
            &director(),
            json!({ "organisations": list }),
            none(),
        )
        .expect("deploy");
}

fn fire(engine: &Engine, instance: &str, event: &str, actor: &Actor, payload: Value) -> String {
    engine
        .fire(instance, event, actor, payload, none())
        .unwrap_or_else(|e| panic!("{instance} {event}: {e}"))
        .stage
}

fn stage(engine: &Engine, instance: &str) -> String {
    engine
        .instance(instance)
        .expect("read")
        .expect("the instance exists")
        .instance
        .stage
}

fn data(engine: &Engine, instance: &str) -> Map<String, Value> {
    engine
        .instance(instance)
        .expect("read")
        .expect("the instance exists")
        .instance
        .data
}

fn org_scores(level: i64, satisfied: bool) -> Value {
    json!({"leadership": level, "members": level, "mechanism": level,
           "performance": level, "response": level, "satisfied": satisfied})
}

fn member_scores(level: i64, satisfied: bool) -> Value {
    json!({"study": level, "performance": level, "service": level,
           "discipline": level, "integrity": level, "satisfied": satisfied})
}

/// Mobilises organisation `org` with `members`: it moves to commitment
/// and spawns one pledge instance per member.
fn mobilise(engine: &Engine, org: &str, members: &[&str]) {
    let list: Vec<Value> = members.iter().map(|id| json!({"id": id})).collect();
    let stage = fire(
        engine,
        org,
        "mobilise",
        &secretary(),
        json!({ "members": list }),
    );
    assert_eq!(stage, "commitment");
}

/// Takes member `id` from pledge to the close of an evaluation by ten
/// evaluators at `level`; returns the stage it lands in.
fn evaluate_member(engine: &Engine, id: &str, level: i64) -> String {
    fire(
        engine,
        id,
        "submit_pledge",
        &Actor::new(id, &["member"]),
        json!({"pledge": "带头学习，带头服务群众"}),
    );
    fire(
        engine,
        id,
        "add_comment",
        &secretary(),
        json!({"author": "书记", "text": "承诺具体"}),
    );
    fire(engine, id, "open_evaluation", &secretary(), Value::Null);
    for n in 0..10 {
        fire(
            engine,
            id,
            "evaluate",
            &evaluator(n),
            member_scores(level, level >= 80),
        );
    }
    fire(engine, id, "close_evaluation", &secretary(), Value::Null)
}

/// Takes organisation `id` (mobilised) from its plan to the close of an
/// evaluation by ten evaluators at `level`; returns the stage it lands in.
fn evaluate_org(engine: &Engine, id: &str, level: i64) -> String {
    fire(
        engine,
        id,
        "publish_plan",
        &secretary(),
        json!({"plan": "学习强化，服务群众"}),
    );
    fire(
        engine,
        id,
        "add_comment",
        &party_group(),
        json!({"author": "机关总支", "text": "方向明确"}),
    );
    fire(engine, id, "open_evaluation", &director(), Value::Null);
    for n in 0..10 {
        fire(
            engine,
            id,
            "evaluate",
            &evaluator(n),
            org_scores(level, level >= 80),
        );
    }
    fire(engine, id, "close_evaluation", &director(), Value::Null)
}

fn is_guard_failure(error: &CommandError) -> bool {
    matches!(
        error,
        CommandError::Rejected { reason, .. } if matches!(**reason, Rejection::GuardFailed { .. })
    )
}

fn strive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strive"))
        .args(args)
        .env_remove("STRIVE_DB")
        .env_remove("STRIVE_LOG")
        .output()
        .expect("run strive")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------------------
// The whole campaign
// ---------------------------------------------------------------------------

/// Runs the demo on a fresh store and builds its report as of the end.
fn demo(path: &Path, options: &DemoOptions) -> (strive_campaign::DemoSummary, Report, Engine) {
    let clock = Arc::new(ManualClock::new(strive_campaign::demo_start()));
    let engine = Engine::open(path, clocked(&clock)).expect("open");
    let summary =
        strive_campaign::run_demo(&engine, &clock, options, |_| {}).expect("the campaign runs");
    let report = Report::build(&engine, &ReportOptions::default().as_of(summary.finished))
        .expect("the report builds");
    (summary, report, engine)
}

/// The default campaign, seed 2026: every stage is reached, and the final
/// report is exactly the reviewed snapshot (the simulated clock makes every
/// time in it fixed).
#[test]
fn the_default_campaign_runs_every_stage_and_its_report_is_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, report, engine) = demo(&dir.path().join("db"), &DemoOptions::default());

    assert_eq!(summary.instances, 1 + 12 + 150);
    assert_eq!(report.instances, summary.instances);
    assert!(
        (1_800..=2_400).contains(&summary.evaluations),
        "about 2,000 evaluations, got {}",
        summary.evaluations
    );
    assert!(
        summary.resubmissions > 0,
        "some evaluators change their mind"
    );
    assert!(summary.organisations_rectified > 0);
    assert!(summary.organisations_evaluated_again > 0);
    assert!(summary.members_evaluated_again > 0);
    assert!(summary.escalations > 0);
    assert!(summary.organisations_honoured > 0 && summary.members_honoured > 0);
    // Every partition's events: the summary and the report count them all.
    assert_eq!(summary.events, engine.total_events());
    assert_eq!(report.events, engine.total_events());

    // The bureau's roll-up agrees with its children.
    let campaign = report.campaigns.first().expect("the bureau's roll-up");
    assert_eq!(campaign.stage, "commendation");
    assert_eq!(campaign.deployed, 12);
    assert_eq!(
        campaign.organisations_honoured as u64,
        summary.organisations_honoured
    );
    assert_eq!(campaign.members_honoured as u64, summary.members_honoured);
    let honoured = report.commended.iter().filter(|c| c.honoured).count() as u64;
    assert_eq!(
        honoured,
        summary.organisations_honoured + summary.members_honoured
    );
    // Every commended unit passed the guard: enough evaluators, every
    // criterion's mean and the share satisfied at or over the pass marks.
    for unit in &report.commended {
        let minimum = if unit.unit.workflow == strive_campaign::MEMBER {
            5
        } else {
            10
        };
        assert!(unit.scores.evaluators >= minimum, "{}", unit.unit.instance);
        assert!(
            unit.scores
                .criteria
                .iter()
                .all(|c| c.mean.is_some_and(|m| m >= 80.0)),
            "{}",
            unit.unit.instance
        );
        assert!(unit.scores.satisfied_share.is_some_and(|s| s >= 0.8));
    }
    assert!(report.open_items.iter().any(|item| item.overdue));

    let text = report.render(ReportFormat::Text, &RenderOptions::default());
    insta::assert_snapshot!("default_campaign_report", text);
}

/// A seed gives the same campaign whatever the number of threads that
/// submit it: the snapshot above does not depend on scheduling.
#[test]
fn a_seed_gives_the_same_campaign_on_one_thread_or_eight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = DemoOptions::new(4, 30).with_seed(11);
    let (one, serial, _e1) = demo(
        &dir.path().join("one"),
        &options.clone().with_concurrency(1),
    );
    let (eight, parallel, _e8) = demo(&dir.path().join("eight"), &options.with_concurrency(8));
    assert_eq!(one, eight);
    assert_eq!(serial.to_json(), parallel.to_json());
    let (other, _, _e) = demo(
        &dir.path().join("other"),
        &DemoOptions::new(4, 30).with_seed(12),
    );
    assert_ne!(one.events, 0);
    assert_ne!(
        (one.evaluations, one.resubmissions, one.members_rectified),
        (
            other.evaluations,
            other.resubmissions,
            other.members_rectified
        ),
        "another seed gives another campaign"
    );
}

// ---------------------------------------------------------------------------
// Hierarchy
// ---------------------------------------------------------------------------

/// The bureau opens the selection only once every organisation has been
/// evaluated (commended or sent to rectification).
#[test]
fn the_bureau_cannot_open_the_selection_before_every_organisation_is_evaluated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _clock) = campaign(&dir.path().join("db"));
    deploy(&engine, &["o1", "o2"]);
    assert_eq!(stage(&engine, "b"), "running");
    mobilise(&engine, "o1", &["o1-m1"]);
    mobilise(&engine, "o2", &["o2-m1"]);

    assert_eq!(evaluate_member(&engine, "o1-m1", 90), "commended");
    assert_eq!(evaluate_org(&engine, "o1", 90), "commended");
    let refused = engine
        .fire("b", "start_commendation", &director(), Value::Null, none())
        .expect_err("o2 has not been evaluated");
    assert!(is_guard_failure(&refused), "{refused}");
    assert_eq!(stage(&engine, "b"), "running");

    // o2 fails its evaluation: rectification counts as evaluated.
    assert_eq!(evaluate_member(&engine, "o2-m1", 60), "rectification");
    assert_eq!(evaluate_org(&engine, "o2", 60), "rectification");
    assert_eq!(
        fire(&engine, "b", "start_commendation", &director(), Value::Null),
        "commendation"
    );
    // Each organisation's close of evaluation was reported to the bureau.
    assert_eq!(data(&engine, "b")["evaluations_closed"], json!(2));
}

/// An organisation is commended only when at least half of its members
/// are, closes only after every member's pledge has closed, and the bureau
/// closes only after every organisation has.
#[test]
fn an_organisation_waits_for_its_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _clock) = campaign(&dir.path().join("db"));
    deploy(&engine, &["o1", "o2"]);
    mobilise(&engine, "o1", &["o1-m1", "o1-m2", "o1-m3"]);
    mobilise(&engine, "o2", &["o2-m1", "o2-m2"]);
    assert_eq!(
        engine
            .instance("o1")
            .expect("read")
            .expect("exists")
            .children,
        vec!["o1-m1", "o1-m2", "o1-m3"]
    );

    // One member of three commended is under half: o1 goes to
    // rectification despite its own excellent scores.
    assert_eq!(evaluate_member(&engine, "o1-m1", 90), "commended");
    assert_eq!(evaluate_member(&engine, "o1-m2", 60), "rectification");
    assert_eq!(evaluate_org(&engine, "o1", 95), "rectification");
    // One of two is half: o2 is commended with the same scores.
    assert_eq!(evaluate_member(&engine, "o2-m1", 90), "commended");
    assert_eq!(evaluate_member(&engine, "o2-m2", 60), "rectification");
    assert_eq!(evaluate_org(&engine, "o2", 95), "commended");
    assert_eq!(
        fire(&engine, "b", "start_commendation", &director(), Value::Null),
        "commendation"
    );

    let refused = engine
        .fire("o2", "close", &director(), Value::Null, none())
        .expect_err("its members have not closed");
    assert!(is_guard_failure(&refused), "{refused}");
    fire(&engine, "o2-m1", "close", &secretary(), Value::Null);
    let refused = engine
        .fire("o2", "close", &director(), Value::Null, none())
        .expect_err("o2-m2 is still in rectification");
    assert!(is_guard_failure(&refused), "{refused}");

    // o2-m2 fixes its one problem and closes after rectification.
    fire(
        &engine,
        "o2-m2",
        "add_problem",
        &secretary(),
        json!({"id": "R1-1", "text": "承诺事项进度滞后", "due": "2026-09-30T17:30:00+08:00"}),
    );
    let refused = engine
        .fire("o2-m2", "close", &secretary(), Value::Null, none())
        .expect_err("its problem is open");
    assert!(is_guard_failure(&refused), "{refused}");
    fire(
        &engine,
        "o2-m2",
        "close_problem",
        &Actor::new("inspector", &["auditor"]),
        json!({"id": "R1-1", "note": "已整改"}),
    );
    assert_eq!(
        fire(&engine, "o2-m2", "close", &secretary(), Value::Null),
        "closed_rectified"
    );
    assert_eq!(
        fire(&engine, "o2", "close", &director(), Value::Null),
        "closed"
    );
    // o1 is still in rectification: the bureau cannot close.
    let refused = engine
        .fire("b", "close", &director(), Value::Null, none())
        .expect_err("o1 has not closed");
    assert!(is_guard_failure(&refused), "{refused}");
    assert_eq!(stage(&engine, "b"), "commendation");
}

/// A child's transition that notifies its parent is one atomic write: the
/// parent's event names the child's event as its cause, by the system
/// actor, and a parent that refuses the notice refuses the child's
/// transition too.
#[test]
fn notifications_are_recorded_in_both_histories_or_not_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _clock) = campaign(&dir.path().join("db"));
    deploy(&engine, &["o1", "o2"]);
    mobilise(&engine, "o1", &["o1-m1"]);
    assert_eq!(evaluate_member(&engine, "o1-m1", 90), "commended");
    assert_eq!(evaluate_org(&engine, "o1", 90), "commended");

    let child = engine.history("o1").expect("history");
    let close = child
        .iter()
        .find(|e| e.event.event == "close_evaluation")
        .expect("o1 closed its evaluation");
    let parent = engine.history("b").expect("history");
    let notice = parent
        .iter()
        .find(|e| e.event.event == "org_evaluated")
        .expect("the bureau recorded the notice");
    assert_eq!(notice.event.actor, Actor::system());
    let cause = notice.event.cause.as_ref().expect("the notice has a cause");
    assert_eq!(
        (cause.instance.as_str(), cause.seq),
        ("o1", close.event.seq)
    );
    assert_eq!(notice.event.payload["child"], json!("o1"));
    assert_eq!(notice.event.payload["stage"], json!("commended"));
    assert_eq!(notice.event.gseq, close.event.gseq + 1, "one write");

    // A member honoured before the selection opens: the organisation would
    // pass it on, the bureau accepts honours only during the selection, so
    // nothing is written anywhere.
    let before = crate::util::sizes(&engine);
    let refused = engine
        .fire(
            "o1-m1",
            "honour",
            &director(),
            json!({"citation": "c"}),
            none(),
        )
        .expect_err("the bureau is not selecting yet");
    assert!(
        matches!(refused, CommandError::ParentRejected { .. }),
        "{refused}"
    );
    assert_eq!(crate::util::sizes(&engine), before);
    assert_ne!(data(&engine, "o1-m1").get("honoured"), Some(&json!(true)));

    // o2 evaluated, the selection opens: now the honour goes through three
    // levels, member, organisation and bureau, each recording its event.
    mobilise(&engine, "o2", &["o2-m1"]);
    evaluate_member(&engine, "o2-m1", 90);
    evaluate_org(&engine, "o2", 90);
    fire(&engine, "b", "start_commendation", &director(), Value::Null);
    fire(
        &engine,
        "o1-m1",
        "honour",
        &director(),
        json!({"citation": "c"}),
    );
    assert_eq!(data(&engine, "o1-m1")["honoured"], json!(true));
    assert_eq!(data(&engine, "o1")["members_honoured"], json!(1));
    assert_eq!(data(&engine, "b")["members_honoured"], json!(1));
    let relayed = engine
        .history("b")
        .expect("history")
        .into_iter()
        .find(|e| e.event.event == "member_honoured")
        .expect("the bureau recorded the honour");
    let cause = relayed.event.cause.expect("a cause");
    assert_eq!(cause.instance, "o1", "passed on by the organisation");
}

// ---------------------------------------------------------------------------
// Mass evaluation
// ---------------------------------------------------------------------------

/// Takes member `m` of a fresh organisation to its evaluation.
fn member_in_evaluation(engine: &Engine, m: &str) {
    deploy(engine, &["o1"]);
    mobilise(engine, "o1", &[m]);
    fire(
        engine,
        m,
        "submit_pledge",
        &Actor::new(m, &["member"]),
        json!({"pledge": "p"}),
    );
    fire(
        engine,
        m,
        "add_comment",
        &secretary(),
        json!({"author": "a", "text": "t"}),
    );
    fire(engine, m, "open_evaluation", &secretary(), Value::Null);
}

/// Each evaluator counts once: a resubmission replaces the earlier entry,
/// both stay in the history, and the aggregate reads only the latest.
#[test]
fn one_evaluator_one_vote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _clock) = campaign(&dir.path().join("db"));
    let m = "o1-m1";
    member_in_evaluation(&engine, m);

    // public-00 first scores 20 and is not satisfied, then thinks again.
    fire(
        &engine,
        m,
        "evaluate",
        &evaluator(0),
        member_scores(20, false),
    );
    fire(
        &engine,
        m,
        "evaluate",
        &evaluator(0),
        member_scores(85, true),
    );
    let evaluations = data(&engine, m)["evaluations"].clone();
    assert_eq!(evaluations.as_object().map(Map::len), Some(1));
    assert_eq!(evaluations["public-00"], member_scores(85, true));
    let recorded: Vec<Value> = engine
        .history(m)
        .expect("history")
        .into_iter()
        .filter(|e| e.event.event == "evaluate" && e.event.actor.id == "public-00")
        .map(|e| e.event.payload)
        .collect();
    assert_eq!(
        recorded,
        vec![member_scores(20, false), member_scores(85, true)]
    );

    // A member may not evaluate themself.
    let refused = engine
        .fire(
            m,
            "evaluate",
            &Actor::new(m, &["member"]),
            member_scores(100, true),
            none(),
        )
        .expect_err("no self-evaluation");
    assert!(is_guard_failure(&refused), "{refused}");

    // Nine more: ten evaluators, every mean 85, all satisfied. Had the
    // first entry counted too, the mean of eleven (79.1) would fail the
    // pass mark of 80.
    for n in 1..10 {
        fire(
            &engine,
            m,
            "evaluate",
            &evaluator(n),
            member_scores(85, true),
        );
    }
    assert_eq!(
        data(&engine, m)["evaluations"].as_object().map(Map::len),
        Some(10)
    );
    assert_eq!(
        fire(&engine, m, "close_evaluation", &secretary(), Value::Null),
        "commended"
    );
    let report = Report::build(&engine, &ReportOptions::default().workflow("member-pledge"))
        .expect("report");
    let unit = report.commended.first().expect("o1-m1 is commended");
    assert_eq!(unit.scores.evaluators, 10);
    assert_eq!(unit.scores.overall, Some(85.0));
    assert_eq!(unit.scores.satisfied_share, Some(1.0));
}

/// Four excellent evaluations are one short of a member's minimum of
/// five: the evaluation closes to rectification.
#[test]
fn too_few_evaluators_send_to_rectification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _clock) = campaign(&dir.path().join("db"));
    let m = "o1-m1";
    member_in_evaluation(&engine, m);
    for n in 0..4 {
        fire(
            &engine,
            m,
            "evaluate",
            &evaluator(n),
            member_scores(98, true),
        );
    }
    assert_eq!(
        fire(&engine, m, "close_evaluation", &secretary(), Value::Null),
        "rectification"
    );
    assert_eq!(data(&engine, m)["outcome"], json!("rectification"));
}

// ---------------------------------------------------------------------------
// Deadlines
// ---------------------------------------------------------------------------

/// Mobilisation is due by 31 May: an organisation still mobilising then is
/// escalated by the system exactly once, however often the engine is
/// reopened and ticked, and the bureau lists it once.
#[test]
fn an_overdue_organisation_is_escalated_exactly_once_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let clock = {
        let (engine, clock) = campaign(&path);
        deploy(&engine, &["late", "prompt"]);
        mobilise(&engine, "prompt", &["prompt-m1"]);
        let due = engine
            .instance("late")
            .expect("read")
            .expect("exists")
            .due
            .expect("a mobilisation deadline");
        assert_eq!(due.at, at("2026-05-31T23:59:59+08:00"));
        assert_eq!(due.event, "mobilisation_overdue");
        // The member's pledge is due 14 days after mobilisation: pledge it.
        fire(
            &engine,
            "prompt-m1",
            "submit_pledge",
            &Actor::new("prompt-m1", &["member"]),
            json!({"pledge": "p"}),
        );
        assert!(
            engine
                .fire_due(at("2026-05-31T23:59:58+08:00"))
                .expect("tick")
                .is_empty(),
            "nothing is due before the deadline"
        );
        clock
    };

    let ticks = [
        "2026-06-01T00:00:00+08:00",
        "2026-06-01T00:00:00+08:00",
        "2026-06-02T09:00:00+08:00",
        "2026-07-01T00:00:00+08:00",
    ];
    let mut fired_total = Vec::new();
    for tick in ticks {
        // A service restarts between ticks.
        clock.set(at(tick));
        let engine = Engine::open(&path, clocked(&clock)).expect("reopen");
        for fired in engine.fire_due(at(tick)).expect("tick") {
            assert!(fired.result.is_ok(), "{:?}", fired.result);
            fired_total.push((fired.instance, fired.event));
        }
    }
    assert_eq!(
        fired_total,
        vec![("late".to_owned(), "mobilisation_overdue".to_owned())]
    );

    let engine = Engine::open(&path, clocked(&clock)).expect("reopen");
    let escalations: Vec<_> = engine
        .history("late")
        .expect("history")
        .into_iter()
        .filter(|e| e.event.event == "mobilisation_overdue")
        .collect();
    assert_eq!(escalations.len(), 1);
    assert_eq!(escalations[0].event.actor, Actor::system());
    assert_eq!(
        data(&engine, "late")["escalations"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(stage(&engine, "late"), "mobilisation");
    assert_eq!(data(&engine, "b")["overdue_organisations"], json!(["late"]));

    // The report lists it once, still open; once it mobilises, resolved.
    let report = Report::build(&engine, &ReportOptions::default()).expect("report");
    let rows: Vec<_> = report
        .overdue
        .iter()
        .filter(|o| o.unit.instance == "late")
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, OverdueStatus::Escalated);
    assert!(report.overdue.iter().all(|o| o.unit.instance == "late"));
    mobilise(&engine, "late", &["late-m1"]);
    let report = Report::build(&engine, &ReportOptions::default()).expect("report");
    let row = report
        .overdue
        .iter()
        .find(|o| o.unit.instance == "late")
        .expect("still listed");
    assert_eq!(row.status, OverdueStatus::Resolved);
    assert_eq!(
        report.campaigns[0].overdue_organisations[0].instance,
        "late"
    );
}

// ---------------------------------------------------------------------------
// The commands
// ---------------------------------------------------------------------------

/// `strive demo` on a temporary database: the report, then verification.
#[test]
fn the_demo_command_reports_and_verifies() {
    let output = strive(&[
        "demo",
        "--organisations",
        "3",
        "--members",
        "12",
        "--seed",
        "7",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("一、阶段统计 Stage counts"), "{text}");
    assert!(text.contains("四、未销号的整改问题 Open rectification items"));
    assert!(text.contains("数据库 Database: temporary"));
    let verification = text
        .lines()
        .find(|line| line.starts_with("核验 Verification"))
        .expect("a verification line");
    assert!(verification.contains("everything holds"), "{verification}");

    let output = strive(&[
        "demo",
        "--organisations",
        "3",
        "--members",
        "12",
        "--seed",
        "7",
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let value: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(value["verification"]["ok"], json!(true));
    assert_eq!(value["demo"]["instances"], json!(16));
    assert_eq!(value["verification"]["events"], value["demo"]["events"]);
    assert_eq!(value["database"], Value::Null);
}

/// `strive demo --db DIR` keeps the store, which `strive report` and
/// `strive pledges` then read; usage errors exit 2, refusals 1.
#[test]
fn report_reads_a_kept_demo_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("campaign.db");
    let db = db.to_str().expect("a UTF-8 path");
    let output = strive(&[
        "demo",
        "--db",
        db,
        "--organisations",
        "3",
        "--members",
        "12",
        "--seed",
        "7",
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let demo: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(demo["database"], json!(db));

    // The same database again: the demo needs an empty one.
    let again = strive(&[
        "demo",
        "--db",
        db,
        "--organisations",
        "3",
        "--members",
        "12",
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("needs an empty database"));

    let output = strive(&[
        "report",
        "--db",
        db,
        "--format",
        "json",
        "--as-of",
        "2026-11-30T18:00:00+08:00",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report, demo["report"], "the same report as the demo's");
    let total: u64 = report["workflows"]
        .as_array()
        .expect("workflows")
        .iter()
        .map(|w| w["total"].as_u64().expect("a total"))
        .sum();
    assert_eq!(total, 16);
    assert_eq!(report["instances"], json!(16));

    // One workflow only.
    let output = strive(&[
        "report",
        "--db",
        db,
        "--format",
        "csv",
        "--workflow",
        "member-pledge",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let csv = stdout(&output);
    assert!(csv.starts_with("section,workflow,instance,parent,stage,field,value\n"));
    assert!(csv.contains(",member-pledge,"));
    assert!(!csv.contains(",org-campaign,"));

    // HTML to a file: one page, the diagrams inline, nothing fetched.
    let html_path = dir.path().join("report.html");
    let html_arg = html_path.to_str().expect("UTF-8");
    let output = strive(&["report", "--db", db, "--format", "html", "--out", html_arg]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("wrote "));
    let html = std::fs::read_to_string(&html_path).expect("the page");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 3, "one diagram per workflow");
    for outside in [
        "<script",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
    ] {
        assert!(!html.contains(outside), "the page fetches {outside}");
    }

    // The pledges as the masses see them: no scores, no evaluators.
    let output = strive(&["pledges", "--db", db, "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let pledges: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let pledges = pledges.as_array().expect("a list");
    assert_eq!(pledges.iter().filter(|p| p["member"].is_null()).count(), 3);
    assert!(pledges.iter().filter(|p| !p["member"].is_null()).count() >= 12);
    assert!(!stdout(&output).contains("evaluations"));

    // Refusals exit 1, usage errors 2.
    let unknown = strive(&["report", "--db", db, "--workflow", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no workflow `nope` is deployed"));
    let missing = dir.path().join("missing.db");
    let missing = strive(&["report", "--db", missing.to_str().expect("UTF-8")]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("is not a strive store (nothing is there)"));
    assert!(!dir.path().join("missing.db").exists(), "nothing created");
    let wrong = strive(&["report", "--db", db, "--format", "dot"]);
    assert_eq!(wrong.status.code(), Some(2));
    let bad_time = strive(&["report", "--db", db, "--as-of", "yesterday"]);
    assert_eq!(bad_time.status.code(), Some(2));
    let too_few = strive(&["demo", "--organisations", "0"]);
    assert_eq!(too_few.status.code(), Some(2));
    assert!(stderr(&too_few).contains("--organisations must be at least 1"));
}

/// The report of a store of several partitions counts every partition's
/// events and is as of the latest event of any of them, not of partition
/// 0's (the deployments'), which may be far behind: here the bureau's
/// organisation `o1` starts in another partition months after the deploy.
#[test]
fn the_report_of_a_partitioned_store_reads_every_partition() {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T08:00:00Z")));
    let engine = Engine::temporary_with(Options {
        partitions: 4,
        ..clocked(&clock)
    })
    .expect("engine");
    let files = crate::cli::workflow_files();
    let inputs: Vec<(Option<&str>, &str)> = files
        .iter()
        .map(|(n, t)| (Some(n.as_str()), t.as_str()))
        .collect();
    engine
        .deploy_all(&inputs, &Actor::new("admin", &["admin"]))
        .expect("deploy");
    clock.set(at("2030-06-01T08:00:00Z"));
    let data: Map<String, Value> = serde_json::from_str(crate::cli::START_DATA).expect("json");
    let started = engine
        .start(
            "org-campaign",
            "o1",
            &Actor::new("lg", &["leading_group"]),
            data,
            None,
            CommandOptions::default(),
        )
        .expect("start");
    assert_ne!(started.partition, 0, "o1 must be outside partition 0 here");
    let report = Report::build(&engine, &ReportOptions::default()).expect("the report builds");
    assert_eq!(report.events, engine.total_events());
    assert_eq!(report.as_of, at("2030-06-01T08:00:00Z"));
}
