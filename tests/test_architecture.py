"""The house rules of docs/architecture.md, checked on the source: file sizes, imports
between apps in one direction, and no import circle between modules."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("analysis", "generation", "studyplatform", "surveys")
# Which app may import which at module level (studyplatform: the project and its pure
# measures, which anything may use; generation's admin and services write surveys' articles).
ALLOWED = {
    "surveys": {"surveys", "studyplatform"},
    "generation": {"generation", "surveys", "studyplatform"},
    "analysis": {"analysis", "surveys", "studyplatform"},
    "studyplatform": {"studyplatform", "surveys", "analysis", "generation"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _module_level_imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports when it is imported: top-level statements,
    not those inside functions or under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    targets.add(child if child in MODULES else base)

    visit(tree.body)
    return {t for t in targets if t in MODULES}


GRAPH = {name: _module_level_imports(name, path) for name, path in MODULES.items()}


def test_no_app_file_is_over_700_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 700
    }
    assert long == {}


def test_imports_between_apps_run_one_way() -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if target.split(".")[0] not in ALLOWED[name.split(".")[0]]
    )
    assert wrong == []


def test_measures_are_standard_library_only() -> None:
    for name, targets in GRAPH.items():
        if name.startswith("studyplatform.measures"):
            assert all(t.startswith("studyplatform.measures") for t in targets), name


def test_no_import_circle_between_modules() -> None:
    """A module's own package importing it back (``__init__`` re-exporting its
    submodules) is how packages work, not a circle: the edge from a module to the
    packages above it is left out."""
    graph = {
        name: {t for t in targets if not name.startswith(t + ".")}
        for name, targets in GRAPH.items()
    }
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import circle: {' -> '.join(error.args[1])}")


def test_the_checker_sees_a_circle_and_a_wrong_way_import() -> None:
    """The checks above are not vacuous: the graph is the real one, and a circle in it
    would be found."""
    assert "surveys.models" in GRAPH["analysis.services"]
    graph = {"a": {"b"}, "b": {"a"}}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()
