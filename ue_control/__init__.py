"""Utility control (paper §"Utility control"): simulated citizen assemblies and an Accelerate trainer that moves a
model's utilities toward the assembly's. Built on ``ue_tasks`` (elicitation) and ``ue_metrics`` (fits); see the
project's issues for its roadmap — nothing in this package is importable behaviour yet."""
