"""The layout, proved from the source: imports flow one way and never in a circle.

    entry points (vidloc.cli, vidloc.api, vidloc.viewer, vidloc.evaluation, ...)
        -> producers | workers          (never each other)
            -> shared base (vidloc.settings, errors, logs, metrics, names, adapters, ...)
                -> contracts            (imports nothing of ours)
    devkit: dev tooling, may use the product; the product never imports it.

Every ``import`` in every module is read with ``ast``, including imports inside functions and
under ``TYPE_CHECKING``: a lazy import is still a dependency. A new module of ``vidloc`` must be
given a room below, which is the point: deciding where it belongs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "producers", "workers", "vidloc", "devkit")
PRODUCT = ("contracts", "producers", "workers", "vidloc")

# The shared base inside vidloc/: modules, and packages with everything under them.
BASE_MODULES = {
    "vidloc",
    "vidloc.settings",
    "vidloc.errors",
    "vidloc.logs",
    "vidloc.metrics",
    "vidloc.names",
    "vidloc.backoff",
    "vidloc.tenancy",
}
BASE_PACKAGES = ("vidloc.adapters",)
ENTRY_PACKAGES = (
    "vidloc.__main__",
    "vidloc.cli",
    "vidloc.api",
    "vidloc.viewer",
    "vidloc.evaluation",
    "vidloc.search",
    "vidloc.webhooks",
    "vidloc.client",
)

# room -> the rooms its modules may import
ALLOWED = {
    "contracts": {"contracts"},
    "base": {"contracts", "base"},
    "producers": {"contracts", "base", "producers"},
    "workers": {"contracts", "base", "workers"},
    "entry": {"contracts", "base", "producers", "workers", "entry"},
    "devkit": {"contracts", "base", "producers", "workers", "entry", "devkit"},
}


def _under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def room_of(module: str) -> str | None:
    top = module.split(".")[0]
    if top in ("contracts", "producers", "workers", "devkit"):
        return top
    if module in BASE_MODULES or _under(module, BASE_PACKAGES):
        return "base"
    if _under(module, ENTRY_PACKAGES):
        return "entry"
    return None


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    path: str
    line: int

    def __str__(self) -> str:
        rooms = f"{room_of(self.importer)} -> {room_of(self.imported)}"
        return f"{self.path}:{self.line} {self.importer} imports {self.imported} ({rooms})"


def module_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = module_files()


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path) -> Iterator[Edge]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    rel = str(path.relative_to(ROOT))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            # "from pkg import sub" imports the module pkg.sub when there is one
            subs = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES]
            names = [a.name for a in node.names if f"{source}.{a.name}" not in MODULES]
            targets = subs + ([source] if names else [])
        for target in targets:
            if target.split(".")[0] not in PACKAGES:
                continue  # stdlib or third party
            # "import a.b.c" of a name that is not a module: keep the longest module prefix
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            yield Edge(module, target, rel, node.lineno)


EDGES = [edge for module, path in MODULES.items() for edge in imports_of(module, path)]


def test_the_walk_sees_the_project() -> None:
    # guards against a walk that finds nothing and so proves nothing
    assert {"contracts", "workers.service.handler", "producers.submit", "vidloc.settings"} <= set(
        MODULES
    )
    assert any(e.importer == "workers.service.handler" and e.imported == "contracts" for e in EDGES)
    lazy = ast.parse("def f():\n    from workers import policy\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(lazy))


def test_every_product_module_has_a_room() -> None:
    homeless = [m for m in MODULES if m.split(".")[0] in PRODUCT and room_of(m) is None]
    assert homeless == [], (
        "give these modules a room in tests/unit/test_layers.py (shared base or entry point): "
        + ", ".join(homeless)
    )


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_imports_flow_one_way(room: str) -> None:
    upward = [
        str(e)
        for e in EDGES
        if room_of(e.importer) == room and room_of(e.imported) not in ALLOWED[room]
    ]
    allowed = ", ".join(sorted(ALLOWED[room]))
    assert upward == [], f"{room} may import only {allowed}:\n" + "\n".join(upward)


# The rooms inside workers/, lowest first: a room imports only the rooms before it (and itself).
# ``types`` is the vocabulary they share (``workers.types`` and the package's own front), and
# the slots their jobs share with span orders last (``workers.priority``).
SHARED_BY_ALL_ROOMS = ("types", "priority")
WORKER_ROOMS = (
    "types",
    "model",
    "frames",
    "localizers",
    "refinement",
    "pipeline",
    "live",
    "service",
)


def worker_room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "workers":
        return None
    if len(parts) == 1 or parts[1] in SHARED_BY_ALL_ROOMS:
        return "types"
    return parts[1] if parts[1] in WORKER_ROOMS else None


def test_every_worker_module_is_in_a_room() -> None:
    homeless = [m for m in MODULES if m.split(".")[0] == "workers" and worker_room(m) is None]
    assert homeless == [], "give these a room in WORKER_ROOMS: " + ", ".join(homeless)
    assert {worker_room(m) for m in MODULES if m.startswith("workers")} == set(WORKER_ROOMS)


def test_worker_rooms_import_only_the_rooms_below() -> None:
    order = {room: rank for rank, room in enumerate(WORKER_ROOMS)}
    upward = [
        str(e)
        for e in EDGES
        if (low := worker_room(e.importer)) is not None
        and (high := worker_room(e.imported)) is not None
        and order[high] > order[low]
    ]
    assert upward == [], "rooms import downward only:\n" + "\n".join(upward)


def test_the_product_never_imports_devkit() -> None:
    found = [
        str(e)
        for e in EDGES
        if e.importer.split(".")[0] in PRODUCT and e.imported.split(".")[0] == "devkit"
    ]
    assert found == [], "\n".join(found)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert sorted(map(sorted, strongly_connected(graph))) == [["a", "b", "c"], ["d"], ["e"]]


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in EDGES:
        if e.imported != e.importer:
            graph[e.importer].add(e.imported)
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    details = [
        " <-> ".join(cycle)
        + "\n    "
        + "\n    ".join(str(e) for e in EDGES if e.importer in cycle and e.imported in cycle)
        for cycle in cycles
    ]
    assert cycles == [], "import cycles:\n" + "\n".join(details)


# One adapter per external system: its client library is imported there and nowhere else.
ADAPTED = {"kafka": ("vidloc.adapters.kafka",), "minio": ("vidloc.adapters.object_store",)}


def third_party_imports(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text("utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


@pytest.mark.parametrize("library", sorted(ADAPTED))
def test_client_libraries_only_in_their_adapter(library: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for module, path in MODULES.items()
        if module.split(".")[0] in PRODUCT and not _under(module, ADAPTED[library])
        for name, line in third_party_imports(path)
        if name == library
    ]
    assert found == [], f"{library} imported outside {ADAPTED[library]}: " + ", ".join(found)
