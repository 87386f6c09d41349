"""Bounds for tests of statistical properties that a correct program crosses with probability below 1e-6.

A 95 % interval misses the truth one time in twenty by design, and where one seed's estimate lands moves with the
machine's rounding, so no test asserts that one interval holds a value. Instead a test asks whether the truth lies
within Z = 5 standard errors of the estimate, the standard error read off the interval's half-width on the truth's
side (a normal estimate strays that far with probability 5.7e-7); or it counts over many seeds against binomial
bounds of the same tail (tests/test_leaderboard.py, tests/test_statistics.py).
"""

from __future__ import annotations

import math

Z_LEVEL = 1.959964  # the intervals' own level: 95 %
Z = 5.0  # P(|N(0, 1)| > 5) = 5.7e-7


def within_se(truth: float, estimate: float, interval, z: float = Z, log: bool = False) -> bool:
    """Is ``truth`` within ``z`` standard errors of ``estimate``, read off the 95 % ``interval`` (on the log scale
    for ratios with ``log``)?"""
    lo, hi = interval
    f = math.log if log else float
    t, e, lo, hi = f(truth), f(estimate), f(lo), f(hi)
    if t < e:
        return e - t <= z * max(e - lo, 0.0) / Z_LEVEL
    return t - e <= z * max(hi - e, 0.0) / Z_LEVEL


def independent_r_bound(n: int, tail: float = 1e-6) -> float:
    """The |r| that the Pearson correlation of two independent Gaussian vectors of n entries exceeds with
    probability ``tail`` (r·√(n−2)/√(1−r²) follows Student's t with n − 2 degrees of freedom)."""
    from scipy.stats import t

    q = float(t.isf(tail / 2, n - 2))
    return q / math.sqrt(q * q + n - 2)
