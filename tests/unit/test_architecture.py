"""The layout holds: imports run only downwards through the layers of docs/architecture.md, with no cycles.

The layer table and the package import graph live in docs/architecture.md; this
file reads the table from there and checks the code against it, and fails when
the graph written there is stale. Refresh it with::

    python tests/unit/test_architecture.py --write
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "sparkimg_ml"
DOC = REPO / "docs" / "architecture.md"
GRAPH_START, GRAPH_END = "<!-- import-graph:start -->", "<!-- import-graph:end -->"
#: Modules of the pure core that may import no Spark and no pandas.
SPARK_FREE_EXCEPTIONS = {"sparkimg_ml.tensors.sql"}
SPARK_MODULES = ("pyspark", "pandas", "py4j")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (function-level imports included, TYPE_CHECKING not)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.add(target)
                # ``from . import png`` imports the module ``<package>.png``
                found.update(f"{target}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _internal_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {target for target in _imports(path) if target in modules and target != name}
    return graph


def _layers() -> list[tuple[str, list[str]]]:
    """(layer, module prefixes) from the table in docs/architecture.md, lowest layer first."""
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|", DOC.read_text(encoding="utf-8"), re.M)
    assert rows, "docs/architecture.md has no layer table"
    layers = []
    for _number, name, members in sorted(rows, key=lambda row: int(row[0])):
        prefixes = ["sparkimg_ml" if m == "`sparkimg_ml`" else "sparkimg_ml." + m.strip("` ")
                    for m in members.split(",")]
        layers.append((name, [p.replace("sparkimg_ml.sparkimg_ml", "sparkimg_ml") for p in prefixes]))
    return layers


def _layer_of(module: str, layers: list[tuple[str, list[str]]]) -> int:
    best, best_length = -1, -1
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def _package_graph() -> dict[str, set[str]]:
    """Folder-level graph: ``fetch -> image``, ``featurizer -> engine``, ..."""
    def unit(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else "sparkimg_ml"

    graph: dict[str, set[str]] = defaultdict(set)
    for source, targets in _internal_graph().items():
        graph[unit(source)].update(unit(t) for t in targets if unit(t) != unit(source))
    return graph


def render_graph() -> str:
    layers = _layers()
    graph = _package_graph()
    order = sorted(graph, key=lambda unit: (-_layer_of("sparkimg_ml." + unit if unit != "sparkimg_ml" else unit,
                                                        layers), unit))
    lines = ["```text"]
    for unit in order:
        targets = sorted(graph[unit])
        lines.append(f"{unit:<11} -> {', '.join(targets) if targets else '(nothing of the package)'}")
    lines.append("```")
    return "\n".join(lines)


def test_every_module_has_a_layer():
    layers = _layers()
    homeless = [module for module in _modules() if _layer_of(module, layers) < 0]
    assert not homeless, f"modules in no layer of docs/architecture.md: {homeless}"


def test_imports_never_run_up_a_layer():
    layers = _layers()
    upward = [
        f"{source} ({layers[_layer_of(source, layers)][0]}) imports {target} ({layers[_layer_of(target, layers)][0]})"
        for source, targets in _internal_graph().items() for target in targets
        if _layer_of(target, layers) > _layer_of(source, layers)
    ]
    assert not upward, "imports that run up a layer:\n" + "\n".join(upward)


def test_the_import_graph_has_no_cycle():
    graph = _internal_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                walk(target, trail + [target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    # A package imported by its own modules' __init__ re-exports is not a cycle of code: ignore
    # edges from a module to a package __init__ that only re-exports it.
    real = [cycle for cycle in cycles if not all(a.startswith(b + ".") or b.startswith(a + ".")
                                                  for a, b in zip(cycle, cycle[1:]))]
    assert not real, f"import cycles: {real}"


def test_the_pure_core_imports_no_spark_and_no_pandas():
    layers = _layers()
    core = dict(layers)["core"] + dict(layers)["foundation"]
    offenders = []
    for module, path in _modules().items():
        if module in SPARK_FREE_EXCEPTIONS or not any(module == p or module.startswith(p + ".") for p in core):
            continue
        bad = sorted(name for name in _imports(path) if name.split(".")[0] in SPARK_MODULES)
        if bad:
            offenders.append(f"{module}: {', '.join(bad)}")
    assert not offenders, "the pure core imports Spark or pandas:\n" + "\n".join(offenders)


def test_the_import_graph_in_the_docs_is_current():
    text = DOC.read_text(encoding="utf-8")
    written = text.split(GRAPH_START, 1)[1].split(GRAPH_END, 1)[0].strip()
    assert written == render_graph(), "docs/architecture.md's import graph is stale: python tests/unit/test_architecture.py --write"


def test_every_relative_import_names_a_module_of_the_package():
    # The graph above skips names that are not modules; a relative import that resolves to nothing
    # (``from ._version import ...`` in a module moved one folder down) would otherwise pass unseen
    # until the line runs.
    modules = _modules()
    broken = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if target not in modules:
                    broken.append(f"{module} line {node.lineno}: {'.' * node.level}{node.module or ''} -> {target}")
    assert not broken, "relative imports of no module:\n" + "\n".join(broken)


def test_stage_modules_stay_where_saved_stages_find_them():
    import sparkimg_ml

    for name in ("ImageUrlFeaturizer", "ImageEmbedder", "TensorReshaper"):
        assert getattr(sparkimg_ml, name).__module__ in (
            "sparkimg_ml.featurizer", "sparkimg_ml.embedder", "sparkimg_ml.reshaper")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(GRAPH_START, 1)
    tail = rest.split(GRAPH_END, 1)[1]
    DOC.write_text(f"{head}{GRAPH_START}\n{render_graph()}\n{GRAPH_END}{tail}", encoding="utf-8")
    print(f"wrote the import graph into {DOC}")
