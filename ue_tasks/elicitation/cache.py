"""The shared answer cache of ``ue run``/``ue elicit``: answers keyed by (backend key, rendered chat, template,
mode, sampling), appended to one JSONL file per backend under ``~/.cache/ue/answers`` (or ``$UE_CACHE_DIR``), so
reruns and other experiments that ask the same prompt of the same model reuse the answer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_metrics.jsonl import append_jsonl, iter_jsonl
from ue_tasks.elicitation.backends import Answer
from ue_tasks.queries import Query


class AnswerCache:
    """Append-only JSONL of answers keyed by (backend key, rendered prompt, template, mode, sampling)."""

    def __init__(self, path: Path | None, key_parts: list[Any]):
        self.path = path
        self.prefix = json.dumps(key_parts, sort_keys=True)
        self.entries: dict[str, Answer] = {}
        if path is not None and path.exists():
            advice = (
                "the shared answer cache is damaged — delete that file (its answers will be asked again) or run "
                "with --no-cache; the run folder itself is fine"
            )
            try:
                for lineno, line in iter_jsonl(path, tolerate_torn_tail=True):
                    try:
                        self.entries[line["key"]] = Answer(**line["answer"])
                    except (KeyError, TypeError):
                        raise UserError(f"{path} line {lineno}: not an answer-cache entry; {advice}") from None
            except UserError as exc:
                if advice in str(exc):
                    raise
                raise UserError(f"{str(exc).split(';')[0]}; {advice}") from None

    @classmethod
    def for_backend(cls, cache_dir: str | Path | None, key_parts: list[Any]) -> AnswerCache:
        if cache_dir is None:
            return cls(None, key_parts)
        name = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16] + ".jsonl"
        return cls(Path(cache_dir) / name, key_parts)

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
            lines.append({"key": k, "answer": asdict(a)})
        if self.path is not None:
            append_jsonl(self.path, lines)
