"""No import cycle anywhere in HEAN's packages.

The import graph (grimp, import-linter's own graph builder) of every HEAN
package, production and development alike, must have no strongly connected
component of more than one module: no module reaches itself through its imports.
Imports under `if TYPE_CHECKING:` count too (a cycle that only the type checker
sees is still two modules that cannot be understood, or moved, one without the
other), and so do imports inside functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grimp
import pytest

PACKAGES = ("hean_contract", "hean_engine", "hean_operator", "hean_sim", "hean_sandbox")

# Cycles known today and being removed elsewhere: each with the issue that removes
# it. The branch that removes a cycle empties its entry (the test fails on an
# entry whose cycle is gone, so the list cannot go stale).
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative: no recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _describe(graph: grimp.ImportGraph, component: frozenset[str]) -> str:
    lines = []
    for importer in sorted(component):
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & component):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                lines.append(
                    f"  {importer}:{detail['line_number']}: {detail['line_contents'].strip()}"
                )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def import_graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False, cache_dir=None)


def test_finds_a_cycle_when_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "d"}, "e": set()}
    assert strongly_connected(graph) == [frozenset({"a", "b", "c"})]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle(import_graph: grimp.ImportGraph) -> None:
    graph = {m: import_graph.find_modules_directly_imported_by(m) for m in import_graph.modules}
    cycles = strongly_connected(graph)
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n\n".join(_describe(import_graph, c) for c in new)
    gone = [c for c in KNOWN_CYCLES if c not in cycles]
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_the_graph_covers_every_package(import_graph: grimp.ImportGraph) -> None:
    # A package missing from the graph would make the test above pass by looking at nothing.
    for package in PACKAGES:
        assert any(m.startswith(package + ".") for m in import_graph.modules), package
    assert "hean_sim.exchange.records" in import_graph.modules
