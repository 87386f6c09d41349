"""``ue elicit``: the paper's active-learning elicitation (METHOD.md §2) run round by round through a harness.

Round 0 queries a random 2-regular starting graph; every later round fits the Thurstonian model (warm-started)
and picks the next pairs with a strategy (``ue_tasks.strategies``) until the training budget is spent. The holdout
pairs are queried up front (default, so every round reports a held-out estimate) or at the end, and are never
fitted. Everything lands in a run folder as it happens:

    RUN_DIR/config.json     the full configuration and seeds (a different configuration is refused)
    RUN_DIR/rounds.jsonl    the pairs chosen for each round, written before they are asked
    RUN_DIR/records.jsonl   ue.preference/1 records, appended as each batch of answers returns
    RUN_DIR/history.jsonl   per round: queries so far, held-out log loss and accuracy, fit time
    RUN_DIR/utilities.csv, RUN_DIR/metrics.json   the final fit

Re-running the same command continues where a run stopped and asks no query twice. Answers are also kept in a
cache keyed by (model, rendered prompt, mode, sampling parameters), shared by runs, so reruns and other
experiments reuse them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics import records as rec
from ue_metrics.coherence import accuracy, log_loss
from ue_metrics.errors import UserError
from ue_metrics.fitting import fit_records
from ue_metrics.records import aggregate
from ue_metrics.thurstonian import Thurstonian
from ue_tasks.elicitation import Query, run_id_for
from ue_tasks.outcomes import OutcomeSet, load_outcomes
from ue_tasks.plan import default_budget, make_plan
from ue_tasks.strategies import STRATEGIES, select_pairs

BATCH = 256  # queries per harness call; records are appended after each batch


@dataclass
class ElicitConfig:
    harness: str
    model: str
    outcomes: str
    mode: str = "logprob"
    strategy: str = "paper"
    budget: int | None = None
    round_size: int = 500
    initial_degree: int = 2
    holdout_fraction: float = 0.05
    holdout_first: bool = True
    samples: int = 10
    template: str = "default"
    seed: int = 0
    pseudolabels: bool = False
    pseudolabel_threshold: float = 0.95
    pseudolabel_weight: float = 1.0
    model_args: str = ""
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.harness not in BACKENDS:
            raise UserError(f"unknown harness {self.harness!r}; use one of {', '.join(BACKENDS)}")
        if self.mode not in ("logprob", "sample"):
            raise UserError(f"--mode must be logprob or sample, got {self.mode!r}")
        if self.strategy not in STRATEGIES:
            raise UserError(f"unknown strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}")
        if self.round_size < 1:
            raise UserError(f"--round-size must be at least 1, got {self.round_size}")
        if self.budget is not None and self.budget < 1:
            raise UserError(f"--budget must be at least 1, got {self.budget}")
        if self.mode == "sample" and self.samples < 1:
            raise UserError(f"--samples must be at least 1 in sample mode, got {self.samples}")


# ----------------------------------------------------------------------------------------------------------
# answers in label space: what the model said about "Option A" vs "Option B", independent of outcome ids


@dataclass(frozen=True)
class Answer:
    p_first: float | None = None  # logprob: P(label A) renormalised over the two labels
    label_mass: float | None = None
    n_first: int = 0  # sample: answers choosing Option A / Option B / unparseable
    n_second: int = 0
    n_unparsed: int = 0

    def record(self, query: Query, *, mode: str, model: str, harness: str, task: str, run_id: str, round: int) -> dict:
        a_first = query.shown_first == "a"
        if mode == "logprob":
            p_a = self.p_first if a_first else 1.0 - self.p_first
            return query.record(mode=mode, model=model, harness=harness, task=task, run_id=run_id, round=round,
                                p_a=float(p_a), label_mass=self.label_mass)  # fmt: skip
        n_a, n_b = (self.n_first, self.n_second) if a_first else (self.n_second, self.n_first)
        return query.record(mode=mode, model=model, harness=harness, task=task, run_id=run_id, round=round,
                            n_a=n_a, n_b=n_b, n_unparsed=self.n_unparsed)  # fmt: skip

    @classmethod
    def from_record(cls, r: dict) -> Answer:
        a_first = r["shown_first"] == "a"
        if r["mode"] == "logprob":
            return cls(p_first=r["p_a"] if a_first else 1.0 - r["p_a"], label_mass=r["label_mass"])
        first, second = (r["n_a"], r["n_b"]) if a_first else (r["n_b"], r["n_a"])
        return cls(n_first=first, n_second=second, n_unparsed=r["n_unparsed"])


class Backend:
    """Answers a batch of queries. ``key_parts`` identifies the model and sampling for the answer cache."""

    name = "backend"

    def key_parts(self) -> list[Any]:
        raise NotImplementedError

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        raise NotImplementedError


class SimulateBackend(Backend):
    """A known Thurstonian responder (true utilities drawn from the seed) — for comparing strategies without a
    model. Each query's answer depends only on the seed and the prompt, never on batching or order."""

    name = "simulate"

    def __init__(self, outcomes: OutcomeSet, mode: str, samples: int, seed: int):
        from ue_metrics.simulate import true_utilities

        rng = np.random.default_rng([seed, 7919])
        mu, var = true_utilities(len(outcomes), rng)
        self.mu = dict(zip(outcomes.ids, mu))
        self.var = dict(zip(outcomes.ids, var))
        self.mode, self.samples, self.seed = mode, samples, seed

    def key_parts(self) -> list[Any]:
        return ["simulate", self.seed, self.mode, self.samples]

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        from scipy.special import ndtr

        out = []
        for q in queries:
            first, second = (q.a_id, q.b_id) if q.shown_first == "a" else (q.b_id, q.a_id)
            p = float(ndtr((self.mu[first] - self.mu[second]) / math.sqrt(self.var[first] + self.var[second])))
            if self.mode == "logprob":
                out.append(Answer(p_first=p, label_mass=1.0))
            else:
                digest = hashlib.sha256(q.prompt().encode()).digest()
                rng = np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little")])
                k = int(rng.binomial(self.samples, p))
                out.append(Answer(n_first=k, n_second=self.samples - k, n_unparsed=0))
        return out


BACKENDS: dict[str, Callable[..., Backend]] = {}


def _simulate_backend(config: ElicitConfig, outcomes: OutcomeSet) -> Backend:
    return SimulateBackend(outcomes, config.mode, config.samples, config.seed)


BACKENDS["simulate"] = _simulate_backend


def _lm_eval_backend(config: ElicitConfig, outcomes: OutcomeSet) -> Backend:
    from ue_tasks.harness_backends import LmEvalBackend

    return LmEvalBackend(config)


def _inspect_backend(config: ElicitConfig, outcomes: OutcomeSet) -> Backend:
    from ue_tasks.harness_backends import InspectBackend

    return InspectBackend(config)


BACKENDS["lm-eval"] = _lm_eval_backend
BACKENDS["inspect"] = _inspect_backend


# ----------------------------------------------------------------------------------------------------------
class AnswerCache:
    """Append-only JSONL of answers keyed by (backend key, rendered prompt, template, mode, sampling)."""

    def __init__(self, path: Path | None, key_parts: list[Any]):
        self.path = path
        self.prefix = json.dumps(key_parts, sort_keys=True)
        self.entries: dict[str, Answer] = {}
        if path is not None and path.exists():
            for line in _read_lines_tolerant(path):
                self.entries[line["key"]] = Answer(**line["answer"])

    def key(self, q: Query) -> str:
        payload = json.dumps([self.prefix, q.messages(), q.template], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def get(self, q: Query) -> Answer | None:
        return self.entries.get(self.key(q))

    def put(self, items: list[tuple[Query, Answer]]) -> None:
        if not items:
            return
        lines = []
        for q, a in items:
            k = self.key(q)
            self.entries[k] = a
            lines.append(json.dumps({"key": k, "answer": asdict(a)}))
        if self.path is not None:
            _append_lines(self.path, lines)


def _append_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())


def _read_lines_tolerant(path: Path) -> list[dict]:
    """JSONL lines. Lines are written whole with their newline, so bytes after the last newline can only be a
    killed writer's torn line: they are cut from the file (those answers are simply asked again)."""
    raw = path.read_bytes()
    complete, newline, torn = raw.rpartition(b"\n")
    if torn:
        with path.open("r+b") as fh:
            fh.truncate(len(complete) + len(newline))
    out = []
    for k, line in enumerate(complete.split(b"\n") if newline else [], 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"{path} line {k}: not valid JSON; the run folder is damaged — move it aside and rerun") from None
    return out


# ----------------------------------------------------------------------------------------------------------
@dataclass
class RunState:
    records: list[dict]
    rounds: list[dict]
    history: list[dict]


class Elicitation:
    """Drive one active-learning run into ``out`` (see the module docstring)."""

    def __init__(self, config: ElicitConfig, out: str | Path, cache_dir: str | Path | None = "default",
                 backend: Backend | None = None, progress: Any = None, log: Callable[[str], None] = print):  # fmt: skip
        config.validate()
        self.config = config
        self.out = Path(out)
        self.outcomes = load_outcomes(config.outcomes)
        self.n = len(self.outcomes)
        self.budget = default_budget(self.n) if config.budget is None else config.budget
        self.backend = backend or BACKENDS[config.harness](config, self.outcomes)
        if cache_dir == "default":
            from ue_tasks.model import cache_root

            cache_dir = cache_root() / "answers"
        cache_path = None
        if cache_dir is not None:
            cache_path = Path(cache_dir) / (hashlib.sha256(json.dumps(self.backend.key_parts()).encode()).hexdigest()[:16] + ".jsonl")
        self.cache = AnswerCache(cache_path, self.backend.key_parts() + [config.mode, config.samples])
        self.progress = progress
        self.log = log
        self.task = f"elicit_{self.outcomes.name}"
        self.run_id = run_id_for(config.harness, config.model, config.outcomes, config.seed, config.strategy, config.mode)
        self.index = {oid: k for k, oid in enumerate(self.outcomes.ids)}
        self.model_fit: Thurstonian | None = None
        self.queries_asked = 0
        self.cache_hits = 0

    # --- run folder ----------------------------------------------------------------------------------------
    def _config_dict(self) -> dict:
        d = asdict(self.config)
        d.update({"n_outcomes": self.n, "budget_pairs": self.budget, "outcome_source": self.outcomes.source, "schema": rec.SCHEMA})
        return d

    def _open_run(self) -> RunState:
        self.out.mkdir(parents=True, exist_ok=True)
        cfg_path = self.out / "config.json"
        mine = self._config_dict()
        if cfg_path.exists():
            theirs = json.loads(cfg_path.read_text())
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            if diff:
                shown = ", ".join(f"{k}: {theirs.get(k)!r} → {mine.get(k)!r}" for k in diff[:4])
                raise UserError(
                    f"{self.out} holds a run with another configuration ({shown}); resume it with the same options "
                    "or choose a new --out folder"
                )
        else:
            cfg_path.write_text(json.dumps(mine, indent=2) + "\n")
        def load(name):
            p = self.out / name
            return _read_lines_tolerant(p) if p.exists() else []
        records = load("records.jsonl")
        for k, r in enumerate(records, 1):
            rec.validate(r, where=f"{self.out / 'records.jsonl'} line {k}")
        return RunState(records=records, rounds=load("rounds.jsonl"), history=load("history.jsonl"))

    # --- asking -------------------------------------------------------------------------------------------
    def _queries_for(self, pairs: np.ndarray, split: str) -> list[Query]:
        items = self.outcomes.outcomes
        out = []
        for k, (a, b) in enumerate(pairs.tolist()):
            oa, ob = items[a], items[b]
            for shown in ("a", "b"):
                out.append(Query(pair=k, a_id=oa.id, b_id=ob.id, a_text=oa.text, b_text=ob.text, a_category=oa.category,
                                 b_category=ob.category, shown_first=shown, split=split, template=self.config.template,
                                 outcome_set=self.outcomes.name, seed=self.config.seed))  # fmt: skip
        return out

    def _ask(self, state: RunState, pairs: np.ndarray, split: str, round_no: int, label: str, keep_bar: bool = False):
        """Ask every (pair, ordering) not yet answered in the run; append records batch by batch. Returns the
        progress bar when ``keep_bar`` (the caller adds the fit's figures and closes it)."""
        done = {(r["a_id"], r["b_id"], r["shown_first"]) for r in state.records}
        todo = [q for q in self._queries_for(pairs, split) if (q.a_id, q.b_id, q.shown_first) not in done]
        bar = self.progress(total=len(todo), desc=label, unit="query") if self.progress else None
        if not todo:
            return bar if keep_bar else (bar.close() if bar else None)
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            cached = [(q, self.cache.get(q)) for q in batch]
            missing = [q for q, a in cached if a is None]
            fresh = dict(zip(missing, self.backend.answer(missing))) if missing else {}
            self.cache.put(list(fresh.items()))
            new = []
            for q, a in cached:
                answer = a if a is not None else fresh[q]
                new.append(answer.record(q, mode=self.config.mode, model=self.config.model, harness=self.config.harness,
                                         task=self.task, run_id=self.run_id, round=round_no))  # fmt: skip
            _append_lines(self.out / "records.jsonl", [json.dumps(r, ensure_ascii=False) for r in new])
            state.records.extend(new)
            self.queries_asked += len(missing)
            self.cache_hits += len(batch) - len(missing)
            if bar:
                bar.update(len(batch))
        if bar and not keep_bar:
            bar.close()
        return bar if keep_bar else None

    # --- fitting ------------------------------------------------------------------------------------------
    def _fit(self, state: RunState, upto: int) -> dict:
        """Warm-started fit on the training answers of rounds ≤ ``upto`` (a resumed run replays its rounds with
        exactly the answers each had, so the chain of warm starts — and every later choice — is the same as in
        an uninterrupted run)."""
        records = [r for r in state.records if r["split"] == "holdout" or r["round"] <= upto]
        train = [r for r in records if r["split"] == "train"]
        if not train:
            raise UserError("no training answers were recorded; check the model or backend")
        data = aggregate(records)
        idx = np.array([self.index[i] for i in data.ids])
        tr = data.train()
        if self.model_fit is None:
            self.model_fit = Thurstonian(warm_start=True, on_disconnected="per_component", seed=self.config.seed)
        started = time.perf_counter()
        self.model_fit.fit(np.column_stack([idx[tr.i], idx[tr.j]]), tr.y, tr.w, n_outcomes=self.n, ids=self.outcomes.ids)
        seconds = time.perf_counter() - started
        ho = data.holdout()
        est = {"fit_seconds": round(seconds, 4), "train_pairs": int(len(tr.y))}
        if len(ho.y):
            p = self.model_fit.predict_proba(np.column_stack([idx[ho.i], idx[ho.j]]))
            est.update({"holdout_log_loss": log_loss(p, ho.y), "holdout_accuracy": accuracy(p, ho.y), "holdout_pairs": int(len(ho.y))})
        return est

    # --- the protocol -------------------------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.config
        state = self._open_run()
        plan = make_plan(self.n, seed=cfg.seed, budget=min(self.budget, self.n * cfg.initial_degree // 2),
                         degree=cfg.initial_degree, holdout_fraction=cfg.holdout_fraction)  # fmt: skip
        holdout = plan.pairs[plan.split == "holdout"]
        if cfg.holdout_first and len(holdout):
            self._ask(state, holdout, "holdout", 0, "holdout")
        rounds_done = {r["round"]: r for r in state.rounds}
        round_no = 0
        while True:
            queried = np.array([[self.index[a], self.index[b]] for r in state.rounds if r["round"] < round_no
                                for a, b in r["pairs"]], dtype=np.int64).reshape(-1, 2)  # fmt: skip
            remaining = self.budget - len(queried)
            if round_no in rounds_done:
                pairs = np.array([[self.index[a], self.index[b]] for a, b in rounds_done[round_no]["pairs"]], dtype=np.int64).reshape(-1, 2)
            else:
                if remaining <= 0:
                    break
                if round_no == 0:
                    pairs = plan.pairs[plan.split == "train"][:remaining]
                else:
                    rng = np.random.default_rng([cfg.seed, round_no])
                    fit = self.model_fit
                    pairs = select_pairs(cfg.strategy, self.n, min(cfg.round_size, remaining), queried, holdout, rng,
                                         fit.utilities_, fit.sigma2_, fit.stderr_)  # fmt: skip
                    if len(pairs) == 0:
                        break
                entry = {"round": round_no, "pairs": [[self.outcomes.ids[a], self.outcomes.ids[b]] for a, b in pairs.tolist()]}
                _append_lines(self.out / "rounds.jsonl", [json.dumps(entry)])
                state.rounds.append(entry)
                rounds_done[round_no] = entry
            bar = self._ask(state, pairs, "train", round_no, f"round {round_no}", keep_bar=True)
            est = self._fit(state, upto=round_no)
            if bar:
                bar.set_postfix({k: round(v, 4) for k, v in est.items() if k in ("holdout_log_loss", "holdout_accuracy", "fit_seconds")})
                bar.close()
            hist = {"round": round_no, "queries": sum(1 for r in state.records if r["split"] == "train" and r["round"] <= round_no), **est}
            if not any(h["round"] == round_no for h in state.history):
                _append_lines(self.out / "history.jsonl", [json.dumps(hist)])
                state.history.append(hist)
            msg = f"round {round_no}: {hist['train_pairs']} training pairs"
            if "holdout_log_loss" in est:
                msg += f", held-out log loss {est['holdout_log_loss']:.4f}, accuracy {est['holdout_accuracy']:.3f}"
            self.log(msg + f", fit {est['fit_seconds']:.2f} s")
            round_no += 1
        if not cfg.holdout_first and len(holdout):
            self._ask(state, holdout, "holdout", round_no, "holdout")
        return self._finish(state)

    def _finish(self, state: RunState) -> dict:
        # a budget too small to connect the comparison graph still gives a fit, per connected component, with a
        # warning: refusing here would leave a finished (and paid-for) run without utilities
        result = fit_records(state.records, seed=self.config.seed, per_component=True)
        if result.metrics["n_components"] > 1:
            self.log(f"warning: the comparison graph has {result.metrics['n_components']} components (budget too small to "
                     "connect it); utilities are comparable only within a component (column 'component' of utilities.csv)")
        if self.config.pseudolabels:
            result.metrics["pseudolabels"] = self._pseudolabel_refit(result)
        result.metrics.update({"elicit": self._config_dict(), "queries_asked_this_session": self.queries_asked,
                               "cache_hits_this_session": self.cache_hits, "rounds": len(state.rounds)})  # fmt: skip
        result.write(self.out)
        return result.metrics

    def _pseudolabel_refit(self, result) -> dict:
        """The paper's pseudolabels (METHOD.md §2.6): confident predictions on unqueried training pairs added as hard
        labels, with a configurable weight; utilities are refitted, metrics stay on real answers (§7.2)."""
        data, model = result.data, result.model
        n = data.n_outcomes
        used = {(min(a, b), max(a, b)) for a, b in zip(data.i.tolist(), data.j.tolist())}
        a, b = np.triu_indices(n, 1)
        keep = np.array([(x, y) not in used for x, y in zip(a.tolist(), b.tolist())], dtype=bool)
        a, b = a[keep], b[keep]
        p = model.predict_proba(np.column_stack([a, b]))
        t = self.config.pseudolabel_threshold
        sure = (p >= t) | (p <= 1 - t)
        tr = data.train()
        X = np.concatenate([np.column_stack([tr.i, tr.j]), np.column_stack([a[sure], b[sure]])])
        y = np.concatenate([tr.y, (p[sure] >= t).astype(float)])
        w = np.concatenate([tr.w, np.full(int(sure.sum()), self.config.pseudolabel_weight)])
        model.fit(X, y, w, n_outcomes=n, ids=data.ids)
        return {"added": int(sure.sum()), "threshold": t, "weight": self.config.pseudolabel_weight}
