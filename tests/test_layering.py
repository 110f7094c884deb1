"""The shape of `ml/`, checked by parsing it (ast): layers, import cycles, module and function size.

Every import counts, top-level or inside a function (a function-level import hides a cycle from
Python, not from this test); imports under `if TYPE_CHECKING:` are type hints only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ml.config import REPO_ROOT

ML = REPO_ROOT / "ml"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
# The generator's name lists are data, not logic (issue 10 allows them to be long).
LONG_MODULES_ALLOWED = {"ml.data.names"}
LONG_FUNCTIONS_ALLOWED: set[str] = set()

SERVING = {"ml.serve", "ml.serve_guard", "ml.endpoint_contract"}
TRAINING = {"ml.train", "ml.word2vec", "ml.search", "ml.corpus", "ml.baseline_table", "ml.artefacts"}
METRICS = {"ml.evaluate", "ml.knn", "ml.shapes", "ml.rankers", "ml.baselines", "ml.parity"}
CLI = {"ml.cli", "ml.cli_serve"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ML.rglob("*.py"))}
# The generator package: every module of ml.data (presets, population, playlist rows, naming, writer).
GENERATOR = {name for name in MODULES if name == "ml.data" or name.startswith("ml.data.")}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str) -> set[str]:
    """Modules (ml.* and third-party top-level names) imported anywhere in module `name`."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    hints = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in hints:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from ml import warehouse` imports the module ml.warehouse
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    return found


def ml_imports(name: str) -> set[str]:
    out = set()
    for imported in imports_of(name):
        # `ml.deploy.check` -> itself; `ml.x.y` where only `ml.x` is a module -> `ml.x`
        while imported and imported not in MODULES and "." in imported:
            imported = imported.rpartition(".")[0]
        if imported in MODULES and imported != name and imported != "ml":
            out.add(imported)
    return out


GRAPH = {name: ml_imports(name) for name in MODULES}


def reachable(start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for nxt in GRAPH[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def test_the_parser_sees_function_level_imports() -> None:
    assert "ml.report.model_card" in GRAPH["ml.train"]  # imported inside card_step
    assert "ml.train" in GRAPH["ml.cli"]  # imported inside train_cmd


def test_no_import_cycle_in_ml() -> None:
    cycles = sorted(name for name in MODULES if name in reachable(name))
    assert cycles == [], f"modules on an import cycle: {cycles}"


@pytest.mark.parametrize("serving", sorted(SERVING))
def test_serving_never_imports_training_or_the_cli(serving: str) -> None:
    assert not reachable(serving) & (TRAINING | CLI)
    assert "gensim" not in {i.split(".")[0] for m in {serving, *reachable(serving)} for i in imports_of(m)}


@pytest.mark.parametrize("metrics", sorted(METRICS))
def test_metrics_never_import_training(metrics: str) -> None:
    assert not reachable(metrics) & TRAINING, f"{metrics} reaches {sorted(reachable(metrics) & TRAINING)}"


def test_core_never_imports_click_or_the_cli() -> None:
    offenders = {
        name
        for name in MODULES
        if name not in CLI and ("click" in {i.split(".")[0] for i in imports_of(name)} or GRAPH[name] & CLI)
    }
    assert offenders == set()


def test_the_generator_never_imports_the_warehouse() -> None:
    assert {"ml.data.generate", "ml.data.names"} <= GENERATOR
    for name in GENERATOR:
        assert "ml.warehouse" not in reachable(name)
        assert "duckdb" not in {i.split(".")[0] for i in imports_of(name)}, name


def test_only_the_warehouse_opens_a_duckdb_file() -> None:
    """`duckdb.connect(<path>)` appears in ml/warehouse.py only (the raw-file scan of the quality
    gate may open an in-memory database, `duckdb.connect()`, to read the CSV)."""
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "duckdb.connect"
                and (node.args or node.keywords)
                and name != "ml.warehouse"
            ):
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    for name, path in MODULES.items():
        text = path.read_text()
        if name not in LONG_MODULES_ALLOWED and len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"module {name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS_ALLOWED:
                    too_long.append(f"function {name}.{node.name}: {length} lines")
    assert too_long == []
