"""The package's import graph (issue 16): dependencies point one way, floor by floor, and no two
modules import each other, even through others. Only module-level imports count: an import
inside a function is a deliberate late edge (a heavy dependency loaded on first use), and an
``if TYPE_CHECKING:`` block is not run."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "veritag"

#: Each top-level module or package of veritag and its floor: a module may import its own package
#: and anything on a lower floor, never a higher one. ``truth`` (arrays in, arrays out) imports
#: nothing of ours but the stdlib-only lazy-export helper, so it sits just above the ground floor,
#: below even the schema, which reads its vocabulary (the arena outcomes).
FLOORS = {
    "errors": 0,
    "lazy": 0,
    "keys": 0,
    "checks": 0,
    "truth": 1,
    "limits": 2,
    "config": 2,
    "schema": 2,
    "labelers": 3,
    "store": 4,
    "resolve": 5,
    "io": 6,
    "review": 6,
    "automation": 7,
    "scale": 7,
    "arena": 7,
    "routing": 7,
    "report": 8,
    "status": 8,
    "jobs": 8,
    "quickstart": 9,
    "demo": 9,
    "server": 9,
    "cli": 9,
    "__main__": 10,
    "__init__": 0,
}


def _module_name(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> set[tuple[str, ...]]:
    """The veritag modules ``path`` imports at module level (relative or absolute)."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[tuple[str, ...]] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + tuple(node.module.split(".") if node.module else ())
            elif node.module and node.module.split(".")[0] == "veritag":
                target = tuple(node.module.split(".")[1:])
            else:
                continue
            names = [a.name for a in node.names]
            subs = {
                target + (n,)
                for n in names
                if (
                    PACKAGE.joinpath(*target, n + ".py").exists()
                    or PACKAGE.joinpath(*target, n).is_dir()
                )
            }
            out |= subs or {target}
        elif isinstance(node, ast.Import):
            out |= {
                tuple(a.name.split(".")[1:])
                for a in node.names
                if a.name.split(".")[0] == "veritag"
            }
    return {t for t in out if t != here}


def _graph() -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    return {
        _module_name(p): _imports(p) for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts
    }


def test_every_top_level_module_has_a_floor() -> None:
    tops = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
    }
    assert tops - {"__init__"} <= set(FLOORS), sorted(tops - set(FLOORS))


def test_imports_only_go_down() -> None:
    wrong = []
    for module, targets in _graph().items():
        top = module[0] if module else "__init__"
        for target in targets:
            to = target[0] if target else "__init__"
            if to != top and (FLOORS[to] >= FLOORS[top] or (top == "truth" and to != "lazy")):
                wrong.append(f"{'.'.join(module)} -> {'.'.join(target)}")
    assert not wrong, wrong


def test_no_import_cycle() -> None:
    graph = _graph()
    known = set(graph)

    def resolve(target: tuple[str, ...]) -> tuple[str, ...] | None:
        while target and target not in known:
            target = target[:-1]
        return target if target in known else None

    edges = defaultdict(set)
    for module, targets in graph.items():
        for t in targets:
            r = resolve(t)
            if (
                r is not None and r != module and r != module[: len(r)]
            ):  # a package's own __init__ is not an edge back
                edges[module].add(r)
    state: dict[tuple[str, ...], int] = {}
    cycles: list[str] = []

    def visit(node: tuple[str, ...], path: list[tuple[str, ...]]) -> None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(".".join(m) for m in [*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in list(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles
