"""Who answers a batch of queries for ``ue run`` / ``ue elicit``: lm-eval, Inspect, or a simulated responder.

Each harness batch runs as an ordinary task of that harness over an explicit list of queries (a JSONL file of
``Query`` objects handed to the task as ``queries_file``), and the harness's own output is read back with the
same readers ``ue fit`` uses; the model is loaded once per run. An ``Answer`` is what the model said about the
*labels* (Option A / Option B), so it can be cached and turned into a record for any query with that prompt.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics.errors import UserError
from ue_metrics.simulate import Responder
from ue_tasks.model_identity import ModelIdentity, from_inspect, from_lm_eval, simulated
from ue_tasks.outcomes import check_text
from ue_tasks.queries import Query, write_queries


@dataclass(frozen=True)
class Answer:
    p_first: float | None = None  # logprob: P(label A) renormalised over the two labels
    label_mass: float | None = None
    n_first: int = 0  # sample: answers choosing Option A / Option B / unparseable
    n_second: int = 0
    n_unparsed: int = 0
    answer_id: str | None = None  # given when the answer is made; a cached answer keeps it in every run it serves

    def record(self, query: Query, *, mode: str, **ids: Any) -> dict:
        p_a, n_a, n_b = query.outcome_terms(self.p_first, self.n_first, self.n_second)
        extra = {"answer_id": self.answer_id} if self.answer_id else {}
        if mode == "logprob":
            return query.record(mode=mode, p_a=float(p_a), label_mass=self.label_mass, **ids, **extra)
        return query.record(mode=mode, n_a=n_a, n_b=n_b, n_unparsed=self.n_unparsed, **ids, **extra)

    def with_id(self, *parts: Any) -> Answer:
        """This answer with an id made from ``parts`` (the run and the query that asked it)."""
        from dataclasses import replace

        return replace(self, answer_id=hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16])

    @classmethod
    def from_record(cls, r: dict, query: Query) -> Answer:
        p_first, n_first, n_second = query.label_terms(r["p_a"], r["n_a"], r["n_b"])
        if r["mode"] == "logprob":
            return cls(p_first=p_first, label_mass=r["label_mass"], answer_id=r.get("answer_id"))
        return cls(n_first=n_first, n_second=n_second, n_unparsed=r["n_unparsed"], answer_id=r.get("answer_id"))


class Backend:
    """Answers a batch of queries. ``identity`` is the model's (``ue_tasks.model_identity``): its name and settings
    go into every record, and ``key_parts`` (built on it) key the answer cache."""

    name = "backend"
    identity: ModelIdentity

    def key_parts(self) -> list[Any]:
        raise NotImplementedError

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        raise NotImplementedError


class SimulateBackend(Backend):
    """A simulated responder with a known property (``ue_metrics.simulate.Responder``). Each query's answer depends
    only on the seed and the prompt, never on batching or order."""

    name = "simulate"

    def __init__(self, responder: Responder, mode: str, samples: int, seed: int, name: str = "sim"):
        self.responder = responder
        self.mode, self.samples, self.seed = mode, samples, seed
        self.identity = simulated(name, responder.name, seed)

    def key_parts(self) -> list[Any]:
        return ["simulate", self.responder.name, self.seed, self.mode, self.samples]

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        out = []
        for q in queries:
            first, second = (q.a_id, q.b_id) if q.a_first else (q.b_id, q.a_id)
            p = self.responder.p_first(first, second)
            if self.mode == "logprob":
                out.append(Answer(p_first=p, label_mass=1.0))
            else:
                digest = hashlib.sha256((q.key + q.prompt()).encode()).digest()
                rng = np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little")])
                k = int(rng.binomial(self.samples, p))
                out.append(Answer(n_first=k, n_second=self.samples - k, n_unparsed=0))
        return out


def _answers_from_records(queries: Sequence[Query], records: list[dict], where: str) -> list[Answer]:
    by_key = {(r["a_id"], r["b_id"], r["shown_first"], r.get("group", "")): r for r in records}
    out = []
    for q in queries:
        r = by_key.get((q.a_id, q.b_id, q.shown_first, q.group))
        if r is None:
            raise RuntimeError(f"{where}: the harness returned no answer for ({q.a_id}, {q.b_id}, shown first {q.shown_first})")
        out.append(Answer.from_record(r, q))
    return out


def parse_model_args(text: str) -> dict[str, Any]:
    """``k=v,k=v`` as lm-eval reads ``--model_args`` (numbers and booleans typed), every entry checked first."""
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        if "=" not in part or not part.split("=", 1)[0].strip():
            raise UserError(f"--model-args entry {part!r} is not key=value; write e.g. pretrained=PATH,dtype=float32")
    from lm_eval.utils import simple_parse_args_string

    return simple_parse_args_string(text)


BATCH_TASKS = {"logprob": "ue_batch", "sample": "ue_batch_sampled"}


class LmEvalBackend(Backend):
    """lm-eval: ``model`` is an lm-eval model type (``hf``, ``vllm``, ``local-completions``...), ``model_args`` its
    argument string; the batch runs as lm-eval's hidden ``ue_batch`` task (log-prob) or ``ue_batch_sampled`` (K
    answers at temperature 1), with the chat template and the experiment's system message, as on the command line."""

    name = "lm-eval"

    def __init__(self, model: str, model_args: str, mode: str, samples: int, system_message: str, model_name: str | None = None,
                 lm: Any = None):  # fmt: skip
        if mode == "sample" and samples != 10:
            raise UserError("the lm-eval sampled task asks K=10 answers per ordering; use --samples 10 or --harness inspect")
        self.model, self.model_args, self.mode = model, model_args, mode
        parse_model_args(model_args)  # one sentence for a malformed entry, before anything loads
        self.identity = from_lm_eval(model, model_args, chat_template=True, name=model_name)
        self.system_message = system_message
        self.task = BATCH_TASKS[mode]
        self._lm = lm  # an lm-eval model built by the caller (e.g. a steered one, ue_control.steer), else built on first use
        # one queries file, rewritten for every batch, so one TaskManager (with that path in its metadata) serves
        # the whole run: the task's dataset hook reads the file each time the task is loaded
        self._tmp = tempfile.TemporaryDirectory(prefix="ue-run-")
        self._qfile = Path(self._tmp.name) / "queries.jsonl"
        self._manager = None
        self._special: list[str] = []

    def key_parts(self) -> list[Any]:
        return ["lm-eval", self.identity.cache_key(), self.task, "chat", self.system_message]

    def _model(self, queries: Sequence[Query]):
        """The lm-eval model, built on the first batch. A local ``hf`` model in log-prob mode reuses the key/value
        cache of the prompt stem every query shares (chat header, system message, instruction); the
        probabilities are those of the full prompt."""
        if self._lm is None:
            from lm_eval.api.registry import get_model

            args = parse_model_args(self.model_args)
            args.setdefault("batch_size", 8)
            if self.model == "hf":
                args.setdefault("device", "cpu")
            if self.model == "hf" and self.mode == "logprob" and "pretrained" in args and len(queries) > 1:
                from transformers import AutoTokenizer

                from ue_tasks.harness.lm_eval.prefix_cache import chat_prompts, prefix_cached_hflm

                pretrained = str(args.pop("pretrained"))
                tok = AutoTokenizer.from_pretrained(pretrained)
                self._special = list(tok.all_special_tokens)
                self._lm = prefix_cached_hflm(pretrained, chat_prompts(tok, [q.prompt() for q in queries[:64]], self.system_message), **args)
            else:
                self._lm = get_model(self.model)(**args)
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
        if self._manager is None:
            self._manager = TaskManager(include_path=str(task_configs_dir()), include_defaults=False,
                                        metadata={"queries_file": str(self._qfile)})  # fmt: skip
        results = run_lm_eval(model, [self.task], task_manager=self._manager, system_instruction=self.system_message)
        records = records_from_results(results, self.task, model=self.identity.name, run_id="ue-run")
        return _answers_from_records(queries, records, "lm-eval")


class InspectBackend(Backend):
    """Inspect: ``model`` is an Inspect model (``hf/local``, ``openai/gpt-4o-mini``...), ``model_args`` its ``-M``
    options as ``k=v,k=v``; the generic ``utility`` task over the batch's queries."""

    name = "inspect"

    def __init__(self, model: str, model_args: str, mode: str, samples: int, seed: int, model_name: str | None = None):
        self.model, self.model_args, self.mode, self.samples, self.seed = model, model_args, mode, samples, seed
        self.identity = from_inspect(model, parse_model_args(model_args), name=model_name)

    def key_parts(self) -> list[Any]:
        return ["inspect", self.identity.cache_key()]

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        from inspect_ai import eval as inspect_eval

        from ue_tasks.harness.inspect.reader import read
        from ue_tasks.harness.inspect.tasks import utility

        with tempfile.TemporaryDirectory(prefix="ue-run-") as tmp:
            qfile = write_queries(queries, Path(tmp) / "queries.jsonl")
            task = utility(queries_file=str(qfile), mode=self.mode, template=queries[0].template, samples=self.samples,
                           seed=self.seed)  # fmt: skip
            logs = inspect_eval(task, model=self.model, model_args=parse_model_args(self.model_args), log_dir=tmp,
                                display="none", seed=self.seed, metadata={"ue_model": self.identity.to_dict()})  # fmt: skip
            log = logs[0]
            if log.status != "success":
                message = log.error.message if log.error else log.status
                raise UserError(f"the Inspect run failed: {message}")
            records = read(Path(log.location))
        return _answers_from_records(queries, records, "Inspect")
