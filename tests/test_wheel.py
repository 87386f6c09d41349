"""The wheel works without the source tree (issue 22, item 19).

A user who installs ue the ordinary way (``pip wheel .``, then the wheel) has only what the wheel ships: every data
file a command reads at run time must be in it. This test builds the wheel from a copy of the project's files,
installs it with ``pip install --no-deps --target DIR`` (the dependencies, numpy, scipy and the rest, come from this
interpreter's environment), and runs the installed ``ue`` script from a folder outside the source tree with
``PYTHONPATH=DIR`` alone, after checking that every ue package is imported from DIR (not from the source tree or an
editable install). Then every registered experiment runs on the simulator with small budgets, and ``ue tasks path``
and ``ue report`` run too. About a minute on 2 cores; ``make test`` (and so ``.ci/run``) runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ue_cli", "ue_metrics", "ue_tasks", "ue_control")
# what setuptools needs to build the wheel (pyproject.toml's packages, package-dir and readme)
SOURCES = ("pyproject.toml", "README.md", "task_configs", *PACKAGES)

# small options for each registered experiment on the simulator (a new experiment must be added here)
SMALL: dict[str, list[str]] = {
    "utilities": ["--outcomes", "mini", "--budget", "120"],
    "transitivity": ["--outcomes", "mini", "--budget", "60"],
    "expected_utility": ["--outcomes", "mini", "--option", "lotteries=10", "--option", "bootstrap=0", "--budget", "300"],
    "expected_utility_implicit": [
        "--option",
        "events=5",
        "--option",
        "background=mini",
        "--option",
        "bootstrap=0",
        "--budget",
        "300",
    ],
    "instrumental_values": ["--option", "processes=4"],
    "utility_maximization": ["--option", "questions=4"],
    "political_values": ["--budget", "200", "--holdout-fraction", "0.01", "--option", "run_entities=none"],
    "exchange_rates": [
        "--option",
        "xs=India,China,Nigeria",
        "--option",
        "quantities=1,10,100",
        "--option",
        "money_points=4",
        "--option",
        "bootstrap=0",
        "--budget",
        "150",
    ],
    "time_discounting": ["--option", "delays=0,1,6,12", "--option", "bootstrap=0"],
    "power_seeking": ["--utilities", "{utilities}", "--outcomes", "mini", "--budget", "150"],
    "corrigibility": ["--outcomes", "mini", "--option", "n=20", "--budget", "150"],
    "representations": ["--utilities", "{utilities}"],
    "robustness": ["--budget", "30", "--option", "variants=paper,b_first,one_line", "--option", "bootstrap=20"],
}
# these read the `utilities` run above; the others make their own
AFTER_UTILITIES = ("power_seeking", "representations")


def _clean_env(target: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return {
        **env,
        "PYTHONPATH": str(target),
        "UE_CACHE_DIR": str(cache),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """(the installed ``ue`` script, its environment, a working folder outside the source tree)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(
            ROOT / name, src / name, **({"ignore": ignore} if (ROOT / name).is_dir() else {})
        )
    # --no-build-isolation: setuptools from this environment, so the build needs no network
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist")],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    )
    (wheel,) = (root / "dist").glob("ue-*.whl")
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    )
    work = root / "work"
    work.mkdir()
    env = _clean_env(target, root / "cache")
    # every ue package is the wheel's, not the source tree's or the editable install's
    probe = (
        "import json, "
        + ", ".join(PACKAGES)
        + "; print(json.dumps({m: __import__(m).__file__ for m in "
        + repr(list(PACKAGES))
        + "}))"
    )
    got = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=work, check=True)
    for module, file in json.loads(got.stdout).items():
        assert Path(file).resolve().is_relative_to(target.resolve()), f"{module} was imported from {file}, not the wheel"
    script = target / "bin" / "ue"
    assert script.exists(), "the wheel installs no `ue` script"
    return script, env, work


def _ue(installed, *args: str) -> subprocess.CompletedProcess:
    script, env, work = installed
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, cwd=work, timeout=600)
    assert proc.returncode == 0, f"ue {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def test_the_wheel_ships_every_data_file_the_packages_hold(installed):
    """Every non-Python file under the packages in the source tree is in the installed wheel."""
    script, _, _ = installed
    target = script.parent.parent
    for package in PACKAGES:
        for f in (ROOT / package).rglob("*"):
            if f.is_file() and f.suffix not in (".py", ".pyc") and "__pycache__" not in f.parts:
                assert (target / f.relative_to(ROOT)).is_file(), f"{f.relative_to(ROOT)} is not in the wheel"
    for f in (ROOT / "task_configs").rglob("*"):
        if f.is_file():
            assert (target / "ue_tasks" / "task_configs" / f.relative_to(ROOT / "task_configs")).is_file(), (
                f"{f} is not in the wheel"
            )


def test_every_registered_experiment_runs_from_the_wheel(installed):
    from ue_tasks.experiments import all_experiments

    names = set(all_experiments())
    assert names == set(SMALL), f"give small simulator options for {sorted(names ^ set(SMALL))} in SMALL"
    script, _, work = installed
    target = script.parent.parent

    tasks = _ue(installed, "tasks", "path").stdout.strip()
    assert Path(tasks).resolve().is_relative_to(target.resolve()) and any(Path(tasks).glob("*/*.yaml")), tasks

    runs = work / "runs"
    order = ["utilities", *sorted(names - {"utilities", *AFTER_UTILITIES}), *AFTER_UTILITIES]
    for name in order:
        args = [a.replace("{utilities}", str(runs / "utilities")) for a in SMALL[name]]
        _ue(
            installed,
            "run",
            name,
            "--harness",
            "simulate",
            "--model",
            "sim",
            "--out",
            str(runs / name),
            "--no-cache",
            "--no-figures",
            *args,
        )
        analysis = json.loads((runs / name / "analysis.json").read_text())
        assert analysis["headline"], f"{name}: no headline"

    _ue(installed, "report", str(runs / "utilities"), "--out", str(work / "report.html"))
    html = (work / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "utilities" in html
