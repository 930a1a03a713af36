"""The architecture whiteboard (CONTRIBUTING.md) holds in the code: parse every import of the
production packages (top level and inside functions) and fail on a wrong-way arrow or a cycle.

- only orchestration/definitions.py, orchestration/defs/ and the CLI's launcher
  (orchestration/launcher.py, launcher_progress.py) import Dagster;
- ml/, expectations/ and demo/ never import orchestration;
- contracts/ imports nothing of the project;
- the Dagster wiring (orchestration/defs/) does not import the CLI (cli*, launcher*);
- no import cycle between modules.

KNOWN lists violations other work is removing, each with its owner; a known violation that is
gone fails too, so the list shrinks with the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestration", "ml", "expectations", "contracts", "demo")
LAUNCHER = ("orchestration.launcher", "orchestration.launcher_progress")
CLI_ROOMS = ("orchestration.cli", "orchestration.cli_run", *LAUNCHER)
DAGSTER_ROOMS = ("orchestration.definitions", "orchestration.defs", *LAUNCHER)

# (rule, importer, imported) -> owner. Remove an entry when its fix lands.
KNOWN: dict[tuple[str, str, str], str] = {}
# Cycles (as sorted module tuples) other work is removing.
KNOWN_CYCLES: dict[tuple[str, ...], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (PROJECT / package).rglob("*.py"):
            found[_module_name(path)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module `path` imports (absolute names; `from pkg import mod` names the module)."""
    names: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(
                f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules
            )
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def _in(module: str, rooms: tuple[str, ...] | str) -> bool:
    rooms = (rooms,) if isinstance(rooms, str) else rooms
    return any(module == room or module.startswith(room + ".") for room in rooms)


def _violations(graph: dict[str, set[str]]) -> set[tuple[str, str, str]]:
    found = set()
    for module, imported in graph.items():
        for name in imported:
            dagster = _in(name, "dagster") or name.startswith("dagster_")
            if dagster and not _in(module, DAGSTER_ROOMS):
                found.add(("dagster outside the wiring", module, name))
            if _in(module, ("ml", "expectations", "demo")) and _in(name, "orchestration"):
                found.add(("logic imports orchestration", module, name))
            if _in(module, "contracts") and _in(
                name, ("orchestration", "ml", "expectations", "demo")
            ):
                found.add(("contracts imports the project", module, name))
            if _in(module, "orchestration.defs") and _in(name, CLI_ROOMS):
                found.add(("wiring imports cli", module, name))
    return found


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _without_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges between modules; a package's `__init__` re-exporting its own modules is not a
    cycle (importing `pkg.mod` runs `pkg/__init__` by Python's design, not by choice)."""
    return {
        module: {n for n in imported if not (_in(module, n) or _in(n, module))}
        for module, imported in graph.items()
    }


def test_no_wrong_way_import() -> None:
    found = _violations(_graph())
    unexpected = sorted(found - KNOWN.keys())
    assert unexpected == [], "\n".join(" ".join(v) for v in unexpected)
    fixed = sorted(KNOWN.keys() - found)
    assert fixed == [], f"fixed, remove from KNOWN: {fixed}"


def test_no_import_cycle() -> None:
    cycles = set(_cycles(_without_packages(_graph())))
    unexpected = sorted(cycles - KNOWN_CYCLES.keys())
    assert unexpected == [], unexpected
    fixed = sorted(KNOWN_CYCLES.keys() - cycles)
    assert fixed == [], f"fixed, remove from KNOWN_CYCLES: {fixed}"


def test_the_checks_can_fail() -> None:
    """The rules and the cycle finder catch what they claim to (on a made-up graph)."""
    graph = {
        "ml.train": {"orchestration.settings", "dagster"},
        "contracts.marts": {"ml.train"},
        "orchestration.settings": {"contracts.marts"},
        "orchestration.defs.models": {"orchestration.cli", "dagster"},
        "orchestration.cli": set(),
    }
    rules = {rule for rule, _, _ in _violations(graph)}
    assert rules == {
        "dagster outside the wiring",
        "logic imports orchestration",
        "contracts imports the project",
        "wiring imports cli",
    }
    assert _cycles(graph) == [("contracts.marts", "ml.train", "orchestration.settings")]
