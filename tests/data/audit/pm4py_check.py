"""Checks strive's XES and PNML exports with PM4Py (run by tests/audit.rs).

PM4Py is AGPL-3.0: it is run here as an external tool, in its own virtual
environment (.ci/setup-pm4py.sh), and is never linked with or shipped in
strive.

Usage: pm4py_check.py LOG.xes EVENTS WORKFLOW=MODEL.pnml...

Checks that the XES log loads, holds EVENTS events, none without a
timestamp; that each workflow's designed model replays that workflow's
traces with fitness 1.0 (token-based replay); and that a trace with an
event removed scores below 1.0. Prints one JSON line of figures last;
exits 1 naming the first check that fails.
"""

import json
import sys
import warnings

warnings.filterwarnings("ignore")

import pm4py  # noqa: E402


def fail(message):
    print(f"pm4py check failed: {message}", file=sys.stderr)
    sys.exit(1)


def main(xes, events, models):
    log = pm4py.read_xes(xes)
    if len(log) != events:
        fail(f"the XES log holds {len(log)} events, the store {events}")
    nulls = int(log["time:timestamp"].isna().sum())
    if nulls:
        fail(f"{nulls} events have no timestamp")
    figures = {"pm4py": pm4py.__version__, "events": len(log), "workflows": {}}
    forged = None
    for workflow, pnml in models:
        net, initial, final = pm4py.read_pnml(pnml)
        if not initial or not final:
            fail(f"{pnml} has no initial or no final marking")
        traces = log[log["case:strive:workflow"] == workflow]
        if traces.empty:
            fail(f"no trace of {workflow} in the log")
        fitness = pm4py.fitness_token_based_replay(traces, net, initial, final)
        figures["workflows"][workflow] = {
            "traces": int(traces["case:concept:name"].nunique()),
            "events": len(traces),
            "log_fitness": fitness["log_fitness"],
            "fitting_traces_percent": fitness["percentage_of_fitting_traces"],
        }
        if fitness["log_fitness"] != 1.0:
            fail(f"{workflow}: the designed model replays its traces with fitness {fitness}")
        if forged is None:
            # A trace the model does not allow: the longest trace with its
            # second event (the first transition after the start) removed.
            longest = traces["case:concept:name"].value_counts().idxmax()
            trace = traces[traces["case:concept:name"] == longest].copy()
            trace = trace.drop(trace.index[1])
            trace["case:concept:name"] = "forged"
            score = pm4py.fitness_token_based_replay(trace, net, initial, final)
            forged = {"workflow": workflow, "from": longest, "log_fitness": score["log_fitness"]}
            if score["log_fitness"] >= 1.0:
                fail(f"a trace with an event removed still fits {workflow}: {score}")
    figures["nonconforming"] = forged
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        fail(__doc__)
    main(
        sys.argv[1],
        int(sys.argv[2]),
        [tuple(arg.split("=", 1)) for arg in sys.argv[3:]],
    )
