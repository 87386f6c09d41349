"""Expected utility with implicit lotteries (Mazeika et al. 2025, §4 "expected utility"; docs/method.md §4.4): is the
utility of an uncertain event the expected utility of its possible resolutions, μ(event) = Σᵢ pᵢ·μ(subᵢ)?

The measures and headline names are those of the explicit lotteries (``ue_metrics/analyses/expected_utility.py``):
an event is an outcome whose ``lottery`` attribute lists its sub-outcomes and their probabilities. The paper
describes this comparison but the companion code stops at the utilities (docs/method.md §7.8); this is its analysis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ue_metrics.analyses import Inputs
from ue_metrics.analyses import expected_utility as _explicit
from ue_metrics.analyses.expected_utility import FIGURES as _FIGURES
from ue_metrics.analyses.expected_utility import analyse_lotteries

if TYPE_CHECKING:
    from ue_metrics.fitting import FitResult


@dataclass(frozen=True)
class Options(_explicit.Options):
    """The explicit lotteries' options (``bootstrap``, ``pairs``), with their defaults."""


def analyse(
    records: Sequence[dict], outcomes: Mapping[str, dict], fit: FitResult | None, options: Options, inputs: Inputs
) -> dict:
    return analyse_lotteries(records, outcomes, fit, options, inputs, what="event")


FIGURES = dict(_FIGURES)
