"""The ``ue`` command line (``ue_cli.main``): the top layer of the project; no package imports it."""
