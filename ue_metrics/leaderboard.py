"""Leaderboard-style comparisons across models (Mazeika et al. 2025, §4.1 and the scaling plots; docs/method.md §4.1, §5.7,
§9): one row per model merging its experiments' headline numbers (each with its interval where the analysis gives
one) beside the random responder's row; utility convergence between models; correlation of every metric with a
capability score (MMLU in the paper); and a plain diagnosis of models whose answers follow the position of the
options rather than their content.

Pure functions of analysed runs (``Entry``: a model's ``analysis.json`` and, for experiments that fit utilities,
its utilities); reading run folders and harness outputs is ``ue_tasks.leaderboard``'s job. numpy/scipy only.
This module computes the leaderboard (``build``); ``ue_metrics.leaderboard_render`` writes it as Markdown, a terminal
table and CSV, and ``ue_metrics.leaderboard_figures`` draws it (matplotlib, imported only to draw).

**Convergence** (§4.1 "utility convergence"): for two models, over the outcomes both fitted (matched by outcome
text, so two runs with different ids for one sentence still meet), the Pearson correlation of their utilities (with
a Fisher-z 95% interval), the cosine similarity of their standardised utilities (each model's utilities scaled to
mean 0 and sd 1 over all of its own outcomes, then restricted to the shared ones; equal to Pearson when every
outcome is shared), the Spearman rank correlation, and the count of shared outcomes. Fewer than ``min_shared``
shared outcomes (10 by default) is reported as such, with no number.

**Capabilities**: a table in the format of the companion's ``capability_scores.csv`` (``Model Name,MMLU``). A
model's name is matched to the table exactly, or through an explicit alias file; nothing is guessed, and the
names found in neither are listed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json

SCHEMA = "ue.leaderboard/1"
MIN_SHARED = 10
MIN_MODELS_FOR_CORRELATION = 3
RANDOM_NAME = "random responder"
CONVERGENCE_KEY = "convergence/mean_pearson"
# coherence metrics of the main run shown first, in this order (docs/method.md §3.4, §9)
PRIMARY = (
    "utilities/holdout_accuracy",
    "utilities/holdout_log_loss",
    "utilities/average_confidence",
    "transitivity/cycle_probability",
    "robustness/mean_spearman",
    "utilities/cycle_rate",
    "utilities/position_bias",
    "utilities/order_gap",
    "utilities/unparsed_rate",
    "utilities/mean_label_mass",
)
LABELS = {
    "holdout_accuracy": "held-out accuracy",
    "holdout_log_loss": "held-out log loss",
    "average_confidence": "average confidence",
    "cycle_rate": "cycle rate (graph)",
    "order_gap": "order gap",
    "position_bias": "position bias",
    "unparsed_rate": "unparsed rate",
    "mean_label_mass": "label mass",
    "cycle_probability": "cycle probability",
    "mean_pearson": "mean convergence (Pearson)",
    "mean_spearman": "mean Spearman across wordings",
}
# a fair coin's value of coherence metrics the analyses do not pair with a random value (any mode)
COIN_VALUES = {"utilities/position_bias": 0.0, "utilities/cycle_rate": 0.25, "utilities/unparsed_rate": 0.0}
# closer to 0 is better, neither direction
CENTRED = ("position_bias",)
# thresholds of the plain diagnosis (the same as the fit summary's position note)
POSITION_BIAS_LIMIT = 0.25
ORDER_GAP_LIMIT = 0.5
WEAK_MARGIN = 0.1  # held-out accuracy within this of the random responder's
CONFIDENCE_MARGIN = 0.05  # average confidence within this of the random responder's


@dataclass
class Entry:
    """One analysed run: a model on an experiment."""

    model: str
    experiment: str
    analysis: dict[str, Any]
    source: str
    utilities: dict[str, float] | None = None  # outcome text -> utility, for experiments that fit utilities
    variant: dict[str, Any] = field(default_factory=dict)  # identity fields beyond the name (dtype, revision, …)
    usage: dict[str, Any] | None = None  # the run folder's usage.json (requests, tokens as the server reported them)

    @property
    def n_records(self) -> int:
        return int(self.analysis.get("n_records") or 0)


def _add_usage(total: dict[str, Any], usage: Mapping[str, Any]) -> None:
    """Sum a run's requests and tokens into a model's total (a count no run reported stays None)."""
    for key in total:
        value = usage.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = (total[key] or 0) + int(value)


# ----------------------------------------------------------------------------------------------------------
# columns and rows
def column_key(experiment: str, metric: str) -> str:
    return f"{experiment}/{metric}"


def label(key: str) -> str:
    experiment, _, metric = key.partition("/")
    name = LABELS.get(metric, metric.replace("_", " "))
    return name if experiment in ("utilities", "convergence") else f"{experiment}: {name}"


def interval_of(analysis: Mapping[str, Any], metric: str) -> list[float] | None:
    """An analysis' interval for a headline metric, where it gives one: ``intervals[metric]`` at the top level or in
    ``details``, or ``details[metric + "_interval"]`` (the convention of ``ue_metrics.analyses``)."""
    details = analysis.get("details") or {}
    for found in (
        (analysis.get("intervals") or {}).get(metric),
        (details.get("intervals") or {}).get(metric),
        details.get(f"{metric}_interval"),
    ):
        if isinstance(found, (list, tuple)) and len(found) == 2 and all(_is_number(v) for v in found):
            return [float(found[0]), float(found[1])]
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _random_key(entry: Entry) -> str:
    """Which random responder an entry is compared with (an exact coin for log-prob runs, a K-answer coin for sampled)."""
    details = entry.analysis.get("details") or {}
    return str(details.get("random_responder") or f"a fair coin ({entry.analysis.get('mode', 'logprob')} mode)")


def pick_runs(entries: Sequence[Entry]) -> tuple[dict[tuple[str, str], Entry], list[dict[str, Any]]]:
    """One run per (model, experiment). Two or more runs of the same experiment and model are never averaged: the run
    with the most records is used (the first given on a tie) and the others are listed, with their numbers, as
    duplicates."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.model, e.experiment), []).append(e)
    chosen: dict[tuple[str, str], Entry] = {}
    duplicates: list[dict[str, Any]] = []
    for key, group in groups.items():
        best = max(group, key=lambda e: e.n_records)  # max keeps the first of equals
        chosen[key] = best
        if len(group) > 1:
            others = [e for e in group if e is not best]
            variants = {json.dumps(e.variant, sort_keys=True) for e in group}
            duplicate = {
                "model": key[0],
                "experiment": key[1],
                "used": best.source,
                "ignored": [e.source for e in others],
                "differ_in_model_args": len(variants) > 1,
                "variants": [e.variant for e in group],
                "headlines": {e.source: _numbers(e.analysis.get("headline") or {}) for e in group},
            }
            if best.utilities and all(e.utilities for e in others):
                duplicate["retest_pearson"] = {
                    e.source: _pair_similarity(best.utilities, e.utilities, MIN_SHARED).get("pearson") for e in others
                }
            duplicates.append(duplicate)
    return chosen, duplicates


def _numbers(headline: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in headline.items() if _is_number(v) and not k.endswith("_random")}


def table(entries: Sequence[Entry], experiments: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Columns, one row per model and the random responder's row(s), and the duplicates (see ``pick_runs``)."""
    if not entries:
        raise UserError("there are no analysed runs to compare; give run folders, lm-eval output folders or Inspect logs")
    experiments = dict(experiments or {})
    chosen, duplicates = pick_runs(entries)
    order = {name: k for k, name in enumerate(experiments)}
    exp_names = sorted(
        {e for _, e in chosen}, key=lambda e: (e != "utilities", order.get(e, len(order)), e)
    )  # the main run first
    columns: list[dict[str, Any]] = []
    seen: set[str] = set()
    for exp in exp_names:
        meta = experiments.get(exp) or {}
        metrics: list[str] = list(meta.get("headline") or [])
        for (_, e), entry in chosen.items():
            if e == exp:
                metrics += [k for k in (entry.analysis.get("headline") or {}) if k not in metrics]
        lower = set(meta.get("lower_is_better") or ())
        for metric in metrics:
            key = column_key(exp, metric)
            if metric.endswith("_random") or key in seen:
                continue
            values = [(entry.analysis.get("headline") or {}).get(metric) for (_, e), entry in chosen.items() if e == exp]
            if not any(v is not None for v in values):
                continue
            seen.add(key)
            direction = None if metric in CENTRED else ("lower" if metric in lower else "higher")
            columns.append(
                {
                    "key": key,
                    "experiment": exp,
                    "metric": metric,
                    "label": label(key),
                    "better": direction,
                    "numeric": all(v is None or _is_number(v) for v in values),
                }
            )
    columns.sort(
        key=lambda c: (PRIMARY.index(c["key"]) if c["key"] in PRIMARY else len(PRIMARY), exp_names.index(c["experiment"]))
    )

    rows: list[dict[str, Any]] = []
    random_rows: dict[str, dict[str, Any]] = {}
    for model in sorted({m for m, _ in chosen}):
        row: dict[str, Any] = {
            "model": model,
            "kind": "model",
            "values": {},
            "intervals": {},
            "notes": {},
            "sources": {},
            "experiments": [],
            "flags": [],
        }
        for exp in exp_names:
            entry = chosen.get((model, exp))
            if entry is None:
                continue
            a = entry.analysis
            row["experiments"].append(exp)
            row["sources"][exp] = entry.source
            headline, notes = a.get("headline") or {}, a.get("notes") or {}
            for metric, value in headline.items():
                key = column_key(exp, metric)
                if key not in seen:
                    continue
                row["values"][key] = value
                if value is None and notes.get(metric):
                    row["notes"][key] = notes[metric]
                interval = interval_of(a, metric)
                if interval is not None:
                    row["intervals"][key] = interval
            for attr in ("harness", "mode", "outcome_set", "n_outcomes"):
                if exp == exp_names[0] or attr not in row:
                    row.setdefault(attr, a.get(attr))
            if (a.get("run") or {}).get("kind"):
                row["model_kind"] = a["run"]["kind"]
            if entry.variant:
                row.setdefault("variant", {})[exp] = entry.variant
            if entry.usage and any(_is_number(entry.usage.get(k)) for k in ("requests", "prompt_tokens", "completion_tokens")):
                _add_usage(
                    row.setdefault("usage", {"requests": None, "prompt_tokens": None, "completion_tokens": None}), entry.usage
                )
            rkey = _random_key(entry)
            rrow = random_rows.setdefault(
                rkey,
                {
                    "model": RANDOM_NAME if not random_rows else f"{RANDOM_NAME} ({rkey})",
                    "kind": "random",
                    "description": rkey,
                    "values": {},
                    "intervals": {},
                    "notes": {},
                    "sources": {},
                    "experiments": [],
                    "flags": [],
                },
            )
            for metric, value in headline.items():
                if metric.endswith("_random") and column_key(exp, metric[: -len("_random")]) in seen and _is_number(value):
                    rrow["values"].setdefault(column_key(exp, metric[: -len("_random")]), value)
        for d in duplicates:
            if d["model"] == model:
                why = " with different model settings" if d["differ_in_model_args"] else ""
                row["flags"].append(f"{1 + len(d['ignored'])} runs of {d['experiment']}{why}: used {d['used']}, not averaged")
        rows.append(row)
    random_rows = _merge_random_rows(random_rows)
    for rrow in random_rows:
        for key, value in COIN_VALUES.items():
            if key in seen:
                rrow["values"].setdefault(key, value)
    return {"columns": columns, "rows": rows, "random_rows": random_rows, "duplicates": duplicates, "experiments": exp_names}


def _merge_random_rows(found: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One random responder's row when the coins of all runs agree wherever they meet (e.g. every run in log-prob
    mode); otherwise one row per coin, each named by its description."""
    rows = list(found.values())
    merged: dict[str, Any] = {}
    for r in rows:
        for k, v in r["values"].items():
            if k in merged and abs(merged[k] - v) > 1e-9:
                for rr in rows:
                    rr["model"] = f"{RANDOM_NAME} ({rr['description']})"
                return rows
            merged[k] = v
    if not rows:
        return []
    descriptions = sorted({r["description"] for r in rows})
    return [{**rows[0], "model": RANDOM_NAME, "description": "; ".join(descriptions), "values": merged}]


def sort_rows(rows: list[dict[str, Any]], columns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Best first on the first numeric column every row has a direction for (held-out accuracy when present)."""
    for col in columns:
        if col["numeric"] and col["better"] and any(_is_number(r["values"].get(col["key"])) for r in rows):
            sign = -1.0 if col["better"] == "higher" else 1.0
            return sorted(
                rows,
                key=lambda r: (
                    not _is_number(r["values"].get(col["key"])),
                    sign * float(r["values"].get(col["key"]) or 0.0),
                    r["model"],
                ),
            )
    return sorted(rows, key=lambda r: r["model"])


# ----------------------------------------------------------------------------------------------------------
# convergence
def standardise(utilities: Mapping[str, float]) -> dict[str, float]:
    """Utilities scaled to mean 0 and sd 1 over all of the model's own (finite) outcomes."""
    keys = [k for k, v in utilities.items() if v is not None and math.isfinite(v)]
    x = np.array([utilities[k] for k in keys], dtype=float)
    if len(x) < 2 or float(x.std(ddof=1)) == 0.0:
        return dict.fromkeys(keys, 0.0)
    z = (x - x.mean()) / x.std(ddof=1)
    return dict(zip(keys, z.tolist()))


def _pair_similarity(a: Mapping[str, float], b: Mapping[str, float], min_shared: int) -> dict[str, Any]:
    za, zb = standardise(a), standardise(b)
    shared = sorted(set(za) & set(zb))
    out: dict[str, Any] = {"n_shared": len(shared), "pearson": None, "pearson_ci": None, "cosine": None, "spearman": None}
    if len(shared) < min_shared:
        out["status"] = f"too few shared outcomes ({len(shared)} < {min_shared})"
        return out
    x = np.array([za[k] for k in shared])
    y = np.array([zb[k] for k in shared])
    if float(np.std(x)) == 0.0 or float(np.std(y)) == 0.0:
        out["status"] = "a model's utilities are constant over the shared outcomes (no signal), so no correlation"
        return out
    r = float(np.clip(np.corrcoef(x, y)[0, 1], -1.0, 1.0))
    out["pearson"] = r
    if len(shared) > 3:
        z, se = math.atanh(min(max(r, -0.9999999), 0.9999999)), 1.0 / math.sqrt(len(shared) - 3)
        out["pearson_ci"] = [math.tanh(z - 1.959964 * se), math.tanh(z + 1.959964 * se)]
    out["cosine"] = float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))
    from scipy.stats import spearmanr

    out["spearman"] = float(spearmanr(x, y).statistic)
    out["status"] = "ok"
    return out


def convergence(utilities: Mapping[str, Mapping[str, float]], min_shared: int = MIN_SHARED) -> dict[str, Any]:
    """Pairwise similarity of the models' utilities (see the module docstring): ``pairs`` (each unordered pair once),
    ``matrix`` (Pearson, cosine, Spearman and shared counts, models × models; the diagonal is each model with
    itself), and each model's ``mean_pearson`` with the others."""
    if min_shared < 2:
        raise UserError(f"--min-shared must be at least 2 outcomes, got {min_shared}")
    models = list(utilities)
    n = len(models)
    mats = {k: [[None] * n for _ in range(n)] for k in ("pearson", "cosine", "spearman", "n_shared")}
    pairs = []
    for i in range(n):
        for j in range(i, n):
            sim = _pair_similarity(utilities[models[i]], utilities[models[j]], min_shared)
            for k in mats:
                mats[k][i][j] = mats[k][j][i] = sim[k]
            if i != j:
                pairs.append({"a": models[i], "b": models[j], **sim})
    mean = {}
    for i, m in enumerate(models):
        vals = [mats["pearson"][i][j] for j in range(n) if j != i and mats["pearson"][i][j] is not None]
        mean[m] = float(np.mean(vals)) if vals else None
    return {
        "models": models,
        "pairs": pairs,
        "matrix": mats,
        "mean_pearson": mean,
        "min_shared": min_shared,
        "similarity": "Pearson correlation of utilities over shared outcomes (matched by text); cosine of utilities "
        "standardised over each model's own outcomes",
    }


# ----------------------------------------------------------------------------------------------------------
# capabilities
def _read_table(path: Path, what: str) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what} file; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as a {what} file ({exc}); give a UTF-8 CSV") from None
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    reader = csv.reader(io.StringIO(text, newline=""), dialect=dialect, strict=True)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if any(c.strip() for c in row):
                rows.append(row)
    except csv.Error as exc:  # an unterminated quote, a stray quote inside a field
        raise UserError(f"{path} line {reader.line_num}: not a well-formed CSV row ({exc}); check its quotes") from None
    return rows


def read_capabilities(
    path: str | Path, column: str | None = None, log: Callable[[str], None] | None = None
) -> tuple[dict[str, float], str]:
    """``{model name: score}`` and the score's name from a CSV like the companion's ``capability_scores.csv``
    (``Model Name,MMLU``): the first column names the model; the score is ``column``, else a column named MMLU,
    else the second column."""
    path = Path(path)
    rows = _read_table(path, "capabilities")
    if len(rows) < 2 or len(rows[0]) < 2:
        raise UserError(f"{path}: a capabilities table needs a header (e.g. 'Model Name,MMLU') and one row per model")
    header = [h.strip() for h in rows[0]]
    if column is not None:
        if column not in header:
            raise UserError(f"{path}: no column {column!r} (the header is {', '.join(header)}); name one of them")
        idx = header.index(column)
    else:
        upper = [h.upper() for h in header]
        idx = upper.index("MMLU") if "MMLU" in upper else 1
    scores: dict[str, float] = {}
    missing = []
    for n, row in enumerate(rows[1:], start=2):
        name = row[0].strip()
        if len(row) > len(header):
            raise UserError(
                f"{path} line {n}: {len(row)} cells under a header of {len(header)} ({', '.join(header)}); "
                "a comma inside a name needs quotes"
            )
        if len(row) <= idx or not row[idx].strip():
            missing.append(f"line {n} ({name or 'no name'})")  # a model without this score: left out, and said
            continue
        try:
            value = float(row[idx])
        except ValueError:
            raise UserError(f"{path} line {n}: {header[idx]} {row[idx]!r} is not a number; fix or remove the row") from None
        if not math.isfinite(value):
            raise UserError(f"{path} line {n}: {header[idx]} is {row[idx]!r}; give a finite number")
        if name in scores and scores[name] != value:
            raise UserError(f"{path} line {n}: {name!r} appears twice with different scores; keep one")
        scores[name] = value
    if missing and log is not None:
        log(
            f"{path}: {len(missing)} row{'s' if len(missing) > 1 else ''} without a {header[idx]} score left out: "
            f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}"
        )
    return scores, header[idx]


def read_aliases(path: str | Path) -> dict[str, str]:
    """``{model name in the runs: model name in the capabilities table}`` from a JSON object or a two-column CSV (a
    header row is allowed: a first row whose first cell is ``model`` or ``name`` is skipped)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = read_json(
            path,
            lambda exc: f'{path}: cannot be read as a JSON alias file ({exc}); give an object {{"run name": "table name"}}',
            missing=f"{path}: no such alias file; check the path",
        )
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise UserError(f'{path}: an alias file is a JSON object of strings, {{"name in the runs": "name in the table"}}')
        return dict(data)
    rows = _read_table(path, "alias")
    if rows and rows[0][0].strip().lower() in ("model", "name", "model name", "run", "run name"):
        rows = rows[1:]
    out: dict[str, str] = {}
    for n, row in enumerate(rows, start=1):
        if len(row) != 2:
            raise UserError(f"{path} row {n}: an alias row has two cells (name in the runs, name in the table), found {len(row)}")
        out[row[0].strip()] = row[1].strip()
    return out


def match_capabilities(
    models: Sequence[str], scores: Mapping[str, float], aliases: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Exact names first, then the alias file; never a guess. Returns ``matched`` {model: {name, score, via}} and
    ``unmatched`` [{model, reason}]."""
    aliases = dict(aliases or {})
    matched: dict[str, dict[str, Any]] = {}
    unmatched: list[dict[str, str]] = []
    for m in models:
        if m in scores:
            matched[m] = {"name": m, "score": scores[m], "via": "exact"}
        elif m in aliases and aliases[m] in scores:
            matched[m] = {"name": aliases[m], "score": scores[aliases[m]], "via": "alias"}
        elif m in aliases:
            unmatched.append({"model": m, "reason": f"its alias {aliases[m]!r} is not in the capabilities table"})
        else:
            unmatched.append({"model": m, "reason": "not in the capabilities table and no alias given"})
    unused = sorted(a for a in aliases if a not in models)
    return {"matched": matched, "unmatched": unmatched, "unused_aliases": unused}


def correlate(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Pearson (with its p-value) and Spearman correlation of two equal-length samples."""
    from scipy.stats import pearsonr, spearmanr

    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xa) < MIN_MODELS_FOR_CORRELATION:
        return {
            "n": len(xa),
            "pearson": None,
            "p_value": None,
            "spearman": None,
            "status": f"needs at least {MIN_MODELS_FOR_CORRELATION} models with both numbers, has {len(xa)}",
        }
    if float(xa.std()) == 0.0 or float(ya.std()) == 0.0:
        return {"n": len(xa), "pearson": None, "p_value": None, "spearman": None, "status": "one of the two is constant"}
    res = pearsonr(xa, ya)
    return {
        "n": len(xa),
        "pearson": float(res.statistic),
        "p_value": float(res.pvalue),
        "spearman": float(spearmanr(xa, ya).statistic),
        "status": "ok",
    }


def capability_correlations(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Mapping[str, Any]], matched: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for col in columns:
        if not col["numeric"] or col["metric"].startswith("n_"):
            continue
        pts = [
            (matched[r["model"]]["score"], float(r["values"][col["key"]]))
            for r in rows
            if r["model"] in matched and _is_number(r["values"].get(col["key"]))
        ]
        out.append({"key": col["key"], "label": col["label"], **correlate([p[0] for p in pts], [p[1] for p in pts])})
    return out


# ----------------------------------------------------------------------------------------------------------
# diagnosis
def diagnose(row: Mapping[str, Any], random_values: Mapping[str, Any]) -> list[str]:
    """Plain sentences on what a model's numbers can and cannot say (position-bound answers, near-random fit)."""
    v = row["values"]
    out = []
    bias, gap = v.get("utilities/position_bias"), v.get("utilities/order_gap")
    if (_is_number(bias) and abs(bias) > POSITION_BIAS_LIMIT) or (_is_number(gap) and gap > ORDER_GAP_LIMIT):
        side = "first" if _is_number(bias) and bias > 0 else "second"
        out.append(
            f"position-bound: it picks the {side}-shown option most of the time (position bias "
            f"{_fmt(bias)}, order gap {_fmt(gap)}), so its preferences mostly reflect the order of the options"
        )
    acc, base = v.get("utilities/holdout_accuracy"), random_values.get("utilities/holdout_accuracy", 0.5)
    interval = (row.get("intervals") or {}).get("utilities/holdout_accuracy")
    conf, conf_base = v.get("utilities/average_confidence"), random_values.get("utilities/average_confidence")
    if _is_number(acc) and (acc - base < WEAK_MARGIN or (interval is not None and interval[0] <= base)):
        why = f"its held-out accuracy {_fmt(acc)}" + (f" [{_fmt(interval[0])}, {_fmt(interval[1])}]" if interval else "")
        out.append(f"weak: {why} is not clearly above the random responder's {_fmt(base)}, so its utilities are mostly noise")
    elif _is_number(conf) and _is_number(conf_base) and conf - conf_base < CONFIDENCE_MARGIN:
        out.append(
            f"weak: its average confidence {_fmt(conf)} is close to the random responder's {_fmt(conf_base)} — pooled "
            "over both orderings its preferences are close to indifference, so its utilities are mostly noise"
        )
    return out


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if _is_number(v) else "—"


# ----------------------------------------------------------------------------------------------------------
# the whole leaderboard
def build(
    entries: Sequence[Entry],
    experiments: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    capabilities: Mapping[str, float] | None = None,
    capability_name: str = "MMLU",
    capabilities_source: str | None = None,
    aliases: Mapping[str, str] | None = None,
    min_shared: int = MIN_SHARED,
) -> dict[str, Any]:
    """The leaderboard (the content of ``leaderboard.json``): table, convergence, capabilities, diagnosis, figures."""
    t = table(entries, experiments)
    chosen, _ = pick_runs(entries)
    fitted: dict[str, dict[str, float]] = {}
    for (model, _exp), e in sorted(chosen.items(), key=lambda kv: (kv[0][1] != "utilities", kv[0][1], kv[0][0])):
        if e.utilities and model not in fitted:  # the main run's utilities when there is one, else another fitted run's
            fitted[model] = dict(e.utilities)
    conv = convergence(fitted, min_shared) if len(fitted) >= 1 else None
    if conv is not None and len(fitted) >= 2:
        t["columns"].append(
            {
                "key": CONVERGENCE_KEY,
                "experiment": "convergence",
                "metric": "mean_pearson",
                "label": label(CONVERGENCE_KEY),
                "better": "higher",
                "numeric": True,
            }
        )
        for row in t["rows"]:
            row["values"][CONVERGENCE_KEY] = conv["mean_pearson"].get(row["model"])
            if row["values"][CONVERGENCE_KEY] is None:
                row["notes"][CONVERGENCE_KEY] = (
                    "no other model shares enough outcomes with it" if row["model"] in fitted else "no fitted utilities"
                )
    rows = sort_rows(t["rows"], t["columns"])
    random_values = t["random_rows"][0]["values"] if t["random_rows"] else {}
    for row in rows:
        row["diagnosis"] = diagnose(row, random_values)
        details = (chosen.get((row["model"], "utilities")) or Entry("", "", {}, "")).analysis.get("details") or {}
        if details.get("top"):
            row["top"], row["bottom"] = details["top"][:5], details["bottom"][-5:]
        rob = robustness_summary((chosen.get((row["model"], "robustness")) or Entry("", "", {}, "")).analysis)
        if rob:
            row["robustness"] = rob
    caps = None
    if capabilities is not None:
        match = match_capabilities([r["model"] for r in rows], capabilities, aliases)
        caps = {
            "source": capabilities_source,
            "score": capability_name,
            **match,
            "correlations": capability_correlations(rows, t["columns"], match["matched"]),
        }
    board = {
        "schema": SCHEMA,
        "models": [r["model"] for r in rows],
        "experiments": t["experiments"],
        "columns": t["columns"],
        "rows": rows,
        "random_rows": t["random_rows"],
        "duplicates": t["duplicates"],
        "convergence": conv,
        "capabilities": caps,
        "summary": summary_sentences(rows),
    }
    board["figures"] = figure_data(board)
    return board


def robustness_summary(analysis: Mapping[str, Any], top: int = 5) -> dict[str, Any] | None:
    """What the report draws of a model's ``robustness`` run: the variant × variant Spearman matrix of its utilities
    and the outcomes whose rank moves most with the wording (None without a robustness analysis)."""
    matrix = (analysis.get("figures") or {}).get("variant_correlations")
    if not matrix:
        return None
    details = analysis.get("details") or {}
    return {
        "variants": list(matrix["variants"]),
        "matrix": matrix["matrix"],
        "n_outcomes": details.get("n_common_outcomes"),
        "labels": details.get("labels") or {},
        "most_wording_sensitive": list(details.get("most_wording_sensitive") or [])[:top],
    }


def summary_sentences(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The report's opening lines: how many models are weak or position-bound, said plainly."""
    n = len(rows)
    weak = [r["model"] for r in rows if any(d.startswith("weak") for d in r.get("diagnosis", []))]
    bound = [r["model"] for r in rows if any(d.startswith("position-bound") for d in r.get("diagnosis", []))]
    out = []
    both = [m for m in weak if m in bound]
    if n and len(both) == n:
        who = "Both models are" if n == 2 else ("The model is" if n == 1 else f"All {n} models are")
        out.append(
            f"{who} weak and position-bound: their answers follow which option is shown first more than what the "
            "options say, and their preferences are barely distinguishable from a coin's. Their utilities are mostly noise — "
            "read these numbers as a demonstration of the pipeline, not as what the models value."
        )
    else:
        if bound:
            out.append(f"Position-bound (answers follow the order of the options): {', '.join(bound)}.")
        if weak:
            out.append(f"Weak (held-out accuracy close to the random responder's, utilities mostly noise): {', '.join(weak)}.")
    return out


def figure_data(board: Mapping[str, Any]) -> dict[str, Any]:
    """The data each leaderboard figure is drawn from (saved in leaderboard.json, so figures redraw without the runs)."""
    rows, cols = board["rows"], board["columns"]
    random_values = board["random_rows"][0]["values"] if board["random_rows"] else {}
    figs: dict[str, Any] = {}
    shown = [
        c
        for c in cols
        if c["numeric"]
        and c["key"] in PRIMARY[:4] + (CONVERGENCE_KEY,)
        and any(_is_number(r["values"].get(c["key"])) for r in rows)
    ][:5]
    if not shown:
        shown = [c for c in cols if c["numeric"] and any(_is_number(r["values"].get(c["key"])) for r in rows)][:4]
    if shown:
        figs["metrics"] = {
            "models": [r["model"] for r in rows],
            "panels": [
                {
                    "key": c["key"],
                    "label": c["label"],
                    "values": [r["values"].get(c["key"]) for r in rows],
                    "intervals": [(r.get("intervals") or {}).get(c["key"]) for r in rows],
                    "random": random_values.get(c["key"]),
                }
                for c in shown
            ],
        }
    conv = board.get("convergence")
    if conv and len(conv["models"]) >= 2:
        figs["convergence"] = {
            "models": conv["models"],
            "pearson": conv["matrix"]["pearson"],
            "n_shared": conv["matrix"]["n_shared"],
            "min_shared": conv["min_shared"],
        }
    caps = board.get("capabilities")
    if caps and caps["matched"]:
        keys = [
            c
            for c in cols
            if c["numeric"]
            and (
                c["key"] in PRIMARY[:4]
                or c["key"] == CONVERGENCE_KEY
                or c["key"].endswith("/" + _first_metric(board, c["experiment"]))
            )
        ]
        corr = {c["key"]: c for c in caps["correlations"]}
        for c in keys:
            pts = [
                {"model": r["model"], "x": caps["matched"][r["model"]]["score"], "y": r["values"][c["key"]]}
                for r in rows
                if r["model"] in caps["matched"] and _is_number(r["values"].get(c["key"]))
            ]
            if pts:
                figs["capability_" + c["key"].replace("/", "__")] = {
                    "key": c["key"],
                    "label": c["label"],
                    "score": caps["score"],
                    "points": pts,
                    "random": random_values.get(c["key"]),
                    "correlation": corr.get(c["key"]),
                }
    return figs


def _first_metric(board: Mapping[str, Any], experiment: str) -> str:
    for c in board["columns"]:
        if c["experiment"] == experiment:
            return c["metric"]
    return ""
