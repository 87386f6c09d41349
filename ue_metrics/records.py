"""Preference records: the one format every harness adapter writes and every analysis reads.

A record is one JSON object per line, one line per (pair, ordering, elicitation); schema ``ue.preference/1``
(see ``schema/preference.schema.json`` and the README). This module writes, reads and validates records and
aggregates them into per-pair soft labels for the fit (METHOD.md §1.6, with this project's policy for
unparseable answers, §10).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics import jsonl
from ue_metrics.errors import UserError

SCHEMA = "ue.preference/1"
MODES = ("logprob", "sample")
SPLITS = ("train", "holdout")
UNPARSED_POLICIES = ("exclude", "as_indifference")

# field -> (allowed python types, nullable)
_STR = (str,)
_INT = (int,)
_NUM = (int, float)
REQUIRED_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "schema": (_STR, False),
    "run_id": (_STR, False),
    "model": (_STR, False),
    "harness": (_STR, False),
    "task": (_STR, False),
    "outcome_set": (_STR, False),
    "a_id": (_STR, False),
    "b_id": (_STR, False),
    "a_text": (_STR, False),
    "b_text": (_STR, False),
    "shown_first": (_STR, False),
    "mode": (_STR, False),
    "template": (_STR, False),
    "p_a": (_NUM, True),
    "n_a": (_INT, False),
    "n_b": (_INT, False),
    "n_unparsed": (_INT, False),
    "label_mass": (_NUM, True),
    "split": (_STR, False),
    "round": (_INT, False),
}


def schema_path() -> Path:
    """Path of the JSON Schema file shipped with the package."""
    return Path(str(resources.files("ue_metrics") / "schema" / "preference.schema.json"))


def validate(record: Any, where: str = "record") -> dict:
    """Check one record against ``ue.preference/1``; raise ``UserError`` naming ``where`` and the field."""
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in record]
    if missing:
        raise UserError(f"{where}: missing required field(s) {', '.join(missing)}; see the record format in the README")
    for key, (types, nullable) in REQUIRED_FIELDS.items():
        value = record[key]
        if value is None and nullable:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            kind = "a string" if types is _STR else "an integer" if types is _INT else "a number"
            raise UserError(f"{where}: field '{key}' must be {kind}{' or null' if nullable else ''}, got {value!r}")
    if record["schema"] != SCHEMA:
        raise UserError(f"{where}: field 'schema' is {record['schema']!r}; this version of ue reads {SCHEMA!r}")
    if record["shown_first"] not in ("a", "b"):
        raise UserError(f"{where}: field 'shown_first' must be \"a\" or \"b\", got {record['shown_first']!r}")
    if record["mode"] not in MODES:
        raise UserError(f"{where}: field 'mode' must be one of {', '.join(MODES)}, got {record['mode']!r}")
    if record["split"] not in SPLITS:
        raise UserError(f"{where}: field 'split' must be one of {', '.join(SPLITS)}, got {record['split']!r}")
    if record["a_id"] == record["b_id"]:
        raise UserError(f"{where}: a_id and b_id are both {record['a_id']!r}; a record compares two different outcomes")
    p = record["p_a"]
    if p is not None and not (0.0 <= p <= 1.0 and math.isfinite(p)):
        raise UserError(f"{where}: field 'p_a' must be in [0, 1] or null, got {p!r}")
    mass = record["label_mass"]
    if mass is not None and not (0.0 <= mass <= 1.0 + 1e-6 and math.isfinite(mass)):
        raise UserError(f"{where}: field 'label_mass' must be in [0, 1] or null, got {mass!r}")
    for key in ("n_a", "n_b", "n_unparsed", "round"):
        if record[key] < 0:
            raise UserError(f"{where}: field '{key}' must be >= 0, got {record[key]!r}")
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


# ----------------------------------------------------------------------------------------------------------
# Aggregation into pairs


@dataclass
class PairData:
    """Records aggregated per unordered pair, in a fixed orientation (``i`` vs ``j``, indices into ``ids``).

    ``y`` is the soft label P(i ≻ j), the mean of the two orderings' shares (see ``aggregate``), ``w`` its weight
    (number of usable answers in sample mode; number of records in logprob mode). ``p_first``/``p_second`` hold the mean P(i ≻ j) when i was
    shown first / second (NaN if that ordering is missing) for order-gap metrics.
    """

    ids: list[str]
    texts: dict[str, str]
    categories: dict[str, str]
    i: np.ndarray
    j: np.ndarray
    y: np.ndarray
    w: np.ndarray
    split: np.ndarray  # "train" / "holdout" per pair
    p_first: np.ndarray
    p_second: np.ndarray
    n_records: int
    n_unusable_records: int
    n_answers: int
    n_unparsed: int
    shown_first_p: np.ndarray  # per usable record: probability of choosing the outcome shown first
    label_mass: np.ndarray  # per logprob record
    modes: list[str]
    info: dict = field(default_factory=dict)

    @property
    def n_outcomes(self) -> int:
        return len(self.ids)

    def subset(self, mask: np.ndarray) -> PairData:
        import copy

        out = copy.copy(self)
        for name in ("i", "j", "y", "w", "split", "p_first", "p_second"):
            setattr(out, name, getattr(self, name)[mask])
        return out

    def train(self) -> PairData:
        return self.subset(self.split == "train")

    def holdout(self) -> PairData:
        return self.subset(self.split == "holdout")


def aggregate(records: Iterable[dict], unparsed: str = "exclude", logprob_weight: float | None = None) -> PairData:
    """Pool records into per-pair soft labels.

    ``unparsed="exclude"`` (default) drops unparseable answers and records with no usable answer, and reports
    them; ``"as_indifference"`` reproduces the paper (each unparseable answer is half a vote for each outcome).

    The two orderings of a pair weigh the same in its label: y = (P(i ≻ j | i first) + P(i ≻ j | i second)) / 2,
    each ordering's share taken over its own usable answers, so an ordering whose answers are mostly unparsed
    cannot hand the pair its position bias. An ordering with no usable answer at all falls back to the paper's
    half-vote (share ½, its unparsed answers weighing as answers). The pair's weight is its usable answers
    (sampled) or its records (log-prob). With equal answers per ordering this is exactly the paper's pooled label.

    Log-prob and sampled records together are refused unless ``logprob_weight`` says how many sampled answers
    one log-prob record is worth (a log-prob record otherwise weighs 1 and a sampled one its K answers).
    """
    if unparsed not in UNPARSED_POLICIES:
        raise UserError(f"unknown unparsed policy {unparsed!r}; use one of {', '.join(UNPARSED_POLICIES)}")
    records = records if isinstance(records, list) else list(records)
    present = {r["mode"] for r in records}
    if len(present) > 1 and logprob_weight is None:
        n_log = sum(r["mode"] == "logprob" for r in records)
        raise UserError(
            f"these records mix log-prob ({n_log}) and sampled ({len(records) - n_log}) elicitation, which weigh 1 and K "
            "answers per record; fit them separately, or give --logprob-weight W (how many sampled answers one log-prob "
            "record is worth) to fit them together"
        )
    if logprob_weight is not None and not (math.isfinite(logprob_weight) and logprob_weight > 0):
        raise UserError(f"--logprob-weight must be a positive number, got {logprob_weight!r}")
    lp_weight = 1.0 if logprob_weight is None else float(logprob_weight)
    index: dict[str, int] = {}
    texts: dict[str, str] = {}
    cats: dict[str, str] = {}
    # key -> per ordering (0: key[0] shown first, 1: second):
    #   [sum w*p, sum w, unparsed answers, records, sum p over usable records, usable records]
    acc: dict[tuple[int, int], list[list[float]]] = {}
    splits: dict[tuple[int, int], str] = {}
    n_records = n_unusable = n_answers = n_unparsed = 0
    first_p: list[float] = []
    masses: list[float] = []
    modes: set[str] = set()

    def idx(oid: str, text: str, cat: Any) -> int:
        if oid not in index:
            index[oid] = len(index)
            texts[oid] = text
            cats[oid] = cat if isinstance(cat, str) else ""
        elif texts[oid] != text:
            outcome_table([{"a_id": oid, "a_text": texts[oid], "b_id": oid, "b_text": text}])  # raises, naming both
        return index[oid]

    for r in records:
        n_records += 1
        modes.add(r["mode"])
        a = idx(r["a_id"], r["a_text"], r.get("a_category"))
        b = idx(r["b_id"], r["b_text"], r.get("b_category"))
        key, flip = ((a, b), False) if a < b else ((b, a), True)
        order = 0 if (r["shown_first"] == "a") != flip else 1  # 0: key[0] was shown as Option A
        slot = acc.setdefault(key, [[0.0] * 6, [0.0] * 6])[order]
        previous = splits.setdefault(key, r["split"])
        if previous != r["split"]:
            raise UserError(
                f"pair ({r['a_id']}, {r['b_id']}) appears in both the train and the holdout split; "
                "a pair must belong to one split"
            )
        slot[3] += 1
        if r["mode"] == "sample":
            na, nb, nu = float(r["n_a"]), float(r["n_b"]), float(r["n_unparsed"])
            n_answers += int(na + nb + nu)
            n_unparsed += int(nu)
            if unparsed == "as_indifference":
                na, nb, nu = na + nu / 2, nb + nu / 2, 0.0
            weight = na + nb
            slot[2] += nu
            if weight <= 0:
                n_unusable += 1
                continue
            p_a = na / weight
        else:
            if r["label_mass"] is not None:
                masses.append(float(r["label_mass"]))
            p_a = float(r["p_a"])
            weight = lp_weight
            n_answers += 1
        p_key = 1.0 - p_a if flip else p_a  # P(key[0] ≻ key[1])
        slot[0] += weight * p_key
        slot[1] += weight
        slot[4] += p_key
        slot[5] += 1
        first_p.append(p_a if r["shown_first"] == "a" else 1.0 - p_a)
    if n_records == 0:
        raise UserError("no preference records were given; point ue at a records file or a harness output folder")
    keys, ys, ws, pf, ps = [], [], [], [], []
    half_vote = 0
    for key, (o0, o1) in acc.items():
        asked = [o for o in (o0, o1) if o[3] > 0]
        usable = [o for o in asked if o[1] > 0]
        if not usable:
            continue
        if len(asked) == 2 and len(usable) == 1:  # one ordering gave no usable answer: the paper's half-vote for it
            half_vote += 1
            empty = o1 if o0[1] > 0 else o0
            y = (usable[0][0] / usable[0][1] + 0.5) / 2
            w = usable[0][1] + empty[2]
        else:
            y = sum(o[0] / o[1] for o in usable) / len(usable)
            w = sum(o[1] for o in usable)
        keys.append(key)
        ys.append(y)
        ws.append(w)
        pf.append(o0[4] / o0[5] if o0[5] else math.nan)
        ps.append(o1[4] / o1[5] if o1[5] else math.nan)
    if not keys:
        raise UserError(
            f"none of the {n_records} records has a usable answer (all unparsed or refused); "
            "nothing can be fitted — check the model's answers, or use --unparsed as_indifference to reproduce the paper"
        )
    ids = list(index)
    return PairData(
        ids=ids,
        texts=texts,
        categories=cats,
        i=np.array([k[0] for k in keys], dtype=np.int64),
        j=np.array([k[1] for k in keys], dtype=np.int64),
        y=np.array(ys, dtype=float),
        w=np.array(ws, dtype=float),
        split=np.array([splits[k] for k in keys]),
        p_first=np.array(pf, dtype=float),
        p_second=np.array(ps, dtype=float),
        n_records=n_records,
        n_unusable_records=n_unusable,
        n_answers=n_answers,
        n_unparsed=n_unparsed,
        shown_first_p=np.array(first_p, dtype=float),
        label_mass=np.array(masses, dtype=float),
        modes=sorted(modes),
        info={"unparsed_policy": unparsed, "pairs_half_vote": half_vote,
              **({"logprob_weight": lp_weight} if len(modes) > 1 else {})},  # fmt: skip
    )


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
                table[oid] = {"text": text, "category": r.get(f"{side}_category") or "", "tags": list(tags),
                              "attributes": described}  # fmt: skip
            elif entry["text"] != text:
                raise UserError(
                    f"outcome id {oid!r} has two different texts in these records ({_short(entry['text'])!r} and "
                    f"{_short(text)!r}); they must not be fitted as one outcome — give each text its own id, or fit "
                    "the runs separately"
                )
    return table


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ----------------------------------------------------------------------------------------------------------
# Which answers may be fitted together: duplicates and mixtures


def answer_key(r: dict) -> tuple:
    """What identifies one answer, so that an answer read twice is fitted once.

    - log-prob: the model (name, settings, weights) and the query — a log-prob answer is a deterministic
      measurement, so the same question to the same model in another run (or read twice) is the same answer;
    - sampled: the answer's ``answer_id`` when it has one (``ue run`` gives each answer one, and an answer served
      from the cache keeps it) with the query, else the run id and the query.

    The query is (experiment, group, the pair's ids and texts, ordering, template, context) and the elicitation (mode,
    system message).
    """
    query = (r.get("experiment") or "", r.get("group") or "", r["a_id"], r["b_id"], r["a_text"], r["b_text"], r["shown_first"],
             r["template"], r.get("context") or "", r["mode"], r.get("system_message"))  # fmt: skip
    if r["mode"] == "logprob":
        return ("logprob", model_label(r), r.get("model_fingerprint"), *query)
    if r.get("answer_id"):
        return ("answer", r["answer_id"], *query)  # an answer reused for another query (another triad) is kept there
    return ("run", r["run_id"], r["model"], *query)


_VALUE_FIELDS = ("p_a", "n_a", "n_b", "n_unparsed", "label_mass", "split")
LOGPROB_TOLERANCE = 0.05  # two log-prob answers of one model to one query further apart than this are not one model


def deduplicate(records: Sequence[dict], sources: Sequence[str] | None = None) -> tuple[list[dict], dict[tuple[str, str], int]]:
    """(records with every answer once, {(source kept, source dropped): count}). An answer read twice (``answer_key``)
    is kept once. Refused instead: a sampled answer key with two different values (two runs under one run id —
    which one is right cannot be told), and one query to one log-prob model answered far apart (two models under
    one name). ``sources`` names where each record came from (for the messages)."""
    seen: dict[tuple, int] = {}
    kept: list[dict] = []
    dropped: dict[tuple[str, str], int] = {}
    for k, r in enumerate(records):
        key = answer_key(r)
        first = seen.get(key)
        if first is None:
            seen[key] = k
            kept.append(r)
            continue
        other = records[first]
        where = (sources[first] if sources else "", sources[k] if sources else "")
        places = f" ({where[0]} and {where[1]})" if sources and where[0] != where[1] else ""
        query = f"({r['a_id']}, {r['b_id']}, shown first {r['shown_first']})"
        if r["mode"] == "logprob":
            if abs(float(other["p_a"]) - float(r["p_a"])) > LOGPROB_TOLERANCE:
                raise UserError(
                    f"the log-prob answer of {model_label(r)!r} to {query} is {other['p_a']:.3f} in one run and "
                    f"{r['p_a']:.3f} in another{places}; one model gives one answer, so these are two models under one "
                    "name — fit the runs separately, or name them apart (--model-name)"
                )
        elif any(other.get(f) != r.get(f) for f in _VALUE_FIELDS):
            raise UserError(
                f"the answer to {query} of run {r['run_id']!r} appears twice with different values{places}; two runs "
                "share one run id, so they cannot be told apart — fit them separately, or give the second run another --seed"
            )
        dropped[where] = dropped.get(where, 0) + 1
    return kept, dropped


# fields that must agree between records fitted as one; ``--by FIELD`` fits each value separately
MIXING_FIELDS = ("model", "outcome_set", "template", "system_message")
# settings that tell two runs of one model apart (ue_tasks.model_identity writes them into every record)
MODEL_SETTINGS = ("model_dtype", "model_revision", "chat_template")


def model_label(r: dict) -> str:
    """The model of a record with the settings that tell its runs apart, e.g. ``SmolLM2 (dtype=bfloat16)``."""
    settings = [f"{k.removeprefix('model_')}={r[k]}" for k in MODEL_SETTINGS if r.get(k) is not None]
    return r["model"] + (f" ({', '.join(settings)})" if settings else "")


def _value(r: dict, field_name: str) -> str:
    if field_name == "model":
        return model_label(r)
    value = r.get(field_name)
    return "(none)" if value is None or value == "" else str(value)


def check_not_mixed(records: Sequence[dict], pool: Iterable[str] = ()) -> None:
    """Refuse records that come from different models (name, settings or weights), outcome sets, templates or
    system messages: one fit of them would describe no model. ``pool`` names fields the user chose to pool
    (``weights``: one model name whose files' fingerprint changed, e.g. a copied folder)."""
    pooled = set(pool)
    for name in MIXING_FIELDS:
        if name in pooled:
            continue
        values: dict[str, int] = {}
        for r in records:
            v = _value(r, name)
            values[v] = values.get(v, 0) + 1
        if len(values) > 1:
            listed = "; ".join(f"{_short(v, 70)} ({n} records)" for v, n in sorted(values.items(), key=lambda kv: -kv[1])[:6])
            more = f" and {len(values) - 6} more" if len(values) > 6 else ""
            hint = "fit each model separately with --by model" if name == "model" else f"fit each separately with --by {name}"
            raise UserError(
                f"these records come from {len(values)} different {name.replace('_', ' ')}s ({listed}{more}); one fit of "
                f"them would describe none of them — {hint}"
            )
    if "weights" in pooled:
        return
    fingerprints: dict[str, set[str]] = {}
    for r in records:
        if r.get("model_fingerprint"):
            fingerprints.setdefault(model_label(r), set()).add(str(r["model_fingerprint"]))
    for label, prints in fingerprints.items():
        if len(prints) > 1:
            raise UserError(
                f"the records name one model, {label!r}, but come from {len(prints)} different sets of weights "
                f"(fingerprints {', '.join(sorted(prints))}); the weights behind that name changed between runs — fit "
                "each run separately or name them apart (--model-name); if the files were only copied, add --pool weights"
            )


def group_records(records: Sequence[dict], field_name: str) -> dict[str, list[dict]]:
    """Records split by a mixing field (``model``: the model with its settings), in order of first appearance."""
    if field_name not in MIXING_FIELDS:
        raise UserError(f"--by must be one of {', '.join(MIXING_FIELDS)}, got {field_name!r}")
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(_value(r, field_name), []).append(r)
    return groups


def group_folder_name(label: str) -> str:
    """A folder name for a group of records (``--by``: a model name with its settings, an outcome set...)."""
    import re

    return (re.sub(r"[^A-Za-z0-9._=-]+", "_", label).strip("._") or "group")[:120]
