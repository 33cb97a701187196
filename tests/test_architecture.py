"""Dependencies point one way (README, "Layout"), checked in clean interpreters.

Every module of ours is imported in a fresh process (forked from an interpreter that loaded only third-party modules
no check asks about for it: ``probe_tree``), and what it loaded is compared with the directions allowed below; pure
modules must load neither Flask nor SQLAlchemy; the import graph read from the source has no cycle between feature
packages nor between modules. The last test proves the checks can fail: it breaks a copy of the tree the way a
careless change would (a pure ranking module importing Flask, the dedup service importing ranking) and expects both to
be caught.
"""
from __future__ import annotations

import ast
import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

from app import ROOT

OURS = ("app", "manage", "core", "curator", "trainer", "diffusion", "accounts")
# Direct dependencies each unit may have on others of ours (a unit is a feature package, or a single module where
# the finer grain matters); anything a dependency itself loads is allowed too. app.py and manage.py assemble
# everything and may load anything.
ALLOWED = {
    "core": set(),
    "curator.imports": {"core"},
    "curator.gallery": {"core", "curator.imports"},
    "curator.dedup": {"core", "curator.imports"},
    "curator.ranking": {"core", "curator.imports", "curator.gallery", "curator.dedup"},
    "curator.merge": {"core", "curator.imports", "curator.dedup"},
    "curator.snapshots": {"core", "curator.imports", "curator.ranking", "diffusion.config"},
    "trainer": {"core", "curator.imports", "curator.snapshots", "diffusion.config", "diffusion.rundir"},
    "diffusion": {"core.files", "core.processes"},
    "accounts": {"core"},
}
# Modules allowed to touch the web framework or the database; every other module is pure logic. A feature with
# several pages or services may split them by suffix (trainer/sticker_views.py).
NOT_PURE = {"service", "views", "cli", "db", "models", "migrate", "web", "history", "auth"}
NOT_PURE_SUFFIXES = tuple(f"_{leaf}" for leaf in ("service", "views", "cli"))
FRAMEWORKS = ("flask", "flask_sqlalchemy", "flask_htmx", "flask_wtf", "sqlalchemy", "alembic", "werkzeug")

PROBE = r"""
import importlib, json, os, sys
names, preload = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in preload:  # loaded once here, so each fork need not load it again (and it does not count as loaded)
    importlib.import_module(name)
results = {}
for name in names:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a clean child: only what this module loads is new
        os.close(read)
        before = set(sys.modules)
        try:
            importlib.import_module(name)
            out = {"loaded": sorted(set(sys.modules) - before)}
        except BaseException as exc:
            out = {"error": repr(exc)}
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    results[name] = json.loads(b"".join(chunks))
print(json.dumps(results))
"""


def our_modules(root: Path = ROOT) -> list[str]:
    names = ["app", "manage"]
    for top in ("core", "curator", "trainer", "diffusion", "accounts"):
        for path in sorted((root / top).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def probe(names: list[str], root: Path = ROOT, preload: tuple[str, ...] = ()) -> dict[str, dict]:
    """{module: {"loaded": [modules it loaded]}} with each module imported in a fresh fork of a bare interpreter
    (bare but for ``preload``, third-party modules that then never count as loaded)."""
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(names), json.dumps(preload)], cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    errors = {n: r["error"] for n, r in results.items() if "error" in r}
    assert not errors, errors
    return {n: r["loaded"] for n, r in results.items()}


# third-party modules that load none of ours, that no check asks about, and that took most of the probe's time when
# each fork loaded them anew (43 s; a web framework or torch takes 0.5-1.5 s a module)
SCIENCE = ("numpy", "scipy.ndimage", "PIL.Image")


@functools.cache
def probe_tree() -> dict[str, list[str]]:
    """Every module of the real tree, probed once for all the checks below, each from an interpreter that loaded
    beforehand only what no check asks of it: torch for the diffusion modules that may use it (not for the
    run-directory reader the web process uses), the web frameworks for modules allowed them, and SCIENCE."""
    modules = our_modules()
    with_torch = [m for m in modules if m.startswith("diffusion.") and m != "diffusion.rundir"]
    pure = [m for m in modules if m not in with_torch and must_be_pure(m)]
    framed = [m for m in modules if m not in with_torch and not must_be_pure(m)]
    return {**probe(with_torch, preload=("torch", *SCIENCE)), **probe(pure, preload=SCIENCE),
            **probe(framed, preload=(*FRAMEWORKS, *SCIENCE))}


def unit_of(module: str) -> str | None:
    """The unit a module belongs to: a curator feature, a core or diffusion module, trainer, app, manage."""
    parts = module.split(".")
    if parts[0] not in OURS:
        return None
    if parts[0] in ("core", "curator", "diffusion") and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def allowed_for(unit: str) -> set[str]:
    """What a unit may load: itself and everything reachable from its entry in ALLOWED."""
    key = unit if unit in ALLOWED else unit.split(".")[0]
    seen, todo = {key}, [key]
    while todo:
        for dep in ALLOWED.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def permitted(other: str, allowed: set[str]) -> bool:
    """`other` is an allowed unit, inside one, or a package holding one (its __init__ loads with it)."""
    return any(other == p or other.startswith(p + ".") or p.startswith(other + ".") for p in allowed)


def direction_violations(loaded: dict[str, list[str]]) -> list[str]:
    bad = []
    for module, modules in loaded.items():
        unit = unit_of(module)
        if unit in ("app", "manage"):
            continue
        allowed = allowed_for(unit)
        for other in sorted({unit_of(m) for m in modules} - {None}):
            if not permitted(other, allowed):
                bad.append(f"{module} loads {other}")
    return bad


def must_be_pure(module: str) -> bool:
    """A module of pure logic: neither app.py, manage.py, a package's __init__ at the top, nor one of NOT_PURE."""
    leaf = module.rsplit(".", 1)[-1]
    return not (unit_of(module) in ("app", "manage") or leaf in NOT_PURE or leaf.endswith(NOT_PURE_SUFFIXES)
                or "." not in module)


def purity_violations(loaded: dict[str, list[str]]) -> list[str]:
    bad = []
    for module, modules in loaded.items():
        if not must_be_pure(module):
            continue
        frameworks = sorted({m.split(".")[0] for m in modules} & set(FRAMEWORKS))
        if frameworks:
            bad.append(f"pure module {module} loads {', '.join(frameworks)}")
    return bad


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> modules of ours it imports anywhere in its source (function-level imports included)."""
    known = set(our_modules(root))
    graph: dict[str, set[str]] = {}
    for name in known:
        rel = Path(*name.split("."))
        path = root / (str(rel) + ".py") if (root / (str(rel) + ".py")).exists() else root / rel / "__init__.py"
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one node (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        unit = unit_of(module)
        if unit in ("app", "manage"):
            continue
        units.setdefault(unit, set()).update(u for u in map(unit_of, targets) if u and u != unit
                                              and u not in ("app", "manage"))
    return units


# --- the checks on the real tree ------------------------------------------------------------------------------

def test_every_module_loads_only_what_its_direction_allows():
    assert direction_violations(probe_tree()) == []


def test_pure_modules_load_neither_flask_nor_sqlalchemy():
    assert purity_violations(probe_tree()) == []


def test_no_import_cycle_between_feature_packages_or_modules():
    graph = import_graph()
    assert cycles(package_graph(graph)) == []
    assert cycles(graph) == []


def test_diffusion_never_loads_flask_database_curator_or_trainer():
    for module, modules in probe_tree().items():
        if not module.startswith("diffusion"):
            continue
        tops = {m.split(".")[0] for m in modules}
        assert not tops & {"flask", "sqlalchemy", "flask_sqlalchemy", "curator", "trainer", "app"}, module


def test_web_app_never_loads_torch():
    """The web process (app factory, every curator and trainer module but the training command) stays light."""
    web = [m for m in our_modules() if m.startswith(("app", "core", "curator", "trainer")) and m != "trainer.cli"]
    for module, modules in probe_tree().items():
        if module not in web:
            continue
        assert not {m.split(".")[0] for m in modules} & {"torch", "torchvision"}, module


def test_run_directory_reader_is_stdlib_only():
    """The web process reads run directories through diffusion.rundir without loading torch."""
    loaded = probe_tree()["diffusion.rundir"]
    assert "torch" not in {m.split(".")[0] for m in loaded}


# --- the checks can fail --------------------------------------------------------------------------------------

def test_the_checks_catch_a_pure_module_importing_flask_and_the_dedup_service_importing_ranking(tmp_path):
    """Tried: a copy of the tree where curator/ranking/rating.py (pure maths) imports Flask and the dedup service
    imports the ranking service, the two mistakes the layout exists to prevent."""
    copy = tmp_path / "tree"
    for top in ("core", "curator", "trainer", "diffusion", "accounts"):
        shutil.copytree(ROOT / top, copy / top, ignore=shutil.ignore_patterns("templates", "__pycache__"))
    for name in ("app.py", "manage.py"):
        shutil.copy(ROOT / name, copy / name)
    rating = copy / "curator" / "ranking" / "rating.py"
    rating.write_text(rating.read_text().replace("from __future__ import annotations\n",
                                                 "from __future__ import annotations\nimport flask\n", 1))
    service = copy / "curator" / "dedup" / "service.py"
    service.write_text(service.read_text() + "\nfrom curator.ranking import service as _ranking  # noqa: E402\n")
    names = ["curator.ranking.rating", "curator.dedup.service"]
    loaded = probe(names, root=copy)
    assert any(flask.startswith("pure module curator.ranking.rating loads flask")
               for flask in purity_violations(loaded))
    assert "curator.dedup.service loads curator.ranking" in direction_violations(loaded)
    assert any({"curator.dedup", "curator.ranking"} <= set(c) for c in cycles(package_graph(import_graph(copy))))
