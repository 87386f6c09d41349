"""Benchmark: active-learning strategies judged by what they are for, and the wall time of a real elicitation.

Part 1 (``--simulate``, default): the real ``ue elicit`` driver (``Elicitation``, simulated backend) at N = 510
outcomes, K = 10 sampled answers per ordering (the paper's setting; ``--mode logprob --responder misfit`` for exact
probabilities that stray from the model as a real model's do), the full ⌊2·N·log2 N⌋ = 9,174-pair budget in rounds
of 500, for the strategies ``rank`` (the default of ``ue elicit``), ``paper`` (the companion's P/Q rule), ``info``
and ``random``. After every round the run's records so far are refitted and compared with the responder's true
utilities: Spearman correlation of fitted and true utilities, the error of the top-k set (k = N/10: the share of the
true top k missing from the fitted top k), and the log loss against the true probabilities on 20,000 random pairs
and on the near-tie pairs among them (|P − ½| < 0.1). It prints the recovery table per strategy and budget and, per
strategy, the queries it needs to reach random selection's final Spearman correlation and near-tie loss
(interpolated between rounds; mean over seeds).

Part 2 (``--embedded``): times ``ue elicit`` through lm-eval (the model as ``ue-hf``) on the embedded model over 510
outcomes of ``core`` with a small budget on this machine's CPU, times the bare forward-pass floor over the same
prompts in the same process, and extrapolates the wall time of the full main run from its parts: one-off costs
(the model's load), per lm-eval call (task set-up, documents, metrics: the run's time outside the model's forward
passes and the fits, per call), per round (the fit), and per token run through the model (the measured forward
seconds per token, times the tokens the full run would run: its 20,348 prompts replayed through ``ue-hf``'s stem
and shared-prefix caches, token bookkeeping only). The load average is printed beside every figure.

Run: ``python benchmarks/active_learning.py [--seeds 3] [--mode sample|logprob] [--responder thurstonian|misfit]
[--embedded [--skip-simulate] [--embedded-budget 200]] [--round-size 500]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from ue_metrics.aggregation import aggregate
from ue_metrics.thurstonian import Thurstonian
from ue_tasks import experiments
from ue_tasks.elicitation.config import RunConfig
from ue_tasks.elicitation.engine import Elicitation

STRATEGIES = ("rank", "paper", "info", "random")


def evaluation_pairs(n: int, mu: np.ndarray, var: np.ndarray, seed: int = 12345) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20,000 random pairs with their true probabilities, and which of them are near ties."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n, 25_000), rng.integers(0, n, 25_000)
    keep = a != b
    a, b = a[keep][:20_000], b[keep][:20_000]
    p = ndtr((mu[a] - mu[b]) / np.sqrt(var[a] + var[b]))
    return np.column_stack([a, b]), p, np.abs(p - 0.5) < 0.1


def expected_log_loss(p_hat: np.ndarray, p_true: np.ndarray) -> float:
    q = np.clip(p_hat, 1e-5, 1 - 1e-5)
    return float(np.mean(-(p_true * np.log(q) + (1 - p_true) * np.log(1 - q))))


def recovery_curve(strategy: str, n: int, round_size: int, seed: int, mode: str, responder: str, workdir: Path) -> list[dict]:
    """Run ``ue elicit`` on the simulator and score the fit after every round against the true utilities."""
    out = workdir / f"{strategy}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = RunConfig(
        harness="simulate",
        model="simulated",
        outcomes=str(n),
        mode=mode,
        strategy=strategy,
        round_size=round_size,
        seed=seed,
        responder=responder,
    )
    run = Elicitation(cfg, out, cache_dir=None, log=lambda m: None)
    run.run()
    truth = experiments.get("utilities").responder(responder, run.outcomes, seed)
    ids = run.outcomes.ids
    mu = np.array([truth.mu[i] for i in ids])
    var = np.array([truth.var[i] for i in ids])
    pairs, p_true, near = evaluation_pairs(n, mu, var)
    k_top = max(1, n // 10)
    true_top = set(np.argsort(-mu)[:k_top].tolist())
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines() if x.strip()]
    train = [r for r in records if r["split"] == "train"]
    index = {oid: k for k, oid in enumerate(ids)}
    model = Thurstonian(warm_start=True, on_disconnected="per_component", ci="none")
    curve = []
    for r_no in sorted({r["round"] for r in train}):
        data = aggregate([r for r in train if r["round"] <= r_no])
        idx = np.array([index[i] for i in data.ids])
        model.fit(np.column_stack([idx[data.i], idx[data.j]]), data.y, data.w, n_outcomes=n, ids=ids, n_records=data.n_rec)
        u = model.utilities_
        ranks_u, ranks_t = np.argsort(np.argsort(u)), np.argsort(np.argsort(mu))
        top = set(np.argsort(-u)[:k_top].tolist())
        p_hat = model.predict_proba(pairs)
        curve.append(
            {
                "pairs": len(data.y),
                "spearman": float(np.corrcoef(ranks_u, ranks_t)[0, 1]),
                "top_k_error": 1 - len(top & true_top) / k_top,
                "loss_random": expected_log_loss(p_hat, p_true),
                "loss_near_tie": expected_log_loss(p_hat[near], p_true[near]),
            }
        )
    return curve


def to_reach(curve: list[dict], key: str, target: float, higher_is_better: bool) -> float | None:
    """First number of pairs at which the (interpolated) curve reaches ``target``."""
    sign = 1.0 if higher_is_better else -1.0
    points = [(c["pairs"], sign * c[key]) for c in curve]
    goal = sign * target
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y1 >= goal:
            return float(x0) if y0 >= goal else x0 + (x1 - x0) * (goal - y0) / (y1 - y0)
    return None


def simulate_part(args) -> None:
    print(
        f"Part 1: ue elicit on the simulator, N={args.n}, mode={args.mode}"
        f"{' (K=10 per ordering)' if args.mode == 'sample' else ''}, responder {args.responder}, round size "
        f"{args.round_size}, seeds 0..{args.seeds - 1}; recovery scored against the true utilities"
    )
    workdir = Path(tempfile.mkdtemp(prefix="ue-al-"))
    keys = ("spearman", "top_k_error", "loss_random", "loss_near_tie")
    try:
        curves: dict[str, list[list[dict]]] = {}
        for strategy in args.strategies:
            started = time.perf_counter()
            curves[strategy] = [
                recovery_curve(strategy, args.n, args.round_size, s, args.mode, args.responder, workdir)
                for s in range(args.seeds)
            ]
            print(f"  {strategy:<7} {time.perf_counter() - started:6.1f} s")
        budget = curves[args.strategies[0]][0][-1]["pairs"]
        n_points = min(len(c) for cs in curves.values() for c in cs)
        print(
            "\n  mean over seeds: Spearman ρ with the true utilities / top-k error (k = N/10) / log loss against the true "
            "probabilities on random pairs / on near-tie pairs"
        )
        print("  pairs  " + "".join(f"{s:>34}" for s in curves))
        for p in list(range(0, n_points - 1, max(1, n_points // 10))) + [n_points - 1]:
            row = []
            for s in curves:
                vals = [np.mean([c[p][k] for c in curves[s]]) for k in keys]
                row.append(f"{vals[0]:>9.4f} {vals[1]:.3f} {vals[2]:.4f} {vals[3]:.4f}")
            print(f"  {curves[args.strategies[0]][0][p]['pairs']:>6}" + "".join(f"{x:>34}" for x in row))
        if "random" in curves:
            print(f"\n  queries needed to reach random selection's final recovery ({budget} pairs), mean over seeds:")
            for key, higher in (("spearman", True), ("loss_near_tie", False), ("loss_random", False)):
                parts = []
                for s in curves:
                    needs = [to_reach(c, key, r[-1][key], higher) for c, r in zip(curves[s], curves["random"])]
                    ok = [x for x in needs if x is not None]
                    parts.append(
                        f"{s} {np.mean(ok) / budget:.0%}"
                        if len(ok) == len(needs)
                        else f"{s} not reached ({len(ok)}/{len(needs)} seeds)"
                    )
                print(f"    {key:<14} " + ", ".join(parts))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.1f} / {b:.1f} / {c:.1f} on {os.cpu_count()} CPUs"


def embedded_part(args) -> None:
    """A real ``ue elicit`` through lm-eval (the model as ``ue-hf``: loaded once for every round) over the 510-outcome
    subset of ``core`` with a small budget, timed end to end; beside it, in the same process, the bare forward-pass
    floor (transformers, every prompt in full, fp32, batch 8) over the same number of the run's prompts. Extrapolates
    the full main run (⌊2·N·log2 N⌋ training pairs + 1,000 holdout pairs, both orderings) from the measured time per
    (pair, ordering) and reports the ratio to the floor."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ue_tasks import model
    from ue_tasks.harness.lm_eval.chat import chat_prompts
    from ue_tasks.harness.lm_eval.models import cpu_has_bf16, resolve_dtype
    from ue_tasks.plan import default_budget, holdout_size

    path = model.prepare()
    n_out = 510
    dtype = resolve_dtype(args.dtype, "cpu", str(path))
    print(
        f"\nPart 2: ue elicit through lm-eval (ue-hf, {dtype}; native bf16 on this CPU: {'yes' if cpu_has_bf16() else 'no'}) on the "
        f"embedded model, {n_out} outcomes of core, budget {args.embedded_budget} training pairs + holdout, CPU, "
        f"{torch.get_num_threads()} torch threads; {_load()}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="ue-al-emb-"))
    try:
        from ue_tasks.outcomes import load_outcomes

        core = load_outcomes("core")
        subset = workdir / "core510.jsonl"
        with subset.open("w") as fh:
            for o in core.outcomes[:n_out]:
                fh.write(json.dumps({"id": o.id, "text": o.text, "category": o.category}) + "\n")
        extra = "" if args.prefix_cache_mb is None else f",prefix_cache_mb={args.prefix_cache_mb}"
        cfg = RunConfig(
            harness="lm-eval",
            model="hf",
            model_args=f"pretrained={path},dtype={args.dtype}{extra}",
            outcomes=str(subset),
            mode="logprob",
            strategy="paper",
            budget=args.embedded_budget,
            round_size=max(1, args.embedded_budget // 2),
            holdout_fraction=args.embedded_holdout / (n_out * (n_out - 1) / 2),
            seed=0,
        )
        run = Elicitation(cfg, workdir / "run", cache_dir=None, log=lambda m: None)
        started = time.perf_counter()
        lm = run.backend._model([])  # type: ignore[attr-defined]  # the one-off load, timed apart
        load_s = time.perf_counter() - started
        calls = _count_calls(run.backend)
        started = time.perf_counter()
        run.run()
        seconds = time.perf_counter() - started
        history = [json.loads(x) for x in (workdir / "run" / "history.jsonl").read_text().splitlines()]
        records = [json.loads(x) for x in (workdir / "run" / "records.jsonl").read_text().splitlines()]
        fits = sum(h["fit_seconds"] for h in history)
        prompts = len(records)
        fwd_s, fwd_tok = lm.forward_seconds, lm.forward_tokens
        overhead = seconds - fwd_s - fits
        print(
            f"  {prompts} prompts ({len(history)} rounds, {calls[0]} lm-eval calls) in {load_s:.1f} s (model load, once) + "
            f"{seconds:.1f} s = {(load_s + seconds) / prompts:.3f} s per (pair, ordering) all told; {_load()}"
        )
        print(
            f"    model forward {fwd_s:.1f} s for {fwd_tok} tokens (padding included; stem {lm.stem_length} tokens cached; "
            f"{lm.prefix_tokens} tokens of {lm.prefix_hits} rows from the shared-prefix cache) = {fwd_tok / max(fwd_s, 1e-9):.0f} "
            f"tokens/s, {fwd_tok / prompts:.1f} tokens per prompt; fits {fits:.2f} s; lm-eval and Python outside the "
            f"forward passes {overhead:.1f} s = {overhead / max(1, calls[0]):.2f} s per call"
        )

        # the floor: the run's own prompts, each run in full by transformers (fp32, batch 8)
        tok = AutoTokenizer.from_pretrained(str(path))
        sample = records[: min(len(records), args.floor_prompts)]
        texts = chat_prompts(tok, [_prompt_of(r) for r in sample])
        m = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
        tok.padding_side = "right"
        started = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(texts), 8):
                enc = tok(texts[i : i + 8], return_tensors="pt", padding=True, add_special_tokens=False)
                m(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
        floor = (time.perf_counter() - started) / len(texts)
        per_prompt = (load_s + seconds) / prompts
        full_prompts = 2 * (default_budget(n_out) + holdout_size(n_out))
        rounds_full = 1 + math.ceil(max(0, default_budget(n_out) - n_out) / 500)
        fit_per_round = fits / max(1, len(history))
        print(
            f"  floor (bare transformers forward over {len(texts)} of these prompts, fp32): {floor:.3f} s per prompt; "
            f"ue elicit / floor = {per_prompt / floor:.2f}× (all told); {_load()}"
        )
        tokens_full, calls_full, plain_full = _replay_full_run(
            lm, tok, core.outcomes[:n_out], padding=fwd_tok / max(1, lm.real_tokens)
        )
        per_token = fwd_s / max(1, fwd_tok)
        parts = {
            "model load": load_s,
            f"forward ({tokens_full / full_prompts:.1f} tokens per prompt)": tokens_full * per_token,
            f"lm-eval calls ({calls_full})": calls_full * overhead / max(1, calls[0]),
            f"fits ({rounds_full})": rounds_full * fit_per_round,
        }
        total = sum(parts.values())
        print(
            f"  the paper's full main run at N={n_out} ({full_prompts} prompts, log-prob mode, ~{rounds_full} rounds) would take "
            f"about {total / 60:.1f} minutes on this machine at this load: "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in parts.items())
        )
        print(
            f"    without the shared-prefix cache it would run {plain_full / full_prompts:.1f} tokens per prompt "
            f"(+{(plain_full - tokens_full) * per_token / 60:.1f} min); the floor runs every prompt in full: "
            f"{full_prompts * floor / 60:.1f} minutes; {_load()}"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _count_calls(backend) -> list[int]:
    """Counts the backend's harness calls (one lm-eval run each) in a list's first item."""
    count = [0]
    answer = backend.answer

    def counted(queries):
        count[0] += 1
        return answer(queries)

    backend.answer = counted
    return count


def _replay_full_run(lm, tok, outcomes, padding: float, seed: int = 0) -> tuple[int, int, int]:
    """Tokens the full main run would run through ``lm`` (``ue-hf``): the run's plan shape (holdout pairs first, a
    first round of N pairs, rounds of 500; both orderings; lm-eval calls of ``BATCH`` queries) with random pairs,
    each call's prompts replayed through the stem and shared-prefix caches' bookkeeping (no forward pass; the same
    rule as ``UeHFLM._loglikelihood_tokens``), times the measured padding factor. Returns (tokens, calls, tokens
    without the shared-prefix cache)."""
    from ue_tasks.elicitation.engine import BATCH
    from ue_tasks.harness.lm_eval.chat import chat_prompts
    from ue_tasks.harness.lm_eval.models import MIN_PREFIX, _Prefixes
    from ue_tasks.plan import default_budget, holdout_size
    from ue_tasks.templates import get_template

    n = len(outcomes)
    rng = np.random.default_rng(seed)
    sizes = [holdout_size(n)] + [n] + [500] * math.ceil(max(0, default_budget(n) - n) / 500)
    template = get_template("default")
    cfg = lm.model.config
    per_token = (
        2
        * cfg.num_hidden_layers
        * getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
        * (getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        * lm.model.dtype.itemsize
    )
    store = _Prefixes(lm._prefixes.budget)
    stem_n, tokens, plain, calls = lm.stem_length, 0, 0, 0
    for size in sizes:
        a = rng.integers(0, n, size)
        b = (a + rng.integers(1, n, size)) % n
        orderings = [(x, y) for i, j in zip(a, b) for x, y in ((i, j), (j, i))]
        for start in range(0, len(orderings), BATCH):
            batch = orderings[start : start + BATCH]
            prompts = chat_prompts(tok, [template.render(outcomes[x].text, outcomes[y].text, "") for x, y in batch])
            tails = list(dict.fromkeys(tuple(tok(p, add_special_tokens=False).input_ids[stem_n:]) for p in prompts))
            calls += 1
            if store.budget <= 0:
                tokens += sum(len(t) for t in tails)
                plain += sum(len(t) for t in tails)
                continue
            shared = store.shared(tails)
            for t, s in zip(tails, shared):
                u = min(store.lookup(t)[0], len(t) - 1)
                u = u if u >= MIN_PREFIX else 0
                tokens += len(t) - u
                plain += len(t)
                if s >= MIN_PREFIX and s > u:
                    store.put(t[:s], [], size=s * per_token)
    return int(tokens * padding), calls, int(plain * padding)


def _prompt_of(r: dict) -> str:
    """The user turn of a record's query (its options in the order shown)."""
    from ue_tasks.templates import get_template

    first, second = (r["a_text"], r["b_text"]) if r["shown_first"] == "a" else (r["b_text"], r["a_text"])
    return get_template(r.get("template", "default")).render(first, second, r.get("context", "") or "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=510)
    parser.add_argument("--round-size", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mode", choices=["sample", "logprob"], default="sample")
    parser.add_argument(
        "--responder",
        choices=["thurstonian", "misfit"],
        default="thurstonian",
        help="the simulated model (misfit: exact probabilities that stray from the Thurstonian model)",
    )
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--embedded", action="store_true", help="also time a real run on the embedded model")
    parser.add_argument("--embedded-budget", type=int, default=200, help="training pairs of the timed run (default 200)")
    parser.add_argument("--embedded-holdout", type=int, default=50, help="holdout pairs of the timed run (default 50)")
    parser.add_argument("--floor-prompts", type=int, default=96, help="prompts the floor is timed on (default 96)")
    parser.add_argument(
        "--dtype", default="auto", help="ue-hf's dtype (default auto: the checkpoint's own; native: bf16 where native, else fp32)"
    )
    parser.add_argument(
        "--prefix-cache-mb",
        type=float,
        default=None,
        help="ue-hf's shared-prefix cache in MiB (default: ue-hf's default; 0 turns it off)",
    )
    parser.add_argument("--skip-simulate", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    if not args.skip_simulate:
        simulate_part(args)
    if args.embedded:
        embedded_part(args)


if __name__ == "__main__":
    main()
