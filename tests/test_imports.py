"""The package's import graph: the core never imports streamlit, no module imports in a
circle, and the page's sections in ui/ do not import one another (only ui/server.py)."""

import ast
import subprocess
import sys

from helpers import REPO

PACKAGE = REPO / "mlp_demo"


def test_the_package_never_imports_streamlit():
    code = ("import sys, mlp_demo.config, mlp_demo.data, mlp_demo.model, mlp_demo.train, "
            "mlp_demo.jobs, mlp_demo.checkpoints, mlp_demo.drawing, mlp_demo.plots, mlp_demo.limits, "
            "mlp_demo.store, mlp_demo.session, mlp_demo.links, mlp_demo.examples, "
            "mlp_demo.__main__; print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def module_name(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path) -> set[str]:
    """Every mlp_demo module a file imports, at the top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # from . import server
    return {m for m in found if m.startswith("mlp_demo")}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(path) if m in files and m != name}
            for name, path in files.items()}


def test_no_module_imports_in_a_circle():
    edges = graph()
    for package in [n for n in edges if n.count(".") == 0 or n == "mlp_demo.ui"]:
        edges[package] = set()  # a package's __init__ is not an edge back into its modules
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in edges[node]:
            assert state.get(nxt) != 1, " -> ".join(path + [nxt])
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2
    for node in edges:
        if node not in state:
            visit(node, [node])


def test_ui_sections_import_only_the_server_module():
    for name, targets in graph().items():
        if name.startswith("mlp_demo.ui."):
            others = {t for t in targets if t.startswith("mlp_demo.ui.")} - {"mlp_demo.ui.server"}
            assert not others, f"{name} imports {others}"


def test_the_import_checker_sees_imports_inside_functions():
    module = PACKAGE / "db.py"
    assert "mlp_demo.checkpoints" in imports(module)  # database_url() imports it when called
