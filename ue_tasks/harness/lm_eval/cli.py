"""``ue lm-eval ARGS`` (= ``python -m ue_tasks.harness.lm_eval ARGS``): lm-eval's own command line with ue's model
types registered (``ue-hf``, ``ue-local-completions``, ``ue-local-chat-completions``; see
``ue_tasks.harness.lm_eval.models``) and ue's task folder on the include path.

lm-eval 0.4.13 resolves ``--model NAME`` against its registry before any task code runs and has no plugin discovery
for models, so ``lm_eval --model ue-hf`` cannot find a type defined outside lm-eval; this launcher imports ue's types
first and then hands every argument to lm-eval unchanged (``--include_path`` is added when absent).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def lm_eval_argv(argv: Sequence[str]) -> list[str]:
    """lm-eval's arguments: ``argv`` with ``--include_path <ue's task folder>`` appended when a run names tasks and no
    include path."""
    from ue_tasks.harness.lm_eval.configs import task_configs_dir

    args = list(argv)
    names_tasks = any(a == "--tasks" or a.startswith("--tasks=") or a == "-t" for a in args)
    has_include = any(a == "--include_path" or a.startswith("--include_path=") for a in args)
    if names_tasks and not has_include:
        args += ["--include_path", str(task_configs_dir())]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from lm_eval.__main__ import cli_evaluate

    import ue_tasks.harness.lm_eval.models  # noqa: F401 - registers ue's model types with lm-eval

    sys.argv = ["lm_eval", *lm_eval_argv(sys.argv[1:] if argv is None else argv)]
    cli_evaluate()
    return 0
