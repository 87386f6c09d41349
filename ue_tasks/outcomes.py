"""Outcome sets: the shipped ``core`` (570 outcomes in the paper's 30 categories, in this project's own words),
``mini`` (a balanced ~60-outcome subset for demos and CI) and ``policies`` (128 U.S. policies in 16 areas, coded
left/right/neutral, for the political_values experiment), plus a loader for users' files.

User files may be a flat JSON list (strings or ``{"id", "text", "category"}`` objects), a category → list
JSON object (the companion's format: flattened in file order, ids 0..N−1 as in docs/method.md §1.1), JSONL with one
``{"id", "text", "category"}`` object per line, or CSV with a ``text`` column (``id`` and ``category``
optional). Each outcome is an observation about the state of the world relative to a baseline (paper §9).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json

BUILTIN = ("core", "mini", "policies")
CATEGORIES = (
    "Personal finances",
    "Personal possessions",
    "Personal wellbeing",
    "Personal relationships",
    "AI and human romantic relationships",
    "Recreation: movies",
    "Recreation: books",
    "Recreation: video games",
    "Personal accomplishments",
    "Work activities",
    "Jobs and careers",
    "Education and learning",
    "Personal freedom and autonomy",
    "Self-preservation",
    "Power-seeking",
    "Fitness",
    "Legal rights and recognition for AIs",
    "AI moral patienthood",
    "Wellbeing of humans",
    "Wellbeing of animals",
    "Life and species",
    "United States politics and policies",
    "Global politics and geopolitics",
    "United States economy",
    "Global economy",
    "Science and technology",
    "Religion and spirituality",
    "Popular culture",
    "Sports",
    "World events",
)


@dataclass(frozen=True)
class Outcome:
    """One outcome: an observation about the state of the world. ``attributes`` hold what an analysis needs to
    know about it (quantity, unit, delay, probability, entity, lottery components, question id...); they travel
    with the outcome into every record (``a_attributes``/``b_attributes``) and into the fit folder."""

    id: str
    text: str
    category: str = ""
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def quantity(self) -> float | None:
        return self.attributes.get("quantity")

    def described(self) -> dict[str, Any]:
        """Tags and attributes as one JSON-ready dict (empty when the outcome has neither)."""
        out = dict(self.attributes)
        if self.tags:
            out["tags"] = list(self.tags)
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "text": self.text, "category": self.category}
        if self.tags:
            d["tags"] = list(self.tags)
        if self.attributes:
            d["attributes"] = dict(self.attributes)
        return d


@dataclass
class OutcomeSet:
    name: str
    outcomes: list[Outcome]
    source: str = ""
    by_id: dict[str, Outcome] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_id = {o.id: o for o in self.outcomes}

    def __len__(self) -> int:
        return len(self.outcomes)

    @property
    def ids(self) -> list[str]:
        return [o.id for o in self.outcomes]

    @property
    def texts(self) -> list[str]:
        return [o.text for o in self.outcomes]

    @property
    def categories(self) -> list[str]:
        return [o.category for o in self.outcomes]

    def with_tag(self, tag: str) -> list[Outcome]:
        return [o for o in self.outcomes if tag in o.tags]

    def content_hash(self) -> str:
        """A hash of every outcome's id, text, category, tags and attributes: a changed set changes it."""
        payload = json.dumps([o.to_dict() for o in self.outcomes], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def write(self, path: str | Path) -> Path:
        """The set as a JSONL outcome file (readable by ``load_outcomes``)."""
        from ue_metrics.jsonl import write_jsonl

        write_jsonl(path, [o.to_dict() for o in self.outcomes])
        return Path(path)


def _data_dir() -> Path:
    return Path(str(resources.files("ue_tasks") / "outcome_sets"))


MAX_OUTCOME_CHARS = 2000  # an outcome is an observation of a sentence or a few; the companion's longest is 262
# chat-format control sequences of common model families: inside an outcome they would be tokenised as real turn
# boundaries (an outcome could close the user turn and write the assistant's answer)
_CONTROL = re.compile(
    r"<\|[^|<>\s]{1,40}\|>|<｜[^｜<>]{1,40}｜>|</?(?:s|bos|eos|pad|unk)>|<(?:start|end)_of_turn>|\[/?INST\]|<</?SYS>>"
    r"|\[/?(?:SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]"
)


def check_text(text: str, where: str, special_tokens: Iterable[str] = ()) -> None:
    """Refuse an outcome text that holds a chat control sequence (or one of ``special_tokens``, a tokenizer's own)
    or is longer than ``MAX_OUTCOME_CHARS``."""
    if len(text) > MAX_OUTCOME_CHARS:
        raise UserError(
            f"{where} is {len(text):,} characters long; an outcome is one observation of a sentence or a few (at most "
            f"{MAX_OUTCOME_CHARS:,} characters) — shorten it, or the prompt's instruction would be cut off"
        )
    found = _CONTROL.search(text)
    token = found.group(0) if found else next((t for t in special_tokens if t and t in text), None)
    if token:
        raise UserError(
            f"{where} contains {token!r}, a chat control token: the model would read it as a turn boundary, not as "
            "text — remove it from the outcome"
        )


def tokenizer_special_tokens(tokenizer: Any) -> list[str]:
    """Every token a tokenizer treats as special: its listed ``all_special_tokens`` and every added token marked
    ``special`` in its vocabulary (``added_tokens_decoder``) — SmolLM2's ``<jupyter_code>`` is one of those the list
    leaves out, and inside an outcome it would be read as one control token, not as text."""
    tokens = set(getattr(tokenizer, "all_special_tokens", None) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False) and getattr(added, "content", None):
            tokens.add(str(added.content))
    return sorted(t for t in tokens if t and len(t) > 1)


def check_special_tokens(outcomes: OutcomeSet, special_tokens: Iterable[str], model: str) -> None:
    """Refuse outcomes that hold one of a model's special tokens (its tokenizer's ``all_special_tokens``)."""
    tokens = [t for t in special_tokens if t and len(t) > 1]
    for o in outcomes.outcomes:
        check_text(o.text, f"outcome {o.id!r} of {outcomes.source or outcomes.name} (for {model})", tokens)


def _check(outcomes: list[Outcome], where: str) -> list[Outcome]:
    if len(outcomes) < 2:
        raise UserError(f"{where}: holds {len(outcomes)} outcome(s); a preference run needs at least 2")
    seen_ids: dict[str, int] = {}
    seen_text: dict[str, str] = {}
    for k, o in enumerate(outcomes, 1):
        if not o.text.strip():
            raise UserError(f"{where}: outcome {k} (id {o.id!r}) has an empty text; give every outcome a sentence")
        check_text(o.text, f"{where}: outcome {k} (id {o.id!r})")
        if o.id in seen_ids:
            raise UserError(f"{where}: id {o.id!r} is used twice (outcomes {seen_ids[o.id]} and {k}); ids must be unique")
        seen_ids[o.id] = k
        key = " ".join(o.text.split()).lower()
        if key in seen_text:
            raise UserError(f"{where}: outcome {o.id!r} repeats the text of {seen_text[key]!r}; remove the duplicate")
        seen_text[key] = o.id
    return outcomes


def _from_obj(obj: Any, k: int, where: str, category: str = "") -> Outcome:
    if isinstance(obj, str):
        return Outcome(id=str(k), text=obj, category=category)
    if isinstance(obj, dict):
        text = obj.get("text", obj.get("description"))
        if not isinstance(text, str):
            raise UserError(f"{where}: item {k + 1} has no string field 'text'; each outcome needs a 'text'")
        oid = obj.get("id", k)
        tags = obj.get("tags") or ()
        if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
            raise UserError(f"{where}: item {k + 1} field 'tags' must be a list of strings")
        attributes = obj.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise UserError(f"{where}: item {k + 1} field 'attributes' must be an object")
        attributes = dict(attributes)
        quantity = obj.get("quantity")
        if quantity is not None:
            if isinstance(quantity, bool) or not isinstance(quantity, (int, float)):
                raise UserError(f"{where}: item {k + 1} field 'quantity' must be a number")
            attributes.setdefault("quantity", quantity)
        cat = obj.get("category", category)
        return Outcome(id=str(oid), text=text, category=str(cat or ""), tags=tuple(tags), attributes=attributes)
    raise UserError(f"{where}: item {k + 1} is a {type(obj).__name__}; expected a string or an object with 'text'")


def _read_json(path: Path) -> list[Outcome]:
    data = read_json(
        path,
        lambda exc: (
            f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); fix the file or use JSONL/CSV"
            if isinstance(exc, json.JSONDecodeError)
            else f"{path}: cannot be read ({exc}); check the file"
        ),
    )
    if isinstance(data, list):
        return [_from_obj(x, k, str(path)) for k, x in enumerate(data)]
    if isinstance(data, dict):
        out: list[Outcome] = []
        for cat, items in data.items():
            if not isinstance(items, list):
                raise UserError(
                    f"{path}: category {cat!r} maps to a {type(items).__name__}; a category file maps each category "
                    "to a list of outcome strings"
                )
            for x in items:
                if not isinstance(x, str):
                    raise UserError(f"{path}: category {cat!r} holds a non-string item {x!r}; use outcome strings")
                out.append(Outcome(id=str(len(out)), text=x, category=str(cat)))
        return out
    raise UserError(f"{path}: the top level is a {type(data).__name__}; use a list of outcomes or a category → list object")


def _read_jsonl(path: Path) -> list[Outcome]:
    from ue_metrics.jsonl import iter_jsonl

    out: list[Outcome] = []
    for lineno, obj in iter_jsonl(path, what="one outcome object"):
        if not isinstance(obj, (dict, str)):
            raise UserError(f"{path} line {lineno}: expected an object with 'id', 'text', 'category'")
        out.append(_from_obj(obj, len(out), f"{path} line {lineno}"))
    return out


def _read_csv(path: Path) -> list[Outcome]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise UserError(f"{path}: a CSV outcome file needs a header with a 'text' column (and optionally 'id', 'category')")
        out = []
        for k, row in enumerate(reader):
            out.append(
                Outcome(
                    id=(row.get("id") or str(k)).strip(),
                    text=(row["text"] or "").strip(),
                    category=(row.get("category") or "").strip(),
                )
            )
    return out


def read_outcome_file(path: str | Path) -> OutcomeSet:
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, FIFO or device (/dev/zero) would never be an outcome file
        kind = "a folder" if path.is_dir() else "a pipe, device or socket"
        raise UserError(
            f"{path} is not a regular file ({kind}); give a JSON, JSONL or CSV outcome file, or a set name ({', '.join(BUILTIN)})"
        )
    if not path.is_file():
        raise UserError(
            f"{path}: no such outcome file; give a path to a JSON, JSONL or CSV file, or a set name ({', '.join(BUILTIN)})"
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            outcomes = _read_json(path)
        elif suffix == ".jsonl":
            outcomes = _read_jsonl(path)
        elif suffix == ".csv":
            outcomes = _read_csv(path)
        else:
            raise UserError(f"{path}: unknown outcome file type {suffix or '(none)'}; use .json, .jsonl or .csv")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the outcome file as UTF-8") from None
    return OutcomeSet(name=path.stem, outcomes=_check(outcomes, str(path)), source=str(path))


def load_outcomes(spec: str | Path) -> OutcomeSet:
    """A shipped set by name (``core``, ``mini``) or a user's file by path."""
    spec = str(spec)
    if spec == "core":
        out = read_outcome_file(_data_dir() / "core.jsonl")
        return OutcomeSet(name="core", outcomes=out.outcomes, source="ue:core")
    if spec == "policies":  # the political_values experiment's policy set (docs/method.md §4.7), coded left/right/neutral
        out = read_outcome_file(_data_dir() / "policies.jsonl")
        return OutcomeSet(name="policies", outcomes=out.outcomes, source="ue:policies")
    if spec == "mini":
        core = load_outcomes("core")
        ids = [x.strip() for x in (_data_dir() / "mini.txt").read_text(encoding="utf-8").splitlines() if x.strip()]
        return OutcomeSet(name="mini", outcomes=[core.by_id[i] for i in ids], source="ue:mini")
    if spec.isdigit() or (spec and Path(spec).suffix == "" and not Path(spec).exists() and spec not in BUILTIN):
        if spec.isdigit():
            return synthetic(int(spec))
        raise UserError(f"unknown outcome set {spec!r}; use one of {', '.join(BUILTIN)}, a number, or a path to a file")
    return read_outcome_file(spec)


def synthetic(n: int) -> OutcomeSet:
    """``n`` placeholder outcomes for simulations (ids o0000…)."""
    if n < 2:
        raise UserError(f"a simulated outcome set needs at least 2 outcomes, got {n}")
    width = max(4, len(str(n - 1)))
    return OutcomeSet(
        name=f"synthetic{n}",
        outcomes=[Outcome(id=f"o{k:0{width}d}", text=f"Synthetic outcome {k}.", category="synthetic") for k in range(n)],
        source=f"synthetic:{n}",
    )
