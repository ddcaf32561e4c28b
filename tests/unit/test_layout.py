"""The codebase's layout rules, checked on the source: file sizes, import floors, the demo room.

- models/ is pure logic: no Dagster, and none of connectors/, assets/ or pipelines/;
- connectors/ talk to external systems and never import assets/ or pipelines/;
- assets/ are thin and never import pipelines/;
- nothing outside pipelines/ imports it; inside, the Dagster wiring (pipelines/*.py) imports
  neither the CLI nor the desk, and the desk does not import the CLI or the wiring;
- no product file is over `MAX_LINES` lines;
- the daily path never loads the demo world (connectors/demo).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("models", "connectors", "assets", "pipelines")
MAX_LINES = 600
#: Generated Alembic revisions: not hand-written modules.
EXCLUDED = ("connectors/queue/migrations/versions/",)
#: Files over `MAX_LINES` that are being split right now. TEMPORARY: once each split has landed,
#: remove its entry (the test fails while an entry is stale) until the set is empty.
TEMPORARY_ALLOWED: frozenset[str] = frozenset()


def _product_files() -> list[Path]:
    files = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(EXCLUDED):
                files.append(path)
    return files


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, at any depth (function-level too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from pkg import sub` may import a submodule: count it as pkg.sub
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names if alias.name != "*")
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """``file:line imports module`` for every forbidden import (one per import statement)."""
    found: dict[tuple[str, int], str] = {}
    for path in files:
        for line, module in _imports(path):
            if any(_within(module, prefix) for prefix in forbidden):
                key = (_rel(path), line)
                found[key] = min(found.get(key, module), module, key=len)
    return [f"{name}:{line} imports {module}" for (name, line), module in sorted(found.items())]


def _layer(name: str) -> list[Path]:
    return [p for p in _product_files() if _rel(p).startswith(name + "/")]


# ------------------------------------------------------------------------------------ sizes


def test_no_product_file_is_over_the_line_limit():
    sizes = {_rel(p): len(p.read_text(encoding="utf-8").splitlines()) for p in _product_files()}
    over = sorted(f"{name} ({n} lines)" for name, n in sizes.items()
                  if n > MAX_LINES and name not in TEMPORARY_ALLOWED)
    assert not over, f"split these by job (at most {MAX_LINES} lines per file): {', '.join(over)}"


def test_temporary_line_limit_exceptions_are_still_needed():
    stale = sorted(name for name in TEMPORARY_ALLOWED
                   if not (ROOT / name).exists()
                   or len((ROOT / name).read_text(encoding="utf-8").splitlines()) <= MAX_LINES)
    assert not stale, f"remove from TEMPORARY_ALLOWED (split or gone): {', '.join(stale)}"


# ---------------------------------------------------------------------------------- imports


def test_models_are_pure():
    assert not _violations(_layer("models"), ("dagster", "connectors", "assets", "pipelines"))


def test_connectors_never_import_assets_or_pipelines():
    assert not _violations(_layer("connectors"), ("assets", "pipelines"))


def test_assets_never_import_pipelines():
    assert not _violations(_layer("assets"), ("pipelines",))


def test_the_dagster_wiring_imports_neither_the_cli_nor_the_desk():
    wiring = [p for p in _layer("pipelines") if p.parent == ROOT / "pipelines"]
    assert wiring
    assert not _violations(wiring, ("pipelines.cli", "pipelines.desk"))


def test_the_desk_imports_neither_the_cli_nor_the_dagster_wiring():
    desk = [p for p in _layer("pipelines") if _rel(p).startswith("pipelines/desk/")]
    wiring = tuple(_module(p) for p in _layer("pipelines") if p.parent == ROOT / "pipelines"
                   and p.name != "__init__.py")
    assert desk and wiring
    assert not _violations(desk, ("pipelines.cli", *wiring))


def test_the_import_scanner_sees_relative_and_nested_imports(tmp_path, monkeypatch):
    package = tmp_path / "models" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    module = package / "mod.py"
    module.write_text("from . import sibling\nfrom ..other import thing\n\ndef f():\n    import dagster\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert {m for _, m in _imports(module)} >= {"models.pkg", "models.pkg.sibling", "models.other", "dagster"}


# ------------------------------------------------------------------------------ daily path

#: The modules the daily scoring-and-routing run loads: source, feature, scoring, routing and
#: operations assets and the connectors and resources they use.
DAILY_PATH = (
    "assets.sources",
    "assets.quality",
    "assets.features",
    "assets.scoring",
    "assets.routing",
    "assets.operations",
    "connectors.warehouse",
    "connectors.sources",
    "connectors.queue.store",
    "connectors.writeback",
    "connectors.notify",
    "connectors.model_registry",
    "connectors.policy_source",
    "pipelines.resources",
)


def test_the_daily_path_never_loads_the_demo_world():
    code = (
        "import importlib, sys\n"
        f"for name in {DAILY_PATH!r}:\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m == 'connectors.demo' or m.startswith('connectors.demo.'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"the daily path loads the demo world: {result.stdout.split()}"
