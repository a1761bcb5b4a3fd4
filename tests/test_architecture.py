"""The package's shape, read from the code with ast (nothing imported): no import cycle (imports
inside functions count), no module over 300 lines, a docstring on every module, and a figures
package that imports neither JAX nor the code that runs models."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "icl_regression"
MAX_LINES = 300
FIGURES_MUST_NOT_IMPORT = ("jax", "flax", "orbax", "optax", "icl_regression.models",
                           "icl_regression.run", "icl_regression.train",
                           "icl_regression.evaluate", "icl_regression.probes",
                           "icl_regression.data.tasks")


def modules() -> dict[str, Path]:
    root = PACKAGE.parent
    return {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
            for p in sorted(PACKAGE.rglob("*.py"))}


def imported_names(name: str, path: Path) -> set[str]:
    """Every module name an import statement in the file mentions (also `from a import b`
    as a.b, in case b is a module)."""
    names = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def resolve(target: str) -> str | None:
        while target and target not in mods:
            target = target.rpartition(".")[0]
        return target or None

    return {name: {r for n in imported_names(name, path) if n.startswith("icl_regression")
                   and (r := resolve(n)) and r != name} for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, found, counter = {}, {}, [], [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_no_module_over_300_lines_and_each_has_a_docstring():
    long = {n: len(p.read_text().splitlines()) for n, p in modules().items()
            if len(p.read_text().splitlines()) > MAX_LINES}
    assert long == {}
    undocumented = [n for n, p in modules().items()
                    if p.stat().st_size and ast.get_docstring(ast.parse(p.read_text())) is None
                    and not n.endswith("__main__")]
    assert undocumented == []


def test_figures_import_no_jax_or_model_code():
    bad = [f"{name} -> {target}" for name, path in modules().items()
           if name.startswith("icl_regression.figures")
           for target in imported_names(name, path)
           if any(target == f or target.startswith(f + ".") for f in FIGURES_MUST_NOT_IMPORT)]
    assert bad == []
