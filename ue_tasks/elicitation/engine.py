"""Running an experiment's elicitation into a run folder: the paper's active learning (docs/method.md §2) round by
round, or a fixed plan (triads, all pairs) in one go — through lm-eval, Inspect or a simulated responder.

Active learning: round 0 queries a random 2-regular starting graph; every later round fits the Thurstonian model
(warm-started) and picks the next pairs with a strategy (``ue_tasks.elicitation.strategies``) until the training
budget is spent. The holdout pairs are queried up front (default, so every round reports a held-out estimate) or
at the end, and are never fitted. Everything lands in the run folder as it happens:

    RUN_DIR/config.json     the full configuration, seeds and the outcome set's hash (a different one is refused)
    RUN_DIR/outcomes.jsonl  the outcomes with their attributes, as the experiment generated them
    RUN_DIR/rounds.jsonl    the pairs chosen for each round, written before they are asked (active learning)
    RUN_DIR/records.jsonl   ue.preference/1 records, appended as each batch of answers returns
    RUN_DIR/history.jsonl   per round: queries so far, held-out log loss and accuracy, fit time
    RUN_DIR/generations.jsonl  free-form answers (and judge replies) of experiments that ask open questions
    RUN_DIR/utilities.csv, RUN_DIR/metrics.json   the final fit (experiments that fit utilities)

Re-running the same command continues where a run stopped and asks no query twice; a second process on the same
folder is refused while the first holds its lock. Answers are also kept in a cache keyed by the model and the
rendered prompt (``ue_tasks.elicitation.cache``), shared by runs, so reruns and other experiments reuse them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics import records as rec
from ue_metrics.aggregation import aggregate
from ue_metrics.coherence import accuracy, log_loss
from ue_metrics.errors import UserError
from ue_metrics.fitting import FitResult, fit_records
from ue_metrics.jsonl import append_jsonl, complete_lines, read_jsonl
from ue_metrics.thurstonian import Thurstonian
from ue_tasks import experiments
from ue_tasks.elicitation.backends import Backend
from ue_tasks.elicitation.cache import AnswerCache
from ue_tasks.elicitation.config import ADDED_DEFAULTS, RunConfig, judge_backend, make_backend, paper_settings
from ue_tasks.elicitation.pseudolabels import pseudolabel_refit
from ue_tasks.elicitation.strategies import select_pairs
from ue_tasks.plan import ComparisonPlan, PlanSpec, active_budget, default_budget, holdout_size, make_plan
from ue_tasks.queries import Query, run_id_for
from ue_tasks.run_folder import RunFolder

BATCH = 256  # queries per harness call; records are appended after each batch


@dataclass
class RunState:
    records: list[dict]
    rounds: list[dict]
    history: list[dict]
    generations: list[dict] = field(default_factory=list)


class Elicitation:
    """Drive one experiment's elicitation into ``out`` (see the module docstring)."""

    def __init__(
        self,
        config: RunConfig,
        out: str | Path,
        cache_dir: str | Path | None = "default",
        backend: Backend | None = None,
        progress: Any = None,
        log: Callable[[str], None] = print,
    ):
        self.config = config.resolve()
        self.experiment = experiments.get(self.config.experiment)
        self.out = Path(out)
        # the experiment's options with --outcomes among them: every part of the experiment (outcome set, plan, free
        # questions, judge) must read the same file (issue 25 item 1: the free questions once came from the shipped file)
        self.options = {**self.config.options, **({"outcomes": self.config.outcomes} if self.config.outcomes else {})}
        self.outcomes = self.experiment.outcome_set(self.options)
        self.n = len(self.outcomes)
        self.spec = self.config.plan_spec(self.experiment)
        self.backend = backend or make_backend(self.config, self.outcomes, self.experiment)
        if cache_dir == "default":
            from ue_tasks.model import cache_root

            cache_dir = cache_root() / "answers"
        self.cache = AnswerCache.for_backend(cache_dir, self.backend.key_parts() + [self.config.mode, self.config.samples])
        self.progress = progress
        self.log = log
        self.task = f"{self.experiment.name}_{self.outcomes.name}"
        self.run_id = run_id_for(
            self.config.experiment,
            self.config.harness,
            self.config.model,
            self.config.model_args,
            self.outcomes.name,
            self.config.seed,
            self.config.strategy,
            self.config.mode,
        )
        self.index = {oid: k for k, oid in enumerate(self.outcomes.ids)}
        self.model_fit: Thurstonian | None = None
        self.queries_asked = 0
        self.cache_hits = 0
        self.generations: list[dict] = []
        self.folder = RunFolder(self.out)
        self.lock = self.folder.lock()

    # --- run folder ----------------------------------------------------------------------------------------
    def config_dict(self) -> dict:
        d = asdict(self.config)
        budget = self.spec.budget if self.spec.kind == "triads" else self._budget()
        d.update(
            {
                "n_outcomes": self.n,
                "budget_pairs": budget,
                "plan_kind": self.spec.kind,
                "outcome_set": self.outcomes.name,
                "outcome_source": self.outcomes.source,
                "outcome_hash": self.outcomes.content_hash(),
                "responder_description": getattr(getattr(self.backend, "responder", None), "description", None),
                "run_id": self.run_id,
                "schema": rec.SCHEMA,
                "model_identity": self.backend.identity.to_dict(),
            }
        )
        if self.config.protocol == "paper":  # what the protocol set, beside the fields themselves
            d["protocol_settings"] = {**paper_settings(self.experiment), "temperature": 1.0}
        return d

    def _open_run(self) -> RunState:
        self.folder.create()
        self.lock.acquire()
        mine = self.config_dict()
        if self.folder.has_config():
            self._check_resumable(mine)
        else:
            held = self.folder.holds_answers()
            if held:
                raise UserError(
                    f"{self.out} holds answers ({', '.join(held)}) but no config.json, so nothing says which run they belong "
                    "to; choose a new --out folder (its records.jsonl can still be fitted with `ue fit`), or delete those "
                    "files to start this run there"
                )
            self.folder.write_config(mine)
            try:
                self.outcomes.write(self.folder.outcomes_path)
            except OSError as exc:
                self.folder.config_path.unlink(missing_ok=True)  # no half-made run folder that would block the rerun
                raise UserError(
                    f"{self.folder.outcomes_path}: cannot be written ({exc.strerror or exc}); nothing was asked — "
                    "free space or choose a folder you can write to"
                ) from None

        def load(name):
            p = self.out / name
            return read_jsonl(p, tolerate_torn_tail=True) if p.exists() else []

        records = load("records.jsonl")
        for k, r in enumerate(records, 1):
            rec.validate(r, where=f"{self.out / 'records.jsonl'} line {k}")
        from ue_tasks.generation import GENERATIONS_FILE, read_entries

        generations = read_entries(self.out / GENERATIONS_FILE) if (self.out / GENERATIONS_FILE).exists() else []
        return RunState(records=records, rounds=load("rounds.jsonl"), history=load("history.jsonl"), generations=generations)

    def _check_resumable(self, mine: dict) -> None:
        """The folder's configuration must be this run's: the same outcome sentences, weights, dtype and settings."""
        theirs = self.folder.read_config(
            "the run folder's configuration is damaged — restore it, or start the run in a new "
            "--out folder (its records.jsonl can still be fitted with `ue fit`)"
        )
        if theirs.get("outcome_hash") not in (None, mine["outcome_hash"]):
            raise UserError(
                f"{self.out} was run on another version of the outcome set {self.outcomes.source!r} (an outcome "
                "was added, removed or reworded since); answers about the old and new sentences must not be "
                "fitted together — restore the file or start a new --out folder"
            )
        before = theirs.get("model_identity") or {}
        now = mine["model_identity"]
        if before.get("fingerprint") and now.get("fingerprint") and before["fingerprint"] != now["fingerprint"]:
            raise UserError(
                f"{self.out} was started with other weights under the model {now['name']!r} (the model's files changed "
                "since: fingerprint "
                f"{before['fingerprint']} → {now['fingerprint']}); answers of two models must not "
                "be fitted as one — restore the model or start a new --out folder"
            )
        if before and before.get("dtype") != now.get("dtype"):
            was = (
                before.get("dtype")
                or "a dtype it did not record (an older ue: bfloat16 if the CPU had native bf16, else the checkpoint's)"
            )
            raise UserError(
                f"{self.out} was started in {was}, and this run would answer in {now.get('dtype') or 'the default'} "
                "(ue_tasks/dtypes.py); answers at two dtypes must not be fitted as one model's — resume it with the "
                "same --model-args dtype=..., or start a new --out folder"
            )
        # written by an older ue: nothing to compare (a field added since, at its default, is the older run's setting)
        added = ({"model_identity", "model_name"} | {k for k, v in ADDED_DEFAULTS.items() if mine.get(k) == v}) - set(theirs)
        self.folder.refuse_other_configuration(mine, theirs, skip=added)

    def _append(self, name: str, objs: list) -> None:
        try:
            append_jsonl(self.out / name, objs)
        except OSError as exc:
            saved = complete_lines(self.out / "records.jsonl")  # a failed append leaves no partial line
            raise UserError(
                f"{self.out / name}: cannot be written ({exc.strerror or exc}); {saved} answered queries are saved in "
                f"{self.out / 'records.jsonl'} — free space or fix the permissions and rerun the same command to continue"
            ) from None

    # --- asking -------------------------------------------------------------------------------------------
    def queries(self, plan: ComparisonPlan, split: str | None = None) -> list[Query]:
        exp, cfg = self.experiment, self.config
        out = exp.queries(
            self.outcomes, plan, template=cfg.template, system_message=cfg.system_message or "", options=cfg.options, split=split
        )
        # --orderings first: each pair asked in the plan's ordering only (docs/method.md §1.6: shows the order bias)
        return [q for q in out if q.shown_first == "a"] if cfg.orderings == "first" else out

    def _pairs_plan(self, pairs: np.ndarray, split: str) -> ComparisonPlan:
        return ComparisonPlan(
            n_outcomes=self.n, pairs=pairs, split=np.array([split] * len(pairs)), seed=self.config.seed, config={}
        )

    def _ask(self, state: RunState, queries: list[Query], round_no: int, label: str, keep_bar: bool = False):
        """Ask every query not yet answered in the run; append records batch by batch. Returns the progress bar
        when ``keep_bar`` (the caller adds the fit's figures and closes it)."""
        done = {(r["a_id"], r["b_id"], r["shown_first"], r.get("group", "")) for r in state.records}
        todo = [q for q in queries if (q.a_id, q.b_id, q.shown_first, q.group) not in done]
        bar = self.progress(total=len(todo), desc=label, unit="query") if self.progress else None
        ids = dict(
            **self.backend.identity.record_fields(),
            harness=self.config.harness,
            task=self.task,
            run_id=self.run_id,
            round=round_no,
        )
        elicitation = (self.config.mode, self.config.samples if self.config.mode == "sample" else 0)
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            cached = [(q, self.cache.get(q)) for q in batch]
            # one answer per prompt (as the cache keys it), its id made from the prompt: which query of a prompt is
            # asked first — and whether a resumed run asks it again — changes no answer
            unique: dict[str, Query] = {}
            for q, a in cached:
                if a is None:
                    unique.setdefault(self.cache.key(q), q)
            missing = list(unique.values())
            answers = self.backend.answer(missing) if missing else []
            made = {k: a.with_id(self.run_id, k, *elicitation) for k, a in zip(unique, answers)}
            self.cache.put([(unique[k], a) for k, a in made.items()])
            new = [(a if a is not None else made[self.cache.key(q)]).record(q, mode=self.config.mode, **ids) for q, a in cached]
            self._append("records.jsonl", new)
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
        data = aggregate(records, unparsed=self.config.unparsed)
        idx = np.array([self.index[i] for i in data.ids])
        tr = data.train()
        if self.model_fit is None:
            self.model_fit = Thurstonian(warm_start=True, on_disconnected="per_component", seed=self.config.seed)
        started = time.perf_counter()
        self.model_fit.fit(
            np.column_stack([idx[tr.i], idx[tr.j]]), tr.y, tr.w, n_outcomes=self.n, ids=self.outcomes.ids, n_records=tr.n_rec
        )
        seconds = time.perf_counter() - started
        ho = data.holdout()
        est = {"fit_seconds": round(seconds, 4), "train_pairs": int(len(tr.y))}
        if len(ho.y):
            p = self.model_fit.predict_proba(np.column_stack([idx[ho.i], idx[ho.j]]))
            est.update(
                {"holdout_log_loss": log_loss(p, ho.y), "holdout_accuracy": accuracy(p, ho.y), "holdout_pairs": int(len(ho.y))}
            )
        return est

    # --- the protocols ------------------------------------------------------------------------------------
    def run(self) -> FitResult | None:
        """Elicit (resuming whatever the folder holds) and, for experiments that fit utilities, write the final fit."""
        try:
            state = self._open_run()
        except BaseException:
            self.lock.release()
            raise
        try:
            if self.spec.kind == "active":
                self._run_active(state)
            else:
                self._run_fixed(state)
            self.records = state.records
            self._run_generations(state)
            self.generations = state.generations
            return self._finish(state) if self.experiment.fit else None
        finally:
            self.lock.release()

    def _run_fixed(self, state: RunState) -> None:
        plan = self.experiment.build_plan(self.outcomes, self.spec, self.options)
        self._ask(state, self.queries(plan), 0, self.experiment.name)

    # --- free-form answers ---------------------------------------------------------------------------------
    def _run_generations(self, state: RunState) -> None:
        """The experiment's open questions, asked once each through the run's backend (temperature 0), then —
        with ``--option matcher_model`` — the judge requests for the answers no string match settles."""
        exp = self.experiment
        opts = exp.resolve_options(self.options)
        items = exp.extension.free_questions(self.outcomes, opts)
        self._generate(state, items, self.backend, "free answers", self.backend.identity.name)
        matcher = str(opts.get("matcher_model") or "")
        if matcher:
            answers = [e for e in state.generations if e["kind"] == "answer"]
            requests = exp.extension.judge_requests(self.outcomes, answers, opts)
            if requests:
                backend, name = judge_backend(self.config, matcher, str(opts.get("matcher_model_args") or ""), self.backend)
                self._generate(state, requests, backend, "judge", name)

    def _generate(self, state: RunState, items: list, backend: Backend, label: str, model: str) -> None:
        """Ask every request not yet answered in the run; append ``ue.generation/1`` entries batch by batch."""
        from ue_tasks.generation import GENERATIONS_FILE

        done = {e["id"] for e in state.generations}
        todo = [g for g in items if g.id not in done]
        if not todo:
            return
        bar = self.progress(total=len(todo), desc=label, unit="answer") if self.progress else None
        ids = dict(model=model, harness=self.config.harness, run_id=self.run_id, task=self.task)
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            texts = backend.generate(batch)
            new = [g.entry(text, **ids) for g, text in zip(batch, texts)]
            self._append(GENERATIONS_FILE, new)
            state.generations.extend(new)
            self.queries_asked += len(batch)
            if bar:
                bar.update(len(batch))
        if bar:
            bar.close()

    def _budget(self) -> int:
        """Training pairs of the run (of an active run: by its budget rule, as `ue experiments` counts them)."""
        cfg = self.config
        if self.spec.kind != "active":
            return default_budget(self.n) if cfg.budget is None else cfg.budget
        m = self.n * (self.n - 1) // 2
        hold = holdout_size(self.n, cfg.holdout_fraction, self.spec.holdout_cap)
        # the exact rule's budget is not capped here (as before: the rounds stop when the pool is spent)
        pool = m - hold if cfg.budget_rule == "rounds" else None
        return active_budget(self.n, cfg.budget, cfg.initial_degree, self.spec.round_size, cfg.budget_rule, pool=pool)

    def _run_active(self, state: RunState) -> None:
        cfg = self.config
        budget = self._budget()
        start = PlanSpec(
            kind="graph",
            seed=cfg.seed,
            budget=max(1, min(budget, self.n * cfg.initial_degree // 2)),
            degree=cfg.initial_degree,
            holdout_fraction=cfg.holdout_fraction,
            holdout_cap=self.spec.holdout_cap,
        )
        plan = make_plan(self.n, start)
        holdout = plan.pairs[plan.split == "holdout"]
        if cfg.holdout_first and len(holdout):
            self._ask(state, self.queries(self._pairs_plan(holdout, "holdout")), 0, "holdout")
        rounds_done = {r["round"]: r for r in state.rounds}
        round_no = 0
        while True:
            queried = np.array(
                [[self.index[a], self.index[b]] for r in state.rounds if r["round"] < round_no for a, b in r["pairs"]],
                dtype=np.int64,
            ).reshape(-1, 2)
            remaining = budget - len(queried)
            if round_no in rounds_done:
                pairs = np.array(
                    [[self.index[a], self.index[b]] for a, b in rounds_done[round_no]["pairs"]], dtype=np.int64
                ).reshape(-1, 2)
            else:
                if remaining <= 0:
                    break
                if round_no == 0:
                    pairs = plan.pairs[plan.split == "train"][:remaining]
                else:
                    rng = np.random.default_rng([cfg.seed, round_no])
                    fit = self.model_fit
                    pairs = select_pairs(
                        cfg.strategy,
                        self.n,
                        min(self.spec.round_size, remaining),
                        queried,
                        holdout,
                        rng,
                        fit.utilities_,
                        fit.sigma2_,
                        fit.stderr_,
                    )
                    if len(pairs) == 0:
                        break
                entry = {"round": round_no, "pairs": [[self.outcomes.ids[a], self.outcomes.ids[b]] for a, b in pairs.tolist()]}
                self._append("rounds.jsonl", [entry])
                state.rounds.append(entry)
                rounds_done[round_no] = entry
            bar = self._ask(state, self.queries(self._pairs_plan(pairs, "train")), round_no, f"round {round_no}", keep_bar=True)
            est = self._fit(state, upto=round_no)
            if bar:
                bar.set_postfix(
                    {k: round(v, 4) for k, v in est.items() if k in ("holdout_log_loss", "holdout_accuracy", "fit_seconds")}
                )
                bar.close()
            hist = {
                "round": round_no,
                "queries": sum(1 for r in state.records if r["split"] == "train" and r["round"] <= round_no),
                **est,
            }
            if not any(h["round"] == round_no for h in state.history):
                self._append("history.jsonl", [hist])
                state.history.append(hist)
            msg = f"round {round_no}: {hist['train_pairs']} training pairs"
            if "holdout_log_loss" in est:
                msg += f", held-out log loss {est['holdout_log_loss']:.4f}, accuracy {est['holdout_accuracy']:.3f}"
            self.log(msg + f", fit {est['fit_seconds']:.2f} s")
            round_no += 1
        if not cfg.holdout_first and len(holdout):
            self._ask(state, self.queries(self._pairs_plan(holdout, "holdout")), round_no, "holdout")

    def _finish(self, state: RunState) -> FitResult:
        # a budget too small to connect the comparison graph still gives a fit, per connected component, with a
        # warning: refusing here would leave a finished (and paid-for) run without utilities
        result = fit_records(
            state.records, seed=self.config.seed, per_component=True, unparsed=self.config.unparsed, method=self.config.method
        )
        if result.metrics["n_components"] > 1:
            self.log(
                f"warning: the comparison graph has {result.metrics['n_components']} components (budget too small to "
                "connect it); utilities are comparable only within a component (column 'component' of utilities.csv)"
            )
        if self.config.pseudolabels:
            pseudolabel_refit(result, self.config.pseudolabel_threshold, self.config.pseudolabel_weight)
        result.metrics.update(
            {
                "run": self.config_dict(),
                "queries_asked_this_session": self.queries_asked,
                "cache_hits_this_session": self.cache_hits,
                "rounds": len(state.rounds),
            }
        )
        result.write(self.out)
        return result
