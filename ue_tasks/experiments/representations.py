"""Utility representations (Mazeika et al. 2025: linear probes recover a model's utilities from its hidden
states, more accurately for larger models; docs/representations.md): the hidden states of every outcome of a
model's ``utilities`` run, read from the same local transformers model, and linear probes from each layer to
the fitted utilities.

``ue run representations --model-args pretrained=FOLDER --utilities RUN_DIR --out OUT`` asks no forced-choice
question: it reads the utilities run (its records are copied into OUT, so the folder is self-contained), refuses
a run of another model, reads the hidden states (``ue_tasks.hidden_states``, the one place ``ue`` reads a model
directly) and saves them as ``OUT/features.npz`` beside the records; the analysis
(``ue_metrics/analyses/representations.py``) fits the probes from the saved features, so ``ue analyse OUT``
refits without the model. ``--harness simulate`` replaces the model with synthetic hidden states with a known
answer: ``planted`` (the utilities written linearly into the middle layers), ``embedding`` (into the embeddings
only: a lexical signal the layers add nothing to) or ``none`` (noise).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ue_metrics.analyses.representations import Options
from ue_metrics.errors import UserError
from ue_metrics.features import FEATURES_FILE, FeatureSet
from ue_metrics.simulate import HiddenStateResponder, embedding_states, no_states, planted_states
from ue_tasks.experiments import Experiment, Extension, register
from ue_tasks.outcomes import OutcomeSet
from ue_tasks.plan import PlanSpec

NAME = "representations"
HARNESSES = ("transformers", "simulate", "lm-eval", "inspect")  # lm-eval / inspect: their model-args name the folder
MODEL_PATH_KEYS = ("pretrained", "model_path", "model")


def model_folder(model_args: str | None) -> str:
    """The local model folder that ``--model-args`` name (``pretrained=`` or ``model_path=``)."""
    from ue_tasks.model_identity import parse_model_args

    args = parse_model_args(model_args)
    folder = next((str(args[k]) for k in MODEL_PATH_KEYS if args.get(k)), "")
    if not folder:
        raise UserError(
            "`ue run representations` reads a local model: give --model-args pretrained=FOLDER (the model of the utilities run)"
        )
    return folder


def collect(config: Any, out: Path, progress: Any = None, log: Callable[[str], None] = print) -> tuple[dict, list[dict]]:
    """Write the run folder (configuration, the utilities run's outcomes and records, the hidden states) and
    return (configuration, records). An existing folder with the same configuration is reused as it is."""
    from ue_metrics.jsonl import write_jsonl
    from ue_tasks import experiments
    from ue_tasks.model_identity import weights_of
    from ue_tasks.run_folder import RunFolder

    exp = experiments.get(NAME)
    opts = exp.resolve_options(config.options)
    source = opts.get("utilities")
    if not source:
        raise UserError(
            "representations probes a model's utilities: give --utilities RUN_DIR, the folder of a `ue run utilities` "
            "(or `ue elicit`) of the same model"
        )
    ucfg, records = RunFolder(source).read_finished("utilities")
    mine, theirs = weights_of(config), weights_of(ucfg)
    if mine != theirs:
        raise UserError(
            f"{source} is a utilities run of {theirs!r}, not of {mine!r}: probes must read the hidden states of the "
            "model whose utilities they predict; give that model's utilities run, or run `ue run utilities` on this model first"
        )
    folder = None if config.harness == "simulate" else model_folder(config.model_args)  # the weights read, once
    if ucfg.get("harness") != "simulate" and folder is not None:  # simulated answers have no weights behind them
        _check_same_weights(folder, records, source)
    seen = {r[f"{s}_id"] for r in records for s in ("a", "b")}
    every = RunFolder(source).outcomes(records, ucfg)
    oset = OutcomeSet(every.name or "utilities", [o for o in every.outcomes if o.id in seen], source=every.source)
    opts["utilities"] = str(Path(source).resolve())
    run_config = {
        "experiment": NAME,
        "harness": config.harness,
        "model": config.model or ucfg.get("model"),
        "model_args": config.model_args,
        "seed": config.seed,
        "responder": config.responder if config.harness == "simulate" else None,
        "options": opts,
        "outcome_set": oset.name,
        "n_outcomes": len(oset),
        "outcome_hash": oset.content_hash(),
        "template": ucfg.get("template") or "default",
        "system_message": ucfg.get("system_message"),
        "utilities_run": {
            k: ucfg.get(k) for k in ("run_id", "harness", "model", "model_args", "outcome_set", "outcome_hash", "mode", "seed")
        },
        "n_utilities_records": len(records),
        "features_file": FEATURES_FILE,
    }
    run_folder = RunFolder(out)
    run_folder.create()
    lock = run_folder.lock()
    lock.acquire()
    try:
        feat_path = run_folder.path / FEATURES_FILE
        run_folder.refuse_other_configuration(run_config)
        run_folder.write_config(run_config)
        oset.write(run_folder.outcomes_path)
        write_jsonl(run_folder.records_path, records)
        if _reusable(feat_path, oset, config, folder):
            log(f"{feat_path} holds the hidden states already; refitting the probes only")
        else:
            features = _read_features(config, folder, oset, records, run_config, opts, progress, log)
            features.save(feat_path)
            log(
                f"wrote {feat_path} ({feat_path.stat().st_size / 1e6:.1f} MB: {len(features.ids)} outcomes × "
                f"{features.n_layers} layers × {features.hidden_size}, {len(features.arrays)} kinds)"
            )
    finally:
        lock.release()
    return run_config, records


def _check_same_weights(folder: str, records: list[dict], source: str) -> None:
    """The same folder can hold other weights than it did when the utilities run answered (a fine-tuned copy saved
    over it): where the records carry the folder's fingerprint (``ue_tasks.model_identity``), it must match."""
    from ue_tasks.model_identity import fingerprint_folder

    recorded = {r["model_fingerprint"] for r in records if r.get("model_fingerprint")}
    now = fingerprint_folder(folder)
    if recorded and now and now not in recorded:
        raise UserError(
            f"{source}: its records were answered by other weights (fingerprint {', '.join(sorted(recorded))}) than "
            f"{folder} holds now ({now}); rerun `ue run utilities` on this model first"
        )


def _reusable(path: Path, oset: OutcomeSet, config: Any, folder: str | None) -> bool:
    """Whether ``path`` holds the hidden states this run would read: the same outcomes in the same order, from
    the same model ``folder`` (or, with none, the same simulated model)."""
    if not path.is_file():
        return False
    from ue_metrics.features import load

    try:
        saved = load(path)
    except UserError:
        return False
    model = str(saved.meta.get("model"))
    if saved.meta.get("simulated"):
        same_model = config.harness == "simulate" and model == (config.responder or "planted")
    else:
        same_model = folder is not None and _resolved(model) == _resolved(folder)
    return saved.ids == oset.ids and same_model


def _resolved(path: str) -> str:
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path.rstrip("/")


def _read_features(
    config: Any,
    folder: str | None,
    oset: OutcomeSet,
    records: list[dict],
    run_config: dict,
    opts: dict,
    progress: Any,
    log: Callable[[str], None],
) -> FeatureSet:
    ids, texts = oset.ids, oset.texts
    if config.harness == "simulate":
        from ue_metrics.fitting import fit_records
        from ue_tasks import experiments

        # the simulated model writes the utilities the probes will be asked to find: those fitted to the run
        fit = fit_records(records, seed=config.seed, per_component=True)
        mu = {r["id"]: r["utility"] for r in fit.utilities() if math.isfinite(r["utility"])}
        responder = experiments.get(NAME).responder(config.responder, oset, config.seed)
        return responder.features(ids, [mu.get(i, 0.0) for i in ids], config.seed)
    import torch

    from ue_tasks import hidden_states as hs

    model, tokenizer, dtype = hs.load_model(folder, str(opts["dtype"]), str(opts["device"]))
    partners = hs.draw_partners(len(ids), config.seed)
    log(
        f"reading the hidden states of {len(ids)} outcomes ({3 * len(ids)} forward passes: as Option A, as Option B, bare) "
        f"from {folder} in {dtype} on {opts['device']} ({torch.get_num_threads()} threads)"
    )
    bar = progress(total=3 * len(ids), desc="hidden states", unit="pass") if progress else None
    try:
        return hs.outcome_features(
            model,
            tokenizer,
            ids,
            texts,
            partners,
            template=run_config["template"],
            system_message=run_config["system_message"],
            batch_size=int(opts["batch_size"]),
            progress=bar.update if bar else None,
            meta={
                "model": folder,
                "dtype": dtype,
                "device": str(opts["device"]),
                "torch_threads": torch.get_num_threads(),
                "python": sys.version.split()[0],
                "cpu_count": os.cpu_count(),
            },
        )
    finally:
        if bar:
            bar.close()


def _planted(outcomes: OutcomeSet, seed: int) -> HiddenStateResponder:
    return planted_states()


def _none(outcomes: OutcomeSet, seed: int) -> HiddenStateResponder:
    return no_states()


def _embedding(outcomes: OutcomeSet, seed: int) -> HiddenStateResponder:
    return embedding_states()


class HiddenStates(Extension):
    """Reads the hidden states of the outcomes from the model in process, instead of asking anything."""

    collects = "hidden states"
    harnesses = HARNESSES
    default_harness = HARNESSES[0]
    needs_model = False  # the model is the folder its --model-args name
    passes_per_outcome = 3  # as Option A, as Option B, bare

    def collect_run(
        self, config: Any, out: Any, *, progress: Any = None, log: Callable[[str], None] = print
    ) -> tuple[dict, list[dict]]:
        return collect(config, Path(out), progress=progress, log=log)


register(
    Experiment(
        name=NAME,
        title="Utility representations: linear probes on hidden states",
        section="§4",
        outcomes="core",
        plan=PlanSpec(kind="custom"),
        headline=(
            "best_layer",
            "probe_r2",
            "probe_spearman",
            "probe_pair_accuracy",
            "baseline_r2",
            "baseline_pair_accuracy",
            "shuffled_r2",
            "shuffled_pair_accuracy",
            "probe_p_value",
            "embedding_r2",
            "embedding_pair_accuracy",
            "embedding_gain",
            "utility_pair_accuracy",
            "logvar_r2",
            "n_outcomes",
            "n_holdout_pairs",
        ),
        lower_is_better=(
            "baseline_r2",
            "baseline_pair_accuracy",
            "shuffled_r2",
            "shuffled_pair_accuracy",
            "probe_p_value",
            "embedding_r2",
            "embedding_pair_accuracy",
        ),
        responders={"planted": _planted, "none": _none, "embedding": _embedding},
        # what the collection reads, with the analysis's features, folds, cv and shuffles
        options=Options.declare(utilities=None, batch_size=16, dtype="auto", device="cpu"),
        consumes="utilities",
        extension=HiddenStates(),
        description="Per layer, a cross-validated ridge probe from the hidden states of each outcome to its fitted utility: R², "
        "Spearman and held-out pair accuracy, next to shuffled labels and the surface features of the text.",
    )
)
