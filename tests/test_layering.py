"""Package layering: ue_metrics (and `ue fit`) work without torch or a harness being imported."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "lm_eval", "inspect_ai", "accelerate", "datasets")


def test_ue_metrics_and_the_cli_import_no_heavy_package():
    code = (
        "import sys, ue_metrics.records, ue_metrics.thurstonian, ue_metrics.coherence, ue_metrics.fitting, "
        "ue_metrics.simulate, ue_tasks.cli, ue_tasks.readers, ue_tasks.elicitation\n"
        "from ue_tasks.readers import _load_adapters; _load_adapters()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
