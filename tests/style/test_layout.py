"""The layout of bridge/ (../shared/STYLE.md): arrows point down, so no two
files include each other's headers in a loop, directly or through others;
and every file starts with a comment saying what it owns."""
import os
import pathlib
import re

BRIDGE = pathlib.Path(os.environ.get("WB_SOURCE_DIR") or
                      pathlib.Path(__file__).resolve().parents[2]) / "bridge"


def includes():
    graph = {}
    for f in sorted(BRIDGE.glob("*.[ch]")):
        for h in re.findall(r'^#include "([a-z_]+)\.h"', f.read_text(), re.M):
            if h != f.stem:
                graph.setdefault(f.stem, set()).add(h)
    return graph


def cycles(graph):
    found, state = [], {}

    def visit(n, path):
        state[n] = "open"
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                found.append(path[path.index(m):] + [m])
            elif m not in state:
                visit(m, path + [m])
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    return found


def test_no_include_loops():
    graph = includes()
    assert "ingest" in graph and "stats" in graph["admin"], graph  # the graph is read
    assert cycles(graph) == []


def test_a_loop_is_found():
    assert cycles({"admin": {"server"}, "server": {"ingest"}, "ingest": {"admin"}}) == \
        [["admin", "server", "ingest", "admin"]]


def test_every_file_says_what_it_owns():
    for f in sorted(BRIDGE.glob("*.[ch]")):
        first = f.read_text().lstrip()
        assert first.startswith(f"/* {f.name} - "), f.name
