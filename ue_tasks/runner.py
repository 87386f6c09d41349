"""``ue run`` and ``ue analyse``: an experiment from elicitation to analysis, and the analysis again from records.

    run:      experiment → outcomes → plan → harness (or simulator) → records → fit → analysis → figures
    analyse:  records (a run folder, lm-eval output, Inspect logs) → fit → analysis → figures, no model touched

Both write ``analysis.json`` (``experiment``, ``model``, ``harness``, ``mode``, ``seed``, ``headline`` and the
analysis' details and figure data) and ``figures/*.png|svg`` into the folder; ``ue analyse`` on a run folder
reproduces what ``ue run`` wrote from the records alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_tasks.active.driver import Elicitation, RunConfig
from ue_tasks.analysis import analyse_records, write_result


def run_experiment(config: RunConfig, out: str | Path, *, cache_dir: str | Path | None = "default", backend: Any = None,
                   progress: Any = None, log: Callable[[str], None] = print, figures: bool = True) -> dict:  # fmt: skip
    """Elicit into ``out`` (resumable), then fit and analyse; returns the analysis. An experiment with a
    ``collection`` (hidden states) gathers its data with it instead of eliciting."""
    from ue_tasks import experiments

    exp = experiments.get(config.experiment)
    if exp.collection is not None:
        resolved = config.resolve()
        run_config, records = exp.collection.run(resolved, Path(out), progress=progress, log=log)
        result = analyse_records(records, exp.name, options=run_config.get("options"), seed=resolved.seed, run=run_config, folder=out)
        write_result(result, out, figures=figures, log=log)
        return result
    run = Elicitation(config, out, cache_dir=cache_dir, backend=backend, progress=progress, log=log)
    run.run()
    # the analysis refits from the records alone (as `ue analyse` does), so the two always agree
    result = analyse_records(run.records, run.experiment.name, options=run.config.options, seed=run.config.seed,
                             run=run.config_dict())  # fmt: skip
    write_result(result, out, figures=figures, log=log)
    log(f"{run.queries_asked} queries asked, {run.cache_hits} answered from the cache")
    return result


def analyse_path(paths: Sequence[str | Path], out: str | Path | None = None, experiment: str | None = None,
                 options: dict | None = None, figures: bool = True, log: Callable[[str], None] = print,
                 by: str | None = None) -> Any:  # fmt: skip
    """``ue analyse``: a run folder (its records and configuration) or harness outputs, analysed again. Records of
    different models (outcome sets, templates, system messages) are refused, or with ``by`` analysed one group per
    folder ``out/<group>`` (then the result is ``{folder: analysis}``)."""
    from ue_metrics.records import check_not_mixed, group_folder_name, group_records
    from ue_tasks.harness.readers import collect

    paths = [Path(p) for p in paths]
    config: dict = {}
    if len(paths) == 1 and (paths[0] / "config.json").is_file() and (paths[0] / "records.jsonl").is_file():
        try:
            config = json.loads((paths[0] / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{paths[0] / 'config.json'}: cannot be read ({exc}); analyse the records file itself") from None
        got = collect([paths[0] / "records.jsonl"], deduplicate=False)
        out = out or paths[0]
    else:
        if out is None:
            raise UserError("give --out for the analysis of harness outputs (a folder for analysis.json and figures)")
        got = collect(paths, deduplicate=False)
    name = experiment or config.get("experiment")
    seed = int(config.get("seed", 0))
    opts = {**(config.get("options") or {}), **(options or {})}
    groups = group_records(got.records, by) if by else {"": got.records}
    for group in groups.values():
        check_not_mixed(group)
    groups = {label: got.deduplicate(group) for label, group in groups.items()}
    for note in got.notes():
        log(note)
    if by:
        done = {}
        for label, group in groups.items():
            folder = Path(out) / group_folder_name(label)
            result = analyse_records(group, name, options=opts, seed=seed, run=config or None)
            result["group"] = {"by": by, "value": label}
            write_result(result, folder, figures=figures, log=log)
            done[str(folder)] = result
        return done
    folder = paths[0] if config else None  # a run folder: files beside the records (hidden states) are read from it
    result = analyse_records(groups[""], name, options=opts, seed=seed, run=config or None, folder=folder)
    write_result(result, out, figures=figures, log=log)
    return result

