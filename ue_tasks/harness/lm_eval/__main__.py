"""``python -m ue_tasks.harness.lm_eval ARGS``: lm-eval's command line with ue's model types (see ``cli.py``)."""

import sys

from ue_tasks.harness.lm_eval.cli import main

sys.exit(main())
