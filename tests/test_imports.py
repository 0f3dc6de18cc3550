"""The house's two wings, as the import graph: the lecture's core (mlp_demo/) imports neither the
server wing (mlp_demo/server/) nor the page (mlp_demo/ui/); the server wing never imports the page;
bench/ never imports the page; the page's sections import no other section (only ui/server.py);
nothing imports in a circle. Imports inside functions count. Each rule is shown to catch a planted
violation, so none of these tests can pass by seeing nothing."""

import ast
import shutil
import subprocess
import sys

import pytest

from helpers import REPO

ENTRY_POINTS = {"mlp_demo.__main__"}  # the CLI, like app.py, may reach every wing


def module_name(path, root) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path, root) -> set[str]:
    """Every mlp_demo module a file imports, at the top or inside a function."""
    name = module_name(path, root)
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


def graph(root=REPO) -> dict[str, set[str]]:
    """Module -> the mlp_demo modules it imports, for mlp_demo/ and bench/ under root."""
    files = {module_name(p, root): p for folder in ("mlp_demo", "bench")
             for p in (root / folder).rglob("*.py")}
    known = set(files)
    return {name: {m for m in imports(path, root) if m in known and m != name}
            for name, path in files.items()}


def wing(module: str) -> str:
    if module.startswith("bench"):
        return "bench"
    for part in ("server", "ui"):
        if module == f"mlp_demo.{part}" or module.startswith(f"mlp_demo.{part}."):
            return part
    return "entry" if module in ENTRY_POINTS else "core"


FORBIDDEN = {"core": {"server", "ui"}, "server": {"ui"}, "bench": {"ui"}}


def layer_violations(edges) -> list[str]:
    found = []
    for name, targets in edges.items():
        for target in targets:
            if wing(target) in FORBIDDEN.get(wing(name), ()):
                found.append(f"{name} ({wing(name)}) imports {target} ({wing(target)})")
            if (name.startswith("mlp_demo.ui.") and target.startswith("mlp_demo.ui.")
                    and target != "mlp_demo.ui.server"):
                found.append(f"the page's section {name} imports the section {target}")
    return sorted(found)


def cycles(edges) -> list[str]:
    edges = {n: set(t) for n, t in edges.items()}
    for package in [n for n in edges if n in ("mlp_demo", "bench", "mlp_demo.ui", "mlp_demo.server")]:
        edges[package] = set()  # a package's __init__ is not an edge back into its modules
    state: dict[str, int] = {}
    found = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append(" -> ".join(path + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2
    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_the_wings_import_only_downhill():
    assert layer_violations(graph()) == []


def test_no_module_imports_in_a_circle():
    assert cycles(graph()) == []


def test_the_core_is_the_lecture_and_the_server_wing_holds_the_serving():
    edges = graph()
    core = {n for n in edges if wing(n) == "core" and n.count(".") == 1}
    assert {"mlp_demo.config", "mlp_demo.data", "mlp_demo.model", "mlp_demo.train",
            "mlp_demo.drawing", "mlp_demo.checkpoints", "mlp_demo.teach"} <= core
    assert not core & {f"mlp_demo.{m}" for m in ("session", "jobs", "classes", "db", "cluster")}
    assert {"mlp_demo.server.session", "mlp_demo.server.membership", "mlp_demo.server.jobs",
            "mlp_demo.server.settings", "mlp_demo.server.board"} <= set(edges)


@pytest.fixture()
def copy_of_the_house(tmp_path):
    for folder in ("mlp_demo", "bench"):
        shutil.copytree(REPO / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.js", "*.css", "*.html"))
    return tmp_path


def plant(root, path, line):
    """An import inside a function, appended to a file: the checker must see it."""
    with open(root / path, "a") as f:
        f.write(f"\n\ndef _planted():\n    {line}\n")


@pytest.mark.parametrize("path, line, caught", [
    ("mlp_demo/train.py", "from .server.session import Session", "mlp_demo.train (core) imports"),
    ("mlp_demo/model.py", "from mlp_demo.ui import server", "mlp_demo.model (core) imports"),
    ("mlp_demo/server/jobs.py", "from ..ui.training import training_section",
     "mlp_demo.server.jobs (server) imports mlp_demo.ui"),
    ("bench/board.py", "from mlp_demo.ui.board import board_page", "bench.board (bench) imports"),
    ("mlp_demo/ui/models.py", "from .board import board_page", "section mlp_demo.ui.models imports"),
])
def test_a_planted_import_against_the_layers_is_caught(copy_of_the_house, path, line, caught):
    assert layer_violations(graph(copy_of_the_house)) == []
    plant(copy_of_the_house, path, line)
    assert any(caught in v for v in layer_violations(graph(copy_of_the_house)))


def test_a_planted_cycle_is_caught(copy_of_the_house):
    assert cycles(graph(copy_of_the_house)) == []
    plant(copy_of_the_house, "mlp_demo/model.py", "from . import train")  # train imports model
    assert any("mlp_demo.model" in c and "mlp_demo.train" in c for c in cycles(graph(copy_of_the_house)))


def test_the_package_never_imports_streamlit():
    modules = [n for n in graph() if wing(n) in ("core", "server", "entry")
               and n not in ("mlp_demo.server.cluster",)]  # cluster needs Ray, tested apart
    code = f"import sys, {', '.join(modules)}; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def environment_readers(root=REPO) -> list[str]:
    """Modules of the package that touch os.environ or os.getenv."""
    found = []
    for path in (root / "mlp_demo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                found.append(module_name(path, root))
                break
    return sorted(found)


def test_every_environment_variable_is_read_in_one_module(copy_of_the_house):
    assert environment_readers() == ["mlp_demo.server.settings"]
    plant(copy_of_the_house, "mlp_demo/data.py", "import os; os.environ.get('MNIST_ROOT')")
    assert environment_readers(copy_of_the_house) == ["mlp_demo.data", "mlp_demo.server.settings"]
