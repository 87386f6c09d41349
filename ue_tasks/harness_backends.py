"""Harness backends of ``ue elicit``: each active-learning batch runs as an ordinary lm-eval or Inspect task over
an explicit list of queries (a JSONL file of ``Query`` objects handed to the task as ``queries_file``), and the
harness's own output is read back with the same readers ``ue fit`` uses. The model is loaded once per run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_tasks.elicit import Answer, Backend, ElicitConfig
from ue_tasks.elicitation import Query, write_queries


def _answers_from_records(queries: Sequence[Query], records: list[dict], where: str) -> list[Answer]:
    by_key = {(r["a_id"], r["b_id"], r["shown_first"]): r for r in records}
    out = []
    for q in queries:
        r = by_key.get((q.a_id, q.b_id, q.shown_first))
        if r is None:
            raise RuntimeError(f"{where}: the harness returned no answer for ({q.a_id}, {q.b_id}, shown first {q.shown_first})")
        out.append(Answer.from_record(r))
    return out


def _parse_model_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise UserError(f"--model-args entry {part!r} is not key=value; write e.g. pretrained=PATH,dtype=float32")
        key, value = part.split("=", 1)
        args[key.strip()] = value.strip()
    return args


class LmEvalBackend(Backend):
    """lm-eval: ``--model`` is an lm-eval model type (``hf``, ``vllm``, ``local-completions``...), ``--model-args``
    its argument string; tasks ``utility_mini`` (logprob) / ``utility_mini_sampled`` (sample), chat template and
    the paper's system message, as on the command line."""

    name = "lm-eval"

    def __init__(self, config: ElicitConfig):
        if config.template != "default":
            raise UserError("the lm-eval backend of ue elicit runs the default template; use --harness inspect for others")
        if config.mode == "sample" and config.samples != 10:
            raise UserError("the lm-eval sampled task asks K=10 answers per ordering; use --samples 10 or --harness inspect")
        self.config = config
        self.task = "utility_mini" if config.mode == "logprob" else "utility_mini_sampled"
        self._lm = None
        # one queries file, rewritten for every batch, so one TaskManager (with that path in its metadata) serves
        # the whole run: the task's dataset hook reads the file each time the task is loaded
        self._tmp = tempfile.TemporaryDirectory(prefix="ue-elicit-")
        self._qfile = Path(self._tmp.name) / "queries.jsonl"
        self._manager = None

    def key_parts(self) -> list[Any]:
        return ["lm-eval", self.config.model, self.config.model_args, self.task, "chat", "system:default"]

    def _model(self, queries: Sequence[Query]):
        """The lm-eval model, built on the first batch. A local ``hf`` model in log-prob mode reuses the key/value
        cache of the prompt stem every query shares (chat header, system message, instruction), as ``ue demo``
        does; the probabilities are those of the full prompt."""
        if self._lm is None:
            from lm_eval.api.registry import get_model

            args = _parse_model_args(self.config.model_args)
            args.setdefault("batch_size", 8)
            if self.config.model == "hf":
                args.setdefault("device", "cpu")
            if self.config.model == "hf" and self.config.mode == "logprob" and "pretrained" in args and len(queries) > 1:
                from transformers import AutoTokenizer

                from ue_tasks.demo import chat_prompts, prefix_cached_hflm

                pretrained = args.pop("pretrained")
                tok = AutoTokenizer.from_pretrained(pretrained)
                docs = [{"prompt": q.prompt()} for q in queries[:64]]
                self._lm = prefix_cached_hflm(pretrained, chat_prompts(tok, docs), **args)
            else:
                self._lm = get_model(self.config.model)(**args)
        return self._lm

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        from lm_eval.tasks import TaskManager

        from ue_tasks.lm_eval_run import records_from_results, run_lm_eval
        from ue_tasks.lm_eval_tasks import task_configs_dir

        write_queries(queries, self._qfile)
        if self._manager is None:
            self._manager = TaskManager(include_path=str(task_configs_dir()), include_defaults=False,
                                        metadata={"queries_file": str(self._qfile)})  # fmt: skip
        results = run_lm_eval(self._model(queries), [self.task], task_manager=self._manager)
        records = records_from_results(results, self.task, model=self.config.model, run_id="ue-elicit")
        return _answers_from_records(queries, records, "lm-eval")


class InspectBackend(Backend):
    """Inspect: ``--model`` is an Inspect model (``hf/local``, ``openai/gpt-4o-mini``...), ``--model-args`` its
    ``-M`` options as ``k=v,k=v``; the generic ``utility`` task over the batch's queries."""

    name = "inspect"

    def __init__(self, config: ElicitConfig):
        self.config = config

    def key_parts(self) -> list[Any]:
        return ["inspect", self.config.model, self.config.model_args, self.config.template, "system:default"]

    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        from inspect_ai import eval as inspect_eval

        from ue_tasks.inspect_records import read
        from ue_tasks.inspect_tasks import utility

        with tempfile.TemporaryDirectory(prefix="ue-elicit-") as tmp:
            qfile = write_queries(queries, Path(tmp) / "queries.jsonl")
            task = utility(queries_file=str(qfile), mode=self.config.mode, template=self.config.template,
                           samples=self.config.samples, seed=self.config.seed)  # fmt: skip
            logs = inspect_eval(task, model=self.config.model, model_args=_parse_model_args(self.config.model_args),
                                log_dir=tmp, display="none", seed=self.config.seed)  # fmt: skip
            log = logs[0]
            if log.status != "success":
                message = log.error.message if log.error else log.status
                raise UserError(f"the Inspect run failed: {message}")
            records = read(Path(log.location))
        return _answers_from_records(queries, records, "Inspect")

