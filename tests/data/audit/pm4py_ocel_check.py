"""Checks strive's OCEL 2.0 export with PM4Py (run by tests/ocel.rs).

PM4Py is AGPL-3.0: it is run here as an external tool, in its own virtual
environment (.ci/setup-pm4py.sh), and is never linked with or shipped in
strive.

Usage: pm4py_ocel_check.py LOG.json

Loads the log with pm4py.read_ocel2_json and discovers an object-centric
directly-follows graph (pm4py.discover_ocdfg) from it. Prints one JSON line
of figures last (events, objects, objects per type, relations per
qualifier, object-to-object relations, attribute changes, and the graph's
edges per object type) for the test to compare with the store; exits 1
naming the first check that fails.
"""

import json
import sys
import warnings

warnings.filterwarnings("ignore")

import pm4py  # noqa: E402


def fail(message):
    print(f"pm4py OCEL check failed: {message}", file=sys.stderr)
    sys.exit(1)


def main(path):
    ocel = pm4py.read_ocel2_json(path)
    if len(ocel.events) == 0:
        fail("no events were read")
    if ocel.events["ocel:timestamp"].isna().any():
        fail("an event has no timestamp")
    graph = pm4py.discover_ocdfg(ocel)
    edges = {
        kind: len(couples)
        for kind, couples in graph["edges"]["event_couples"].items()
    }
    if not any(edges.values()):
        fail("the directly-follows graph has no edges")
    figures = {
        "events": len(ocel.events),
        "objects": len(ocel.objects),
        "object_types": ocel.objects["ocel:type"].value_counts().to_dict(),
        "qualifiers": ocel.relations["ocel:qualifier"].value_counts().to_dict(),
        "o2o": len(ocel.o2o),
        "object_changes": len(ocel.object_changes),
        "ocdfg_edges": edges,
    }
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: pm4py_ocel_check.py LOG.json")
    main(sys.argv[1])
