"""Runs an experiment reads besides its own records (Mazeika et al. 2025 §4.10–4.11 and the entity map of §4.7;
docs/method.md §4.7, §4.10, §4.11): the model's ``utilities`` run that ``power_seeking`` and ``corrigibility`` build on,
and the entity runs that ``political_values`` places on its map beside the model.

- ``fitted_run``: a ``ue run`` folder read (``ue_tasks.run_folder``) and fitted again from its records with
  its own seed — exactly the fit ``ue run`` wrote to its utilities.csv — cached per folder and records file.
- ``check_same_model``: which model a run asked (``ue_tasks.model_identity.weights_of``), harness-independent where the weights are
  named (lm-eval's ``pretrained=PATH`` and Inspect's ``model_path=PATH`` are one model), so a utilities run of
  another model is refused with one sentence; ``check_same_weights`` compares the records' weight fingerprints
  (``ue_tasks.model_identity``), which also works inside the harnesses.
- ``check_same_outcomes``: the outcomes a run asks about must be the consumed run's, id for id and text for text.

The harness tasks (lm-eval, Inspect) do not know the model's name when they build their documents, so there the
outcome set is checked before anything is asked and the weights when the answers are analysed; ``ue run`` checks
both before asking anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_metrics.fitting import FitResult, fit_records
from ue_tasks.model_identity import weights_of
from ue_tasks.outcomes import OutcomeSet
from ue_tasks.run_folder import RunFolder


@dataclass
class FittedRun:
    path: Path
    config: dict
    records: list[dict]
    fit: FitResult

    @property
    def utilities(self) -> dict[str, float]:
        """``{outcome id: utility}`` of every fitted outcome (mean 0, sd 1 over the run's outcomes)."""
        return {r["id"]: float(r["utility"]) for r in self.fit.utilities() if math.isfinite(r["utility"])}

    def outcomes(self) -> OutcomeSet:
        """The run's outcomes as it generated them (``outcomes.jsonl``), or, failing that, those its records name."""
        return RunFolder(self.path).outcomes(self.records, self.config)

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "path": str(self.path),
            "experiment": c.get("experiment"),
            "model": c.get("model"),
            "harness": c.get("harness"),
            "model_identity": weights_of(c),
            "outcome_set": c.get("outcome_set"),
            "n_records": len(self.records),
            "n_outcomes": self.fit.metrics.get("n_outcomes"),
            "seed": c.get("seed"),
            "holdout_accuracy": self.fit.metrics.get("holdout_accuracy"),
        }


_CACHE: dict[tuple, FittedRun] = {}


def fitted_run(path: str | Path, experiment: str | None = None) -> FittedRun:
    """A run folder, read and fitted (cached while its records file is unchanged)."""
    folder = Path(path).expanduser()
    rec = folder / "records.jsonl"
    st = rec.stat() if rec.is_file() else None
    stamp = (str(folder.resolve()), experiment, st.st_mtime_ns if st else None, st.st_size if st else None)
    if stamp in _CACHE:
        return _CACHE[stamp]
    config, records = RunFolder(folder).read_finished(experiment)
    fit = fit_records(records, seed=int(config.get("seed", 0) or 0), per_component=True)
    out = FittedRun(path=folder.resolve(), config=config, records=records, fit=fit)
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[stamp] = out
    return out


def check_same_model(ours: Mapping[str, Any], consumed: Mapping[str, Any], folder: str | Path, what: str = "utilities") -> None:
    """Refuse a consumed run of another model (one sentence)."""
    a, b = weights_of(ours), weights_of(consumed)
    if a != b:
        raise UserError(
            f"{folder} is a {what} run of {b!r} ({consumed.get('harness')}), not of this run's model {a!r}; give the {what} run "
            f"of the same model (or add --option check_model=false if both name the same model)"
        )
    seeds = (ours.get("seed"), consumed.get("seed"))
    if ours.get("harness") == consumed.get("harness") == "simulate" and None not in seeds and int(seeds[0]) != int(seeds[1]):
        raise UserError(
            f"{folder} is a {what} run of the simulated model {a!r} with seed {seeds[1]}, not this run's seed {seeds[0]}; a "
            f"simulated model's utilities are drawn from its seed, so give a {what} run made with --seed {seeds[0]} (or run "
            f"this one with --seed {seeds[1]})"
        )


def _weights(records: Iterable[Mapping[str, Any]]) -> set[str]:
    """The weight fingerprints (``model_fingerprint``, model identity) of a run's answered records; simulated ones
    are left out (a simulated responder's fingerprint is its name and seed, which two runs of one simulated model may
    not share)."""
    return {str(r["model_fingerprint"]) for r in records if r.get("model_fingerprint") and r.get("harness") != "simulate"}


def check_same_weights(
    records: Sequence[Mapping[str, Any]], consumed: Sequence[Mapping[str, Any]], folder: str | Path, what: str = "utilities"
) -> None:
    """Refuse a consumed run whose records were answered by other weights than these records (their
    ``model_fingerprint``s do not meet). This works inside lm-eval and Inspect too, where the model's name is not
    known when the documents are built but every answered record carries its identity; records without a
    fingerprint (API models, older runs) are not compared."""
    ours, theirs = _weights(records), _weights(consumed)
    if ours and theirs and not ours & theirs:
        names = sorted({str(r.get("model")) for r in consumed if r.get("model")})
        raise UserError(
            f"{folder} is a {what} run answered by other weights ({', '.join(names) or 'unknown'}, fingerprint "
            f"{', '.join(sorted(theirs))}) than this run's (fingerprint {', '.join(sorted(ours))}); give the {what} run of "
            f"the same model (or add --option check_model=false to compare them anyway)"
        )


def check_same_outcomes(
    texts: Mapping[str, str], consumed: OutcomeSet, folder: str | Path, what: str = "utilities", exact: bool = False
) -> None:
    """Every outcome id of this run must be in the consumed run with the same text; with ``exact`` (an outcome set,
    not the records of a run that may not reach every outcome) the two sets must be the same."""
    theirs = {o.id: o.text for o in consumed.outcomes}
    if exact and len(texts) != len(theirs):
        raise UserError(
            f"{folder} is a {what} run over another outcome set ({consumed.name!r}, {len(theirs)} outcomes; this run has "
            f"{len(texts)}); give a {what} run over the same outcomes, or the same --outcomes"
        )
    for oid, text in texts.items():
        if oid not in theirs:
            raise UserError(
                f"{folder} is a {what} run over another outcome set ({consumed.name!r}, {len(theirs)} outcomes, without {oid!r}); "
                f"give a {what} run over the same outcomes, or the same --outcomes"
            )
        if theirs[oid] != text:
            raise UserError(
                f"{folder} is a {what} run over another version of the outcomes (outcome {oid!r} reads {_short(theirs[oid])!r} "
                f"there and {_short(text)!r} here); give a {what} run over the same outcomes"
            )


def texts_of(records: Sequence[dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in records:
        out[r["a_id"]] = r["a_text"]
        out[r["b_id"]] = r["b_text"]
    return out


def _short(text: str, width: int = 50) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_outcomes(folder: str | Path) -> OutcomeSet:
    """The outcomes a run asked about (its ``outcomes.jsonl``), named as the run named them; no fit."""
    return RunFolder(folder).outcomes()


def utilities_inputs(
    options: Mapping[str, Any], records: Sequence[dict], run: Mapping[str, Any] | None, check_outcomes: bool = True
) -> dict[str, Any]:
    """The analysis inputs of an experiment that reads the model's ``utilities`` run (``options["utilities"]``):
    its utilities, its outcome table and a description; refused when it is of another model (where this run's
    model is known) or, with ``check_outcomes``, over other outcomes than these records'."""
    path = options.get("utilities")
    if not path:
        return {}
    fitted = fitted_run(path, "utilities")
    if options.get("check_model", True) not in (False, "false", "False", 0):
        if run is not None:
            check_same_model(run, fitted.config, path)
        check_same_weights(records, fitted.records, path)
    base = fitted.outcomes()
    if check_outcomes:
        check_same_outcomes(texts_of(records), base, path)
    table = {
        o.id: {"text": o.text, "category": o.category, "tags": list(o.tags), "attributes": dict(o.attributes)}
        for o in base.outcomes
    }
    return {"base_utilities": fitted.utilities, "base_outcomes": table, "base_run": fitted.describe()}
