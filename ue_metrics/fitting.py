"""From preference records to a fit folder: aggregate, fit the Thurstonian model, score coherence, write
``utilities.csv`` and ``metrics.json``, and render the summary table. A pure function of the records.

The paper's fit pools both orderings of a pair (docs/method.md §1.6, §3). ``position_term`` adds a second fit, one row
per ordering with a position term β (docs/statistics.md): β with its interval, the probability of choosing the
first-shown option between two outcomes of equal utility, and the per-ordering held-out log loss of both fits.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr

from ue_metrics.aggregation import PairData, aggregate
from ue_metrics.coherence import coherence_metrics, random_baselines
from ue_metrics.errors import UserError, check_seed
from ue_metrics.jsonl import plain
from ue_metrics.thurstonian import DISPERSION_FLOOR, Thurstonian

MIN_BOOTSTRAP = 10  # fewer resamples give percentile "intervals" of one or two points
UTILITY_COLUMNS = ("id", "text", "category", "utility", "sigma2", "ci_low", "ci_high")
SUMMARY_KEYS = (
    "holdout_accuracy",
    "holdout_log_loss",
    "holdout_brier",
    "train_accuracy",
    "train_log_loss",
    "average_confidence",
    "cycle_rate",
    "order_gap",
    "position_bias",
    "unparsed_rate",
)


POSITION_TERMS = ("global", "category")
MATERIAL_LOSS_GAIN = 0.01  # nats per query: a position term that lowers the per-ordering held-out loss more is worth it


@dataclass
class FitResult:
    data: PairData
    model: Thurstonian
    metrics: dict[str, Any]
    position_model: Thurstonian | None = None

    def largest_component(self, among: Sequence[str] | None = None) -> tuple[set[str], int]:
        """(the ids in the comparison graph's largest connected component, the number of components with an edge).
        Utilities of different components are each normalised on their own — not on one scale — so a correlation of
        utilities with a property is taken within one component (``among``: count only these ids)."""
        from ue_metrics.graph import largest_component

        comp = getattr(self.model, "components_", None)
        ids = list(self.data.ids)
        if comp is None or len(comp) != len(ids):
            return set(ids), 1
        seen = np.zeros(len(ids), dtype=bool)
        seen[self.data.i], seen[self.data.j] = True, True
        if among is not None:
            wanted = set(among)
            seen &= np.array([oid in wanted for oid in ids])
        if not seen.any():
            return set(), 0
        mask = largest_component(comp, seen) & seen
        return {oid for oid, keep in zip(ids, mask) if keep}, int(len(np.unique(comp[seen])))

    def utilities(self, model: Thurstonian | None = None) -> list[dict[str, Any]]:
        """One row per outcome, sorted by utility (highest first); ``model`` another fit of the same outcomes."""
        m = self.model if model is None else model
        rows = []
        for k, oid in enumerate(self.data.ids):
            row = {
                "id": oid,
                "text": self.data.texts[oid],
                "category": self.data.categories.get(oid, ""),
                "utility": float(m.utilities_[k]),
                "sigma2": float(m.sigma2_[k]),
                "ci_low": float(m.ci_low_[k]),
                "ci_high": float(m.ci_high_[k]),
            }
            if m.n_components_ > 1:
                row["component"] = int(m.components_[k])
            rows.append(row)
        rows.sort(key=lambda r: (math.isnan(r["utility"]), -r["utility"] if not math.isnan(r["utility"]) else 0.0))
        return rows

    def write(self, out: str | Path) -> Path:
        out = Path(out)
        try:
            return self._write(out)
        except OSError as exc:
            raise UserError(
                f"{out}: the fit cannot be written ({exc.strerror or exc}); free space or choose another --out "
                "folder and fit again (the records are untouched)"
            ) from None

    def _write(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        rows = self.utilities()
        columns = list(UTILITY_COLUMNS) + (["component"] if rows and "component" in rows[0] else [])
        with (out / "utilities.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        (out / "metrics.json").write_text(json.dumps(self.metrics, indent=2, default=plain) + "\n", encoding="utf-8")
        if self.position_model is not None:
            with (out / "utilities_position.csv").open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(UTILITY_COLUMNS))
                writer.writeheader()
                for row in self.utilities(self.position_model):
                    writer.writerow(
                        {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in UTILITY_COLUMNS}
                    )
        return out

    def summary(self, top: int = 5) -> str:
        """A short plain-text table: coherence metrics next to the random responder (which one is said), the
        intervals' meaning, the position term when fitted, then top/bottom outcomes."""
        m = self.metrics
        base = m.get("random_baseline", {})
        lines = [f"{'metric':<22}{'this run':>12}{'random':>12}"]
        for key in SUMMARY_KEYS:
            value = m.get(key)
            lines.append(f"{key:<22}{_fmt(value):>12}{_fmt(base.get(key)):>12}")
        if m.get("mean_label_mass") is not None:
            lines.append(f"{'mean_label_mass':<22}{_fmt(m['mean_label_mass']):>12}{'':>12}")
        if base.get("description"):
            lines.append(f"random = {base['description']}")
        if m.get("n_no_label_mass"):
            lines.append(
                f"{m['n_no_label_mass']} log-prob records put (almost) no probability on either label: counted as unanswered"
            )
        lines.append(
            f"{m['n_outcomes']} outcomes, {m['n_train_pairs']} training + "
            f"{m['n_holdout_pairs']} holdout pairs, {m['n_records']} records"
        )
        if m.get("n_holdout_pairs_unseen"):
            lines.append(
                f"note: {m['n_holdout_pairs_unseen']:,} answered holdout pairs are left out of the holdout metrics: "
                "each names an outcome that no training pair reaches, so the fit cannot predict it (raise the budget)"
            )
        if m.get("no_signal"):
            lines.append(
                f"note: the utilities carry no signal — {m['no_signal']}; do not read the ranking below as the model's values"
            )
        note = interval_note(m)
        if note:
            lines.append(note)
        pos = m.get("position_term")
        bias, gap = m.get("position_bias"), m.get("order_gap")
        if pos:
            lines += _position_lines(pos)
        elif (bias is not None and abs(bias) > 0.25) or (gap is not None and gap > 0.5):
            lines.append(
                f"note: the answers follow the position of the options more than their content (position bias "
                f"{_fmt(bias)}, order gap {_fmt(gap)}); pooled over both orderings the preferences are weak, so the "
                "utilities carry little signal and their intervals are wide — `ue fit --position-term` measures how much "
                "of the answers position explains"
            )
        elif (bias is not None and abs(bias) > 0.1) or (gap is not None and gap > 0.2):
            lines.append(f"note: position bias {_fmt(bias)}, order gap {_fmt(gap)}: `ue fit --position-term` fits it explicitly")
        rows = self.utilities()
        width = 70

        def show(row):
            text = row["text"] if len(row["text"]) <= width else row["text"][: width - 1] + "…"
            interval = (
                "[no interval]"
                if not (math.isfinite(row["ci_low"]) and math.isfinite(row["ci_high"]))
                else (f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]")
            )
            return f"  {row['utility']:+6.2f}  {interval}  {text}"

        if m.get("n_outcomes_without_interval"):
            lines.append(
                f"note: {m['n_outcomes_without_interval']} outcomes in components of one or two outcomes have no interval "
                "(two outcomes joined by one pair are normalised to ±0.71 whatever the answers: no spread to estimate)"
            )
        lines.append(
            f"top {min(top, len(rows))} outcomes (utility, {m.get('ci_level', 0.95):.0%} {m.get('ci_method')} interval):"
        )
        lines += [show(r) for r in rows[:top]]
        lines.append(f"bottom {min(top, len(rows))} outcomes:")
        lines += [show(r) for r in rows[-top:]]
        return "\n".join(lines)


def interval_note(m: dict[str, Any]) -> str | None:
    """What the utilities' intervals mean for this run, in one line (docs/statistics.md)."""
    method = str(m.get("ci_method") or "")
    if not method.startswith("sandwich"):
        return None
    per_weight = m.get("answers_per_unit_weight")
    if "logprob" in (m.get("modes") or []) and per_weight:
        worth = f"{per_weight:,.0f}" if per_weight >= 100 else f"{per_weight:.3g}"
        if m.get("dispersion") is not None and m["dispersion"] <= DISPERSION_FLOOR * 1.0001:
            worth = f"at least {worth} (the most the fit credits one probability with)"
        return (
            f"intervals ({method}): how precisely the pairs asked pin the utilities, given how closely the model's exact "
            f"probabilities follow a Thurstonian model — here each exact probability carries about as much "
            f"information as {worth} sampled answers"
        )
    if per_weight:
        return (
            f"intervals ({method}): sampling noise and misfit of the answers (dispersion {1 / per_weight:.3g}; 1 = as "
            "noisy as independent answers drawn at the fitted probabilities)"
        )
    return "intervals: model-based (too few pairs per parameter to estimate the noise from the residuals)"


def _position_lines(pos: dict[str, Any]) -> list[str]:
    lines = []
    for g in pos["groups"]:
        lines.append(
            f"position term β{'' if g['group'] == 'all' else ' (' + g['group'] + ')'} = {_fmt(g['beta'])} "
            f"[{_fmt(g['ci_low'])}, {_fmt(g['ci_high'])}] on the utilities' scale ({_fmt(g.get('beta_probit'))} on the "
            "probit scale of two outcomes of median variance); "
            f"P(first shown | equal utilities) = {_fmt(g['p_first_equal'])} [{_fmt(g['p_first_equal_low'])}, "
            f"{_fmt(g['p_first_equal_high'])}]"
        )
        if len(lines) >= 6 and len(pos["groups"]) > 6:
            lines.append(f"  … {len(pos['groups']) - 6} more groups in metrics.json")
            break
    loss = pos.get("holdout_log_loss_per_ordering") or pos.get("train_log_loss_per_ordering") or {}
    where = "held-out" if pos.get("holdout_log_loss_per_ordering") else "training"
    lines.append(
        f"per-ordering {where} log loss: pooled {_fmt(loss.get('pooled'))}, with the position term {_fmt(loss.get('position'))}"
    )
    if pos.get("material"):
        lines.append(
            "recommendation: position explains a material part of the answers; read the utilities from "
            "utilities_position.csv (fitted with the position term) and report β beside them"
        )
    else:
        lines.append("the position term changes the per-ordering loss little; the pooled utilities (the paper's) stand")
    return lines


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def samples_per_ordering(data: PairData) -> int:
    """K of the run for the random baseline: the sampled answers per record, 0 for log-prob runs (exact coin)."""
    if data.modes == ["sample"] and data.n_records:
        return max(1, int(round(data.n_answers / data.n_records)))
    return 0


def fit_records(
    records: Iterable[dict] | Any,
    unparsed: str = "exclude",
    method: str = "mle",
    bootstrap: int = 0,
    per_component: bool = False,
    seed: int = 0,
    progress: Any = None,
    logprob_weight: float | None = None,
    position_term: str | None = None,
    ci: str = "sandwich",
) -> FitResult:
    """Aggregate records (dicts, or the columns of ``aggregation.read_columns``), fit on the training pairs, and
    score coherence on all of them. ``position_term`` ("global" or "category") adds the per-ordering fit;
    ``logprob_weight``: see ``ue_metrics.aggregation.aggregate`` (needed only to fit log-prob and sampled records together)."""
    check_seed(seed, "seed")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0 or 0 < bootstrap < MIN_BOOTSTRAP:
        raise UserError(
            f"--bootstrap must be 0 (curvature intervals) or at least {MIN_BOOTSTRAP} resamples (200 is a good choice), "
            f"got {bootstrap!r}; fewer resamples give intervals of a few points, not intervals"
        )
    if position_term is not None and position_term not in POSITION_TERMS:
        raise UserError(f"unknown position term {position_term!r}; use one of {', '.join(POSITION_TERMS)}")
    data = aggregate(records, unparsed=unparsed, logprob_weight=logprob_weight)
    train = data.train()
    if len(train.y) == 0:
        raise UserError(
            f"none of the {data.n_records} records is in the train split, so there is nothing to fit; "
            "check the records' 'split' field"
        )
    used = np.zeros(data.n_outcomes, dtype=bool)
    used[train.i] = True
    used[train.j] = True
    keep = np.flatnonzero(used)
    remap = -np.ones(data.n_outcomes, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    sub_ids = [data.ids[k] for k in keep]

    def new_model(boot: int) -> Thurstonian:
        return Thurstonian(
            method=method,
            bootstrap=boot,
            ci=ci,
            on_disconnected="per_component" if per_component else "error",
            seed=seed,
            progress=progress,
        )

    model = new_model(bootstrap)
    started = time.perf_counter()
    # outcomes that appear only in holdout pairs are isolated nodes of the training graph; fit on the rest
    model.fit(
        np.column_stack([remap[train.i], remap[train.j]]),
        train.y,
        train.w,
        n_outcomes=len(keep),
        ids=sub_ids,
        n_records=train.n_rec,
    )
    if len(keep) < data.n_outcomes:
        model.expand_outcomes(keep, data.n_outcomes, data.ids)
    fit_seconds = time.perf_counter() - started
    metrics = coherence_metrics(data, model)
    k = samples_per_ordering(data)
    noise = getattr(model, "noise_", {}) or {}
    phi = noise.get("dispersion")
    metrics.update(
        {
            "n_outcomes_unfitted": int((~used).sum()),
            "modes": data.modes,
            "unparsed_policy": unparsed,
            "fit_method": method,
            "ci_method": model.ci_method_,
            "ci_level": model.ci_level,
            "converged": bool(model.converged_),
            "n_iter": int(model.n_iter_),
            "n_components": int(model.n_components_),
            "n_outcomes_without_interval": int(getattr(model, "n_without_interval_", 0)),
            "fit_seconds": round(fit_seconds, 4),
            "seed": seed,
            "noise": {key: noise.get(key) for key in ("binomial", "misfit", "effective_parameters", "residual_df")},
            "dispersion": phi,
            "answers_per_unit_weight": (1.0 / phi) if phi else None,
            "variance_prior_precision": float(getattr(model, "variance_prior_", float("nan"))),
            "random_baseline": {**random_baselines(k), "samples_per_ordering": k},
        }
    )
    result = FitResult(data=data, model=model, metrics=metrics)
    if position_term:
        _fit_position(result, position_term, new_model(0), keep, remap, sub_ids)
    return result


def _fit_position(
    result: FitResult, kind: str, pmodel: Thurstonian, keep: np.ndarray, remap: np.ndarray, sub_ids: list[str]
) -> None:
    """The per-ordering fit with a position term; its numbers go to ``metrics["position_term"]``."""
    from ue_metrics.coherence import log_loss

    data, model = result.data, result.model
    train, hold = data.train(), data.holdout()
    i, j, y, w, first = train.ordered()
    groups = names = None
    if kind == "category":
        names = sorted({data.categories.get(oid, "") or "(none)" for oid in data.ids})
        index = {name: g for g, name in enumerate(names)}
        cat = np.array([index[data.categories.get(oid, "") or "(none)"] for oid in data.ids], dtype=np.int64)
        groups = np.column_stack([cat[i], cat[j]])
    started = time.perf_counter()
    pmodel.fit(
        np.column_stack([remap[i], remap[j]]),
        y,
        w,
        n_outcomes=len(keep),
        ids=sub_ids,
        first=first,
        groups=groups,
        group_names=names,
    )
    if len(keep) < data.n_outcomes:
        pmodel.expand_outcomes(keep, data.n_outcomes, data.ids)
    seconds = time.perf_counter() - started
    result.position_model = pmodel
    sig = pmodel.sigma2_[np.isfinite(pmodel.sigma2_)]
    r_equal = math.sqrt(2.0 * float(np.median(sig))) if len(sig) else 1.0
    out_groups = []
    for g, name in enumerate(pmodel.position_groups_):
        beta, lo, hi = float(pmodel.position_[g]), float(pmodel.position_ci_low_[g]), float(pmodel.position_ci_high_[g])
        out_groups.append(
            {
                "group": name,
                "beta": beta,
                "ci_low": lo,
                "ci_high": hi,
                "stderr": float(pmodel.position_stderr_[g]),
                "beta_probit": beta / r_equal,
                "p_first_equal": float(ndtr(beta / r_equal)),
                "p_first_equal_low": float(ndtr(lo / r_equal)),
                "p_first_equal_high": float(ndtr(hi / r_equal)),
            }
        )

    def losses(part) -> dict[str, float] | None:
        if not len(part.y):
            return None
        a, b, yy, _ww, ff = part.ordered()
        seen = np.isfinite(pmodel.utilities_[a]) & np.isfinite(pmodel.utilities_[b])
        if not seen.any():
            return None
        a, b, yy, ff = a[seen], b[seen], yy[seen], ff[seen]
        g = None if groups is None else np.column_stack([cat[a], cat[b]])
        return {
            "pooled": log_loss(model.predict_proba(np.column_stack([a, b])), yy),
            "position": log_loss(pmodel.predict_ordered(np.column_stack([a, b]), ff, g), yy),
            "n_queries": int(len(yy)),
        }

    tr_loss, ho_loss = losses(train), losses(hold)
    decisive = ho_loss or tr_loss
    gain = decisive["pooled"] - decisive["position"] if decisive else 0.0
    excludes_zero = any(g["ci_low"] > 0 or g["ci_high"] < 0 for g in out_groups)
    u_pooled, u_pos = model.utilities_, pmodel.utilities_
    both = np.isfinite(u_pooled) & np.isfinite(u_pos)
    spearman = float(np.corrcoef(_ranks(u_pooled[both]), _ranks(u_pos[both]))[0, 1]) if both.sum() > 2 else None
    result.metrics["position_term"] = {
        "kind": kind,
        "groups": out_groups,
        "scale": "utilities' scale (normalised to mean 0, sd 1); P(first | equal utilities) = Φ(β/√(2·median σ²))",
        "train_log_loss_per_ordering": tr_loss,
        "holdout_log_loss_per_ordering": ho_loss,
        "loss_gain": gain,
        "material": bool(gain >= MATERIAL_LOSS_GAIN and excludes_zero),
        "spearman_with_pooled_utilities": spearman,
        "ci_method": pmodel.ci_method_,
        "fit_seconds": round(seconds, 4),
        "converged": bool(pmodel.converged_),
    }


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    return ranks
