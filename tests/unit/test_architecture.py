"""The package's shape, as the README's ARCHITECTURE section draws it.

Read from the source with `ast` (nothing is imported), so a new import that
breaks a layer or closes a cycle fails here with the modules that do it.
Imports under `if TYPE_CHECKING:` count too: a cycle a type checker needs is
still a cycle in the design.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# What each layer may import from replog (besides itself), bottom to top.
ALLOWED = {
    "core": set(),
    "storage": {"core"},
    "common": {"core", "storage"},
    "master": {"core", "storage", "common"},
    "secondary": {"core", "storage", "common"},
    "cli": {"common"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("replog", *parts))


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules `name` imports: replog modules resolved, others by top-level name."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # `from replog.core import limits` imports the module replog.core.limits.
            submodules = (f"{target}.{alias.name}" for alias in node.names)
            found.update(m for m in submodules if m in known)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges[name] = {m for m in imports_of(name, path, known) if m in known and m != name}
    return edges


def third_party_of(name: str, path: Path, known: set[str]) -> set[str]:
    return {
        m.split(".")[0]
        for m in imports_of(name, path, known)
        if not m.startswith("replog") and m.split(".")[0] not in sys.stdlib_module_names
    }


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_is_under_the_replog_package():
    assert (SRC / "__init__.py").exists()
    assert {layer(m) for m in modules()} - {None} == set(ALLOWED)


def test_no_import_cycles():
    edges = graph()
    # Tarjan's strongly connected components: any with two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # A package importing its own submodules (its __init__ re-exports) is no cycle
            # unless a submodule imports the package back, which the component shows.
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(name):
    edges = graph()
    crossing = {
        (src, dst)
        for src, targets in edges.items()
        if layer(src) == name
        for dst in targets
        if layer(dst) not in {name, None} | ALLOWED[name]
    }
    assert crossing == set()


def test_the_core_imports_only_the_standard_library():
    mods = modules()
    known = set(mods)
    outside = {
        (name, dep)
        for name, path in mods.items()
        if layer(name) == "core"
        for dep in third_party_of(name, path, known)
    }
    assert outside == set()
    # Nor anything that does I/O or reads a clock.
    forbidden = {"asyncio", "socket", "time", "os", "io", "http", "urllib", "threading", "random"}
    io_imports = {
        (name, dep)
        for name, path in mods.items()
        if layer(name) == "core"
        for dep in imports_of(name, path, known)
        if dep.split(".")[0] in forbidden
    }
    assert io_imports == set()


def test_the_product_never_imports_tests_tools_or_bench():
    mods = modules()
    known = set(mods)
    leaks = {
        (name, dep)
        for name, path in mods.items()
        for dep in imports_of(name, path, known)
        if dep.split(".")[0] in {"tests", "tools", "bench", "support"}
    }
    assert leaks == set()


def test_the_core_knows_no_http_status():
    """Statuses live in one table in the shell (replog.common.web): no 4xx/5xx in the core."""
    statuses = {
        (str(path.relative_to(SRC)), node.lineno)
        for name, path in modules().items()
        if layer(name) == "core"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and type(node.value) is int and 400 <= node.value < 600
    }
    assert statuses == set()
