"""An experiment's analysis of preference records: fit them (when the experiment fits utilities), run the analysis
of ``ue_metrics.analyses`` the experiment names, label the result with where the records come from, and write
``analysis.json`` and the figures. One function for every caller: ``ue run``, ``ue analyse``, the lm-eval
aggregations and the Inspect metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ue_metrics import analyses
from ue_metrics.errors import UserError
from ue_metrics.fitting import FitResult, fit_records
from ue_metrics.records import outcome_table
from ue_tasks import experiments


def analyse_records(
    records: Sequence[dict],
    experiment: str | None = None,
    *,
    fit: FitResult | None = None,
    options: dict | None = None,
    seed: int = 0,
    run: dict | None = None,
    generations: Sequence[dict] | None = None,
    folder: str | Path | None = None,
    unparsed: str | None = None,
    method: str | None = None,
) -> dict:
    """The experiment's analysis of ``records`` (fitting them first when the experiment fits utilities; with the
    number of bootstrap resamples of its ``bootstrap`` option when it has one). ``generations``: the run's free-form
    answers (``ue.generation/1`` entries), for experiments that ask open questions. ``folder``: the run folder, for
    analyses that also read files saved beside the records (``run_dir``: hidden states). ``unparsed`` and ``method``:
    the fit's refusal rule and method (``ue fit --unparsed/--method``; default: the run's configuration's, else
    exclude and mle)."""
    if not records:
        raise UserError("there are no preference records to analyse; a run with no answers is an error, not a result")
    name, options = experiments.with_variant(experiment or _experiment_of(records), options)
    exp = experiments.get(name)
    opts = exp.resolve_options(options)
    # the analysis's own options (its Options, validated there) apart from the experiment's elicitation options
    kind = analyses.module(exp.analysis_name).Options
    analysis_options = kind.from_mapping({k: v for k, v in opts.items() if k in kind.names()})
    if exp.fit and fit is None:
        fit = fit_records(
            records,
            seed=seed,
            per_component=True,
            bootstrap=getattr(analysis_options, "bootstrap", 0),
            unparsed=unparsed or (run or {}).get("unparsed") or "exclude",
            method=method or (run or {}).get("method") or "mle",
        )
    outcomes = outcome_table(records)
    # what the analysis reads besides the records (another run's utilities, entity runs, free answers, the run
    # folder): given to the analysis, described in its details, never written into the options of analysis.json
    inputs = analyses.Inputs(
        seed=seed,
        generations=None if generations is None else tuple(generations),
        run_dir=None if folder is None else str(folder),
        extra=exp.inputs(opts, records, run) if exp.inputs is not None else {},
    )
    result = analyses.run(exp.analysis_name, records, outcomes, fit, analysis_options, inputs)
    first = records[0]
    models = sorted({r["model"] for r in records})
    result = {
        "experiment": exp.name,
        "analysis": exp.analysis_name,
        "title": exp.title,
        "section": exp.section,
        "model": models[0] if len(models) == 1 else models,
        "harness": (run or {}).get("harness") or first["harness"],
        "mode": sorted({r["mode"] for r in records})[0]
        if len({r["mode"] for r in records}) == 1
        else sorted({r["mode"] for r in records}),
        "seed": seed,
        "outcome_set": first["outcome_set"],
        "n_records": len(records),
        "n_outcomes": len(outcomes),
        "options": opts,
        **result,
    }
    if generations is not None:
        result["n_generations"] = len(generations)
    if run is not None:
        result["run"] = run
    if fit is not None:
        result["fit"] = {
            k: fit.metrics.get(k)
            for k in (
                "n_outcomes",
                "n_train_pairs",
                "n_holdout_pairs",
                "n_components",
                "ci_method",
                "holdout_accuracy",
                "holdout_log_loss",
                "unparsed_policy",
                "fit_method",
            )
        }
    return result


def _experiment_of(records: Sequence[dict]) -> str:
    names = sorted({r.get("experiment") or "utilities" for r in records})
    if len(names) > 1:
        raise UserError(f"these records come from {len(names)} experiments ({', '.join(names)}); analyse each separately")
    return names[0]


def write_result(result: dict, out: str | Path, *, figures: bool = True, log: Callable[[str], None] = print) -> list[Path]:
    out = Path(out)
    analyses.write(result, out)
    if not figures or not result.get("figures"):
        return []
    try:
        return analyses.draw_figures(result, out)
    except UserError as exc:  # matplotlib missing: the analysis stands, the figures wait
        log(f"warning: no figures drawn ({exc})")
        return []
