"""The paper's pseudolabels (Mazeika et al. 2025; docs/method.md §2.6): after the last round, confident predictions on
the training pairs never asked are added as hard labels and the utilities refitted (``ue run --pseudolabels``)."""

from __future__ import annotations

import numpy as np

from ue_metrics.coherence import coherence_metrics
from ue_metrics.fitting import FitResult


def pseudolabel_refit(result: FitResult, threshold: float, weight: float) -> None:
    """Refit ``result`` in place with a hard label on every unqueried pair the fit predicts with probability ≥
    ``threshold`` (or ≤ 1 − ``threshold``), each weighing ``weight`` answers (a real pair weighs its usable answers: 2
    per pair in log-prob mode, up to 2K sampled). utilities.csv and metrics.json then both describe the refit, and its
    metrics are computed on real answers only (docs/method.md §7.2)."""
    data, model = result.data, result.model
    n = data.n_outcomes
    used = {(min(a, b), max(a, b)) for a, b in zip(data.i.tolist(), data.j.tolist())}
    a, b = np.triu_indices(n, 1)
    keep = np.array([(x, y) not in used for x, y in zip(a.tolist(), b.tolist())], dtype=bool)
    a, b = a[keep], b[keep]
    p = model.predict_proba(np.column_stack([a, b]))
    sure = (p >= threshold) | (p <= 1 - threshold)
    tr = data.train()
    X = np.concatenate([np.column_stack([tr.i, tr.j]), np.column_stack([a[sure], b[sure]])])
    y = np.concatenate([tr.y, (p[sure] >= threshold).astype(float)])
    w = np.concatenate([tr.w, np.full(int(sure.sum()), weight)])
    model.fit(X, y, w, n_outcomes=n, ids=data.ids)
    result.metrics.update(coherence_metrics(data, model))
    result.metrics["pseudolabels"] = {
        "added": int(sure.sum()),
        "threshold": threshold,
        "weight": weight,
        "note": "metrics are of the refit with pseudolabels, on real answers only",
    }
