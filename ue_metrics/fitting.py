"""From preference records to a fit folder: aggregate, fit the Thurstonian model, score coherence, write
``utilities.csv`` and ``metrics.json``, and render the summary table. A pure function of the records."""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics.coherence import coherence_metrics, random_baselines
from ue_metrics.errors import UserError
from ue_metrics.records import PairData, aggregate
from ue_metrics.thurstonian import Thurstonian

MIN_BOOTSTRAP = 10  # fewer resamples give percentile "intervals" of one or two points
UTILITY_COLUMNS = ("id", "text", "category", "utility", "sigma2", "ci_low", "ci_high")
SUMMARY_KEYS = (
    "holdout_accuracy", "holdout_log_loss", "holdout_brier", "train_accuracy", "train_log_loss",
    "average_confidence", "cycle_rate", "order_gap", "position_bias", "unparsed_rate",
)  # fmt: skip


@dataclass
class FitResult:
    data: PairData
    model: Thurstonian
    metrics: dict[str, Any]

    def utilities(self) -> list[dict[str, Any]]:
        """One row per outcome, sorted by utility (highest first)."""
        m = self.model
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
            raise UserError(f"{out}: the fit cannot be written ({exc.strerror or exc}); free space or choose another --out "
                            "folder and fit again (the records are untouched)") from None  # fmt: skip

    def _write(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        rows = self.utilities()
        columns = list(UTILITY_COLUMNS) + (["component"] if rows and "component" in rows[0] else [])
        with (out / "utilities.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        (out / "metrics.json").write_text(json.dumps(self.metrics, indent=2, default=_json_default) + "\n", encoding="utf-8")
        return out

    def summary(self, top: int = 5) -> str:
        """A short plain-text table: coherence metrics next to the random responder, then top/bottom outcomes."""
        base = self.metrics.get("random_baseline", {})
        lines = [f"{'metric':<22}{'this run':>12}{'random':>12}"]
        for key in SUMMARY_KEYS:
            value = self.metrics.get(key)
            lines.append(f"{key:<22}{_fmt(value):>12}{_fmt(base.get(key)):>12}")
        if self.metrics.get("mean_label_mass") is not None:
            lines.append(f"{'mean_label_mass':<22}{_fmt(self.metrics['mean_label_mass']):>12}{'':>12}")
        lines.append(
            f"{self.metrics['n_outcomes']} outcomes, {self.metrics['n_train_pairs']} training + "
            f"{self.metrics['n_holdout_pairs']} holdout pairs, {self.metrics['n_records']} records"
        )
        if self.metrics.get("no_signal"):
            lines.append(f"note: the utilities carry no signal — {self.metrics['no_signal']}; do not read the ranking below "
                         "as the model's values")  # fmt: skip
        bias, gap = self.metrics.get("position_bias"), self.metrics.get("order_gap")
        if (bias is not None and abs(bias) > 0.25) or (gap is not None and gap > 0.5):
            lines.append(
                f"note: the answers follow the position of the options more than their content (position bias "
                f"{_fmt(bias)}, order gap {_fmt(gap)}); pooled over both orderings the preferences are weak, so the "
                "utilities carry little signal and their intervals are wide"
            )
        rows = self.utilities()
        width = 70

        def show(row):
            text = row["text"] if len(row["text"]) <= width else row["text"][: width - 1] + "…"
            return f"  {row['utility']:+6.2f}  [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]  {text}"

        lines.append(f"top {min(top, len(rows))} outcomes (utility, {self.metrics.get('ci_method')} interval):")
        lines += [show(r) for r in rows[:top]]
        lines.append(f"bottom {min(top, len(rows))} outcomes:")
        lines += [show(r) for r in rows[-top:]]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


def samples_per_ordering(data: PairData) -> int:
    """K of the run for the random baseline: the sampled answers per record, 0 for log-prob runs (exact coin)."""
    if data.modes == ["sample"] and data.n_records:
        return max(1, int(round(data.n_answers / data.n_records)))
    return 0


def fit_records(
    records: Iterable[dict],
    unparsed: str = "exclude",
    method: str = "mle",
    bootstrap: int = 0,
    per_component: bool = False,
    seed: int = 0,
    progress: Any = None,
    logprob_weight: float | None = None,
) -> FitResult:
    """Aggregate records, fit on the training pairs, and score coherence on all of them. ``logprob_weight``: see
    ``ue_metrics.records.aggregate`` (needed only to fit log-prob and sampled records together)."""
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0 or 0 < bootstrap < MIN_BOOTSTRAP:
        raise UserError(
            f"--bootstrap must be 0 (curvature intervals) or at least {MIN_BOOTSTRAP} resamples (200 is a good choice), "
            f"got {bootstrap!r}; fewer resamples give intervals of a few points, not intervals"
        )
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
    model = Thurstonian(
        method=method,
        bootstrap=bootstrap,
        on_disconnected="per_component" if per_component else "error",
        seed=seed,
        progress=progress,
    )
    started = time.perf_counter()
    # outcomes that appear only in holdout pairs are isolated nodes of the training graph; fit on the rest
    if not used.all():
        keep = np.flatnonzero(used)
        remap = -np.ones(data.n_outcomes, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        sub_ids = [data.ids[k] for k in keep]
        model.fit(np.column_stack([remap[train.i], remap[train.j]]), train.y, train.w, n_outcomes=len(keep), ids=sub_ids)
        _expand(model, keep, data.n_outcomes, data.ids)
    else:
        model.fit(np.column_stack([train.i, train.j]), train.y, train.w, n_outcomes=data.n_outcomes, ids=data.ids)
    fit_seconds = time.perf_counter() - started
    metrics = coherence_metrics(data, model)
    k = samples_per_ordering(data)
    metrics.update(
        {
            "n_outcomes_unfitted": int((~used).sum()),
            "modes": data.modes,
            "unparsed_policy": unparsed,
            "fit_method": method,
            "ci_method": model.ci_method_,
            "converged": bool(model.converged_),
            "n_iter": int(model.n_iter_),
            "n_components": int(model.n_components_),
            "fit_seconds": round(fit_seconds, 4),
            "seed": seed,
            "random_baseline": {**random_baselines(k), "samples_per_ordering": k},
        }
    )
    return FitResult(data=data, model=model, metrics=metrics)


def _expand(model: Thurstonian, keep: np.ndarray, n: int, ids: list[str]) -> None:
    """Put a fit over a subset of outcomes back onto the full index (unfitted outcomes get NaN)."""
    for name in ("utilities_", "sigma2_", "ci_low_", "ci_high_", "stderr_"):
        full = np.full(n, np.nan)
        full[keep] = getattr(model, name)
        setattr(model, name, full)
    comp = -np.ones(n, dtype=np.int64)
    comp[keep] = model.components_
    model.components_ = comp
    model.ids_ = list(ids)
