"""Records in bulk, and their aggregation into per-pair soft labels for the fit (docs/method.md §1.6, with this
project's policy for unparseable answers, §10): ``read_columns`` reads a records file as columns in one pass (the
schema's checks vectorised, still naming the first bad line), ``aggregate`` pools records or columns into
``PairData``.
"""

from __future__ import annotations

import gc
import json
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics import jsonl
from ue_metrics.errors import UserError
from ue_metrics.fit_options import UNPARSED_POLICIES
from ue_metrics.records import _INT, _STR, FIELD_RULES, REQUIRED_FIELDS, SCHEMA, outcome_table, validate

# a log-prob answer whose two labels together carry less probability than this answered neither label (a refusal,
# another token, an empty reply): it is counted as unanswered, never renormalised into a preference
MIN_LABEL_MASS = 1e-6


# ----------------------------------------------------------------------------------------------------------
# Aggregation into pairs


@dataclass
class PairData:
    """Records aggregated per unordered pair, in a fixed orientation (``i`` vs ``j``, indices into ``ids``).

    ``y`` is the soft label P(i ≻ j), the mean of the two orderings' shares (see ``aggregate``), ``w`` its weight
    (number of usable answers in sample mode; number of records in logprob mode). ``p_first``/``p_second`` hold the mean P(i ≻ j) when i was
    shown first / second (NaN if that ordering is missing) for order-gap metrics. Per ordering, for fits with a
    position term: ``w_first``/``y_first`` the weight and weighted P(i ≻ j) of the records with i shown first,
    ``w_second``/``y_second`` with j shown first; ``n_rec`` the usable records of the pair.
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
    n_rec: np.ndarray | None = None
    w_first: np.ndarray | None = None
    y_first: np.ndarray | None = None
    w_second: np.ndarray | None = None
    y_second: np.ndarray | None = None

    PER_PAIR = ("i", "j", "y", "w", "split", "p_first", "p_second", "n_rec", "w_first", "y_first", "w_second", "y_second")

    @property
    def n_outcomes(self) -> int:
        return len(self.ids)

    def subset(self, mask: np.ndarray) -> PairData:
        import copy

        out = copy.copy(self)
        for name in self.PER_PAIR:
            value = getattr(self, name)
            if value is not None:
                setattr(out, name, value[mask])
        return out

    def ordered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One row per (pair, ordering) present: (i, j, y, w, first), y = P(i ≻ j) in that ordering and ``first``
        whether i was the outcome shown first — the rows of a fit with a position term."""
        if self.w_first is None:
            raise ValueError("these pairs were aggregated without per-ordering data")
        has1, has2 = self.w_first > 0, self.w_second > 0
        i = np.concatenate([self.i[has1], self.i[has2]])
        j = np.concatenate([self.j[has1], self.j[has2]])
        y = np.concatenate([self.y_first[has1], self.y_second[has2]])
        w = np.concatenate([self.w_first[has1], self.w_second[has2]])
        first = np.concatenate([np.ones(int(has1.sum()), dtype=bool), np.zeros(int(has2.sum()), dtype=bool)])
        return i, j, y, w, first

    def train(self) -> PairData:
        return self.subset(self.split == "train")

    def holdout(self) -> PairData:
        return self.subset(self.split == "holdout")


def aggregate(
    records: Iterable[dict] | RecordColumns, unparsed: str = "exclude", logprob_weight: float | None = None
) -> PairData:
    """Pool records (dicts, or the ``RecordColumns`` of ``read_columns``) into per-pair soft labels.

    ``unparsed="exclude"`` (default) drops unparseable answers and records with no usable answer, and reports
    them; ``"as_indifference"`` reproduces the paper (each unparseable answer is half a vote for each outcome).

    The two orderings of a pair weigh the same in its label: y = (P(i ≻ j | i first) + P(i ≻ j | i second)) / 2,
    each ordering's share taken over its own usable answers, so an ordering whose answers are mostly unparsed
    cannot hand the pair its position bias. An ordering with no usable answer at all falls back to the paper's
    half-vote (share ½, its unparsed answers weighing as answers). The pair's weight is its usable answers
    (sampled) or its records (log-prob). With equal answers per ordering this is exactly the paper's pooled label.

    Log-prob and sampled records together are refused unless ``logprob_weight`` says how many sampled answers
    one log-prob record is worth (a log-prob record otherwise weighs 1 and a sampled one its K answers).

    Dicts (already validated records) are turned into columns and pooled by the one vectorised implementation,
    ``aggregate_columns``.
    """
    if not isinstance(records, RecordColumns):
        records = columns_from_records(records, validated=True)
    return aggregate_columns(records, unparsed=unparsed, logprob_weight=logprob_weight)


# ----------------------------------------------------------------------------------------------------------
# Bulk (columnar) reading: one pass into arrays, vectorised checks that still name the first bad line


_COLUMN_FIELDS = tuple(REQUIRED_FIELDS)
_GETTERS = {f: operator.itemgetter(f) for f in _COLUMN_FIELDS}
_HELD_FIELDS = (
    "a_id",
    "b_id",
    "a_text",
    "b_text",
    "shown_first",
    "mode",
    "p_a",
    "n_a",
    "n_b",
    "n_unparsed",
    "label_mass",
    "split",
)
_CATEGORY = {side: operator.methodcaller("get", f"{side}_category") for side in ("a", "b")}
_NUMBER_TYPES = {int, float}
_NULLABLE_NUMBER_TYPES = {int, float, type(None)}


@dataclass
class RecordColumns:
    """Records as columns — what a fit needs, read in bulk (``read_columns``) instead of one dict at a time.

    ``records`` keeps the parsed dicts (already validated) for anything that wants them; ``where[k]`` names the
    file and line of record k. ``aggregate`` accepts a ``RecordColumns`` wherever it accepts records."""

    records: list[dict]
    where: Sequence[str]
    a_id: np.ndarray
    b_id: np.ndarray
    a_text: list[str]
    b_text: list[str]
    a_category: list[Any]
    b_category: list[Any]
    shown_a: np.ndarray  # shown_first == "a"
    mode: np.ndarray  # "logprob" / "sample"
    p_a: np.ndarray  # NaN for null
    n_a: np.ndarray
    n_b: np.ndarray
    n_unparsed: np.ndarray
    label_mass: np.ndarray  # NaN for null
    holdout: np.ndarray  # split == "holdout"

    def __len__(self) -> int:
        return len(self.records)

    def take(self, index: Sequence[int]) -> RecordColumns:
        """The records at positions ``index`` (in that order) as columns, without rebuilding them from the dicts."""
        picks = [int(k) for k in index]
        rows = np.asarray(picks, dtype=np.int64)
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                out[name] = value[rows]
            elif name == "where":
                out[name] = _Picked(value, picks)
            else:
                out[name] = list(map(value.__getitem__, picks))
        return RecordColumns(**out)


class _Picked(Sequence[str]):
    """Some of the names of a ``where`` sequence, looked up only when one is asked for."""

    def __init__(self, names: Sequence[str], picks: list[int]) -> None:
        self.names, self.picks = names, picks

    def __len__(self) -> int:
        return len(self.picks)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self.names[j] for j in self.picks[k]]
        return self.names[self.picks[k]]


def _floats(values: Sequence[Any]) -> np.ndarray:
    """Numbers (None → NaN) as a float array, without a Python loop."""
    arr = _objects(values)
    arr[np.equal(arr, None)] = np.nan
    return arr.astype(float)


def columns_from_records(records: Sequence[dict], where: Sequence[str] | None = None, validated: bool = False) -> RecordColumns:
    """Columns of ``records`` (dicts). Unless ``validated``, every record is checked with vectorised tests; the
    first bad one is reported by ``validate`` itself, naming ``where[k]`` (default "record k+1") and the field."""
    records = records if isinstance(records, list) else list(records)
    places = where

    def place(k: int) -> str:
        return places[k] if places is not None else f"record {k + 1}"

    def fail(k: int) -> None:
        validate(records[k], where=place(k))  # raises with the usual sentence
        raise UserError(f"{place(k)}: not a valid {SCHEMA} record")  # pragma: no cover - validate raised above

    if not validated and set(map(type, records)) - {dict}:
        fail(next(k for k, r in enumerate(records) if type(r) is not dict))
    try:  # one C-level pass per field (validated records: only the fields the columns hold)
        cols = {f: list(map(_GETTERS[f], records)) for f in (_HELD_FIELDS if validated else _COLUMN_FIELDS)}
    except KeyError:
        for k, r in enumerate(records):
            if not all(f in r for f in _COLUMN_FIELDS):
                fail(k)
        raise
    n = len(records)
    if not validated and n:
        _check_columns(cols, n, fail)
    return RecordColumns(
        records=records,
        where=_Numbered(n) if places is None else places,
        a_id=_objects(cols["a_id"]),
        b_id=_objects(cols["b_id"]),
        a_text=cols["a_text"],
        b_text=cols["b_text"],
        a_category=list(map(_CATEGORY["a"], records)),
        b_category=list(map(_CATEGORY["b"], records)),
        shown_a=_objects(cols["shown_first"]) == "a",
        mode=_objects(cols["mode"]),
        p_a=_floats(cols["p_a"]),
        n_a=np.array(cols["n_a"], dtype=np.int64),
        n_b=np.array(cols["n_b"], dtype=np.int64),
        n_unparsed=np.array(cols["n_unparsed"], dtype=np.int64),
        label_mass=_floats(cols["label_mass"]),
        holdout=_objects(cols["split"]) == "holdout",
    )


class _Numbered(Sequence[str]):
    """ "record K" for each record without a file."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [f"record {j + 1}" for j in range(self.n)[k]]
        return f"record {range(self.n)[k] + 1}"  # IndexError past the end, as a sequence must


def _objects(values: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _check_columns(cols: dict[str, tuple], n: int, fail) -> None:
    """Vectorised ``validate`` over columns; ``fail(k)`` is called with the first offending record."""

    def first(mask: np.ndarray) -> None:
        if mask.any():
            fail(int(np.argmax(mask)))

    def types(field_name: str, allowed: set[type]) -> None:
        values = cols[field_name]
        if not set(map(type, values)) <= allowed:
            fail(next(k for k, v in enumerate(values) if type(v) not in allowed))

    bad = np.zeros(n, dtype=bool)
    for key, rule in FIELD_RULES.items():
        if rule.types is _STR:
            types(key, {str})
        elif rule.types is _INT:
            types(key, {int})
        else:
            types(key, _NULLABLE_NUMBER_TYPES if rule.nullable else _NUMBER_TYPES)
    for key, rule in FIELD_RULES.items():
        if rule.values is not None:
            values, allowed_values = cols[key], set(rule.values)
            if not set(values) <= allowed_values:
                fail(next(k for k, v in enumerate(values) if v not in allowed_values))
    a_id, b_id = _objects(cols["a_id"]), _objects(cols["b_id"])
    bad |= a_id == b_id
    counts: dict[str, np.ndarray] = {}
    for key, rule in FIELD_RULES.items():
        if rule.minimum is None and rule.maximum is None:
            continue
        if rule.types is _INT:
            values = counts[key] = np.array(cols[key], dtype=np.int64)
        else:
            values = _floats(cols[key])
            nulls = np.equal(_objects(cols[key]), None)
            bad |= np.isnan(values) & ~nulls  # a NaN that is not a null
            bad |= np.isinf(values)
            inside = np.isnan(values)  # nulls (and NaNs, caught above)
        with np.errstate(invalid="ignore"):
            ok = np.ones(n, dtype=bool)
            if rule.minimum is not None:
                ok &= values >= rule.minimum
            if rule.maximum is not None:
                ok &= values <= rule.maximum
        bad |= ~ok if rule.types is _INT else ~(ok | inside)
    p = _floats(cols["p_a"])
    nulls_p = np.equal(_objects(cols["p_a"]), None)
    sample = _objects(cols["mode"]) == "sample"
    bad |= ~sample & nulls_p
    usable = counts["n_a"] + counts["n_b"]
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = counts["n_a"] / np.where(usable > 0, usable, 1)
    bad |= sample & ((usable == 0) != nulls_p)
    bad |= sample & (usable > 0) & ~nulls_p & ~(np.abs(expected - np.where(nulls_p, 0.0, p)) <= 1e-6)
    first(bad)


class _Lines(Sequence[str]):
    """ "FILE line K" for each record, made only when asked for (an error message), not 100,000 times up front."""

    def __init__(self, path: Path, linenos: Sequence[int]) -> None:
        self.path, self.linenos = path, linenos

    def __len__(self) -> int:
        return len(self.linenos)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [f"{self.path} line {n}" for n in self.linenos[k]]
        return f"{self.path} line {self.linenos[k]}"


def read_columns(path: str | Path) -> RecordColumns:
    """Read and validate a records JSONL file in bulk: the file in one read, all lines parsed in one JSON call and
    checked as columns; any bad record is named by its file and line, with the same sentence as ``validate``."""
    path = Path(path)
    jsonl.check_regular_file(path)
    try:
        raw = path.read_bytes()
        if len(raw) > jsonl.MAX_LINE_BYTES and b"\n" not in raw[: jsonl.MAX_LINE_BYTES + 1]:
            raise UnicodeError("long line")  # let the line reader say so
        lines = raw.decode("utf-8").removeprefix("\ufeff").split("\n")
    except (OSError, UnicodeError):
        numbered = list(jsonl.iter_lines(path))  # names the unreadable line
        linenos: Sequence[int] = [k for k, _ in numbered]
        texts = [t for _, t in numbered]
    else:
        if lines and not lines[-1].strip():
            lines.pop()
        if "" in lines:  # blank lines are allowed; numbers still count them
            linenos = [k for k, t in enumerate(lines, 1) if t.strip()]
            texts = [t for t in lines if t.strip()]
        else:
            linenos, texts = range(1, len(lines) + 1), lines
    gc_was_on = gc.isenabled()
    gc.disable()  # 100,000 fresh dicts would trigger the cyclic collector again and again, for nothing
    try:
        try:
            objs = json.loads("[" + ",".join(texts) + "]") if texts else []
            if len(objs) != len(texts):  # a line holding two values separated by a comma
                raise ValueError("line count")
        except ValueError:  # a line that is not JSON, or a whitespace-only one: the line reader names or skips it
            numbered_objs = list(jsonl.iter_jsonl(path, what="one record"))
            linenos = [k for k, _ in numbered_objs]
            objs = [obj for _, obj in numbered_objs]
        return columns_from_records(objs, where=_Lines(path, linenos))
    finally:
        if gc_was_on:
            gc.enable()


def concat_columns(parts: Sequence[RecordColumns]) -> RecordColumns:
    """One ``RecordColumns`` from several (e.g. one per file)."""
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Any] = {}
    for name in RecordColumns.__dataclass_fields__:
        values = [getattr(p, name) for p in parts]
        out[name] = np.concatenate(values) if isinstance(values[0], np.ndarray) else [x for v in values for x in v]
    return RecordColumns(**out)


def _first_seen_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) with uniques in order of first appearance (as a dict would number them)."""
    if values.dtype == object:  # strings: a dict is faster than sorting Python objects
        order = list(dict.fromkeys(values.tolist()))  # first appearance, deduplicated in C
        index = {v: k for k, v in enumerate(order)}
        codes = np.fromiter(map(index.__getitem__, values.tolist()), dtype=np.int64, count=len(values))
        return codes, _objects(order)
    uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    return rank[inverse.ravel()], uniq[order]


def aggregate_columns(cols: RecordColumns, unparsed: str = "exclude", logprob_weight: float | None = None) -> PairData:
    """``aggregate`` for columns, vectorised (see ``aggregate`` for the label, the weights and the half-vote)."""
    n_records = len(cols)
    lp_weight, modes = _check_pooling(cols, unparsed, logprob_weight)
    sample = cols.mode == "sample"
    ids, texts, categories, a, b = _outcome_codes(cols)
    pair_codes, pair_keys, flip, n_hold = _pair_codes(cols, a, b, len(ids))
    m = len(pair_keys)

    na, nb, nu = cols.n_a.astype(float), cols.n_b.astype(float), cols.n_unparsed.astype(float)
    n_answers = int((na + nb + nu)[sample].sum()) + int((~sample).sum())
    n_unparsed = int(nu[sample].sum())
    if unparsed == "as_indifference":
        na, nb, nu = na + nu / 2, nb + nu / 2, np.zeros_like(nu)
    no_mass = ~sample & (cols.label_mass < MIN_LABEL_MASS)  # NaN (mass not reported) compares False: kept
    weight = np.where(sample, na + nb, np.where(no_mass, 0.0, lp_weight))
    usable = weight > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        p_a = np.where(sample, na / np.where(weight > 0, weight, 1.0), cols.p_a)
    p_key = np.where(usable, np.where(flip, 1.0 - p_a, p_a), 0.0)  # P(key[0] ≻ key[1]); 0 where unusable
    w_use = np.where(usable, weight, 0.0)
    key_first = cols.shown_a != flip  # was key[0] shown as Option A?
    f1, f2 = key_first.astype(float), (~key_first).astype(float)
    u = usable.astype(float)

    def sums(values: np.ndarray) -> np.ndarray:
        return np.bincount(pair_codes, values, m)

    w1, w2 = sums(w_use * f1), sums(w_use * f2)  # usable weight per ordering
    wy1, wy2 = sums(w_use * p_key * f1), sums(w_use * p_key * f2)
    n1, n2 = sums(u * f1), sums(u * f2)  # usable records per ordering
    sp1, sp2 = sums(p_key * u * f1), sums(p_key * u * f2)
    asked1, asked2 = sums(f1), sums(f2)  # records per ordering, usable or not
    unp1, unp2 = sums(nu * sample * f1), sums(nu * sample * f2)  # unparsed answers per ordering
    with np.errstate(invalid="ignore", divide="ignore"):
        y_first = np.where(w1 > 0, wy1 / np.where(w1 > 0, w1, 1.0), np.nan)
        y_second = np.where(w2 > 0, wy2 / np.where(w2 > 0, w2, 1.0), np.nan)
        p_first = np.where(n1 > 0, sp1 / np.maximum(n1, 1), np.nan)
        p_second = np.where(n2 > 0, sp2 / np.maximum(n2, 1), np.nan)
    ok1, ok2 = w1 > 0, w2 > 0
    keep = ok1 | ok2
    if not keep.any():
        _refuse_no_usable_answer(n_records, no_mass)
    # one ordering asked but without a usable answer: the paper's half-vote for it (share ½, its unparsed answers as weight)
    half1 = ok2 & ~ok1 & (asked1 > 0)
    half2 = ok1 & ~ok2 & (asked2 > 0)
    y = np.where(ok1 & ok2, (np.nan_to_num(y_first) + np.nan_to_num(y_second)) / 2, np.where(ok1, y_first, y_second))
    y = np.where(half1, (y_second + 0.5) / 2, np.where(half2, (y_first + 0.5) / 2, y))
    w = w1 + w2 + np.where(half1, unp1, 0.0) + np.where(half2, unp2, 0.0)
    shown_first_p = np.where(cols.shown_a, p_a, 1.0 - p_a)[usable]
    masses = cols.label_mass[~sample & ~np.isnan(cols.label_mass)]
    info: dict[str, Any] = {
        "unparsed_policy": unparsed,
        "pairs_half_vote": int((half1 | half2).sum()),
        "n_no_label_mass": int(no_mass.sum()),
    }
    if len(modes) > 1:
        info["logprob_weight"] = lp_weight
    return PairData(
        ids=ids,
        texts=texts,
        categories=categories,
        i=(pair_keys[keep] // len(ids)).astype(np.int64),
        j=(pair_keys[keep] % len(ids)).astype(np.int64),
        y=y[keep],
        w=w[keep],
        split=np.where(n_hold > 0, "holdout", "train")[keep],
        p_first=p_first[keep],
        p_second=p_second[keep],
        n_records=n_records,
        n_unusable_records=int(n_records - usable.sum()),
        n_answers=n_answers,
        n_unparsed=n_unparsed,
        shown_first_p=shown_first_p,
        label_mass=masses,
        modes=modes,
        info=info,
        n_rec=(n1 + n2)[keep],
        w_first=w1[keep],
        y_first=y_first[keep],
        w_second=w2[keep],
        y_second=y_second[keep],
    )


def _check_pooling(cols: RecordColumns, unparsed: str, logprob_weight: float | None) -> tuple[float, list[str]]:
    """(the weight of one log-prob record, the modes present): the unparsed policy, an empty input and log-prob
    and sampled records together without ``logprob_weight`` are refused."""
    if unparsed not in UNPARSED_POLICIES:
        raise UserError(f"unknown unparsed policy {unparsed!r}; use one of {', '.join(UNPARSED_POLICIES)}")
    n_records = len(cols)
    if n_records == 0:
        raise UserError("no preference records were given; point ue at a records file or a harness output folder")
    sample = cols.mode == "sample"
    modes = sorted(set(cols.mode.tolist()))
    if len(modes) > 1 and logprob_weight is None:
        n_log = int((~sample).sum())
        raise UserError(
            f"these records mix log-prob ({n_log}) and sampled ({n_records - n_log}) elicitation, which weigh 1 and K "
            "answers per record; fit them separately, or give --logprob-weight W (how many sampled answers one log-prob "
            "record is worth) to fit them together"
        )
    if logprob_weight is not None and (
        isinstance(logprob_weight, bool)
        or not isinstance(logprob_weight, (int, float))
        or not (math.isfinite(logprob_weight) and logprob_weight > 0)
    ):
        raise UserError(f"--logprob-weight must be a positive number, got {logprob_weight!r}")
    return 1.0 if logprob_weight is None else float(logprob_weight), modes


def _outcome_codes(cols: RecordColumns) -> tuple[list[str], dict[str, str], dict[str, str], np.ndarray, np.ndarray]:
    """(ids, texts, categories, a, b): the outcomes in order of first appearance (a before b within a record), one
    text each (an id with two texts is refused), and each record's two outcome indices."""
    n_records = len(cols)
    both = np.empty(2 * n_records, dtype=object)
    both[0::2], both[1::2] = cols.a_id, cols.b_id
    codes, ids_arr = _first_seen_codes(both)
    a, b = codes[0::2], codes[1::2]
    ids = [str(x) for x in ids_arr]
    texts_all = np.empty(2 * n_records, dtype=object)
    texts_all[0::2], texts_all[1::2] = cols.a_text, cols.b_text
    first_pos = np.full(len(ids), 2 * n_records, dtype=np.int64)
    np.minimum.at(first_pos, codes, np.arange(2 * n_records))
    ref_text = texts_all[first_pos]
    clash = texts_all != ref_text[codes]
    if clash.any():
        k = int(np.argmax(clash))
        r = cols.records[k // 2]
        side = "a" if k % 2 == 0 else "b"
        oid = r[f"{side}_id"]
        outcome_table([{"a_id": oid, "a_text": str(ref_text[codes[k]]), "b_id": oid, "b_text": r[f"{side}_text"]}])
    cats_all = [c for pair in zip(cols.a_category, cols.b_category) for c in pair]
    categories = {oid: (cats_all[p] if isinstance(cats_all[p], str) else "") for oid, p in zip(ids, first_pos.tolist())}
    texts = {oid: str(t) for oid, t in zip(ids, ref_text)}
    return ids, texts, categories, a, b


def _pair_codes(
    cols: RecordColumns, a: np.ndarray, b: np.ndarray, n_ids: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pair of each record, the pairs' keys lo·n + hi in order of first appearance, whether the record's a is the
    pair's second outcome, holdout records per pair); a pair in both splits is refused."""
    n_records = len(cols)
    flip = a > b
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pair_codes, pair_keys = _first_seen_codes(lo * n_ids + hi)
    m = len(pair_keys)
    hold = cols.holdout
    n_hold = np.bincount(pair_codes, hold.astype(float), m)
    n_all = np.bincount(pair_codes, minlength=m).astype(float)
    mixed = (n_hold > 0) & (n_hold < n_all)
    if mixed.any():
        seen_order = np.full(m, n_records, dtype=np.int64)
        np.minimum.at(seen_order, pair_codes, np.arange(n_records))
        k = int(np.argmax(hold != hold[seen_order][pair_codes]))
        r = cols.records[k]
        raise UserError(
            f"pair ({r['a_id']}, {r['b_id']}) appears in both the train and the holdout split; a pair must belong to one split"
        )
    return pair_codes, pair_keys, flip, n_hold


def _refuse_no_usable_answer(n_records: int, no_mass: np.ndarray) -> None:
    if no_mass.all():
        raise UserError(
            f"none of the {n_records} log-prob records has a usable answer: the model puts less than {MIN_LABEL_MASS:g} "
            "of its probability on the two labels in every one (label_mass), so it answered nothing — check the "
            "prompt template, the chat template and the model"
        )
    raise UserError(
        f"none of the {n_records} records has a usable answer (all unparsed or refused"
        f"{f', or no probability on either label in {int(no_mass.sum())} log-prob records' if no_mass.any() else ''}); "
        "nothing can be fitted — check the model's answers, or use --unparsed as_indifference to reproduce the paper"
    )


def unanswered_notes(records: Sequence[Mapping[str, Any]], top: int = 5) -> list[str]:
    """Sentences for a user about the sampled answers that are not votes: how many thinking blocks the token budget
    cut before any answer (and what to do), and the outcomes refused most often, each with one of its raw
    unparsed answers (records keep a few as ``unparsed_answers``). Empty when every answer was a vote."""
    notes: list[str] = []
    answers = sum(
        int(r.get("n_a") or 0) + int(r.get("n_b") or 0) + int(r.get("n_unparsed") or 0) + int(r.get("n_thinking_cut") or 0)
        for r in records
        if r.get("mode") == "sample"
    )
    cut = sum(int(r.get("n_thinking_cut") or 0) for r in records)
    if cut:
        notes.append(
            f"{cut:,} of {answers:,} sampled answers ended inside a thinking block: the token budget ran out before "
            "the model answered; they are neither votes nor refusals (n_thinking_cut) — give the model more tokens "
            "(a larger max_tokens / max_gen_toks) to count them"
        )
    refused: dict[str, int] = {}
    texts: dict[str, str] = {}
    names: dict[str, str] = {}
    for r in records:
        n = int(r.get("n_unparsed") or 0)
        if not n or r.get("mode") != "sample":
            continue
        for side in ("a", "b"):
            oid = str(r[f"{side}_id"])
            refused[oid] = refused.get(oid, 0) + n
            names.setdefault(oid, str(r.get(f"{side}_text") or oid))
            if r.get("unparsed_answers") and oid not in texts:
                texts[oid] = str(r["unparsed_answers"][0])
    if refused:
        total = sum(int(r.get("n_unparsed") or 0) for r in records if r.get("mode") == "sample")
        worst = sorted(refused, key=lambda o: (-refused[o], o))[:top]
        listed = "; ".join(
            f"{_short(names[o])!r} ({refused[o]}" + (f", e.g. {_short(texts[o], 80)!r})" if o in texts else ")") for o in worst
        )
        notes.append(
            f"{total:,} of {answers:,} sampled answers named neither label (refusals or off-format replies; the "
            f"records keep some raw texts as unparsed_answers); the outcomes in the most of them: {listed}"
        )
    return notes


def _short(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
