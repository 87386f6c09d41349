"""The choices of how answers are fitted, in one place (no imports: the command line builds its options from them
without loading numpy). ``ue fit``, ``ue run`` and ``ue analyse`` offer the same ``--unparsed`` and ``--method``."""

UNPARSED_POLICIES = ("exclude", "as_indifference")  # drop unparseable answers, or half a vote each (the paper)
FIT_METHODS = ("mle", "compat")  # penalised maximum likelihood (Newton), or the companion's Adam fit (docs/method.md §3)
