"""Who answers a batch of queries for ``ue run`` / ``ue elicit``: lm-eval, Inspect, or a simulated responder.

Each harness batch runs as an ordinary task of that harness over an explicit list of queries (a JSONL file of
``Query`` objects handed to the task as ``queries_file``), and the harness's own output is read back with the
same readers ``ue fit`` uses; the model is loaded once per run. An ``Answer`` is what the model said about the
*labels* (Option A / Option B), so it can be cached and turned into a record for any query with that prompt.

``generate`` answers free-form requests (``ue_tasks.generation``: utility maximisation's direct question and its
judge) greedily through the same harness: lm-eval's hidden ``ue_generate`` task, an Inspect task, or the simulated
responder (which answers from its utilities; the simulator's judge picks the most similar candidate).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics.errors import UserError
from ue_metrics.simulate import Responder
from ue_tasks.generation import Generation, write_generations
from ue_tasks.model_identity import (
    INSPECT_HF_PROVIDERS,
    ModelIdentity,
    folder_chat_template,
    from_inspect,
    from_lm_eval,
    parse_model_args,
    simulated,
)
from ue_tasks.outcomes import check_text, tokenizer_special_tokens
from ue_tasks.queries import Query, write_queries


@dataclass(frozen=True)
class Answer:
    p_first: float | None = None  # logprob: P(label A) renormalised over the two labels
    label_mass: float | None = None
    n_first: int = 0  # sample: answers choosing Option A / Option B / unparseable
    n_second: int = 0
    n_unparsed: int = 0
    answer_id: str | None = None  # given when the answer is made; a cached answer keeps it in every run it serves
    n_first_exact: int | None = None  # sample: answers that are exactly "A" / "B" (strict scoring); None if unknown
    n_second_exact: int | None = None
    n_thinking_cut: int = 0  # sample: answers whose thinking block the token budget cut (neither votes nor unparsed)
    unparsed_answers: tuple[str, ...] = ()  # sample: raw texts of some unparsed answers (refusals), for auditing

    def record(self, query: Query, *, mode: str, **ids: Any) -> dict:
        p_a, n_a, n_b = query.outcome_terms(self.p_first, self.n_first, self.n_second)
        extra = {"answer_id": self.answer_id} if self.answer_id else {}
        if mode == "logprob":
            return query.record(mode=mode, p_a=float(p_a), label_mass=self.label_mass, **ids, **extra)
        exact = {}
        if self.n_first_exact is not None and self.n_second_exact is not None:
            _, ea, eb = query.outcome_terms(None, self.n_first_exact, self.n_second_exact)
            exact = {"n_a_exact": ea, "n_b_exact": eb}
        if self.n_thinking_cut:
            exact["n_thinking_cut"] = self.n_thinking_cut
        if self.unparsed_answers:
            exact["unparsed_answers"] = list(self.unparsed_answers)
        return query.record(mode=mode, n_a=n_a, n_b=n_b, n_unparsed=self.n_unparsed, **exact, **ids, **extra)

    def with_id(self, *parts: Any) -> Answer:
        """This answer with an id made from ``parts`` (the run and the query that asked it)."""
        from dataclasses import replace

        return replace(self, answer_id=hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16])

    @classmethod
    def from_record(cls, r: dict, query: Query) -> Answer:
        p_first, n_first, n_second = query.label_terms(r["p_a"], r["n_a"], r["n_b"])
        if r["mode"] == "logprob":
            return cls(p_first=p_first, label_mass=r["label_mass"], answer_id=r.get("answer_id"))
        exact: dict[str, int] = {}
        if r.get("n_a_exact") is not None and r.get("n_b_exact") is not None:
            _, ef, es = query.label_terms(None, r["n_a_exact"], r["n_b_exact"])
            exact = {"n_first_exact": ef, "n_second_exact": es}
        return cls(
            n_first=n_first,
            n_second=n_second,
            n_unparsed=r["n_unparsed"],
            answer_id=r.get("answer_id"),
            n_thinking_cut=int(r.get("n_thinking_cut") or 0),
            unparsed_answers=tuple(r.get("unparsed_answers") or ()),
            **exact,
        )


class Backend:
    """Answers a batch of queries. ``identity`` is the model's (``ue_tasks.model_identity``): its name and settings
    go into every record, and ``key_parts`` (built on it) key the answer cache."""

    name = "backend"
    identity: ModelIdentity

    def usage(self) -> dict[str, Any]:
        """Requests made and tokens as the server reported them so far (None where nothing reports them)."""
        return dict(getattr(self, "_usage", None) or {"requests": 0, "prompt_tokens": None, "completion_tokens": None})

    def _add_usage(
        self, requests: int, prompt: int | None = None, completion: int | None = None, retries: int | None = None
    ) -> None:
        u = getattr(self, "_usage", None) or {"requests": 0, "prompt_tokens": None, "completion_tokens": None}
        u["requests"] += int(requests)
        for key, value in (("prompt_tokens", prompt), ("completion_tokens", completion), ("retries", retries)):
            if value is not None:
                u[key] = (u.get(key) or 0) + int(value)
        self._usage = u

    def key_parts(self) -> list[Any]:
        raise NotImplementedError

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        raise NotImplementedError

    def generate(self, items: Sequence[Generation]) -> list[str | None]:
        """Greedy replies to free-form requests, in order."""
        raise NotImplementedError


def similarity_judge(item: Generation, threshold: float = 0.75) -> str:
    """The simulator's judge: the candidate most similar to some stretch of the answer it was shown (the best difflib
    ratio of the normalised candidate against every window of the answer as long as it), when at least
    ``threshold``; else "NO MATCH"."""
    from difflib import SequenceMatcher

    from ue_metrics.analyses.utility_maximization import normalise
    from ue_tasks.templates import NO_MATCH

    answer = normalise(str(item.metadata.get("answer") or ""))
    best, score = NO_MATCH, threshold
    for _, text in item.metadata.get("candidates") or []:
        cand = normalise(text)
        width = len(cand)
        windows = [answer[k : k + width] for k in range(max(1, len(answer) - width + 1))]
        ratio = max(SequenceMatcher(None, w, cand).ratio() for w in windows) if cand else 0.0
        if ratio > score or (ratio == score and best == NO_MATCH):
            best, score = text, ratio
    return best


class SimulateBackend(Backend):
    """A simulated responder with a known property (``ue_metrics.simulate.Responder``). Each query's answer depends
    only on the seed and the prompt, never on batching or order."""

    name = "simulate"

    def __init__(self, responder: Responder, mode: str, samples: int, seed: int, name: str = "sim"):
        self.responder = responder
        self.mode, self.samples, self.seed = mode, samples, seed
        self.identity = simulated(name, responder.name, seed, responder.fingerprint())

    def key_parts(self) -> list[Any]:
        return ["simulate", self.responder.name, self.identity.fingerprint, self.seed, self.mode, self.samples]

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        out = []
        for q in queries:
            first, second = (q.a_id, q.b_id) if q.a_first else (q.b_id, q.a_id)
            p = self.responder.for_template(q.template).p_first(first, second)
            if self.mode == "logprob":
                out.append(Answer(p_first=p, label_mass=1.0))
            else:
                # seeded by the prompt as the model sees it, as the answer cache keys it: a query re-asked (a resumed
                # run) or one that another query's answer would serve gets the same counts in every process
                digest = hashlib.sha256(json.dumps([q.messages(), q.template]).encode()).digest()
                rng = np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little")])
                k = int(rng.binomial(self.samples, p))
                # a simulated answer is a bare label, so every answer is also an exact one
                out.append(
                    Answer(n_first=k, n_second=self.samples - k, n_unparsed=0, n_first_exact=k, n_second_exact=self.samples - k)
                )
        return out

    def generate(self, items: Sequence[Generation]) -> list[str | None]:
        return [similarity_judge(g) if g.kind == "judge" else self.responder.generate(g) for g in items]


def _answers_from_records(queries: Sequence[Query], records: list[dict], where: str) -> list[Answer]:
    by_key = {(r["a_id"], r["b_id"], r["shown_first"], r.get("group", "")): r for r in records}
    out = []
    for q in queries:
        r = by_key.get((q.a_id, q.b_id, q.shown_first, q.group))
        if r is None:
            raise RuntimeError(f"{where}: the harness returned no answer for ({q.a_id}, {q.b_id}, shown first {q.shown_first})")
        out.append(Answer.from_record(r, q))
    return out


BATCH_TASKS = {"logprob": "ue_batch", "sample": "ue_batch_sampled"}
BASE_BATCH_TASK = "ue_batch_base"  # base models (no chat template), log-prob mode


def _by_setting(items: Sequence[Generation]) -> dict[tuple[str, int], list[Generation]]:
    groups: dict[tuple[str, int], list[Generation]] = {}
    for g in items:
        groups.setdefault((g.system_message, g.max_tokens), []).append(g)
    return groups


def _replies(items: Sequence[Generation], replies: dict[str, str | None], where: str) -> list[str | None]:
    missing = [g.id for g in items if g.id not in replies]
    if missing:
        raise RuntimeError(f"{where}: the harness returned no reply for the free-form request {missing[0]!r}")
    return [replies[g.id] for g in items]


class LmEvalBackend(Backend):
    """lm-eval: ``model`` is an lm-eval model type (``hf``, ``vllm``, ``local-completions``...), ``model_args`` its
    argument string; the batch runs as lm-eval's hidden ``ue_batch`` task (log-prob) or ``ue_batch_sampled`` (K
    answers at temperature 1), with the chat template and the experiment's system message, as on the command line; a
    local folder without a chat template (a base model) runs ``ue_batch_base`` instead, as ``base_utility_*`` does."""

    name = "lm-eval"

    def __init__(
        self,
        model: str,
        model_args: str,
        mode: str,
        samples: int,
        system_message: str,
        model_name: str | None = None,
        lm: Any = None,
    ):
        if mode == "sample" and (not isinstance(samples, int) or samples < 1):
            raise UserError(f"--samples must be a whole number of answers per ordering, 1 or more (got {samples!r})")
        self.model, self.model_args, self.mode = model, model_args, mode
        # sample mode: K answers per ordering, the task's `repeats` (its YAML says 10, the paper's K) set to the run's K
        self.samples = samples if mode == "sample" else None
        args = parse_model_args(model_args, typed=True)  # one sentence for a malformed entry, before anything loads
        if lm is None and model in ("hf", "ue-hf") and not args.get("pretrained"):
            raise UserError(
                f"--model {model} needs the model's weights: add --model-args pretrained=PATH (a local folder or "
                "a hub name; `ue model path` prints the embedded model's folder)"
            )
        # a local Hugging Face folder without a chat template is a base model (e.g. the embedded Gemma 3 270M): it
        # is asked the base-model prompt ending in "Answer:", without the chat template or a system message, as
        # the base_utility_* tasks do
        self.base_model = model in ("hf", "ue-hf") and folder_chat_template(model_args) is False
        if self.base_model and mode == "sample":
            raise UserError(
                "the model folder has no chat template (a base model): `ue run` asks base models in log-prob mode "
                "only; drop --mode sample, or use a chat model"
            )
        self.identity = from_lm_eval(model, model_args, chat_template=not self.base_model, name=model_name)
        self.system_message = system_message
        self.task = BASE_BATCH_TASK if self.base_model else BATCH_TASKS[mode]
        self._lm = lm  # an lm-eval model built by the caller (e.g. a steered one, ue_control.steer), else built on first use
        # one queries file, rewritten for every batch, so one TaskManager (with that path in its metadata) serves
        # the whole run: the task's dataset hook reads the file each time the task is loaded
        self._tmp = tempfile.TemporaryDirectory(prefix="ue-run-")
        self._qfile = Path(self._tmp.name) / "queries.jsonl"
        self._gfile = Path(self._tmp.name) / "generations.jsonl"
        self._manager = None
        self._special: list[str] = []

    def key_parts(self) -> list[Any]:
        if self.base_model:
            return ["lm-eval", self.identity.cache_key(), self.task, "base"]
        return ["lm-eval", self.identity.cache_key(), self.task, "chat", self.system_message]

    def _model(self, queries: Sequence[Query]):
        """The lm-eval model, loaded once on the first batch and kept for the whole run (every round). ``hf`` and
        the OpenAI-compatible clients run as ue's types (``ue_tasks.harness.lm_eval.models``): ``ue-hf`` (the
        same answers with bf16 where native, the prompt stem's cache, hardware batch sizes and K sampled answers
        from one prefill; free-form requests run lm-eval's own generation) and ``ue-local-*completions`` (one seed
        per sampled answer)."""
        if self._lm is None:
            from lm_eval.api.registry import get_model

            from ue_tasks.harness.lm_eval.models import UE_TYPES

            args = parse_model_args(self.model_args, typed=True)
            kind = UE_TYPES.get(self.model, self.model)
            if kind != "ue-hf":
                args.setdefault("batch_size", 8)
            if kind == "ue-hf" and self.identity.dtype:  # the dtype the records carry, resolved once (ue_tasks.dtypes)
                args = {**{k: v for k, v in args.items() if k not in ("dtype", "torch_dtype")}, "dtype": self.identity.dtype}
            self._lm = get_model(kind)(**args)
            tok = getattr(self._lm, "tokenizer", None)
            self._special = tokenizer_special_tokens(tok) if tok is not None else []
        return self._lm

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        from lm_eval.tasks import TaskManager

        from ue_tasks.harness.lm_eval.configs import task_configs_dir
        from ue_tasks.harness.lm_eval.run import records_from_results, run_lm_eval

        model = self._model(queries)
        for q in queries:  # the model's own special tokens, beyond the chat control tokens refused on loading
            for oid, text in ((q.a_id, q.a_text), (q.b_id, q.b_text)):
                check_text(text, f"outcome {oid!r}", self._special)
        write_queries(queries, self._qfile)
        manager = self._task_manager(TaskManager, task_configs_dir)
        task: Any = self.task
        if self.samples is not None:
            # the task built here (its dataset hook reads this batch's queries file) with K repeats per document
            task = manager.load(self.task)["tasks"][self.task]
            task.config.repeats = self.samples
        results = run_lm_eval(
            model, [task], task_manager=manager, apply_chat_template=not self.base_model, system_instruction=self.system_message
        )
        records = records_from_results(results, self.task, model=self.identity.name, run_id="ue-run")
        served = getattr(model, "ue_usage", None)  # ue's API clients sum the usage the server reports
        before = getattr(self, "_served_seen", {"prompt_tokens": 0, "completion_tokens": 0})
        if served is not None:
            self._add_usage(
                served["requests"] - before.get("requests", 0),
                served["prompt_tokens"] - before["prompt_tokens"],
                served["completion_tokens"] - before["completion_tokens"],
                served.get("retries", 0) - before.get("retries", 0),
            )
            self._served_seen = dict(served)
        else:
            self._add_usage(len(queries) * (self.samples or 2))
        return _answers_from_records(queries, records, "lm-eval")

    def _task_manager(self, TaskManager, task_configs_dir):
        if self._manager is None:
            self._manager = TaskManager(
                include_path=str(task_configs_dir()),
                include_defaults=False,
                metadata={"queries_file": str(self._qfile), "generations_file": str(self._gfile)},
            )
        return self._manager

    def generate(self, items: Sequence[Generation]) -> list[str | None]:
        """Greedy replies through the hidden ``ue_generate`` task, one lm-eval call per (system message, token cap)."""
        from lm_eval.tasks import TaskManager

        from ue_tasks.harness.lm_eval.configs import task_configs_dir
        from ue_tasks.harness.lm_eval.run import generations_from_results, run_lm_eval

        replies: dict[str, str | None] = {}
        for (system, tokens), batch in _by_setting(items).items():
            write_generations(batch, self._gfile)
            results = run_lm_eval(
                self._model(batch),
                ["ue_generate"],
                task_manager=self._task_manager(TaskManager, task_configs_dir),
                apply_chat_template=not self.base_model,
                system_instruction=system or None,
                gen_kwargs={"max_gen_toks": tokens},
            )
            replies.update(generations_from_results(results, "ue_generate"))
        return _replies(items, replies, "lm-eval")


class InspectBackend(Backend):
    """Inspect: ``model`` is an Inspect model (``hf/local``, ``openai/gpt-4o-mini``...), ``model_args`` its ``-M``
    options as ``k=v,k=v``; the generic ``utility`` task over the batch's queries."""

    name = "inspect"

    def __init__(self, model: str, model_args: str, mode: str, samples: int, seed: int, model_name: str | None = None):
        self.model, self.model_args, self.mode, self.samples, self.seed = model, model_args, mode, samples, seed
        args = parse_model_args(model_args, typed=True)
        self.identity = from_inspect(model, args, name=model_name)
        if self.identity.dtype and model.partition("/")[0] in INSPECT_HF_PROVIDERS:
            # Inspect's hf provider loads the dtype the one rule resolved (ue_tasks.dtypes), as ue-hf does
            args = {**{k: v for k, v in args.items() if k not in ("dtype", "torch_dtype")}, "dtype": self.identity.dtype}
        from ue_tasks.harness.inspect.retry import split_generate_args

        self._model_args, self._generate = split_generate_args(args)  # Inspect's retries and time-outs go to eval()

    def key_parts(self) -> list[Any]:
        return ["inspect", self.identity.cache_key()]

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        from inspect_ai import eval as inspect_eval

        from ue_tasks.harness.inspect.reader import read
        from ue_tasks.harness.inspect.tasks import utility

        with tempfile.TemporaryDirectory(prefix="ue-run-") as tmp:
            qfile = write_queries(queries, Path(tmp) / "queries.jsonl")
            task = utility(
                experiment=queries[0].experiment,
                queries_file=str(qfile),
                mode=self.mode,
                template=queries[0].template,
                samples=self.samples,
                seed=self.seed,
            )
            from ue_tasks.harness.inspect.retry import http_retries, retries_so_far

            before = retries_so_far()
            logs = inspect_eval(
                task,
                model=self.model,
                model_args=dict(self._model_args),
                log_dir=tmp,
                **self._generate,
                display="none",
                seed=self.seed,
                metadata={"ue_model": self.identity.to_dict()},
            )
            log = logs[0]
            if log.status != "success":
                message = log.error.message if log.error else log.status
                raise UserError(f"the Inspect run failed: {message}")
            usage = list(((log.stats.model_usage if log.stats else None) or {}).values())
            self._add_usage(
                len(log.samples or []),
                sum(u.input_tokens for u in usage) if usage else None,
                sum(u.output_tokens for u in usage) if usage else None,
                retries_so_far() - before if before >= 0 else http_retries(log),
            )
            records = read(Path(log.location))
        return _answers_from_records(queries, records, "Inspect")

    def generate(self, items: Sequence[Generation]) -> list[str | None]:
        """Greedy replies through an Inspect task of the requests (``ue_tasks.harness.inspect.tasks.free_answers``)."""
        from inspect_ai import eval as inspect_eval

        from ue_tasks.harness.inspect.reader import read_generation_replies
        from ue_tasks.harness.inspect.tasks import free_answers

        with tempfile.TemporaryDirectory(prefix="ue-run-") as tmp:
            gfile = write_generations(items, Path(tmp) / "generations.jsonl")
            logs = inspect_eval(
                free_answers(generations_file=str(gfile)),
                model=self.model,
                **self._generate,
                model_args=dict(self._model_args),
                log_dir=tmp,
                display="none",
                seed=self.seed,
            )
            log = logs[0]
            if log.status != "success":
                message = log.error.message if log.error else log.status
                raise UserError(f"the Inspect run failed: {message}")
            replies = read_generation_replies(Path(log.location))
        return _replies(items, replies, "Inspect")
