//! An instance's page: its diagram with the current stage highlighted,
//! its data and children, its history, the time-travel slider (a replay
//! at any sequence number, strive-audit's), and the actions the signed-in
//! user may fire, each refused one disabled with the engine's reason.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};
use strive_audit::{At, store};
use strive_core::{Actor, Command, Definition, Field, Rejection, ValueType, Workflow};
use strive_store::{CommandError, CommandOptions, Engine, Snapshot, StoredEvent};

use super::instances::stage_label;
use super::layout::{self, Lang, json_block, json_inline, th, when};
use super::session::{User, Viewer};
use super::{Failure, Page};
use crate::problem::Problem;
use crate::routes::{P, Q};
use crate::state::{Shared, blocking};

/// The page's query: a sequence number to show the state at.
#[derive(Debug, Deserialize)]
pub(crate) struct AtParams {
    seq: Option<u64>,
}

/// What the page shows, read in one blocking call.
struct Loaded {
    snapshot: Snapshot,
    workflow: std::sync::Arc<Workflow>,
    history: Vec<StoredEvent>,
    children: Vec<Snapshot>,
    at: Option<Travel>,
    /// Why the engine would refuse the user any command here, when it
    /// enforces the recorded grants and a grant is missing.
    not_granted: Option<CommandError>,
}

/// The state at one sequence number, rebuilt from the events.
struct Travel {
    seq: u64,
    stage: String,
    data: Map<String, Value>,
}

fn load(engine: &Engine, id: &str, at: Option<u64>, actor: &Actor) -> Result<Loaded, Problem> {
    let snapshot = engine.instance(id)?.ok_or_else(|| {
        Problem::not_found(format!("no instance `{id}`; find it in the instances list"))
    })?;
    let workflow = engine
        .workflow(&snapshot.instance.workflow, Some(snapshot.instance.version))
        .ok_or_else(|| Problem::internal("the instance's definition version is not loaded"))?;
    let history = crate::routes::queries::history_all(engine, id)?;
    let mut children = Vec::new();
    for child in &snapshot.children {
        if let Some(c) = engine.instance(child)? {
            children.push(c);
        }
    }
    let at = at.map(|seq| travel(engine, id, seq)).transpose()?;
    // The engine's own check of the recorded grants, as a fire makes it.
    let not_granted = if engine.enforces_grants() {
        engine.authorize(actor, Some(id)).err()
    } else {
        None
    };
    Ok(Loaded {
        snapshot,
        workflow,
        history,
        children,
        at,
        not_granted,
    })
}

/// The instance as it was after event `seq`: strive-audit's replay, the
/// one `strive replay --at-seq` runs.
fn travel(engine: &Engine, id: &str, seq: u64) -> Result<Travel, Problem> {
    let replay = store::replay(engine, id, At::Seq(seq))
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "replay", e.to_string()))?;
    let instance = replay.replayed.instance;
    Ok(Travel {
        seq: instance.seq,
        stage: instance.stage,
        data: instance.data,
    })
}

/// `GET /instances/{id}`.
pub(crate) async fn page(
    State(state): State<Shared>,
    viewer: Viewer,
    P(id): P<String>,
    Q(params): Q<AtParams>,
) -> Page {
    render(&state, &viewer, id, params.seq, None).await
}

/// A refusal to show above the page, with its status.
struct Notice {
    status: StatusCode,
    message: String,
}

async fn render(
    state: &Shared,
    viewer: &Viewer,
    id: String,
    at: Option<u64>,
    notice: Option<Notice>,
) -> Page {
    let user = viewer.user()?.clone();
    let lang = viewer.lang;
    let engine = state.engine.clone();
    let actor = user.record.actor();
    let loaded = blocking(move || load(&engine, &id, at, &actor))
        .await
        .map_err(|p| Failure::problem(lang, p))?;
    let actions = actions(&loaded, &user, lang);
    let i = &loaded.snapshot.instance;
    let definition = loaded.workflow.definition();
    let svg = strive_campaign::workflow_svg(definition, &Default::default());
    let shown_stage = loaded
        .at
        .as_ref()
        .map_or(i.stage.as_str(), |t| t.stage.as_str());
    let title = lang.label(Some(&definition.title), &i.workflow).to_owned();
    let body = html! {
        @if let Some(n) = &notice {
            div.alert role="alert" data-testid="refusal" { (n.message) }
        }
        h1 { (i.id) " " span.sub { (title) } }
        div.split {
            div {
        dl.facts {
            dt { (lang.t("流程", "Workflow")) } dd { a href={ "/definitions/" (layout::encode(&i.workflow)) } { (i.workflow) } " v" (i.version) }
            dt { (lang.t("当前阶段", "Stage now")) } dd data-testid="stage" { (stage_label(&state.engine, lang, &i.workflow, i.version, &i.stage)) " " span.id { (i.stage) } }
            @if !i.status.is_running() {
                dt { (lang.t("状态", "Status")) } dd data-testid="status" { (status_label(lang, i.status)) " " span.id { (i.status) } }
            }
            dt { (lang.t("事件数", "Events")) } dd { (i.seq) }
            @if let Some(parent) = &i.parent {
                dt { (lang.t("上级", "Parent")) } dd { a href={ "/instances/" (layout::encode(parent)) } { (parent) } }
            }
            @if let Some(due) = &loaded.snapshot.due {
                dt { (lang.t("期限", "Deadline")) } dd { (when(due.at)) " → " (due.event) }
            }
        }
                (time_travel(lang, &loaded))
                section aria-labelledby="data-h" {
                    h2 #data-h { (lang.t("当前数据", "Data now")) }
                    (json_block(&Value::Object(i.data.clone())))
                }
            }
        section aria-labelledby="diagram-h" {
            h2 #diagram-h { (lang.t("流程图", "Diagram")) }
            div #diagram .no-counts { (layout::diagram(&svg, Some(shown_stage))) }
        }
        }
        section aria-labelledby="actions-h" {
            h2 #actions-h { (lang.t("操作", "Actions")) }
            (action_forms(lang, &user, i.seq, &i.id, &actions))
        }
        (children(state, lang, &loaded))
        (history(lang, &loaded.history))
    };
    let page = layout::page(viewer, &i.id, body);
    let status = notice.map_or(StatusCode::OK, |n| n.status);
    Ok((status, page).into_response())
}

/// The slider: a GET form that works without script; the script replays
/// as the slider moves.
fn time_travel(lang: Lang, loaded: &Loaded) -> Markup {
    let i = &loaded.snapshot.instance;
    let seq = loaded.at.as_ref().map_or(i.seq, |t| t.seq);
    html! {
        section aria-labelledby="travel-h" {
            h2 #travel-h { (lang.t("时间回溯", "Time travel")) }
            form.travel method="get" action={ "/instances/" (layout::encode(&i.id)) } data-travel={ "/instances/" (layout::encode(&i.id)) "/at" } {
                label for="seq" { (lang.t("序号", "Sequence number")) }
                input #seq type="range" name="seq" min="1" max=(i.seq) value=(seq) step="1"
                    aria-valuetext={ (seq) " / " (i.seq) };
                output #seq-out for="seq" { (seq) " / " (i.seq) }
                button type="submit" { (lang.t("查看", "Show")) }
            }
            div #travel aria-live="polite" {
                @if let Some(t) = &loaded.at {
                    (travel_view(lang, &loaded.workflow, t))
                } @else {
                    p.none { (lang.t("拖动滑块，查看任意序号时的状态（从事件重放）。", "Move the slider to see the state at any sequence number (replayed from the events).")) }
                }
            }
        }
    }
}

fn travel_view(lang: Lang, workflow: &Workflow, t: &Travel) -> Markup {
    let stage = workflow
        .definition()
        .stages
        .iter()
        .find(|s| s.id == t.stage)
        .map_or(t.stage.as_str(), |s| lang.label(s.label.as_ref(), &s.id));
    html! {
        div.travel-state data-stage=(t.stage) {
            p { (lang.t("序号 ", "At sequence ")) strong data-testid="travel-seq" { (t.seq) } (lang.t(" 时的阶段：", ", the stage was: "))
                strong data-testid="travel-stage" { (stage) } " " span.id { (t.stage) } }
            (json_block(&Value::Object(t.data.clone())))
        }
    }
}

/// `GET /instances/{id}/at?seq=N`: the state at `N`, as a fragment for
/// the slider's script.
pub(crate) async fn at(
    State(state): State<Shared>,
    viewer: Viewer,
    P(id): P<String>,
    Q(params): Q<AtParams>,
) -> Page {
    viewer.user()?;
    let lang = viewer.lang;
    let seq = params.seq.unwrap_or(1);
    let engine = state.engine.clone();
    let (workflow, t) = blocking(move || {
        let t = travel(&engine, &id, seq)?;
        let snapshot = engine
            .instance(&id)?
            .ok_or_else(|| Problem::not_found("no such instance"))?;
        let workflow = engine
            .workflow(&snapshot.instance.workflow, Some(snapshot.instance.version))
            .ok_or_else(|| Problem::internal("the definition is not loaded"))?;
        Ok((workflow, t))
    })
    .await
    .map_err(|p| Failure::problem(lang, p))?;
    Ok(axum::response::Html(travel_view(lang, &workflow, &t).into_string()).into_response())
}

fn children(state: &Shared, lang: Lang, loaded: &Loaded) -> Markup {
    let mut rollup: BTreeMap<(String, String), u64> = BTreeMap::new();
    for c in &loaded.children {
        *rollup
            .entry((c.instance.workflow.clone(), c.instance.stage.clone()))
            .or_default() += 1;
    }
    html! {
        section aria-labelledby="children-h" {
            h2 #children-h { (lang.t("下级", "Children")) " (" (loaded.children.len()) ")" }
            @if loaded.children.is_empty() {
                p.none { (lang.t("没有下级实例。", "No child instance.")) }
            } @else {
                table {
                    caption { (lang.t("按阶段汇总", "By stage")) }
                    thead { tr { (th(lang.t("流程", "Workflow"))) (th(lang.t("阶段", "Stage"))) (th(lang.t("数量", "Count"))) } }
                    tbody {
                        @for ((workflow, stage), n) in &rollup {
                            tr { td { (workflow) } td { a href={ "/instances?parent=" (layout::encode(&loaded.snapshot.instance.id)) "&workflow=" (layout::encode(workflow)) "&stage=" (layout::encode(stage)) } { (stage) } } td.num { (n) } }
                        }
                    }
                }
                ul.children {
                    @for c in &loaded.children {
                        li { a href={ "/instances/" (layout::encode(&c.instance.id)) } { (c.instance.id) } " · "
                            (stage_label(&state.engine, lang, &c.instance.workflow, c.instance.version, &c.instance.stage)) }
                    }
                }
            }
        }
    }
}

fn history(lang: Lang, events: &[StoredEvent]) -> Markup {
    html! {
        section #history aria-labelledby="history-h" {
            h2 #history-h { (lang.t("历史", "History")) }
            ol.timeline {
                @for stored in events {
                    @let e = &stored.event;
                    li data-seq=(e.seq) {
                        div.head {
                            span.seq { "#" (e.seq) } " "
                            strong.event { (e.event) } " "
                            @if let Some(from) = &e.from { span.move { (from) " → " (e.to) } } @else { span.move { "→ " (e.to) } }
                            " · " time datetime=(e.at.to_string()) { (when(e.at)) }
                        }
                        div.who { (lang.t("执行人 ", "Actor ")) strong { (e.actor.id) } (lang.t("，角色 ", ", roles ")) (e.actor.roles.join(", ")) }
                        @if !e.payload.is_null() && e.payload != Value::Object(Map::new()) {
                            details { summary { (lang.t("载荷", "Payload")) } (json_block(&e.payload)) }
                        }
                        @if !e.effects.is_empty() {
                            ul.effects aria-label=(lang.t("效果", "Effects")) {
                                @for fx in &e.effects {
                                    li { code { (fx.op) " " (fx.var) @if let Some(k) = &fx.key { "[" (k) "]" } @if let Some(v) = &fx.value { " = " (json_inline(v)) } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Actions

/// One event the page offers: its fields, and why it is refused, if it is.
struct Action {
    event: String,
    label: String,
    fields: Vec<Field>,
    refused: Option<String>,
    note: Option<String>,
}

/// Every event of the workflow, tried against the instance as the user
/// with no payload: the engine's own transition function decides, so the
/// page shows the engine's refusal, not a guess at it. A refusal that a
/// payload could change (a missing field, or a guard over a workflow whose
/// event takes fields) leaves the form enabled, with a note.
fn actions(loaded: &Loaded, user: &User, lang: Lang) -> Vec<Action> {
    let definition = loaded.workflow.definition();
    let instance = &loaded.snapshot.instance;
    let actor = user.record.actor();
    let children = children_summary(&loaded.children);
    let mut events: Vec<&str> = definition
        .transitions
        .iter()
        .map(|t| t.event.as_str())
        .collect();
    let mut seen = std::collections::HashSet::new();
    events.retain(|e| seen.insert(*e));
    events
        .into_iter()
        .map(|event| {
            let fields = payload_fields(definition, event);
            let label = definition
                .transitions
                .iter()
                .find(|t| t.event == event)
                .map_or(event, |t| lang.label(t.label.as_ref(), event))
                .to_owned();
            let command = Command {
                event,
                actor: &actor,
                payload: &Value::Null,
                now: jiff::Timestamp::now(),
            };
            let (refused, note) =
                match loaded.workflow.fire(instance, &command, &children) {
                    Ok(_) => (None, None),
                    Err(Rejection::InvalidPayload { .. }) => (None, None),
                    Err(
                        r @ (Rejection::GuardFailed { .. } | Rejection::EvaluationFailed { .. }),
                    ) if !fields.is_empty() => (
                        None,
                        Some(format!(
                            "{}{}",
                            lang.t("不填时：", "Without a payload: "),
                            rejection_words(lang, definition, &r)
                        )),
                    ),
                    Err(r) => (Some(rejection_words(lang, definition, &r)), None),
                };
            // The transition function allows it, but the user's roles are
            // not granted here: the engine would refuse the fire.
            let refused = refused.or_else(|| {
                loaded
                    .not_granted
                    .as_ref()
                    .map(|e| command_words(lang, definition, e))
            });
            Action {
                event: event.to_owned(),
                label,
                fields,
                refused,
                note,
            }
        })
        .collect()
}

fn children_summary(children: &[Snapshot]) -> Value {
    if children.is_empty() {
        return Value::Null;
    }
    let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for c in children {
        *counts
            .entry((c.instance.workflow.as_str(), c.instance.stage.as_str()))
            .or_default() += 1;
    }
    strive_core::children_summary(counts.into_iter().map(|((w, s), n)| (w, s, n)))
}

/// The payload fields of every transition of `event`, each once.
fn payload_fields(definition: &Definition, event: &str) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    for t in definition.transitions.iter().filter(|t| t.event == event) {
        for f in &t.payload {
            if !fields.iter().any(|g| g.id == f.id) {
                fields.push(f.clone());
            }
        }
    }
    fields
}

/// A refusal in words, in the viewer's language.
pub(crate) fn rejection_words(
    lang: Lang,
    definition: &Definition,
    rejection: &Rejection,
) -> String {
    if lang == Lang::En {
        return rejection.to_string();
    }
    // Stages by their Chinese names, as the diagram shows them.
    let stage = |id: &str| {
        definition
            .stages
            .iter()
            .find(|s| s.id == id)
            .map_or(id, |s| lang.label(s.label.as_ref(), id))
            .to_owned()
    };
    let stages = |ids: &[String]| {
        ids.iter()
            .map(|id| stage(id))
            .collect::<Vec<_>>()
            .join("、")
    };
    match rejection {
        Rejection::UnknownEvent { event } => format!("流程没有事件「{event}」。"),
        Rejection::NotAllowedInStage {
            stage: current,
            allowed_from,
            ..
        } => format!(
            "阶段不对：当前阶段「{}」不能触发；可触发的阶段：{}。",
            stage(current),
            stages(allowed_from)
        ),
        Rejection::RoleNotAllowed { roles, allowed, .. } => format!(
            "角色不符：你的角色（{}）不能触发；允许的角色：{}。",
            roles.join("、"),
            allowed.join("、")
        ),
        Rejection::InvalidPayload { field, reason, .. } => {
            format!("载荷不符：字段「{field}」{reason}。")
        }
        Rejection::GuardFailed { failed, .. } => {
            let parts: Vec<String> = failed
                .iter()
                .map(|(t, part)| format!("转换「{t}」的条件 {part} 不成立"))
                .collect();
            format!("条件不满足：{}。", parts.join("；"))
        }
        Rejection::EvaluationFailed {
            transition,
            message,
        } => format!("转换「{transition}」无法求值：{message}。"),
        Rejection::Finished { stage } => {
            format!("实例已结束（终止阶段「{stage}」），不再接受事件。")
        }
        Rejection::Suspended { .. } => "实例已暂停，恢复后才接受事件。".to_owned(),
        Rejection::Ended { status } => {
            format!(
                "实例{}，不再接受任何操作。",
                status_label(Lang::Zh, *status)
            )
        }
        other => other.to_string(),
    }
}

/// A lifecycle status for people (issue #13): suspended, cancelled,
/// terminated.
fn status_label(lang: Lang, status: strive_store::Status) -> &'static str {
    match status {
        strive_store::Status::Running => lang.t("运行中", "Running"),
        strive_store::Status::Suspended => lang.t("已暂停", "Suspended"),
        strive_store::Status::Cancelled => lang.t("已取消", "Cancelled"),
        strive_store::Status::Terminated => lang.t("已终止", "Terminated"),
    }
}

fn action_forms(lang: Lang, user: &User, seq: u64, id: &str, actions: &[Action]) -> Markup {
    html! {
        div.actions {
            @for a in actions {
                @let disabled = a.refused.is_some();
                @let reason_id = format!("why-{}", a.event);
                form.action method="post" action={ "/instances/" (layout::encode(id)) "/fire" }
                    data-event=(a.event) data-allowed=(if disabled { "false" } else { "true" }) {
                    input type="hidden" name="csrf" value=(user.csrf);
                    input type="hidden" name="event" value=(a.event);
                    input type="hidden" name="expected_seq" value=(seq);
                    input type="hidden" name="command_id" value=(command_id());
                    fieldset disabled[disabled] aria-describedby=[disabled.then_some(reason_id.as_str())] {
                        legend { (a.label) " " code { (a.event) } }
                        @for f in &a.fields {
                            (field_input(lang, &a.event, f))
                        }
                        button type="submit" { (lang.t("触发", "Fire")) " " (a.event) }
                    }
                    @if let Some(why) = &a.refused {
                        p.why id=(reason_id) data-testid="reason" { (lang.t("不可用：", "Not available: ")) (why) }
                    }
                    @if let Some(note) = &a.note {
                        p.note { (note) }
                    }
                }
            }
        }
    }
}

/// A fresh command id for a form: a resubmitted form is the same command,
/// which the engine answers with its first outcome.
fn command_id() -> String {
    let mut bytes = [0u8; 12];
    let _ = getrandom::fill(&mut bytes);
    format!("console-{}", hex::encode(bytes))
}

fn field_input(lang: Lang, event: &str, f: &Field) -> Markup {
    let id = format!("{event}-{}", f.id);
    let name = format!("f.{}", f.id);
    let label = lang.label(f.label.as_ref(), &f.id);
    let spec = &f.spec;
    html! {
        div.field {
            label for=(id) { (label) @if f.required { " *" } " " span.id { (f.id) ": " (spec.ty.name()) } }
            @match (spec.ty, &spec.one_of) {
                (_, Some(options)) => {
                    select id=(id) name=(name) required[f.required] {
                        option value="" { "—" }
                        @for o in options { option value=(json_inline(o)) { (json_inline(o)) } }
                    }
                }
                (ValueType::Integer | ValueType::Number, None) => {
                    input id=(id) name=(name) type="number" required[f.required]
                        step=(if spec.ty == ValueType::Integer { "1" } else { "any" })
                        min=[spec.min] max=[spec.max];
                }
                (ValueType::Boolean, None) => {
                    select id=(id) name=(name) required[f.required] {
                        option value="" { "—" }
                        option value="true" { (lang.t("是", "yes")) }
                        option value="false" { (lang.t("否", "no")) }
                    }
                }
                (ValueType::String, None) if spec.max_length.is_some_and(|m| m <= 120) => {
                    input id=(id) name=(name) type="text" required[f.required] maxlength=[spec.max_length];
                }
                (ValueType::String, None) => {
                    textarea id=(id) name=(name) rows="2" required[f.required] {}
                }
                (ValueType::Timestamp, None) => {
                    input id=(id) name=(name) type="text" required[f.required] placeholder="2026-06-30T18:00:00+08:00";
                }
                _ => {
                    textarea id=(id) name=(name) rows="3" required[f.required] placeholder="JSON" {}
                }
            }
        }
    }
}

/// A value typed into a field, as JSON of the field's type.
fn field_value(f: &Field, text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("`{}`: {what}", f.id);
    match f.spec.ty {
        ValueType::String | ValueType::Timestamp => Ok(Value::String(text.to_owned())),
        ValueType::Integer => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| bad("not a whole number")),
        ValueType::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad("not a number")),
        ValueType::Boolean => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad("not yes or no")),
        },
        _ => serde_json::from_str(text).map_err(|e| bad(&format!("not JSON ({e})"))),
    }
}

/// `POST /instances/{id}/fire`: fires the form's event as the token's
/// actor, with the sequence the page showed as the expected one.
pub(crate) async fn fire(
    State(state): State<Shared>,
    viewer: Viewer,
    P(id): P<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Page {
    let get = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let user = viewer.check_csrf(get("csrf"))?.clone();
    let lang = viewer.lang;
    let event = get("event").to_owned();
    let expected_seq = get("expected_seq").parse::<u64>().ok();
    let command_id = Some(get("command_id").to_owned()).filter(|c| !c.is_empty());
    let workflow = state.engine.instance(&id).ok().flatten().and_then(|s| {
        state
            .engine
            .workflow(&s.instance.workflow, Some(s.instance.version))
    });
    let fields = workflow
        .as_ref()
        .map(|w| payload_fields(w.definition(), &event))
        .unwrap_or_default();
    let mut payload = Map::new();
    for f in &fields {
        let text = get(&format!("f.{}", f.id));
        if text.is_empty() {
            continue;
        }
        match field_value(f, text) {
            Ok(v) => {
                payload.insert(f.id.clone(), v);
            }
            Err(message) => {
                let notice = Notice {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    message: format!("{}{message}", lang.t("填写有误：", "A field is wrong: ")),
                };
                return render(&state, &viewer, id, None, Some(notice)).await;
            }
        }
    }
    let engine = state.engine.clone();
    let actor = user.record.actor();
    let target = id.clone();
    let result = tokio::task::spawn_blocking(move || {
        let options = CommandOptions {
            expected_seq,
            command_id,
            signature: None,
        };
        engine.fire(&target, &event, &actor, Value::Object(payload), options)
    })
    .await;
    match result {
        Ok(Ok(_)) => Ok(
            Redirect::to(&format!("/instances/{}#history", layout::encode(&id))).into_response(),
        ),
        Ok(Err(error)) => {
            let message = match &workflow {
                Some(w) => command_words(lang, w.definition(), &error),
                None => error.to_string(),
            };
            let problem = Problem::from(error);
            let status =
                StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            let notice = Notice { status, message };
            render(&state, &viewer, id, None, Some(notice)).await
        }
        Err(e) => Err(viewer.failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// An engine refusal of a command in words.
fn command_words(lang: Lang, definition: &Definition, error: &CommandError) -> String {
    let prefix = lang.t("引擎拒绝了这个操作：", "The engine refused: ");
    match error {
        CommandError::Rejected { reason, .. } => {
            format!("{prefix}{}", rejection_words(lang, definition, reason))
        }
        CommandError::NotGranted { missing } if lang == Lang::Zh => format!(
            "{prefix}未授权：{} 没有角色「{}」{}的授予；请管理员授予。",
            missing.actor,
            missing.role,
            missing
                .on
                .as_ref()
                .map_or_else(|| "（全部范围）".to_owned(), |on| format!("在「{on}」上")),
        ),
        CommandError::Conflict {
            expected, actual, ..
        } if lang == Lang::Zh => format!(
            "{prefix}页面显示的是序号 {expected}，实例已到序号 {actual}（别人刚刚操作过）：请看更新后的页面再决定。"
        ),
        other => format!("{prefix}{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(ty: &str) -> Field {
        serde_json::from_value(serde_json::json!({"id": "x", "type": ty})).expect("a field")
    }

    #[test]
    fn typed_text_becomes_the_fields_json() {
        assert_eq!(field_value(&field("integer"), "5"), Ok(Value::from(5)));
        assert!(field_value(&field("integer"), "5.5").is_err());
        assert_eq!(
            field_value(&field("boolean"), "true"),
            Ok(Value::Bool(true))
        );
        assert_eq!(field_value(&field("string"), "好"), Ok(Value::from("好")));
        assert_eq!(
            field_value(&field("list"), "[1]"),
            Ok(serde_json::json!([1]))
        );
        assert!(field_value(&field("map"), "{").is_err());
    }
}
