"""``python -m ue_cli`` runs the ``ue`` command."""

import sys

from ue_cli.main import main

sys.exit(main())
