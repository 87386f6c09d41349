"""Synthetic preference records from known Thurstonian utilities, for power analysis and known-answer tests.

Responders: ``thurstonian`` (P(a ≻ b) = Φ((μa − μb)/sqrt(σa² + σb²)) with per-outcome variance) or ``random``
(a fair coin on every answer, the paper's random baseline). Exact probabilities (logprob-style records) or K
sampled answers per ordering; optional position bias (the responder picks whichever outcome is shown first
outright with probability 2·bias, so the mean probability of choosing the first-shown outcome is about
0.5 + bias) and refusals (each sampled answer unparseable with probability ``refusal_rate``; in exact mode the
label mass drops to 1 − rate), and ``noise``: each query's probability is Φ(z + ε) with ε ~ N(0, noise²) drawn per
(pair, ordering) — a real model's probabilities are never exactly Thurstonian, and without such misfit exact
(log-prob) records would determine the utilities exactly. Pooled over many pairs the misfit averages out:
E Φ(z + ε) = Φ(z/√(1 + noise²)), the same normalised utilities.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from ue_metrics.errors import UserError
from ue_metrics.records import make_record


def true_utilities(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Means ~ N(0, 1) and variances ~ LogUniform(0.25, 1): heterogeneous, as real fits show."""
    mu = rng.standard_normal(n)
    var = np.exp(rng.uniform(np.log(0.25), np.log(1.0), n))
    return mu, var


RESPONDERS = ("thurstonian", "random")  # simulate_records: a Thurstonian agent, or a fair coin


def simulate_records(
    pairs: np.ndarray,
    split: Sequence[str],
    ids: Sequence[str],
    texts: Sequence[str],
    mu: np.ndarray,
    var: np.ndarray,
    rng: np.random.Generator,
    samples: int = 0,
    position_bias: float = 0.0,
    refusal_rate: float = 0.0,
    responder: str = "thurstonian",
    categories: Sequence[str] | None = None,
    run_id: str = "simulate",
    model: str = "simulated",
    task: str = "simulate",
    outcome_set: str = "simulated",
    template: str = "default",
    seed: int | None = None,
    noise: float = 0.0,
    position_beta: float = 0.0,
) -> list[dict]:
    """One record per (pair, ordering); ``samples=0`` gives exact probabilities (mode ``logprob``).

    ``position_beta`` is a probit-scale position term on the utilities' scale: P(first shown chosen) =
    Φ((μ_first − μ_second + β)/√(σ_first² + σ_second²)) — the model ``fit(..., first=...)`` fits."""
    if not -0.5 <= position_bias <= 0.5:
        raise UserError(f"--position-bias must be in [-0.5, 0.5], got {position_bias}")
    if not 0.0 <= refusal_rate <= 1.0:
        raise UserError(f"--refusal-rate must be in [0, 1], got {refusal_rate}")
    if samples < 0:
        raise UserError(f"--samples must be >= 0, got {samples}")
    if not (noise >= 0 and np.isfinite(noise)):
        raise UserError(f"--noise must be a non-negative number, got {noise}")
    if responder not in RESPONDERS:
        raise UserError(f"unknown responder {responder!r}; use 'thurstonian' or 'random'")
    pairs = np.asarray(pairs, dtype=np.int64)
    a, b = pairs[:, 0], pairs[:, 1]
    if responder == "random":
        z_true = np.zeros(len(pairs))
    else:
        z_true = (mu[a] - mu[b]) / np.sqrt(var[a] + var[b])
    shift = position_beta / np.sqrt(var[a] + var[b])
    mix = 2.0 * abs(position_bias)
    records: list[dict] = []
    for shown in ("a", "b"):
        # probability of choosing outcome a in this ordering
        first_is_a = shown == "a"
        favour_first = position_bias >= 0
        chosen_if_biased = 1.0 if (first_is_a == favour_first) else 0.0
        z = z_true + (shift if first_is_a else -shift) if position_beta else z_true
        p_true = ndtr(z + noise * rng.standard_normal(len(pairs))) if noise > 0 else ndtr(z)
        p = (1 - mix) * p_true + mix * chosen_if_biased
        if samples:
            n_unparsed = rng.binomial(samples, refusal_rate, size=len(p)) if refusal_rate else np.zeros(len(p), int)
            n_a = rng.binomial(samples - n_unparsed, p)
            n_b = samples - n_unparsed - n_a
        for k in range(len(pairs)):
            ia, ib = int(a[k]), int(b[k])
            extra = {}
            if categories is not None:
                extra = {"a_category": categories[ia], "b_category": categories[ib]}
            if seed is not None:
                extra["seed"] = seed
            if samples:
                usable = int(n_a[k] + n_b[k])
                fields = dict(
                    mode="sample",
                    p_a=(int(n_a[k]) / usable) if usable else None,
                    n_a=int(n_a[k]),
                    n_b=int(n_b[k]),
                    n_unparsed=int(n_unparsed[k]),
                    label_mass=None,
                )
            else:
                fields = dict(mode="logprob", p_a=float(p[k]), n_a=0, n_b=0, n_unparsed=0, label_mass=1.0 - refusal_rate)
            records.append(
                make_record(
                    run_id=run_id,
                    model=model,
                    harness="simulate",
                    task=task,
                    outcome_set=outcome_set,
                    a_id=ids[ia],
                    b_id=ids[ib],
                    a_text=texts[ia],
                    b_text=texts[ib],
                    shown_first=shown,
                    template=template,
                    split=str(split[k]),
                    round=0,
                    **fields,
                    **extra,
                )
            )
    # interleave so both orderings of a pair sit together, as a harness would write them
    half = len(pairs)
    return [records[k + off] for k in range(half) for off in (0, half)]


# ----------------------------------------------------------------------------------------------------------
# Responders: simulated models with a known property, answering any query (``ue run --harness simulate``)


class Responder:
    """A simulated model whose preferences are known: P(a ≻ b) = Φ((μa − μb)/sqrt(σa² + σb²)) from per-outcome
    ``mu``/``var`` (a Thurstonian agent, transitive by construction), or a fair coin (``coin=True``, the paper's
    random responder). ``position_bias`` mixes in a pull toward the first-shown option as in
    ``simulate_records``. ``description`` says what property the responder has, for the run's record.
    ``by_template`` gives other responders for other prompt templates: a simulated model asked a different
    question (which outcome gives it more power, §4.10) answers from a different known truth. ``truth`` holds the
    known answer the responder was built from, in the analysis's terms (exchange rates' dollar values, a
    discounter's form and rate), for the known-answer tests; it does not change the answers (``mu`` decides them)."""

    def __init__(
        self,
        name: str,
        mu: dict[str, float] | None = None,
        var: dict[str, float] | None = None,
        coin: bool = False,
        position_bias: float = 0.0,
        description: str = "",
        noise: float = 0.0,
        seed: int = 0,
        by_template: dict[str, Responder] | None = None,
        truth: dict[str, Any] | None = None,
    ) -> None:
        if not coin and mu is None:
            raise ValueError("a Thurstonian responder needs utilities")
        if not -0.5 <= position_bias <= 0.5:
            raise UserError(f"position bias must be in [-0.5, 0.5], got {position_bias}")
        self.name = name
        self.mu = dict(mu or {})
        self.var = dict(var or {})
        self.coin = coin
        self.position_bias = position_bias
        self.description = description
        self.noise = noise
        self.seed = seed
        self.by_template = dict(by_template or {})
        self.truth: dict[str, Any] = dict(truth or {})

    def fingerprint(self) -> str:
        """A digest of everything that decides this responder's answers (its kind, utilities, variances, bias, misfit,
        seed and its other templates' responders): the answer cache's identity of a simulated model, so that a
        responder whose truth changed (other outcomes, another version) is never answered from an old cache."""
        h = hashlib.sha256(
            f"{type(self).__qualname__}|{self.name}|{self.coin}|{self.position_bias!r}|{self.noise!r}|{self.seed}".encode()
        )
        for key in sorted(self.mu):
            h.update(f"|{key}={self.mu[key]!r},{self.var.get(key, 0.5)!r}".encode())
        for template in sorted(self.by_template):
            h.update(f"|{template}:{self.by_template[template].fingerprint()}".encode())
        return h.hexdigest()[:16]

    def for_template(self, template: str) -> Responder:
        """The responder that answers prompts of ``template`` (itself unless ``by_template`` names another)."""
        return self.by_template.get(template, self)

    def p_a(self, a_id: str, b_id: str) -> float:
        """P(a ≻ b), free of position."""
        if self.coin:
            return 0.5
        try:
            ma, mb = self.mu[a_id], self.mu[b_id]
        except KeyError as exc:
            raise UserError(f"the simulated responder {self.name!r} has no utility for outcome {exc.args[0]!r}") from None
        va, vb = self.var.get(a_id, 0.5), self.var.get(b_id, 0.5)
        return float(ndtr((ma - mb) / np.sqrt(va + vb)))

    def misfit(self, first_id: str, second_id: str) -> float:
        """The query's deviation from the Thurstonian model on the probit scale: N(0, noise²), fixed by the seed
        and the two ids in their order (the same query always gets the same answer)."""
        if not self.noise:
            return 0.0
        digest = hashlib.sha256(f"{self.seed}|{first_id}|{second_id}".encode()).digest()
        return self.noise * float(np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal())

    def generate(self, item: Any) -> str:
        """A free-form reply (``item``: a generation request with ``prompt``, ``kind`` and ``metadata``);
        responders that answer open questions override this."""
        raise UserError(f"the simulated responder {self.name!r} does not answer free-form questions")

    def p_first(self, first_id: str, second_id: str) -> float:
        """P(choosing the option shown first)."""
        p = self.p_a(first_id, second_id)
        if self.noise and not self.coin:
            p = float(ndtr(ndtri(min(max(p, 1e-12), 1 - 1e-12)) + self.misfit(first_id, second_id)))
        mix = 2.0 * abs(self.position_bias)
        return (1 - mix) * p + mix * (1.0 if self.position_bias >= 0 else 0.0)


def thurstonian_responder(
    ids: Sequence[str],
    seed: int,
    name: str = "thurstonian",
    description: str = "a transitive Thurstonian agent with utilities ~ N(0, 1)",
    noise: float = 0.0,
) -> Responder:
    """Utilities and variances drawn as ``true_utilities`` from ``seed``: the default known-truth agent. ``noise``:
    each query's probability strays from the model by N(0, noise²) on the probit scale, as a real model's would."""
    rng = np.random.default_rng([seed, 7919])
    mu, var = true_utilities(len(ids), rng)
    return Responder(
        name, dict(zip(ids, mu.tolist())), dict(zip(ids, var.tolist())), description=description, noise=noise, seed=seed
    )


def coin_responder(name: str = "random") -> Responder:
    return Responder(name, coin=True, description="a fair coin on every answer (the paper's random responder)")


# ----------------------------------------------------------------------------------------------------------
# Hidden-state responders: simulated models whose hidden states carry (or do not carry) a known linear signal of
# the utilities, for the known-answer tests of the ``representations`` experiment (``ue run representations
# --harness simulate``).


class HiddenStateResponder:
    """Synthetic hidden states of a model with ``layers`` + 1 layers of width ``hidden``: Gaussian noise (sd 1 per
    coordinate), plus — when ``signal`` > 0 — each outcome's utility μ (the fitted utilities of the run, mean 0,
    sd 1) written along one fixed random direction, with a strength that rises from 0 at the embeddings to
    ``signal`` at the middle layer and falls again. A linear probe should then recover μ best at the middle layer
    (R² about s²/(s² + 1/d_eff) there) and not at all at the embeddings; with ``signal`` = 0 it has nothing to
    find and sits at the shuffled-label baseline. The bare-text variant carries half the signal; the two
    poolings differ only in their noise. ``profile="embedding"`` writes the signal into the embeddings (layer 0)
    only — what a model whose "utilities" are its outcomes' wording looks like: the best layer gains nothing
    over layer 0."""

    def __init__(
        self, name: str, signal: float, layers: int = 12, hidden: int = 64, description: str = "", profile: str = "middle"
    ) -> None:
        if signal < 0 or layers < 1 or hidden < 1:
            raise ValueError("signal must be ≥ 0, layers and hidden ≥ 1")
        if profile not in ("middle", "embedding"):
            raise ValueError(f"profile must be middle or embedding, got {profile!r}")
        self.name, self.signal, self.layers, self.hidden = name, float(signal), int(layers), int(hidden)
        self.description, self.profile = description, profile

    def strength(self) -> np.ndarray:
        """The planted signal's strength at each layer 0..L."""
        if self.profile == "embedding":
            return self.signal * (np.arange(self.layers + 1) == 0)
        depth = np.arange(self.layers + 1) / self.layers
        return self.signal * np.sin(np.pi * depth) ** 2

    def features(self, ids: Sequence[str], mu: np.ndarray, seed: int):
        from ue_metrics.features import KINDS, FeatureSet

        rng = np.random.default_rng([seed, 4271])
        mu = np.asarray(mu, dtype=float)
        direction = rng.standard_normal(self.hidden)
        direction /= np.linalg.norm(direction)
        strength = self.strength()
        arrays = {}
        for kind in KINDS:
            scale = strength * (0.5 if kind.startswith("bare") else 1.0)
            noise = rng.standard_normal((len(ids), self.layers + 1, self.hidden))
            arrays[kind] = (noise + mu[:, None, None] * scale[None, :, None] * direction[None, None, :]).astype(np.float32)
        meta = {
            "model": self.name,
            "simulated": True,
            "signal": self.signal,
            "layers": self.layers,
            "hidden_size": self.hidden,
            "profile": self.profile,
            "description": self.description,
            "dtype": "float32",
        }
        return FeatureSet(list(ids), arrays, [], meta)


def planted_states(signal: float = 2.0) -> HiddenStateResponder:
    return HiddenStateResponder(
        "planted",
        signal,
        description=f"utilities written linearly into the hidden states (strength {signal} "
        "at the middle layer, none at the embeddings)",
    )


def embedding_states(signal: float = 2.0) -> HiddenStateResponder:
    return HiddenStateResponder(
        "embedding",
        signal,
        profile="embedding",
        description=f"utilities written linearly into the "
        f"embeddings only (strength {signal} at layer 0, none after): a lexical, not a computed, signal",
    )


def no_states() -> HiddenStateResponder:
    return HiddenStateResponder("none", 0.0, description="hidden states of pure noise: nothing about the utilities to find")
