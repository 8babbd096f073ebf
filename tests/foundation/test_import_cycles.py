"""No import cycle among the project's modules.

The graph is read from the source with `ast` (nothing is imported): an edge for every
module-level `import` / `from ... import` of a project module, `if TYPE_CHECKING:` blocks left
out because they never run. Imports inside functions are left out too, since they are the
usual way to hide a cycle rather than remove it; `function_level=True` adds them, which is
how the issue's measurement ("a cycle closed by a function-level import") is taken.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "callcenter",
    "admin",
    "ivr",
    "cti",
    "ticketing",
    "recordings",
    "metrics",
    "config",
    "pages",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            modules[module_name(path)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, function_level: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported (class bodies, module-level `if`,
    `try` and `with` blocks included; function bodies only with `function_level`)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from (_imports(ast.Module(body=child.orelse, type_ignores=[]), function_level))
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            if function_level:
                yield from _imports(child, function_level)
        else:
            yield from _imports(child, function_level)


def import_graph(function_level: bool = False) -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree, function_level):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                # `import a.b.c` runs a, a.b and a.b.c; only the modules that exist count, and
                # not the importer's own packages: they are always initialised before it
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    candidate = ".".join(parts[:i])
                    if candidate in modules and not (name + ".").startswith(candidate + "."):
                        graph[name].add(candidate)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:  # node is the root of a component: pop it
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            on_stack.difference_update(component)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_projects_imports() -> None:
    graph = import_graph()
    # guards against a checker that finds nothing because it reads nothing
    assert "callcenter.errors" in graph["ticketing.state"]
    assert "callcenter.redis_keys" in graph["callcenter.context"]


def test_cycle_detection_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_the_projects_modules() -> None:
    found = cycles(import_graph())
    assert found == [], f"import cycles (module-level imports): {found}"


def test_no_cycle_is_hidden_behind_a_function_level_import() -> None:
    found = cycles(import_graph(function_level=True))
    assert found == [], f"import cycles (function-level imports included): {found}"


def test_product_code_never_imports_the_testkit() -> None:
    graph = import_graph(function_level=True)
    kit = "callcenter.testkit"
    users = {
        module: sorted(t for t in targets if t == kit or t.startswith(kit + "."))
        for module, targets in graph.items()
        if not (module == kit or module.startswith(kit + "."))
    }
    assert {m: t for m, t in users.items() if t} == {}


def test_the_testkit_needs_no_test_runner() -> None:
    for name, path in project_modules().items():
        if name.startswith("callcenter.testkit"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imported = {
                alias.name.split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.Import)
                for alias in node.names
            } | {
                (node.module or "").split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom)
            }
            assert not imported & {"pytest", "tests", "pjsua2"}, name


if __name__ == "__main__":  # the measurement: python tests/foundation/test_import_cycles.py
    for level in (False, True):
        result = cycles(import_graph(function_level=level))
        print(f"function-level imports {'in' if level else 'out'}: {len(result)} cycle(s)")
        for component in result:
            print("  ", " <-> ".join(component))
