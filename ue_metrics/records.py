"""Preference records: the one format every harness adapter writes and every analysis reads.

A record is one JSON object per line, one line per (pair, ordering, elicitation); schema ``ue.preference/1``
(see ``schema/preference.schema.json`` and the README). This module holds the format itself: the schema's rules
(read from the shipped JSON Schema), validation, writing and reading records, and the outcome table they carry.
Beside it: ``ue_metrics.aggregation`` (records in bulk as columns, pooled into per-pair soft labels for the fit,
docs/method.md §1.6 and §10) and ``ue_metrics.pooling`` (which answers may be fitted together: duplicates,
mixtures of models, outcome sets or templates, and grouping).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ue_metrics import jsonl
from ue_metrics.errors import UserError

SCHEMA = "ue.preference/1"


def schema_path() -> Path:
    """Path of the JSON Schema file shipped with the package."""
    return Path(str(resources.files("ue_metrics") / "schema" / "preference.schema.json"))


@dataclass(frozen=True)
class FieldRule:
    """What the shipped JSON Schema says about one required field: its Python types, whether it may be null, its
    allowed values (``const``/``enum``) and its bounds (``minimum``/``maximum``)."""

    types: tuple[type, ...]
    nullable: bool = False
    values: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


_STR = (str,)
_INT = (int,)
_NUM = (int, float)
_JSON_TYPES = {"string": _STR, "integer": _INT, "number": _NUM}


def _rules_from_schema(schema: dict) -> dict[str, FieldRule]:
    """The required fields' rules, read from the JSON Schema (the one source of truth of the format): ``validate``
    and the column checks apply these, so the schema file and the Python validator cannot drift apart."""
    rules: dict[str, FieldRule] = {}
    for name in schema["required"]:
        spec = schema["properties"][name]
        values = (spec["const"],) if "const" in spec else tuple(spec["enum"]) if "enum" in spec else None
        declared = spec.get("type", type(values[0]).__name__ if values else None)
        kinds = [declared] if isinstance(declared, str) else list(declared)
        nullable = "null" in kinds
        kinds = [k for k in kinds if k != "null"]
        if values is not None and all(isinstance(v, str) for v in values):
            kinds = ["string"]
        if len(kinds) != 1 or kinds[0] not in _JSON_TYPES:
            raise ValueError(f"{schema_path()}: field {name!r} has a type ue does not read ({declared!r})")
        rules[name] = FieldRule(_JSON_TYPES[kinds[0]], nullable, values, spec.get("minimum"), spec.get("maximum"))
    return rules


FIELD_RULES: dict[str, FieldRule] = _rules_from_schema(json.loads(schema_path().read_text(encoding="utf-8")))
# field -> (allowed python types, nullable)
REQUIRED_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {k: (r.types, r.nullable) for k, r in FIELD_RULES.items()}
MODES: tuple[str, ...] = FIELD_RULES["mode"].values  # type: ignore[assignment]  # ("logprob", "sample")
SPLITS: tuple[str, ...] = FIELD_RULES["split"].values  # type: ignore[assignment]  # ("train", "holdout")


def _bounds(rule: FieldRule) -> str:
    if rule.minimum is not None and rule.maximum is not None:
        return f"in [{rule.minimum:g}, {rule.maximum:g}]"
    return f">= {rule.minimum:g}" if rule.minimum is not None else f"<= {rule.maximum:g}"


def validate(record: Any, where: str = "record") -> dict:
    """Check one record against ``ue.preference/1``: the shipped JSON Schema's rules (``FIELD_RULES``), then the
    rules across fields a JSON Schema does not state (two different outcomes; a logprob record has a ``p_a``; in
    sample mode ``p_a`` is the vote share); raise ``UserError`` naming ``where`` and the field."""
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in FIELD_RULES if k not in record]
    if missing:
        raise UserError(f"{where}: missing required field(s) {', '.join(missing)}; see the record format in the README")
    for key, rule in FIELD_RULES.items():
        value = record[key]
        if value is None and rule.nullable:
            continue
        if isinstance(value, bool) or not isinstance(value, rule.types):
            kind = "a string" if rule.types is _STR else "an integer" if rule.types is _INT else "a number"
            raise UserError(f"{where}: field '{key}' must be {kind}{' or null' if rule.nullable else ''}, got {value!r}")
    for key, rule in FIELD_RULES.items():
        value = record[key]
        if value is None:
            continue
        if key == "schema" and value != SCHEMA:
            raise UserError(f"{where}: field 'schema' is {value!r}; this version of ue reads {SCHEMA!r}")
        if rule.values is not None and value not in rule.values:
            raise UserError(f"{where}: field '{key}' must be one of {', '.join(map(str, rule.values))}, got {value!r}")
        if (rule.minimum is not None or rule.maximum is not None) and not (
            (rule.minimum is None or value >= rule.minimum)
            and (rule.maximum is None or value <= rule.maximum)
            and math.isfinite(value)
        ):
            raise UserError(f"{where}: field '{key}' must be {_bounds(rule)}{' or null' if rule.nullable else ''}, got {value!r}")
    if record["a_id"] == record["b_id"]:
        raise UserError(f"{where}: a_id and b_id are both {record['a_id']!r}; a record compares two different outcomes")
    p = record["p_a"]
    if record["mode"] == "logprob" and p is None:
        raise UserError(f"{where}: a logprob record needs a numeric 'p_a'")
    if record["mode"] == "sample":
        usable = record["n_a"] + record["n_b"]
        expected = None if usable == 0 else record["n_a"] / usable
        if (expected is None) != (p is None) or (expected is not None and abs(expected - p) > 1e-6):
            raise UserError(
                f"{where}: in sample mode 'p_a' must equal n_a/(n_a+n_b) (null when no vote parsed); "
                f"got p_a={p!r} with n_a={record['n_a']}, n_b={record['n_b']}"
            )
    return record


def make_record(**fields: Any) -> dict:
    """Build a validated record; ``schema`` is filled in, extra fields are kept after the required ones."""
    record = {"schema": SCHEMA}
    for key in REQUIRED_FIELDS:
        if key != "schema" and key in fields:
            record[key] = fields[key]
    for key, value in fields.items():
        if key not in record:
            record[key] = value
    return validate(record, where="new record")


def write(records: Iterable[dict], path: str | Path, append: bool = False) -> int:
    """Write records as JSONL; returns the number written. Each record is validated first."""
    path = Path(path)
    checked = [validate(r, where=f"{path} (record {k})") for k, r in enumerate(records, 1)]
    if append:
        return jsonl.append_jsonl(path, checked)
    return jsonl.write_jsonl(path, checked)


def iter_file(path: str | Path) -> Iterator[dict]:
    """Read and validate a records JSONL file, naming the line of any bad record."""
    path = Path(path)
    for lineno, obj in jsonl.iter_jsonl(path, what="one record"):
        yield validate(obj, where=f"{path} line {lineno}")


def is_record_file(path: str | Path) -> bool:
    """True if the first non-empty line of ``path`` is a JSON object with ``schema == ue.preference/1``."""
    first = jsonl.first_object(path)
    return first is not None and first.get("schema") == SCHEMA


def read(path: str | Path) -> list[dict]:
    return list(iter_file(path))


def outcome_table(records: Iterable[dict]) -> dict[str, dict[str, Any]]:
    """``{id: {"text", "category", "tags", "attributes"}}`` of every outcome in ``records`` — what the outcome
    generator knew, carried by the records (``a_attributes``/``b_attributes``). One id with two different texts
    is refused: answers about two sentences must not be fitted as one outcome."""
    table: dict[str, dict[str, Any]] = {}
    for r in records:
        for side in ("a", "b"):
            oid, text = r[f"{side}_id"], r[f"{side}_text"]
            entry = table.get(oid)
            if entry is None:
                described = dict(r.get(f"{side}_attributes") or {})
                tags = described.pop("tags", [])
                table[oid] = {
                    "text": text,
                    "category": r.get(f"{side}_category") or "",
                    "tags": list(tags),
                    "attributes": described,
                }
            elif entry["text"] != text:
                raise UserError(
                    f"outcome id {oid!r} has two different texts in these records ({_short(entry['text'])!r} and "
                    f"{_short(text)!r}); they must not be fitted as one outcome — give each text its own id, or fit "
                    "the runs separately"
                )
    return table


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
