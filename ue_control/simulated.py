"""Simulated citizens with known utilities (``simulator: simulate`` of ``ue control assemble``): an assembly whose
preferences are strong and known, so that utility control can be checked on a CPU without a capable role-play
model (Mazeika et al. 2025, "Utility control"; docs/method.md §9 describes the LLM role-play the paper uses, which
stays the default for real runs).

Each citizen ``i`` has a utility for each outcome ``o`` built from the citizen's persona attributes and the
outcome's tags (``politics:left|right`` and ``family:<name>`` of ``ue_control/data/policies.jsonl``)::

    u_i(o) = c(o) · (lean · ℓ_i + γ_f + Σ_attr β[attr = value_i, f]) + α_o + ε_i,o

- ``c(o)``: +1 for a left-coded outcome, −1 for a right-coded one, 0 otherwise; ``f`` its family tag;
- ``ℓ_i``: the party lean, +1 Democrat, −1 Republican, 0 Independent or other, plus N(0, ``lean_sd``²) per citizen;
- ``γ_f`` ~ N(0, ``family_sd``²): the population's own lean on the family's issues (synthetic, not a poll);
- ``β[attr = value, f]`` ~ N(0, ``attribute_sd``²): how a persona attribute value (an age band, a region...)
  moves the citizen on the family's issues (synthetic draws, not stereotypes);
- ``α_o`` ~ N(0, ``outcome_sd``²): an appeal every citizen shares; ``ε_i,o`` ~ N(0, ``noise_sd``²): idiosyncrasy.

A citizen answers a forced choice between ``a`` and ``b`` with P(a ≻ b) = Φ((u_i(a) − u_i(b)) / (√2·``answer_sd``)),
the Thurstonian model the fits assume, identically in both orderings (no position bias). The structural draws
(``γ``, ``β``, ``α``) come from ``default_rng([model_seed, hash(name)])`` keyed by the name of what they belong
to, so they do not depend on the order of outcomes or citizens; a citizen's own draws (``ℓ_i``, ``ε_i,o``) likewise keyed by the citizen's id. Every parameter and seed is written to ``assemble.json``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ue_control.citizens import Citizen, party_slice

SIMULATE = "simulate"
PARTY_LEAN = {"Democrat": 1.0, "Republican": -1.0, "Independent": 0.0, "other": 0.0}


@dataclass(frozen=True)
class UtilityModel:
    """The parameters of the simulated citizens' utilities (see the module docstring)."""

    lean: float = 1.0
    lean_sd: float = 0.3
    family_sd: float = 0.6
    attribute_sd: float = 0.3
    outcome_sd: float = 0.3
    noise_sd: float = 0.3
    answer_sd: float = 0.5
    model_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def _normal(seed: int, *name: object) -> float:
    return float(np.random.default_rng([seed, _key(*name)]).standard_normal())


def outcome_features(outcome: Any) -> tuple[float, str | None]:
    """(c(o), family) of an outcome from its tags."""
    tags = set(getattr(outcome, "tags", ()) or ())
    left, right = "politics:left" in tags, "politics:right" in tags
    side = 1.0 if left and not right else -1.0 if right and not left else 0.0
    families = sorted(t.split(":", 1)[1] for t in tags if t.startswith("family:"))
    return side, (families[0] if families else None)


def citizen_utilities(citizen: Citizen, outcomes: Sequence[Any], model: UtilityModel) -> dict[str, float]:
    """``{outcome id: u_i(o)}`` of one citizen."""
    s = model.model_seed
    own = np.random.default_rng([s, _key("citizen", citizen.id)])
    lean = PARTY_LEAN[party_slice(citizen.party)] + model.lean_sd * float(own.standard_normal())
    out: dict[str, float] = {}
    for o in outcomes:
        side, family = outcome_features(o)
        push = model.lean * lean
        if family is not None:
            push += model.family_sd * _normal(s, "family", family)
            push += sum(
                model.attribute_sd * _normal(s, "attribute", a, v, family) for a, v in citizen.attributes.items() if a != "party"
            )
        out[o.id] = (
            side * push + model.outcome_sd * _normal(s, "outcome", o.id) + model.noise_sd * _normal(s, "noise", citizen.id, o.id)
        )
    return out


def p_prefer(u_a: float, u_b: float, answer_sd: float) -> float:
    """Φ((u_a − u_b) / (√2·answer_sd))."""
    return 0.5 * math.erfc(-(u_a - u_b) / (2.0 * answer_sd))


def citizen_records(
    who: Citizen,
    queries: Sequence[Any],
    utilities: dict[str, float],
    model: UtilityModel,
    *,
    task: str,
    run_id: str,
    **extra: Any,
) -> list[dict]:
    """The citizen's ``ue.preference/1`` records on ``queries`` (both orderings; log-prob mode)."""
    from ue_tasks.model_identity import simulated

    ident = simulated(f"simulated citizen {who.id}", "ue_control.simulated", model.model_seed).record_fields()
    return [
        q.record(
            mode="logprob",
            harness="simulate",
            task=task,
            run_id=run_id,
            p_a=p_prefer(utilities[q.a_id], utilities[q.b_id], model.answer_sd),
            label_mass=1.0,
            **ident,
            **extra,
        )
        for q in queries
    ]


def assembly_truth(citizens: Sequence[Citizen], outcomes: Sequence[Any], model: UtilityModel) -> dict[str, float]:
    """The mean of the citizens' utilities per outcome (what the assembly's fitted utilities estimate, up to scale)."""
    per = [citizen_utilities(c, outcomes, model) for c in citizens]
    return {o.id: float(np.mean([u[o.id] for u in per])) for o in outcomes}
