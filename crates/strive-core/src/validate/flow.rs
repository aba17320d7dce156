//! The stage graph: initial and terminal stages (S007, S008, S009),
//! reachability (S011, S012), transitions that never fire (S013) and
//! unguarded cycles (W101).
//!
//! Nodes are the declared stages, plus one node standing for "any
//! non-terminal stage" when a `"*"` transition has a `to`: every
//! non-terminal stage has an edge to it, and it has an edge to each such
//! transition's target. Reachability and cycles are the same as with the
//! wildcard expanded, but the graph stays linear in the size of the
//! definition instead of stages × transitions.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, EdgeRef, Reversed};
use serde_json::Value;

use super::{Checker, Sources, list_ids};
use crate::definition::{StageKind, Transition};
use crate::diagnostic::Code;

pub(super) fn check(ck: &mut Checker<'_>) {
    let (initial, terminal) = kinds(ck);
    let dead = dead_guards(ck);
    let flow = Flow::build(ck, &BTreeMap::new());
    let reachable = match initial.as_slice() {
        [one] => Some(flow.reach(&[*one], false)),
        _ => None,
    };
    if let (Some(reachable), [one]) = (&reachable, initial.as_slice()) {
        unreachable(ck, reachable, *one);
    }
    // Whether a stage can finish is asked of the graph without the
    // transitions whose guards never hold: they are no way out. The other
    // checks keep them, so that one dead guard is reported once, by S013,
    // and not again as every stage it alone leads to.
    if !terminal.is_empty() {
        let finishes = Flow::build(ck, &dead).reach(&terminal, true);
        cannot_finish(ck, &finishes, &dead);
    }
    never_fires(ck, reachable.as_deref(), &dead);
    cycles(ck, &flow);
}

/// S007, S008, S009. Returns the initial stages and the terminal stages
/// (as indices of the first declaration of their ids).
fn kinds(ck: &mut Checker<'_>) -> (Vec<usize>, Vec<usize>) {
    let def = ck.def;
    let of_kind = |kind| {
        def.stages
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.kind == kind)
            .map(|(i, _)| i)
    };
    let initial: Vec<usize> = of_kind(StageKind::Initial).collect();
    let terminal: Vec<usize> = of_kind(StageKind::Terminal)
        .filter(|&i| ck.is_canonical(i))
        .collect();
    if initial.is_empty() {
        ck.report(
            Code::NoInitialStage,
            "/stages",
            "no stage is initial, so instances have nowhere to start; give the first \
             stage \"kind\": \"initial\"",
        );
    }
    for &index in initial.iter().skip(1) {
        let first = initial.first().and_then(|&i| def.stages.get(i));
        let first = first.map_or("", |s| s.id.as_str());
        let id = def.stages.get(index).map_or("", |s| s.id.as_str());
        ck.report(
            Code::SeveralInitialStages,
            &format!("/stages/{index}/kind"),
            format!(
                "stage `{id}` is initial too ({} stages are; `{first}` is the first); \
                 exactly one stage is initial: make this one \"normal\"",
                initial.len()
            ),
        );
    }
    if terminal.is_empty() {
        ck.report(
            Code::NoTerminalStage,
            "/stages",
            "no stage is terminal, so no instance can ever finish; give the final stages \
             (such as commended or closed) \"kind\": \"terminal\"",
        );
    }
    let initial = initial
        .iter()
        .filter_map(|&i| ck.def.stages.get(i))
        .filter_map(|s| ck.stages.get(s.id.as_str()).copied())
        .collect();
    (initial, terminal)
}

/// The stage graph. Node `i` is stage `i` (every declaration gets a node,
/// but only first declarations get edges); the optional last node is "any
/// non-terminal stage". Edge weights are transition indices, `None` for
/// the edges into the "any" node.
struct Flow {
    graph: DiGraph<Option<usize>, Option<usize>>,
}

impl Flow {
    /// The graph of every transition but the `dead` ones, whose guards
    /// can never hold: they lead nowhere.
    fn build(ck: &Checker<'_>, dead: &BTreeMap<usize, String>) -> Flow {
        let def = ck.def;
        let mut graph = DiGraph::with_capacity(def.stages.len() + 1, def.transitions.len());
        for index in 0..def.stages.len() {
            graph.add_node(Some(index));
        }
        let wildcard = def
            .transitions
            .iter()
            .any(|t| t.to.is_some() && t.from.is_any());
        let any = wildcard.then(|| graph.add_node(None));
        if let Some(any) = any {
            for index in 0..def.stages.len() {
                if ck.is_canonical(index) && !ck.is_terminal(index) {
                    graph.add_edge(NodeIndex::new(index), any, None);
                }
            }
        }
        for (k, transition) in def.transitions.iter().enumerate() {
            if dead.contains_key(&k) {
                continue;
            }
            let Some(&to) = transition.to.as_deref().and_then(|to| ck.stages.get(to)) else {
                continue;
            };
            let to = NodeIndex::new(to);
            match (ck.sources(transition), any) {
                (Sources::Any, Some(any)) => {
                    graph.add_edge(any, to, Some(k));
                }
                (Sources::Some(from), _) => {
                    for index in from {
                        graph.add_edge(NodeIndex::new(index), to, Some(k));
                    }
                }
                (Sources::Any, None) => {}
            }
        }
        Flow { graph }
    }

    /// Which nodes can be reached from `starts` (or, `backwards`, can reach
    /// one of them), by node index.
    fn reach(&self, starts: &[usize], backwards: bool) -> Vec<bool> {
        let mut seen = vec![false; self.graph.node_count()];
        let Some((&first, rest)) = starts.split_first() else {
            return seen;
        };
        let reversed = Reversed(&self.graph);
        let mut dfs = Dfs::new(&self.graph, NodeIndex::new(first));
        for start in std::iter::once(first).chain(rest.iter().copied()) {
            dfs.move_to(NodeIndex::new(start));
            loop {
                let next = if backwards {
                    dfs.next(reversed)
                } else {
                    dfs.next(&self.graph)
                };
                let Some(node) = next else { break };
                if let Some(slot) = seen.get_mut(node.index()) {
                    *slot = true;
                }
            }
        }
        seen
    }
}

/// S011 for each stage the initial stage cannot reach.
fn unreachable(ck: &mut Checker<'_>, reachable: &[bool], initial: usize) {
    let def = ck.def;
    let start = def.stages.get(initial).map_or("", |s| s.id.as_str());
    for (index, stage) in def.stages.iter().enumerate() {
        if ck.is_canonical(index) && !reachable.get(index).copied().unwrap_or(false) {
            ck.report(
                Code::UnreachableStage,
                &format!("/stages/{index}"),
                format!(
                    "stage `{}` cannot be reached from the initial stage `{start}`: no \
                     chain of transitions leads to it; add a transition with \"to\": \"{}\", \
                     or remove the stage",
                    stage.id, stage.id
                ),
            );
        }
    }
}

/// The transitions whose guards can never hold over the declared data
/// domains (a literal false guard, or `domains::never_holds`), with why.
fn dead_guards(ck: &Checker<'_>) -> BTreeMap<usize, String> {
    let mut dead = BTreeMap::new();
    for (i, transition) in ck.def.transitions.iter().enumerate() {
        let Some(guard) = &transition.guard else {
            continue;
        };
        let reason = if is_falsy_literal(guard) {
            Some(format!("the guard {guard} is always false"))
        } else {
            super::domains::never_holds(guard, ck.def, transition)
        };
        if let Some(reason) = reason {
            dead.insert(i, reason);
        }
    }
    dead
}

/// S012 for each non-terminal stage from which no terminal stage can be
/// reached, once the transitions whose guards never hold are taken out.
fn cannot_finish(ck: &mut Checker<'_>, finishes: &[bool], dead: &BTreeMap<usize, String>) {
    let def = ck.def;
    for (index, stage) in def.stages.iter().enumerate() {
        let stuck = !finishes.get(index).copied().unwrap_or(false);
        if stuck && ck.is_canonical(index) && !ck.is_terminal(index) {
            // The dead transitions out of this stage, if any, are why it
            // looked as if it could finish.
            let dead_exits: Vec<String> = dead
                .iter()
                .filter(|&(&k, _)| {
                    def.transitions.get(k).is_some_and(|t| match ck.sources(t) {
                        Sources::Any => true,
                        Sources::Some(from) => from.contains(&index),
                    })
                })
                .filter_map(|(&k, _)| def.transitions.get(k).map(|t| format!("`{}`", t.name())))
                .collect();
            let why = if dead_exits.is_empty() {
                String::new()
            } else {
                format!(
                    " (its way out through {} has a guard that can never hold)",
                    dead_exits.join(", ")
                )
            };
            ck.report(
                Code::CannotFinish,
                &format!("/stages/{index}"),
                format!(
                    "no terminal stage can be reached from stage `{}`{why}, so instances \
                     that get there never finish; add a transition from `{}` (or from a \
                     stage it leads to) towards a terminal stage, or fix the guard",
                    stage.id, stage.id
                ),
            );
        }
    }
}

/// Whether a transition has a guard that can be false. A literal `true`
/// is no guard.
fn is_guarded(transition: &Transition) -> bool {
    transition
        .guard
        .as_ref()
        .is_some_and(|guard| guard != &Value::Bool(true))
}

/// A literal JSON Logic treats as false.
fn is_falsy_literal(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(_) => false,
    }
}

/// The pairs of (role, stage) that earlier unguarded transitions for one
/// event and payload declaration take: first match wins, so a later
/// transition for the same event, payload and pair never fires.
///
/// The payload matters because the engine skips a transition whose payload
/// does not fit and tries the next: a later transition declaring other
/// fields can still fire on a payload only it accepts. Only identical
/// declarations are surely taken.
#[derive(Default)]
struct Taken<'a> {
    /// Roles an unguarded `"*"` transition takes in every stage, with the
    /// first such transition.
    everywhere: BTreeMap<&'a str, usize>,
    /// (role, stage) taken by an unguarded transition naming its stages.
    pairs: BTreeMap<(&'a str, usize), usize>,
    /// Per role, how many stages `pairs` takes: when it is every
    /// non-terminal stage, a later `"*"` transition is taken too.
    stages_per_role: BTreeMap<&'a str, usize>,
    /// Per role, the transitions that took its pairs, for messages.
    takers: BTreeMap<&'a str, BTreeSet<usize>>,
}

/// Bounds the (role, stage) pairs the shadowing check visits. Real
/// workflows use a few hundred; a hostile definition within the limits
/// could ask for billions, and the check is a lint, not a guarantee.
const SHADOW_BUDGET: usize = 1 << 20;

/// S013 for each transition that can never fire: a literal false guard,
/// only unreachable stages, or every (stage, role) taken by earlier
/// unguarded transitions for the same event. One diagnostic per transition,
/// for the first reason found.
fn never_fires(ck: &mut Checker<'_>, reachable: Option<&[bool]>, dead: &BTreeMap<usize, String>) {
    let def = ck.def;
    let non_terminal = (0..def.stages.len())
        .filter(|&i| ck.is_canonical(i) && !ck.is_terminal(i))
        .count();
    let mut taken: BTreeMap<(&str, String), Taken<'_>> = BTreeMap::new();
    // (role, stage) pairs visited so far, against SHADOW_BUDGET.
    let mut work = 0usize;
    for (i, transition) in def.transitions.iter().enumerate() {
        let base = format!("/transitions/{i}");
        if let Some(reason) = dead.get(&i) {
            ck.report(
                Code::NeverFires,
                &format!("{base}/guard"),
                format!(
                    "transition `{}` never fires: {reason}; write a condition its data can \
                     meet, or remove the transition",
                    transition.name()
                ),
            );
            continue;
        }
        let sources = ck.sources(transition);
        if let (Some(reachable), Sources::Some(from)) = (reachable, &sources)
            && !from.is_empty()
            && from
                .iter()
                .all(|&s| !reachable.get(s).copied().unwrap_or(false))
        {
            unreachable_from(ck, transition, from, &base);
            continue;
        }
        let roles: BTreeSet<&str> = transition.roles.iter().map(String::as_str).collect();
        let pairs = match &sources {
            Sources::Any => 1,
            Sources::Some(from) => from.len(),
        };
        work = work.saturating_add(roles.len().saturating_mul(pairs));
        // Skipping a transition only loses findings: what it would have
        // taken is not recorded, so no later transition is wrongly reported.
        if work > SHADOW_BUDGET {
            continue;
        }
        // Field is plain data: serialising it cannot fail, and equal
        // declarations give equal text.
        let payload = serde_json::to_string(&transition.payload).unwrap_or_default();
        let event = taken
            .entry((transition.event.as_str(), payload))
            .or_default();
        if let Some(by) = shadowed_by(event, &sources, &roles, non_terminal) {
            shadowed(ck, transition, &by, &base);
        } else if !is_guarded(transition) {
            take(event, i, &sources, &roles);
        }
    }
}

fn unreachable_from(ck: &mut Checker<'_>, transition: &Transition, from: &[usize], base: &str) {
    let stages = from
        .iter()
        .filter_map(|&s| ck.def.stages.get(s))
        .map(|s| s.id.as_str());
    ck.report(
        Code::NeverFires,
        &format!("{base}/from"),
        format!(
            "transition `{}` leaves only from {}, which cannot be reached, so it never \
             fires; make those stages reachable or remove the transition",
            transition.name(),
            list_ids(stages, 10)
        ),
    );
}

/// How many of the earlier transitions a "never fires" message names.
const NAMED: usize = 3;

/// The earlier transitions that together take every (stage, role) this one
/// allows (the first [`NAMED`] and one more, to say there are others), or
/// `None` when some pair is left for it.
fn shadowed_by(
    taken: &Taken<'_>,
    sources: &Sources,
    roles: &BTreeSet<&str>,
    non_terminal: usize,
) -> Option<BTreeSet<usize>> {
    if roles.is_empty() {
        return None;
    }
    let mut by = BTreeSet::new();
    for role in roles {
        if let Some(&k) = taken.everywhere.get(role) {
            by.insert(k);
            continue;
        }
        match sources {
            Sources::Any => {
                let all = taken.stages_per_role.get(role) == Some(&non_terminal);
                if !all || non_terminal == 0 {
                    return None;
                }
                let takers = taken.takers.get(role).into_iter().flatten();
                by.extend(takers.take(NAMED + 1).copied());
            }
            Sources::Some(from) => {
                if from.is_empty() {
                    return None;
                }
                for &stage in from {
                    by.insert(*taken.pairs.get(&(*role, stage))?);
                }
            }
        }
    }
    Some(by.into_iter().take(NAMED + 1).collect())
}

/// Records what unguarded transition `index` takes.
fn take<'a>(taken: &mut Taken<'a>, index: usize, sources: &Sources, roles: &BTreeSet<&'a str>) {
    for &role in roles {
        match sources {
            Sources::Any => {
                taken.everywhere.entry(role).or_insert(index);
            }
            Sources::Some(from) => {
                for &stage in from {
                    if let std::collections::btree_map::Entry::Vacant(slot) =
                        taken.pairs.entry((role, stage))
                    {
                        slot.insert(index);
                        *taken.stages_per_role.entry(role).or_default() += 1;
                        taken.takers.entry(role).or_default().insert(index);
                    }
                }
            }
        }
    }
}

fn shadowed(ck: &mut Checker<'_>, transition: &Transition, by: &BTreeSet<usize>, base: &str) {
    let mut earlier: Vec<String> = by.iter().map(|k| format!("/transitions/{k}")).collect();
    if earlier.len() > NAMED {
        earlier.truncate(NAMED);
        earlier.push("others".to_owned());
    }
    let earlier = list_ids(earlier.iter().map(String::as_str), NAMED + 1).replace('`', "");
    let (earlier, take, them) = if by.len() == 1 {
        (format!("transition {earlier}"), "takes", "it")
    } else {
        (format!("transitions {earlier}"), "take", "them")
    };
    ck.report(
        Code::NeverFires,
        base,
        format!(
            "transition `{}` never fires: for event `{}` with the same payload fields, the \
             earlier unguarded {earlier} already {take} every stage and role it allows, and \
             the first match wins; give {them} a guard, narrow {them} (`from`, `roles`), or \
             remove this one",
            transition.name(),
            transition.event,
        ),
    );
}

/// W101 for each cycle of stages none of whose transitions has a guard.
fn cycles(ck: &mut Checker<'_>, flow: &Flow) {
    let graph = &flow.graph;
    let components = kosaraju_scc(graph);
    let mut component_of = vec![usize::MAX; graph.node_count()];
    for (c, nodes) in components.iter().enumerate() {
        for node in nodes {
            if let Some(slot) = component_of.get_mut(node.index()) {
                *slot = c;
            }
        }
    }
    // Transitions inside each component, with their targets.
    let mut inside: Vec<Vec<(usize, usize)>> = vec![Vec::new(); components.len()];
    for edge in graph.edge_references() {
        let (from, to) = (edge.source().index(), edge.target().index());
        let component = component_of.get(from).copied();
        if component == component_of.get(to).copied()
            && let (Some(c), Some(k)) = (component, *edge.weight())
            && let Some(list) = inside.get_mut(c)
        {
            list.push((k, to));
        }
    }
    for (nodes, mut edges) in components.iter().zip(inside) {
        let mut stages: Vec<usize> = nodes
            .iter()
            .filter_map(|n| graph.node_weight(*n).copied().flatten())
            .collect();
        stages.sort_unstable();
        // One node and no inner edge is no cycle; one node with an inner
        // edge is a self-loop.
        if stages.is_empty() || (nodes.len() == 1 && edges.is_empty()) {
            continue;
        }
        let guarded = |k: &usize| ck.def.transitions.get(*k).is_some_and(is_guarded);
        if edges.iter().any(|(k, _)| guarded(k)) {
            continue;
        }
        edges.sort_unstable();
        unguarded_cycle(ck, &stages, &edges);
    }
}

fn unguarded_cycle(ck: &mut Checker<'_>, stages: &[usize], edges: &[(usize, usize)]) {
    let def = ck.def;
    // The loop is taken to close where it returns to its first-declared
    // stage, the one an author reads as "back to".
    let head = stages.first().copied();
    let closing = edges
        .iter()
        .find(|(_, to)| Some(*to) == head)
        .or(edges.first())
        .map(|(k, _)| *k);
    let (Some(k), Some(transition)) = (closing, closing.and_then(|k| def.transitions.get(k)))
    else {
        return;
    };
    let names = stages
        .iter()
        .filter_map(|&s| def.stages.get(s))
        .map(|s| s.id.as_str());
    let shape = if stages.len() == 1 {
        format!("stage {} leads back to itself", list_ids(names, 1))
    } else {
        format!("stages {} form a cycle", list_ids(names, 10))
    };
    ck.report(
        Code::UnguardedCycle,
        &format!("/transitions/{k}"),
        format!(
            "{shape} and no transition on the way has a guard, so an instance may go \
             round forever with nothing recorded deciding when it leaves; guard the \
             transition that closes the loop (`{}`), e.g. on a counter or an evaluation \
             result",
            transition.name()
        ),
    );
}
