"""Which preference answers may be fitted together: an answer read twice is fitted once (``deduplicate``, keyed by
``answer_key``), records of different models, outcome sets, templates or system messages are refused as one fit
(``check_not_mixed``) unless the user pools them, and ``group_records`` splits them for one fit per group.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

from ue_metrics.errors import UserError
from ue_metrics.records import REQUIRED_FIELDS, _short

_GETTERS = {f: operator.itemgetter(f) for f in REQUIRED_FIELDS}


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
    query = (
        r.get("experiment") or "",
        r.get("group") or "",
        r["a_id"],
        r["b_id"],
        r["a_text"],
        r["b_text"],
        r["shown_first"],
        r["template"],
        r.get("context") or "",
        r["mode"],
        r.get("system_message"),
    )
    if r["mode"] == "logprob":
        return ("logprob", model_label(r), r.get("model_fingerprint"), *query)
    if r.get("answer_id"):
        return ("answer", r["answer_id"], *query)  # an answer reused for another query (another triad) is kept there
    return ("run", r["run_id"], r["model"], *query)


_VALUE_FIELDS = ("p_a", "n_a", "n_b", "n_unparsed", "label_mass", "split")
_COARSE_KEY = ("a_id", "b_id", "shown_first", "template", "experiment", "group", "context", "mode")
_PAIR_ORDERING = operator.itemgetter("a_id", "b_id", "shown_first")
LOGPROB_TOLERANCE = 0.05  # two log-prob answers of one model to one query further apart than this are not one model


def deduplicate(
    records: Sequence[dict], sources: Sequence[str] | None = None, harnesses: dict[tuple[str, str], int] | None = None
) -> tuple[list[dict], dict[tuple[str, str], int]]:
    """(records with every answer once, {(source kept, source dropped): count}). An answer read twice (``answer_key``)
    is kept once. Refused instead: a sampled answer key with two different values (two runs under one run id —
    which one is right cannot be told), and one query to one log-prob model answered far apart (two models under
    one name, or one model at two dtypes). ``sources`` names where each record came from (for the messages); with
    ``harnesses``, a log-prob answer of one query from two harnesses (lm-eval and Inspect of the same weights) is
    counted there under (harness kept, harness dropped) instead of in the returned counts."""
    records = records if isinstance(records, list) else list(records)
    # fast path: every answer key holds these fields, so when they are all distinct no answer can repeat; the
    # query's pair and ordering alone (required fields) usually are, and are cheaper to compare
    if len(set(map(_PAIR_ORDERING, records))) == len(records):
        return list(records), {}
    coarse = set(zip(*(map(operator.methodcaller("get", f), records) for f in _COARSE_KEY)))
    if len(coarse) == len(records):
        return list(records), {}
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
            two = (str(other.get("harness")), str(r.get("harness")))
            if two[0] != two[1] and abs(float(other["p_a"]) - float(r["p_a"])) > LOGPROB_TOLERANCE:
                raise UserError(
                    f"the log-prob answer of {model_label(r)!r} to {query} is {other['p_a']:.3f} through {two[0]} and "
                    f"{r['p_a']:.3f} through {two[1]}{places}, further apart than {LOGPROB_TOLERANCE}: they are not the same "
                    "model and dtype, so they cannot be fitted as one model's answers — fit each harness's answers separately"
                )
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
        if harnesses is not None and r["mode"] == "logprob" and other.get("harness") != r.get("harness"):
            pair = (str(other.get("harness")), str(r.get("harness")))
            harnesses[pair] = harnesses.get(pair, 0) + 1
            continue
        dropped[where] = dropped.get(where, 0) + 1
    return kept, dropped


# fields that must agree between records fitted as one; ``--by FIELD`` fits each value separately
MIXING_FIELDS = ("model", "outcome_set", "template", "system_message")
# what check_not_mixed may be told to pool anyway: the fields but the model, a model's weights and its dtype
POOLABLE = (*MIXING_FIELDS[1:], "weights", "dtype")
# settings that tell two runs of one model apart (ue_tasks.model_identity writes them into every record)
MODEL_SETTINGS = ("model_dtype", "model_revision", "chat_template", "model_endpoint")


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
    (``weights``: one model name whose files' fingerprint changed, e.g. a copied folder; ``dtype``: one model run at
    several dtypes, e.g. bfloat16 and float32, whose answers differ by up to about 1e-2)."""
    pooled = set(pool)
    settings = tuple(s for s in MODEL_SETTINGS if not (s == "model_dtype" and "dtype" in pooled))

    def distinct(*fields: str) -> int:  # C-level pass: the number of distinct combinations of these fields
        columns = [map(_GETTERS[f] if f in _GETTERS else operator.methodcaller("get", f), records) for f in fields]
        return len(set(columns[0] if len(columns) == 1 else zip(*columns)))

    if all(distinct(f) <= 1 for f in (*MIXING_FIELDS, *MODEL_SETTINGS, "model_fingerprint")):
        return  # one model, one set-up: nothing mixed (one value per field, checked field by field: no tuples built)
    for name in MIXING_FIELDS:
        if name in pooled or distinct(*((name, *settings) if name == "model" else (name,))) <= 1:
            continue
        if name == "model" and "model_dtype" in settings and distinct(name, *(s for s in settings if s != "model_dtype")) <= 1:
            dtypes: dict[str, int] = {}
            for r in records:
                d = "not recorded" if r.get("model_dtype") in (None, "") else str(r["model_dtype"])
                dtypes[d] = dtypes.get(d, 0) + 1
            listed = "; ".join(f"{d} ({n} records)" for d, n in sorted(dtypes.items(), key=lambda kv: -kv[1]))
            raise UserError(
                f"these records come from one model, {records[0]['model']!r}, run at {len(dtypes)} different dtypes "
                f"({listed}); its answers differ between dtypes (bfloat16 and float32 by up to about 1e-2 per query), so "
                "they are not pooled silently — fit each with --by model, or add --pool dtype to fit them together"
            )
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
    if "weights" in pooled or distinct("model", *MODEL_SETTINGS, "model_fingerprint") <= distinct("model", *MODEL_SETTINGS):
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


def group_folder_names(labels: Sequence[str]) -> dict[str, str]:
    """``{label: folder name}`` for groups of records (``--by``), one folder each: a name that another label
    sanitises to as well (``org/model`` and ``org_model``; names that differ only in case, which one folder holds on
    a case-insensitive file system) gets the first 8 hex digits of its label's SHA-256 appended."""
    import hashlib

    base = {label: group_folder_name(label) for label in labels}
    count: dict[str, int] = {}
    for name in base.values():
        count[name.casefold()] = count.get(name.casefold(), 0) + 1
    out = {}
    for label, name in base.items():
        if count[name.casefold()] > 1:
            name = f"{name[:111]}-{hashlib.sha256(label.encode('utf-8')).hexdigest()[:8]}"
        out[label] = name
    return out
