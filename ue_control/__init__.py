"""Utility control (Mazeika et al. 2025, "Utility control"; docs/method.md §9): a simulated citizen assembly
(``citizens``, ``assembly``), political-bias measures (``bias``), an Accelerate trainer that moves a model's
preferences toward the assembly's (``train``, ``examples``) and the before/after report (``evaluate``). Every
model call goes through the lm-eval plugin (``elicit``). Commands: ``ue control assemble|train|evaluate``;
guide: docs/control.md."""
