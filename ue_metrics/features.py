"""The hidden-state features of a ``representations`` run (Mazeika et al. 2025, "utilities are represented
inside the model": linear probes on hidden states; docs/representations.md): the one file format, written by the
reader of a model (``ue_tasks.hidden_states``) or by a simulated model (``ue_metrics.simulate``) and read by the
probe analysis (``ue_metrics.analyses.representations``) and by steering (``ue_control.steer``), so that
``ue analyse`` refits every probe from the saved features without the model.

``RUN_DIR/features.npz`` holds:

- ``ids``: the outcome ids, one per row (N);
- ``<variant>_<pooling>``: float arrays of shape (N, L + 1, d) — every layer's hidden state (index 0 is the
  embedding output, index L the last layer as the model returns it), for
  ``variant`` ``prompt`` (the outcome placed in the preference prompt the model answered, once as Option A and
  once as Option B, averaged) or ``bare`` (the outcome's text alone), and ``pooling`` ``last`` (the outcome's
  last token) or ``mean`` (the mean over the outcome's tokens). Stored as float16 (float32 when a value lies
  outside float16's range);
- ``partners``: in the prompt variant, the id of the other option shown with each outcome;
- ``meta``: a JSON string (model, dtype, layers, hidden size, template, system message, chat template or not,
  seconds taken, ...).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics.errors import UserError

FEATURES_FILE = "features.npz"
VARIANTS = ("prompt", "bare")
POOLINGS = ("last", "mean")
KINDS = tuple(f"{v}_{p}" for v in VARIANTS for p in POOLINGS)
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass
class FeatureSet:
    """Hidden states of N outcomes: ``arrays[kind]`` of shape (N, L + 1, d) for kind in ``KINDS``."""

    ids: list[str]
    arrays: dict[str, np.ndarray]
    partners: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shapes = {k: a.shape for k, a in self.arrays.items()}
        if not self.arrays:
            raise ValueError("a feature set needs at least one array")
        for kind, shape in shapes.items():
            if kind not in KINDS:
                raise ValueError(f"unknown feature kind {kind!r}; use one of {', '.join(KINDS)}")
            if len(shape) != 3 or shape[0] != len(self.ids):
                raise ValueError(f"features {kind!r} have shape {shape}; expected ({len(self.ids)}, layers, hidden size)")
        if len({s[1:] for s in shapes.values()}) != 1:
            raise ValueError(f"feature arrays disagree in shape: {shapes}")

    @property
    def n_layers(self) -> int:
        """Hidden states per outcome (the embeddings plus every layer: L + 1)."""
        return next(iter(self.arrays.values())).shape[1]

    @property
    def hidden_size(self) -> int:
        return next(iter(self.arrays.values())).shape[2]

    def layer(self, kind: str, layer: int) -> np.ndarray:
        """(N, d) float64 features of one kind at one layer."""
        if kind not in self.arrays:
            raise UserError(f"the features have no {kind!r} (they hold {', '.join(self.arrays)}); choose one of those")
        if not -self.n_layers <= layer < self.n_layers:
            raise UserError(f"layer {layer} does not exist; the features have layers 0..{self.n_layers - 1}")
        return np.asarray(self.arrays[kind][:, layer, :], dtype=np.float64)

    def subset(self, ids: Sequence[str]) -> FeatureSet:
        """The rows of ``ids``, in that order."""
        index = {oid: k for k, oid in enumerate(self.ids)}
        rows = [index[i] for i in ids]
        partners = [self.partners[k] for k in rows] if self.partners else []
        return FeatureSet(list(ids), {k: a[rows] for k, a in self.arrays.items()}, partners, dict(self.meta))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for kind, a in self.arrays.items():
            a = np.asarray(a)
            fits = bool(np.isfinite(a).all()) and float(np.abs(a).max(initial=0.0)) < FLOAT16_MAX
            arrays[kind] = a.astype(np.float16 if fits else np.float32)
        tmp = path.with_name(path.name + ".part")
        with tmp.open("wb") as fh:  # np.savez would append ".npz" to a path of another name
            np.savez(
                fh,
                ids=np.array(self.ids, dtype=str),
                partners=np.array(self.partners, dtype=str),
                meta=np.array(json.dumps(self.meta, ensure_ascii=False)),
                **arrays,
            )
        tmp.replace(path)  # a run interrupted while writing leaves no half-written features behind
        return path


def load(path: str | Path) -> FeatureSet:
    """Read ``features.npz`` (a run folder or the file); a missing or damaged file is one clear error."""
    path = Path(path)
    if path.is_dir():
        path = path / FEATURES_FILE
    if not path.is_file():
        raise UserError(f"{path}: no hidden-state features here; run `ue run representations` into this folder first")
    try:
        with np.load(path, allow_pickle=False) as data:
            ids = [str(x) for x in data["ids"]]
            partners = [str(x) for x in data["partners"]] if "partners" in data.files else []
            meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
            arrays = {k: np.asarray(data[k]) for k in data.files if k in KINDS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as hidden-state features ({exc}); run `ue run representations` again") from None
    try:
        return FeatureSet(ids, arrays, partners, meta)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}; run `ue run representations` again") from None


def describe(features: FeatureSet) -> Mapping[str, Any]:
    return {
        "n_outcomes": len(features.ids),
        "n_layers": features.n_layers,
        "hidden_size": features.hidden_size,
        "kinds": sorted(features.arrays),
        **{k: v for k, v in features.meta.items() if k != "timings"},
    }
