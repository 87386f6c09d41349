"""Package layering, checked on the real import graph of every module (read statically, nothing imported):
ue_metrics < ue_tasks < ue_control < ue_cli, imports only pointing down, no import cycle between modules; and
ue_metrics (and `ue fit`) work without torch or a harness being imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"ue_metrics": 0, "ue_tasks": 1, "ue_control": 2, "ue_cli": 3}
HEAVY = ("torch", "transformers", "lm_eval", "inspect_ai", "accelerate", "datasets", "matplotlib", "scipy.stats")


def import_graph(root: Path, packages: dict[str, int]) -> dict[str, set[str]]:
    """``{module: {imported project module}}`` of every module under ``root``'s packages (any import statement,
    at module level or inside a function)."""
    modules: dict[str, Path] = {}
    for pkg in packages:
        for f in (root / pkg).rglob("*.py"):
            name = ".".join(f.relative_to(root).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = f
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, f in modules.items():
        is_pkg = f.name == "__init__.py"
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges[name].add(t)
    return edges


def violations(edges: dict[str, set[str]], packages: dict[str, int]) -> tuple[list[str], list[list[str]]]:
    """(imports from a lower layer to a higher one, cycles between modules that are not only a package's
    ``__init__`` importing its own children)."""

    def rank(m: str) -> int:
        return packages.get(m.split(".")[0], -1)

    upward = sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets if rank(b) > rank(a))
    package_inits = {m for m in edges if any(o.startswith(m + ".") for o in edges)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len([m for m in comp if m not in package_inits]) > 1:
                cycles.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return upward, cycles


def test_the_project_has_no_upward_import_and_no_cycle():
    upward, cycles = violations(import_graph(REPO, LAYERS), LAYERS)
    assert upward == [], f"imports from a lower layer to a higher one: {upward}"
    assert cycles == [], f"import cycles: {cycles}"


def test_the_check_fails_on_a_deliberate_upward_import_and_cycle(tmp_path):
    layers = {"low": 0, "high": 1}
    for pkg, files in {
        "low": {
            "__init__.py": "",
            "a.py": "from low import b\n",
            "b.py": "def f():\n    from low.a import x\n",
            "c.py": "def g():\n    import high.top\n",
        },
        "high": {"__init__.py": "", "top.py": "from low.c import g\n"},
    }.items():
        (tmp_path / pkg).mkdir()
        for name, text in files.items():
            (tmp_path / pkg / name).write_text(text)
    upward, cycles = violations(import_graph(tmp_path, layers), layers)
    assert upward == ["low.c -> high.top"]
    assert ["low.a", "low.b"] in cycles


def test_ue_metrics_and_the_cli_import_no_heavy_package():
    code = (
        "import sys, ue_metrics.records, ue_metrics.thurstonian, ue_metrics.coherence, ue_metrics.fitting, "
        "ue_metrics.simulate, ue_metrics.analyses, ue_cli.main, ue_tasks.harness.readers, ue_tasks.queries, ue_tasks.runner\n"
        "from ue_tasks.harness.readers import _load_adapters; _load_adapters()\n"
        "from ue_tasks import experiments; experiments.all_experiments()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


# Inside ue_tasks, the floors a module may import from (its own or lower; the most specific prefix names a module's
# floor). Foundations (outcomes, prompts, plans, model identity, the run folder) < runs another experiment reads <
# the experiment specs < their analysis < the harnesses < the elicitation engine < what runs a whole command (runner,
# leaderboard) < the demo and many-model runs.
TASK_LAYERS = {
    "ue_tasks": 0,  # the package itself and every foundation module not named below
    "ue_tasks.runs": 1,
    "ue_tasks.experiments": 2,
    "ue_tasks.analysis": 3,
    "ue_tasks.harness": 4,
    "ue_tasks.harness.readers": 0,
    "ue_tasks.harness.companion": 0,
    "ue_tasks.cost": 4,
    "ue_tasks.elicitation": 5,
    "ue_tasks.runner": 6,
    "ue_tasks.leaderboard": 6,
    "ue_tasks.demo": 7,
    "ue_tasks.multi_run": 7,
}


def task_floor(module: str) -> int:
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in TASK_LAYERS:
            return TASK_LAYERS[prefix]
    raise AssertionError(module)


def test_inside_ue_tasks_no_module_imports_one_above_it():
    edges = import_graph(REPO, {"ue_tasks": 1})
    # a package whose __init__ imports nothing is only a name on the way to its modules
    faces = {m for m in edges if any(o.startswith(m + ".") for o in edges) and not edges[m]}
    upward = sorted(
        f"{a} (floor {task_floor(a)}) -> {b} (floor {task_floor(b)})"
        for a, targets in edges.items()
        for b in targets
        if b.startswith("ue_tasks") and b not in faces and task_floor(b) > task_floor(a)
    )
    assert upward == [], f"imports inside ue_tasks that climb back up: {upward}"
