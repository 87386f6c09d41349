"""Many models in one command: ``ue run EXPERIMENT --model A --model B …`` or ``--models FILE``.

Each model runs as its own ``ue run`` (a worker process: ``python -m ue_tasks.multi_run JOB.json``, which calls
``ue_tasks.runner.run_experiment``) into ``OUT/<name>/``, its output in ``OUT/logs/<name>.log``. Models are grouped
into *lanes* by what they would compete for: a served model by its endpoint's host and port, a hosted API by its
provider, every in-process model (``hf``, ``vllm`` …) in one ``local`` lane, each simulated responder in a lane of its
own. Lanes run concurrently (a thread each, at most ``parallel`` at once), the models of one lane one after another,
each within its own connection limit (``num_concurrent`` / ``max_connections`` in its model arguments).

``OUT/models.json`` records each model's configuration and how it ended. A rerun of the same command skips the
models that finished with the same configuration and resumes the others with the run folder's own resume (saved
answers are not asked again). A model that fails is reported in one sentence and leaves the others' results alone;
the command ends by writing the leaderboard of the finished models into ``OUT/`` (as ``ue leaderboard OUT/``).

A models file is JSON Lines, one model per line (blank lines and lines starting with ``#`` are skipped)::

    {"name": "smol", "harness": "lm-eval", "model": "local-chat-completions", "model_args": "model=smol,base_url=http://127.0.0.1:8000/v1/chat/completions"}
    {"name": "gpt-4o-mini", "harness": "inspect", "model": "openai/gpt-4o-mini", "model_args": {"max_connections": 20}}

``name`` (the folder under OUT and the model's name in the records and the leaderboard) and ``model`` are required;
``harness`` defaults to ``--harness``; ``model_args`` is a ``k=v,k=v`` string or an object. For ``--harness
simulate`` the model arguments may name the responder: ``responder=random``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json, write_json

SCHEMA = "ue.multi_run/1"
MANIFEST = "models.json"
FIELDS = ("name", "harness", "model", "model_args")
HARNESSES = ("lm-eval", "inspect", "simulate", "transformers")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Inspect providers that run the model on this machine (one at a time), beside ue_tasks.model_identity's hf
INSPECT_LOCAL = {"hf", "vllm", "sglang", "transformer_lens", "mockllm", "llama-cpp-python"}
# lm-eval model types that call a hosted API without a base_url of their own
LM_EVAL_API = {
    "openai-completions",
    "openai-chat-completions",
    "anthropic-completions",
    "anthropic-chat",
    "anthropic-chat-completions",
    "textsynth",
    "watsonx_llm",
}


@dataclass(frozen=True)
class ModelSpec:
    """One model of a many-model run. ``named``: the name was given (it becomes the records' model name)."""

    name: str
    harness: str
    model: str
    model_args: str = ""
    named: bool = False


def _args_text(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def read_models_file(path: str | Path, harness: str | None = None) -> list[ModelSpec]:
    """The models of a JSON Lines models file (see the module docstring); a bad line is refused in one sentence
    naming the file, the line and the field."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--models {path}: cannot be read ({exc}); give a JSON Lines file, one model per line") from None
    specs: list[ModelSpec] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}, line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{where}: not JSON ({exc.msg}); write one object per line, e.g. "
                '{"name": "a", "harness": "simulate", "model": "a"}'
            ) from None
        if not isinstance(obj, dict):
            raise UserError(f"{where}: not a JSON object; write one object per line with the fields {', '.join(FIELDS)}")
        for key in obj:
            if key not in FIELDS:
                raise UserError(f"{where}: unknown field {key!r} (the fields are {', '.join(FIELDS)})")
        for key in ("name", "model"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise UserError(f"{where}: field {key!r} is missing or not a text")
        name = obj["name"].strip()
        if not _NAME.match(name):
            raise UserError(
                f"{where}: field 'name' {name!r} is not a folder name (letters, digits, '.', '_', '-'; not "
                "starting with '.' or '-')"
            )
        if name in seen:
            raise UserError(f"{where}: field 'name' {name!r} is used on line {seen[name]} already; give each model its own name")
        seen[name] = number
        chosen = obj.get("harness", harness)
        if chosen not in HARNESSES:
            raise UserError(f"{where}: field 'harness' is {chosen!r}; use one of {', '.join(HARNESSES)} (or give --harness)")
        args = obj.get("model_args", "")
        if not isinstance(args, (str, dict)):
            raise UserError(f"{where}: field 'model_args' must be a k=v,k=v text or an object")
        specs.append(ModelSpec(name, chosen, obj["model"].strip(), _args_text(args), named=True))
    if not specs:
        raise UserError(f"--models {path}: holds no model; write one JSON object per line")
    return specs


def folder_name(text: str) -> str:
    """A model name as a folder name (anything but letters, digits, '.', '_' and '-' becomes '_')."""
    out = re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".-")
    return out or "model"


def _identity_name(harness: str, model: str, model_args: str) -> str:
    from ue_tasks.model_identity import from_inspect, from_lm_eval, parse_model_args

    if harness == "inspect":
        return from_inspect(model, parse_model_args(model_args, check=False), fingerprint=False).name
    if harness in ("lm-eval", "transformers"):
        return from_lm_eval(model, model_args, fingerprint=False).name
    return model


def specs_from_flags(models: Sequence[str], model_args: Sequence[str] | None, harness: str | None) -> list[ModelSpec]:
    """``--model A --model B`` with ``--model-args`` given once (shared) or once per model (in order)."""
    if not harness:
        raise UserError("several --model need --harness (lm-eval, inspect or simulate), or a --models file naming each one's")
    given = list(model_args or [])
    if len(given) > 1 and len(given) != len(models):
        raise UserError(
            f"{len(models)} --model and {len(given)} --model-args: give --model-args once (shared by every "
            "model) or once per --model, in the same order"
        )
    per = given if len(given) == len(models) else [given[0] if given else ""] * len(models)
    specs, seen = [], {}
    for model, args in zip(models, per):
        name = folder_name(_identity_name(harness, model, args))
        if name in seen:
            raise UserError(
                f"--model {seen[name]} and --model {model} would both be named {name!r} (one folder "
                f"OUT/{name}); name them in a --models file"
            )
        seen[name] = model
        specs.append(ModelSpec(name, harness, model, args))
    return specs


def lane(spec: ModelSpec) -> str:
    """What the model competes for (see the module docstring): ``endpoint:HOST:PORT``, ``api:PROVIDER``, ``local``
    or ``simulate:NAME``."""
    from ue_tasks.model_identity import inspect_base_url, parse_model_args

    if spec.harness == "simulate":
        return f"simulate:{spec.name}"
    args = parse_model_args(spec.model_args, check=False)
    if spec.harness == "inspect":
        provider, _, rest = spec.model.partition("/")
        endpoint = inspect_base_url(spec.model, args)
        if endpoint:
            return f"endpoint:{urlparse(endpoint).netloc or endpoint}"
        if provider in INSPECT_LOCAL:
            return "local"
        return f"api:{provider}/{rest.split('/', 1)[0]}" if provider == "openai-api" else f"api:{provider}"
    if args.get("base_url"):
        url = str(args["base_url"])
        return f"endpoint:{urlparse(url).netloc or url}"
    return f"api:{spec.model}" if spec.model in LM_EVAL_API else "local"


def model_config(base: Any, spec: ModelSpec) -> Any:
    """The run configuration of one model: the shared options with this model's harness, model and arguments."""
    changes: dict[str, Any] = {"harness": spec.harness, "model": spec.model, "model_args": spec.model_args}
    if spec.named:
        changes["model_name"] = spec.name
    if spec.harness == "simulate":
        from ue_tasks.model_identity import parse_model_args

        args = parse_model_args(spec.model_args, check=False)
        unknown = sorted(set(args) - {"responder"})
        if unknown:
            raise UserError(
                f"model {spec.name!r}: a simulated model takes only responder=NAME as its model arguments, not {unknown[0]!r}"
            )
        if args.get("responder"):
            changes["responder"] = args["responder"]
        changes["model_args"] = ""
    return replace(base, **changes)


def config_key(config: Any) -> str:
    return hashlib.sha256(json.dumps(asdict(config), sort_keys=True, default=str).encode()).hexdigest()[:16]


class Manifest:
    """``OUT/models.json``: each model's spec, configuration key and status, rewritten whole on every change."""

    def __init__(self, out: Path, experiment: str):
        self.path = out / MANIFEST
        self.lock = threading.Lock()
        old = (
            read_json(
                self.path,
                lambda exc: (
                    f"{self.path}: cannot be read ({exc}); remove it to start the models' "
                    "bookkeeping again (their run folders resume)"
                ),
            )
            if self.path.is_file()
            else None
        )
        if old is not None and (not isinstance(old, dict) or old.get("schema") != SCHEMA):
            raise UserError(f"{self.path}: not a {SCHEMA} file; give --out a folder of its own for the many-model run")
        if old and old.get("experiment") != experiment:
            raise UserError(
                f"{out} holds a many-model run of {old.get('experiment')!r}, not {experiment!r}; choose another --out"
            )
        self.data = old or {"schema": SCHEMA, "experiment": experiment, "models": {}}

    def get(self, model: str) -> dict:
        return dict(self.data["models"].get(model) or {})

    def set(self, key: str, /, **entry: Any) -> None:
        with self.lock:
            self.data["models"][key] = {**self.data["models"].get(key, {}), **entry}
            write_json(self.path, self.data)


def _failure(log_file: Path, code: int) -> str:
    """The worker's one-sentence error (``ue: error: …``), else the last line of its traceback."""
    try:
        lines = [ln.strip() for ln in log_file.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    for ln in reversed(lines):
        if ln.startswith("ue: error: "):
            return ln.removeprefix("ue: error: ")
    return f"exit {code}: {lines[-1][:300]}" if lines else f"exit {code} with no output"


def _run_one(
    spec: ModelSpec,
    config: Any,
    out: Path,
    manifest: Manifest,
    *,
    cache_dir: Any,
    figures: bool,
    log: Callable[[str], None],
    where: str,
) -> str:
    """One model in a worker process; returns its status (finished, skipped or failed)."""
    folder, key = out / spec.name, config_key(config)
    before = manifest.get(spec.name)
    if before.get("status") == "finished" and before.get("config_key") == key and (folder / "analysis.json").is_file():
        log(f"{spec.name}: finished earlier with the same configuration — skipped")
        return "skipped"
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    job = write_json(
        logs / f"{spec.name}.job.json",
        {
            "config": asdict(config),
            "out": str(folder),
            "figures": figures,
            "cache_dir": None if cache_dir is None else str(cache_dir),
        },
    )
    log_file = logs / f"{spec.name}.log"
    manifest.set(spec.name, **asdict(spec), lane=where, config_key=key, status="running", error=None)
    log(f"{spec.name}: started ({where}; output in {log_file})")
    started = time.perf_counter()
    with log_file.open("w", encoding="utf-8") as fh:
        code = subprocess.call(
            [sys.executable, "-m", "ue_tasks.multi_run", str(job)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TQDM_DISABLE": "1"},
        )
    wall = round(time.perf_counter() - started, 1)
    if code == 0 and (folder / "analysis.json").is_file():
        manifest.set(spec.name, status="finished", wall_s=wall, error=None)
        asked = next((ln for ln in reversed(log_file.read_text(encoding="utf-8").splitlines()) if "queries asked" in ln), "")
        log(f"{spec.name}: finished in {wall} s{f' ({asked.strip()})' if asked else ''}")
        return "finished"
    reason = _failure(log_file, code)
    manifest.set(spec.name, status="failed", wall_s=wall, error=reason)
    log(f"{spec.name}: failed after {wall} s — {reason} (its log: {log_file}; the other models go on)")
    return "failed"


def check(base: Any, specs: Sequence[ModelSpec], out: Path | None) -> list[Any]:
    """Every model's configuration, resolved and checked before anything is asked (one sentence naming the model)."""
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; give --out a folder path")
    if out is not None and (out / "config.json").is_file():
        raise UserError(f"{out} holds a single model's run (config.json); give the many-model run a folder of its own")
    configs = []
    for spec in specs:
        try:
            config = model_config(base, spec)
            resolved = config.resolve()
            if resolved.harness == "simulate" and resolved.responder:
                from ue_tasks import experiments

                responders = experiments.get(resolved.experiment).responders
                if resolved.responder not in responders:
                    raise UserError(
                        f"experiment {resolved.experiment!r} has no responder {resolved.responder!r}; use one of "
                        f"{', '.join(responders)}"
                    )
        except UserError as exc:
            raise UserError(f"model {spec.name!r}: {exc}") from None
        configs.append(config)
    return configs


def run_models(
    base: Any,
    specs: Sequence[ModelSpec],
    out: str | Path,
    *,
    cache_dir: Any = "default",
    figures: bool = True,
    parallel: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every model into ``out/<name>/`` (lanes concurrently, see the module docstring), then write the
    leaderboard of the finished ones into ``out``. Returns {"status": {name: status}, "failed": {name: reason},
    "leaderboard": the board or None}."""
    out = Path(out)
    configs = check(base, specs, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {out} ({exc.strerror or exc}); give --out a writable folder") from None
    manifest = Manifest(out, base.experiment)
    lanes: dict[str, list[tuple[ModelSpec, Any]]] = {}
    for spec, config in zip(specs, configs):
        lanes.setdefault(lane(spec), []).append((spec, config))
    log(
        f"{len(specs)} models in {len(lanes)} lane{'s' if len(lanes) != 1 else ''} "
        f"({', '.join(f'{k}: {len(v)}' for k, v in lanes.items())}); each lane's models one after another"
    )
    status: dict[str, str] = {}

    def run_lane(where: str, members: list[tuple[ModelSpec, Any]]) -> None:
        for spec, config in members:
            try:
                status[spec.name] = _run_one(
                    spec, config, out, manifest, cache_dir=cache_dir, figures=figures, log=log, where=where
                )
            except Exception as exc:  # noqa: BLE001 — a model's own failure must not stop the other models
                manifest.set(spec.name, status="failed", error=str(exc) or type(exc).__name__)
                log(f"{spec.name}: failed — {exc}")
                status[spec.name] = "failed"

    with ThreadPoolExecutor(max_workers=max(1, min(parallel or len(lanes), len(lanes)))) as pool:
        for future in [pool.submit(run_lane, k, v) for k, v in lanes.items()]:
            future.result()
    failed = {s.name: manifest.get(s.name).get("error") or "" for s in specs if status.get(s.name) == "failed"}
    done = [out / s.name for s in specs if status.get(s.name) in ("finished", "skipped")]
    board = None
    if done:
        from ue_tasks.leaderboard import build_leaderboard

        board = build_leaderboard(done, out, figures=figures, log=log)
    else:
        log("no model finished: no leaderboard written")
    return {"status": status, "failed": failed, "leaderboard": board}


def dry_run_models(base: Any, specs: Sequence[ModelSpec]) -> list[str]:
    """``--dry-run`` of every model: each one's lines, then the requests in all (nothing asked, nothing written)."""
    from ue_tasks.cost import dry_run, dry_run_lines

    lines, total = [], 0
    for spec, config in zip(specs, check(base, specs, None)):
        d = dry_run(config)
        total += d["requests"] + d["free_form_requests"]
        lines += [f"{spec.name} ({lane(spec)}):", *dry_run_lines(d)]
    lines.append(f"{len(specs)} models: {total:,} requests in all")
    return lines


def worker(job_path: str) -> int:
    """One model's run from its job file (the worker process): ``run_experiment``, one sentence on a refusal."""
    from ue_tasks.elicitation.config import RunConfig
    from ue_tasks.runner import run_experiment

    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    try:
        result = run_experiment(
            RunConfig(**job["config"]),
            job["out"],
            cache_dir=job["cache_dir"],
            figures=job["figures"],
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except UserError as exc:
        print(f"ue: error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"{result['experiment']}: {result.get('n_records')} records; wrote {job['out']}/analysis.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1]))
