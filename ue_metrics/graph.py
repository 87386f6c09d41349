"""The comparison graph's connected components: the one helper every fit, analysis and plan check uses.

Utilities of outcomes in different components are not on one scale (each component's utilities are normalised on
their own), so a fit refuses or fits them apart, and an analysis that correlates utilities with a property works
within one component and says so."""

from __future__ import annotations

import numpy as np


def component_labels(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Labels 0, 1, … of the connected components of the graph on ``n`` outcomes with edges (i[k], j[k]), numbered
    in order of each component's smallest outcome (an outcome with no edge is a component of its own)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    # scipy numbers components as it meets them scanning outcomes 0, 1, …: by each one's smallest outcome
    return connected_components(graph, directed=False)[1].astype(np.int64)


def n_components(n: int, pairs: np.ndarray) -> int:
    """The number of connected components of the graph on ``n`` outcomes with edges ``pairs`` (shape (m, 2))."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return int(component_labels(n, pairs[:, 0], pairs[:, 1]).max() + 1) if n else 0


def largest_component(labels: np.ndarray, among: np.ndarray | None = None) -> np.ndarray:
    """Mask of the outcomes in the largest component (counted over ``among`` when given: e.g. the outcomes that
    have a value to correlate); ties go to the component of the smallest outcome."""
    labels = np.asarray(labels)
    counted = labels if among is None else labels[np.asarray(among, dtype=bool)]
    if len(counted) == 0:
        return np.zeros(len(labels), dtype=bool)
    return labels == int(np.argmax(np.bincount(counted, minlength=int(labels.max()) + 1)))
