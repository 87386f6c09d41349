"""What a run will cost before it starts (``ue run --dry-run``) and what it cost (``usage.json`` in the run folder).

The dry run asks nothing: requests come from the experiment's plan (docs/method.md §2: the initial graph, whole
active-learning rounds up to the budget, the holdout; times K answers per ordering in sample mode), prompt tokens
from this run's own prompts (a seeded sample of up to 100 of them) counted with the model's tokenizer when the model
is a local folder, else estimated at 4 characters a token; completion tokens are the most the run can take (every
sampled answer at its token cap; one token per log-prob request through Inspect, none through lm-eval, which scores
the two labels as prompt tokens)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics.errors import UserError
from ue_metrics.jsonl import write_json

CHARS_PER_TOKEN = 4  # the stated estimate for a model whose tokenizer is not on this machine
SAMPLE_PROMPTS = 100


def _local_folder(config: Any) -> Path | None:
    from ue_tasks.model_identity import local_folder, parse_model_args

    args = parse_model_args(config.model_args, check=False)
    for key in ("pretrained", "model_path", "model_name_or_path", "path"):
        folder = local_folder(args.get(key))
        if folder is not None and (folder / "tokenizer_config.json").exists():
            return folder
    return None


def _token_counter(config: Any):
    """(count(messages) -> tokens, how): the local tokenizer's chat template, else the stated estimate."""
    folder = _local_folder(config)
    if folder is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder))
        if getattr(tok, "chat_template", None):

            def count(messages):  # noqa: E306
                text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                return len(tok(text, add_special_tokens=False)["input_ids"])

            return count, f"counted with {folder.name}'s tokenizer and chat template"
        return (
            lambda messages: len(tok("\n".join(m["content"] for m in messages))["input_ids"])
        ), f"counted with {folder.name}'s tokenizer"
    return (
        lambda messages: sum(len(m["content"]) for m in messages) // CHARS_PER_TOKEN + 4 * len(messages),
        f"estimated at {CHARS_PER_TOKEN} characters a token (the model's tokenizer is not local)",
    )


def dry_run(config: Any) -> dict:
    """The requests and tokens ``ue run`` with this configuration will take, asking nothing."""
    from ue_tasks import experiments
    from ue_tasks.harness.inspect.tasks import MAX_TOKENS_REASONING, MAX_TOKENS_SAMPLE
    from ue_tasks.plan import ComparisonPlan
    from ue_tasks.queries import queries_for
    from ue_tasks.templates import get_template

    cfg = config.resolve()
    exp = experiments.get(cfg.experiment)
    if not exp.asks_preferences:
        raise UserError(f"--dry-run counts forced-choice requests; {exp.name} reads hidden states in process (no requests)")
    outcomes = exp.outcome_set({**cfg.options, **({"outcomes": cfg.outcomes} if cfg.outcomes else {})})
    n = len(outcomes)
    prompts = exp.queries_per_model(n, cfg.plan_spec(exp), cfg.options)
    runs = 1 + len(exp.extension.side_runs(exp.resolve_options(cfg.options))[1])
    prompts *= runs
    free = exp.free_answer_requests(cfg.options)
    rng = np.random.default_rng(cfg.seed)
    pairs = []
    for _ in range(min(SAMPLE_PROMPTS // 2, n * (n - 1) // 2)):
        a, b = sorted(rng.choice(n, size=2, replace=False).tolist())
        pairs.append((a, b))
    plan = ComparisonPlan(
        n_outcomes=n,
        pairs=np.array(pairs, dtype=int).reshape(-1, 2),
        split=np.array(["train"] * len(pairs)),
        seed=cfg.seed,
        config={},
    )
    sample = queries_for(outcomes, plan, experiment=exp.name, template=cfg.template, system_message=cfg.system_message or "")
    count, how = _token_counter(cfg)
    per_prompt = float(np.mean([count(q.messages()) for q in sample])) if sample else 0.0
    reasoning = get_template(cfg.template).reasoning
    if cfg.mode == "sample":
        per_answer = 1
        k = int(cfg.samples)
        requests = prompts * k
        cap = MAX_TOKENS_REASONING if reasoning else MAX_TOKENS_SAMPLE
        completion = requests * cap
    else:
        k = 1
        per_answer = 2 if cfg.harness == "lm-eval" else 1  # lm-eval scores each label as its own request
        requests = prompts * per_answer
        cap = 1 if cfg.harness == "inspect" else 0
        completion = requests * cap
    return {
        "experiment": exp.name,
        "harness": cfg.harness,
        "model": cfg.model,
        "mode": cfg.mode,
        "outcomes": n,
        "prompts": prompts,
        "answers_per_prompt": k if cfg.mode == "sample" else per_answer,
        "requests": requests,
        "free_form_requests": free,
        "prompt_tokens": round(per_prompt * requests),
        "prompt_tokens_per_request": round(per_prompt, 1),
        "completion_tokens_at_most": completion,
        "completion_cap": cap,
        "tokens": how,
        "consumes": exp.consumes or None,
    }


def dry_run_lines(d: dict) -> list[str]:
    k = f" × {d['answers_per_prompt']} answers" if d["mode"] == "sample" else ""
    lines = [
        f"{d['experiment']} through {d['harness']} ({d['model']}), {d['mode']} mode, {d['outcomes']:,} outcomes: nothing asked (dry run)",
        f"  requests           {d['requests']:,}  ({d['prompts']:,} (pair, ordering) prompts{k})"
        + (f" + {d['free_form_requests']:,} free-form" if d["free_form_requests"] else ""),
        f"  prompt tokens      {d['prompt_tokens']:,}  ({d['prompt_tokens_per_request']} a request, {d['tokens']})",
        f"  completion tokens  at most {d['completion_tokens_at_most']:,}  ({d['completion_cap']} a request at most)",
    ]
    if d.get("consumes"):
        lines.append(
            f"  plus the {d['consumes']} run it reads, unless --{d['consumes']} RUN_DIR gives one (`ue run {d['consumes']} --dry-run` counts it)"
        )
    return lines


def write_usage(folder: str | Path, usage: dict) -> Path:
    """``usage.json`` of a run folder, written whole (temporary name, then renamed)."""
    return write_json(Path(folder) / "usage.json", json.loads(json.dumps(usage)))
