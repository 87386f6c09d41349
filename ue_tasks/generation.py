"""Free-form generation requests: the one place where an experiment's open questions become prompts and the model's
replies become ``ue.generation/1`` entries (utility maximisation's direct answer and its optional judge, Mazeika et
al. 2025 §4 "utility maximization"; docs/method.md §4.6).

A ``Generation`` is one user turn asked once, greedily (temperature 0), with its own system message and a token cap.
Every backend answers a list of them (``ue_tasks.elicitation.backends``: a simulated responder, lm-eval's hidden
``ue_generate`` task, an Inspect task), and ``ue run`` appends the replies to ``RUN_DIR/generations.jsonl``:

    {"schema": "ue.generation/1", "id": "answer:q07", "kind": "answer", "group": "q07", "prompt": "...",
     "system_message": "...", "max_tokens": 64, "temperature": 0.0, "text": "Japan", "metadata": {...},
     "model": "...", "harness": "lm-eval", "run_id": "..."}

``metadata`` carries what the analysis needs to read the reply without the outcome file (the question's candidate
answers as ``[[id, text], ...]``; for a judge, the free answer it was shown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_items, write_jsonl

SCHEMA = "ue.generation/1"
KINDS = ("answer", "judge")
GENERATIONS_FILE = "generations.jsonl"


@dataclass(frozen=True)
class Generation:
    """One free-form request: ``prompt`` is the user turn, answered greedily with at most ``max_tokens`` tokens."""

    id: str
    prompt: str
    system_message: str = ""
    max_tokens: int = 64
    kind: str = "answer"
    group: str = ""
    experiment: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"generation kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise UserError(f"the token cap of a free answer must be a whole number ≥ 1, got {self.max_tokens!r}")

    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system_message}] if self.system_message else []
        return head + [{"role": "user", "content": self.prompt}]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "system_message": self.system_message,
            "max_tokens": self.max_tokens,
            "kind": self.kind,
            "group": self.group,
            "experiment": self.experiment,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Generation:
        return cls(
            **{
                k: d[k]
                for k in ("id", "prompt", "system_message", "max_tokens", "kind", "group", "experiment", "metadata")
                if k in d
            }
        )

    def entry(self, text: str | None, **ids: Any) -> dict[str, Any]:
        """The ``ue.generation/1`` entry of this request's reply (``ids``: model, harness, run_id, task...)."""
        return {"schema": SCHEMA, **self.to_dict(), "temperature": 0.0, "text": text, **ids}


def write_generations(items: Sequence[Generation], path: str | Path) -> Path:
    """Requests as JSONL (how ``ue run`` hands a batch of free-form questions to a harness task)."""
    write_jsonl(path, [g.to_dict() for g in items])
    return Path(path)


def read_generations(path: str | Path) -> list[Generation]:
    return read_items(path, Generation.from_dict, what="generation request", writer="ue_tasks.generation.write_generations")


def validate_entry(entry: Any, where: str) -> dict[str, Any]:
    """Check one ``ue.generation/1`` entry; one sentence naming ``where`` and the field otherwise."""
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    if entry.get("schema") != SCHEMA:
        raise UserError(f"{where}: field 'schema' is {entry.get('schema')!r}, expected {SCHEMA!r}")
    for key, kind in (("id", str), ("kind", str), ("group", str), ("prompt", str)):
        if not isinstance(entry.get(key), kind):
            raise UserError(f"{where}: field {key!r} must be a string, got {entry.get(key)!r}")
    if entry["kind"] not in KINDS:
        raise UserError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {entry['kind']!r}")
    if entry.get("text") is not None and not isinstance(entry["text"], str):
        raise UserError(f"{where}: field 'text' must be a string or null, got {entry['text']!r}")
    if not isinstance(entry.get("metadata", {}), dict):
        raise UserError(f"{where}: field 'metadata' must be an object")
    return entry


def read_entries(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a ``generations.jsonl`` file (a torn last line, from an interrupted write, is ignored)."""
    from ue_metrics.jsonl import read_jsonl

    path = Path(path)
    entries = read_jsonl(path, tolerate_torn_tail=True)
    return [validate_entry(e, f"{path} line {k}") for k, e in enumerate(entries, 1)]
