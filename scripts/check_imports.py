#!/usr/bin/env python3
"""The import check: every import runs down the floors, and no modules import in a circle.

Reads the source (``ast``, nothing is imported or run) of the packages named in
:data:`FLOORS`. Two rules, both over every import statement, including those
inside functions and under ``if TYPE_CHECKING:`` (a lazy import is still an
arrow; hiding one in a function is how circles used to be dodged):

1. A package imports only packages on a lower floor (or its own package). A
   floor may hold several packages side by side; those never import each other
   unless :data:`ALLOWED` says so (an arrow that is part of the design).
2. No circle between modules, inside a package or across packages.

``scripts/check_imports.py`` exits 0 when both hold, 1 with one line per
broken rule otherwise; ``--root DIR`` checks another tree (the tests plant an
upward import and a circle in a copy to show the check fails). See
``docs/architecture.md``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

FLOORS: tuple[tuple[str, ...], ...] = (
    # top floor first: the composition root imports everything, nothing imports it
    ("shenava",),
    # the test PBX: a product of its own (shenava testpbx, the demo, the end-to-end tests)
    ("testpbx",),
    # the domain, from the packages that use most to those that use least
    ("recordings",),
    ("complaints",),
    ("agent_stats",),
    ("routing", "ivr"),
    # the agent model (who is signed in, in which state, since when): the lower
    # half of agent_stats, which routing picks agents from
    ("agent_stats.roster", "agent_stats.states", "agent_stats.ledger", "agent_stats.errors"),
    ("ami_bridge",),
    # the bottom floor: shared by every package, imports none of them
    ("shenava_base",),
)
"""Each entry is a package or a module (with everything under it); a module
belongs to its longest matching entry. Entries of different packages on one
floor stand side by side and never import each other."""

ALLOWED: frozenset[tuple[str, str]] = frozenset()
"""Arrows between entries of one floor (importer, imported), if the design needs one."""


def entry_of(module: str) -> tuple[str, int] | None:
    """The floor entry ``module`` belongs to, and that floor's number (0 is the top)."""
    best: tuple[str, int] | None = None
    for n, floor in enumerate(FLOORS):
        for entry in floor:
            if module == entry or module.startswith(entry + "."):
                if best is None or len(entry) > len(best[0]):
                    best = (entry, n)
    return best


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path) -> Iterator[Path]:
    for floor in FLOORS:
        for package in floor:
            base = root / package
            if base.is_dir():
                yield from sorted(base.rglob("*.py"))


def imports_of(root: Path, path: Path, known: set[str]) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for each project module ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    name = module_name(root, path)
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known_prefix(alias.name, known)
                if target:
                    yield node.lineno, target
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                base_parts = here[: len(here) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                target = full if full in known else _known_prefix(base, known)
                if target:
                    yield node.lineno, target


def _known_prefix(dotted: str, known: set[str]) -> str | None:
    parts = dotted.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def check(root: Path) -> list[str]:
    files = {module_name(root, p): p for p in source_files(root)}
    known = set(files)
    problems: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        mine = entry_of(module)
        for line, target in imports_of(root, path, known):
            if target == module:
                continue
            theirs = entry_of(target)
            where = f"{path.relative_to(root)}:{line}"
            if mine is not None and theirs is not None and not _same_room(mine, theirs):
                if theirs[1] < mine[1]:
                    problems.append(f"{where}: upward import {module} -> {target}")
                elif theirs[1] == mine[1] and (mine[0], theirs[0]) not in ALLOWED:
                    problems.append(f"{where}: sideways import {module} -> {target}")
            # a package's __init__ importing its own modules is not an arrow back
            if not (target.startswith(module + ".") and files[module].name == "__init__.py"):
                graph[module].add(target)
    problems = list(dict.fromkeys(problems))  # one line per import, not per name imported
    for cycle, members in circles(graph):
        problems.append(f"import circle: {' -> '.join(cycle)} (all {len(members)} modules in it: "
                        f"{', '.join(members)})")
    return problems


def _same_room(a: tuple[str, int], b: tuple[str, int]) -> bool:
    """One package on one floor (e.g. the agent model's modules) is one room."""
    return a[1] == b[1] and a[0].split(".")[0] == b[0].split(".")[0]


def circles(graph: dict[str, set[str]]) -> Iterable[tuple[list[str], list[str]]]:
    """Per strongly connected component larger than one module (Tarjan): one cycle
    through it, and all its modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[list[str], list[str]]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1:
                        found.append((_a_cycle(graph, set(component)), sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _a_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A readable cycle through the component's first module (breadth-first back to it)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(component)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    problems = check(args.root)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
