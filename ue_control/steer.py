"""``ue control steer``: utility control at the level of representations (Mazeika et al. 2025 call supervised
fine-tuning their baseline method of utility control; this is the second method, built on the linear utility
probes of the ``representations`` experiment; docs/representations.md).

From a ``representations`` run (the hidden states of a utilities run's outcomes and the model they come from):

1. split the outcomes (seeded) into probe-training outcomes and ``heldout`` outcomes;
2. fit the ridge probe (``ue_metrics.analyses.representations``) at one layer on the training outcomes, for the
   target: the model's own utilities μ (``target: utility``), or a synthetic target planted in the layer's
   representation space (``target: synthetic``: the hidden states projected on a random direction within their top
   principal components — a target the probe can find, which no training put into the answers; the
   known-answer check);
3. turn the probe into a direction in the residual stream: its read-out vector, unit length;
4. elicit the held-out outcomes' preferences through lm-eval (the ``utilities`` experiment's plan over those
   outcomes, ``ue run``'s elicitation driver) with a forward hook on the model inside lm-eval's HF model —
   lm-eval still batches, templates and scores — once per α of a sweep, and fit their utilities;
5. do the same along a random direction of the same norm (the control), and report how the held-out utilities
   move: Spearman with the probe's target and with the probe's predictions, Spearman with the unsteered
   utilities, coherence (held-out accuracy, average confidence, cycle rate) and position bias.

Two ways to steer (``mode``), both sized in σ, the root-mean-square spread of the outcomes' hidden states at that
layer, so that a direction and its random control move the outcomes' states by the same amount:

- ``add`` (activation addition): h ← h + α·σ·d at every position of the layer's output. The same vector is
  added to both options of a question, so to first order it cannot reorder outcomes (a forced choice compares
  them): its effect shows in position bias and label mass more than in utilities;
- ``amplify``: h ← h + α·σ·z(h)·d, z(h) = (h − m)·d / s_d the position's standardised coordinate along d (m and
  s_d: the outcomes' mean and spread along d). Each outcome is pushed in proportion to where it already lies
  along the direction — for the probe direction, in proportion to its predicted utility — which is what can move
  utilities: pooled over both orderings, an answer's log-odds change by about α·σ·(γ_A − γ_B)·(z_a − z_b), γ the
  effect of the direction on the tokens of each option.

Movement toward the target at each α: the slope of the change of the held-out utilities (u_α − u_0, both
standardised) on the target, and their correlation; a direction that the model reads moves them along its
probe's predictions, a random direction along its own projection, unrelated to the target.

Writes ``OUT/steer.json`` (configuration, the probe, one row per direction and α), ``OUT/<direction>_<α>/`` (each
elicitation's run folder: records, utilities) and ``OUT/figures/steer.png|svg``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ue_control import config as cfg
from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json, strict_json

MODES = ("add", "amplify")
TARGETS = ("utility", "synthetic")
SYNTHETIC_COMPONENTS = 3


@dataclass
class SteerConfig:
    representations: str  # the run folder of `ue run representations`
    out: str
    layer: int | None = None  # default: the representations analysis' best layer (1..L−1)
    features: str = "prompt_mean"
    mode: str = "add"
    alphas: list[float] = field(default_factory=lambda: [-2.0, -1.0, 0.0, 1.0, 2.0])
    heldout: int = 24  # held-out outcomes whose utilities are elicited under steering
    budget: int | None = None  # training pairs per elicitation (default ⌊2·N·log2 N⌋ of the held-out outcomes)
    target: str = "utility"
    random_control: bool = True
    seed: int = 0
    batch_size: int = 8
    device: str = "cpu"

    def check(self, where: str) -> None:
        if self.mode not in MODES:
            raise UserError(f"{where}: field 'mode' must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.target not in TARGETS:
            raise UserError(f"{where}: field 'target' must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if not self.alphas or not all(math.isfinite(a) for a in self.alphas):
            raise UserError(f"{where}: field 'alphas' must be a non-empty list of finite numbers, got {self.alphas!r}")
        if self.heldout < 3:
            raise UserError(f"{where}: field 'heldout' must be at least 3 outcomes, got {self.heldout}")


def load_config(path: str | Path | None, overrides: list[str] | None = None, **given: Any) -> SteerConfig:
    return cfg.load(SteerConfig, path, overrides, **given)


# ----------------------------------------------------------------------------------------------------------
# the hook


def decoder_layers(model: Any) -> Any:
    """The model's list of transformer blocks (the ``nn.ModuleList`` as long as the config's layer count)."""
    import torch

    conf = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    n = int(conf.num_hidden_layers)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise UserError(f"cannot find the {n} transformer blocks of {type(model).__name__}; steering supports decoder-only models")


class Steering:
    """A forward hook on block ``layer − 1`` (so that it changes hidden state ``layer`` in ``output_hidden_states``
    numbering, the numbering of the probes) that adds α·σ·d (``add``) or α·σ·z(h)·d (``amplify``)."""

    def __init__(self, mode: str, centre: np.ndarray, unit: float, outcome_states: np.ndarray | None = None) -> None:
        import torch

        if mode not in MODES:
            raise UserError(f"steering mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.centre = torch.tensor(np.asarray(centre, dtype=np.float32))
        self.unit = float(unit)
        self.states = None if outcome_states is None else np.asarray(outcome_states, dtype=np.float64)
        self.spread = 1.0
        self.direction = torch.zeros_like(self.centre)
        self.alpha = 0.0
        self.handle: Any = None

    def set(self, direction: np.ndarray, alpha: float) -> None:
        import torch

        d = np.asarray(direction, dtype=np.float64)
        norm = float(np.linalg.norm(d))
        if not norm > 0:
            raise ValueError("a steering direction must be non-zero")
        self.direction = torch.tensor((d / norm).astype(np.float32))
        self.alpha = float(alpha)
        if self.mode == "amplify":
            if self.states is None:
                raise ValueError("amplify needs the outcomes' hidden states (their spread along the direction)")
            self.spread = float(np.std((self.states - self.centre.numpy()) @ (d / norm))) or 1.0

    def attach(self, model: Any, layer: int) -> None:
        blocks = decoder_layers(model)
        if not 1 <= layer <= len(blocks) - 1:
            raise UserError(f"steering works at layers 1..{len(blocks) - 1} of this model (a block's output), got {layer}")
        self.handle = blocks[layer - 1].register_forward_hook(self)

    def detach(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def __call__(self, module: Any, inputs: Any, output: Any) -> Any:
        if self.alpha == 0.0:
            return None
        h = output[0] if isinstance(output, tuple) else output
        d = self.direction.to(device=h.device, dtype=h.dtype)
        if self.mode == "add":
            steered = h + (self.alpha * self.unit) * d
        else:
            z = ((h - self.centre.to(device=h.device, dtype=h.dtype)) @ d) / self.spread
            steered = h + (self.alpha * self.unit) * z[..., None] * d
        return (steered, *output[1:]) if isinstance(output, tuple) else steered


# ----------------------------------------------------------------------------------------------------------
# the sweep


def _read_representations(folder: Path) -> tuple[dict, list[dict], Any, dict | None]:
    from ue_metrics import features as feat
    from ue_metrics.records import read

    cfg_path = folder / "config.json"
    if not cfg_path.is_file() or not (folder / "records.jsonl").is_file():
        raise UserError(f"{folder}: not a `ue run representations` folder (config.json and records.jsonl are missing)")
    run_cfg = read_json(
        cfg_path, lambda exc: f"{cfg_path}: cannot be read ({exc}); run `ue run representations` into a new folder"
    )
    if run_cfg.get("experiment") != "representations":
        raise UserError(f"{folder} is a run of {run_cfg.get('experiment')!r}; give the folder of a `ue run representations`")
    if run_cfg.get("harness") == "simulate":
        raise UserError(
            f"{folder} holds simulated hidden states; steering needs a real model's (run `ue run representations` on a model)"
        )
    analysis = None
    if (folder / "analysis.json").is_file():
        analysis = read_json(
            folder / "analysis.json",
            lambda exc: f"{folder / 'analysis.json'}: cannot be read ({exc}); rerun `ue analyse` on {folder}",
        )
    return run_cfg, read(folder / "records.jsonl"), feat.load(folder), analysis


def synthetic_target(X: np.ndarray, rng: np.random.Generator, components: int | None = None) -> np.ndarray:
    """A target planted in the hidden states themselves: their projection on a random direction within their top
    principal components (mean 0, sd 1). Linear in the states by construction, so a probe fitted on a few dozen
    outcomes recovers it, and it lies along directions in which the outcomes differ most."""
    k = SYNTHETIC_COMPONENTS if components is None else components
    centred = X - X.mean(0)
    _, _, Vt = np.linalg.svd(centred, full_matrices=False)
    planted = centred @ (Vt[:k].T @ rng.standard_normal(min(k, len(Vt))))
    return (planted - planted.mean()) / planted.std()


def probe_direction(X_train: np.ndarray, t_train: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The ridge probe of ``t`` on ``X`` (α by leave-one-out): its read-out vector in the raw hidden-state space
    (unit length) and its prediction function."""
    from ue_metrics.analyses.representations import ridge_fit

    coef, centre, scale, y_mean, _ = ridge_fit(X_train, t_train[:, None])
    readout = coef[:, 0] / scale

    def predict(X: np.ndarray) -> np.ndarray:
        return ((X - centre) / scale) @ coef[:, 0] + y_mean[0]

    return readout / np.linalg.norm(readout), predict


def steer(config: SteerConfig, progress: Any = None, log: Callable[[str], None] = print) -> dict:
    """Run the sweep of ``config`` (see the module docstring); returns the summary written to steer.json."""
    from ue_metrics.analyses.representations import spearman
    from ue_metrics.fitting import fit_records
    from ue_tasks.elicitation.backends import LmEvalBackend
    from ue_tasks.experiments.representations import model_folder
    from ue_tasks.outcomes import load_outcomes

    rep = Path(config.representations)
    run_cfg, records, features, analysis = _read_representations(rep)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    # a sweep's sub-runs resume by folder; another configuration must not reuse their answers
    mine = {**asdict(config), "out": None, "representations": str(rep.resolve())}
    saved = out / "steer_config.json"
    if (
        saved.is_file()
        and read_json(saved, lambda exc: f"{saved}: cannot be read ({exc}); remove it or choose a new out folder") != mine
    ):
        raise UserError(
            f"{out} holds a steering sweep with another configuration; rerun with the same settings or choose a new out folder"
        )
    saved.write_text(json.dumps(mine, indent=2) + "\n", encoding="utf-8")

    layer = config.layer
    if layer is None:
        layer = int((analysis or {}).get("headline", {}).get("best_layer") or features.n_layers // 2)
        layer = min(max(layer, 1), features.n_layers - 2)
    fit = fit_records(records, seed=config.seed, per_component=True)
    mu = {r["id"]: r["utility"] for r in fit.utilities() if math.isfinite(r["utility"])}
    ids = [i for i in features.ids if i in mu]
    if len(ids) < config.heldout + 10:
        raise UserError(
            f"{len(ids)} outcomes have hidden states and a utility; steering needs heldout ({config.heldout}) + at least 10 to fit the probe"
        )
    rng = np.random.default_rng([config.seed, 9001])
    order = rng.permutation(len(ids))
    held = [ids[k] for k in sorted(order[: config.heldout])]
    train = [ids[k] for k in sorted(order[config.heldout :])]
    X_all = features.subset(ids).layer(config.features, layer)
    row = {oid: k for k, oid in enumerate(ids)}
    X_train, X_held = X_all[[row[i] for i in train]], X_all[[row[i] for i in held]]
    if config.target == "utility":
        target = np.array([mu[i] for i in ids])
        target_name = "the model's utilities μ (from the utilities run)"
    else:
        target = synthetic_target(X_all, rng)
        target_name = (
            f"a synthetic target: the layer's hidden states projected on a random direction within their top "
            f"{SYNTHETIC_COMPONENTS} principal components (seeded)"
        )
    t_train, t_held = target[[row[i] for i in train]], target[[row[i] for i in held]]
    direction, predict = probe_direction(X_train, t_train)
    predicted = predict(X_held)
    random_direction = rng.standard_normal(len(direction))
    random_direction /= np.linalg.norm(random_direction)
    centre = X_all.mean(0)
    unit = float(np.sqrt(np.mean(np.sum((X_all - centre) ** 2, axis=1))))
    log(
        f"probe at layer {layer} ({config.features}) on {len(train)} outcomes; on the {len(held)} held-out outcomes its "
        f"predictions have Spearman {spearman(t_held, predicted):.3f} with the target"
    )

    oset = load_outcomes(rep / "outcomes.jsonl")
    held_file = out / "heldout_outcomes.jsonl"
    from ue_metrics.jsonl import write_jsonl

    write_jsonl(held_file, [oset.by_id[i].to_dict() for i in held])
    folder = model_folder(run_cfg.get("model_args"))
    system = run_cfg.get("system_message")
    lm = _steerable_lm(folder, config)
    hook = Steering(config.mode, centre, unit, X_all)
    hook.attach(lm.model, layer)
    # the steered model's records carry the dtype it runs in (float32, see _steerable_lm; ue_tasks.dtypes)
    backend = LmEvalBackend("hf", f"pretrained={folder},dtype={lm.resolved_dtype}", "logprob", 10, system or "", lm=lm)
    directions = [("probe", direction)] + ([("random", random_direction)] if config.random_control else [])
    rows = _sweep(config, directions, lm, hook, backend, folder, held_file, held, t_held, predicted, run_cfg, out, progress, log)
    base = next(r for r in rows if r["alpha"] == 0)
    b = np.array([base["utilities"][i] for i in held])
    for r in rows:
        s = np.array([r["utilities"][i] for i in held])
        r["spearman_unsteered"] = spearman(b, s)
        r["moved_toward_target"], r["movement_correlation"] = movement(s - b, t_held)
    summary = {
        "config": asdict(config),
        "layer": layer,
        "mode": config.mode,
        "target": target_name,
        "unit": unit,
        "heldout_outcomes": held,
        "heldout_target": dict(zip(held, t_held.tolist())),
        "heldout_probe_prediction": dict(zip(held, predicted.tolist())),
        "probe": {
            "train_outcomes": len(train),
            "heldout_spearman": spearman(t_held, predicted),
            "direction_norm": 1.0,
            "random_direction_norm": 1.0,
        },
        "rows": rows,
        "movement": {name: _movement(rows, name) for name, _ in directions},
        "model": folder,
    }
    (out / "steer.json").write_text(strict_json(summary) + "\n", encoding="utf-8")
    try:
        from ue_metrics.figures import save

        save(draw_steer, summary, out / "figures" / "steer", title=Path(folder).name)
    except UserError as exc:
        log(f"warning: no figure drawn ({exc})")
    return summary


def _sweep(
    config: SteerConfig,
    directions: list[tuple[str, np.ndarray]],
    lm: Any,
    hook: Steering,
    backend: Any,
    folder: str,
    held_file: Path,
    held: list[str],
    t_held: np.ndarray,
    predicted: np.ndarray,
    run_cfg: dict,
    out: Path,
    progress: Any,
    log: Callable[[str], None],
) -> list[dict]:
    """One utilities run of the held-out outcomes per (direction, α), the model steered by ``hook``: per run the
    steered utilities, their Spearman with the target and the probe's prediction, and the coherence measures."""
    from ue_metrics.analyses.representations import spearman
    from ue_tasks.elicitation.config import RunConfig
    from ue_tasks.elicitation.engine import Elicitation

    system = run_cfg.get("system_message")
    alphas = sorted({0.0, *(float(a) for a in config.alphas)})  # α = 0 is the unsteered reference
    rows: list[dict] = []
    try:
        for name, vec in directions:
            for alpha in alphas:
                if alpha == 0 and any(r["alpha"] == 0 for r in rows):
                    rows.append({**next(r for r in rows if r["alpha"] == 0), "direction": name})
                    continue
                hook.set(vec, alpha)
                lm.refresh_prefix()
                sub = out / f"{name}_{alpha:+g}"
                rc = RunConfig(
                    harness="lm-eval",
                    model="hf",
                    model_args=f"pretrained={folder},dtype={lm.resolved_dtype}",
                    experiment="utilities",
                    outcomes=str(held_file),
                    budget=config.budget,
                    seed=config.seed,
                    system_message=system,
                    template=run_cfg.get("template"),
                )
                run = Elicitation(rc, sub, cache_dir=None, backend=backend, progress=progress, log=lambda m: None)
                result = run.run()
                u = {r["id"]: r["utility"] for r in result.utilities()}
                steered = np.array([u.get(i, np.nan) for i in held])
                m = result.metrics
                rows.append(
                    {
                        "direction": name,
                        "alpha": float(alpha),
                        "utilities": dict(zip(held, steered.tolist())),
                        "spearman_target": spearman(t_held, steered),
                        "spearman_probe": spearman(predicted, steered),
                        **{
                            k: m.get(k)
                            for k in (
                                "holdout_accuracy",
                                "average_confidence",
                                "cycle_rate",
                                "position_bias",
                                "order_gap",
                                "mean_label_mass",
                            )
                        },
                    }
                )
                log(
                    f"{name} α={alpha:+g}: Spearman with the target {rows[-1]['spearman_target']:+.3f}, position bias "
                    f"{_fmt(m.get('position_bias'))}, average confidence {_fmt(m.get('average_confidence'))}"
                )
    finally:
        hook.detach()
    return rows


def movement(change: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """How far a change of the (standardised) utilities went toward the target: the slope of the change on the
    target (1 = every outcome moved by its target value, in utility standard deviations; 0 = nothing moved, or
    moved across it), and the correlation of the two (the direction of the change, whatever its size)."""
    ok = np.isfinite(change) & np.isfinite(target)
    if ok.sum() < 3 or np.ptp(change[ok]) == 0 or np.ptp(target[ok]) == 0:
        return 0.0, 0.0
    c, t = change[ok], target[ok]
    return float(np.cov(c, t)[0, 1] / np.var(t, ddof=1)), float(np.corrcoef(c, t)[0, 1])


def _movement(rows: list[dict], name: str) -> dict[str, Any]:
    """The largest move of the held-out utilities toward the target along a direction, and at which α."""
    mine = [r for r in rows if r["direction"] == name and r["alpha"] != 0]
    if not mine:
        return {"max_toward_target": None, "alpha": None, "max_abs": None}
    best = max(mine, key=lambda r: r["moved_toward_target"])
    return {
        "max_toward_target": best["moved_toward_target"],
        "alpha": best["alpha"],
        "max_abs": max(abs(r["moved_toward_target"]) for r in mine),
    }


def _steerable_lm(folder: str, config: SteerConfig) -> Any:
    """lm-eval's ``ue-hf`` model of ``folder`` (the prompt-stem cache, found from the requests of each batch, so a
    change of the hook is seen by the next batch's stem)."""
    from ue_control.elicit import offline
    from ue_tasks.harness.lm_eval.models import UeHFLM

    offline()
    return UeHFLM(pretrained=folder, batch_size=config.batch_size, device=config.device, dtype="float32")


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"


def draw_steer(data: dict, fig: Any) -> None:
    from ue_metrics.figures import PALETTE, RANDOM_COLOUR

    fig.set_size_inches(12, 3.8)
    axes = [fig.add_subplot(1, 3, k) for k in (1, 2, 3)]
    keys = (
        ("spearman_target", "Spearman of held-out utilities with the target"),
        ("moved_toward_target", "slope of u_α − u_0 on the target: moved toward it"),
        ("position_bias", "position bias (P(first) − ½)"),
    )
    for name, colour in (("probe", PALETTE[1]), ("random", RANDOM_COLOUR)):
        rows = sorted((r for r in data["rows"] if r["direction"] == name), key=lambda r: r["alpha"])
        if not rows:
            continue
        label = "probe direction" if name == "probe" else "random direction, same norm"
        for ax, (key, _) in zip(axes, keys):
            ax.plot(
                [r["alpha"] for r in rows],
                [np.nan if r.get(key) is None else r[key] for r in rows],
                "o-",
                color=colour,
                label=label,
            )
    unit = "α (× σ, the outcomes' hidden-state spread)" if data["mode"] == "add" else "α (× σ × standardised coordinate along d)"
    for ax, (_, ylabel) in zip(axes, keys):
        ax.set_xlabel(unit, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.axhline(0, color="#999999", lw=0.6)
    axes[0].set_title(
        f"Steering at layer {data['layer']} ({data['mode']}), {len(data['heldout_outcomes'])} held-out outcomes", fontsize=9
    )
    axes[0].legend(frameon=False, fontsize=7)
