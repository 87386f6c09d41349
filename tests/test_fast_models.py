"""lm-eval's ``ue-hf`` model type (``ue_tasks.harness.lm_eval.models``): the dtype it picks, the same answers as
lm-eval's ``hf`` (log-probabilities through the stem cache and padding; greedy text through the shared-prefill
sampler), bf16 within 0.01 of fp32, K sampled answers from one prefill that follow the model's distribution and
are reproducible, and the ``ue lm-eval`` command line that reaches it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ue_tasks.harness.lm_eval import models
from ue_tasks.harness.lm_eval.cli import lm_eval_argv
from ue_tasks.harness.lm_eval.configs import task_configs_dir
from ue_tasks.harness.lm_eval.hooks import PAYLOAD_FIELDS, documents


# ----------------------------------------------------------------------------------------------------------
# no model
@pytest.mark.parametrize(
    "caps,expected",
    [
        ({"avx512_bf16": True}, "bfloat16"),
        ({"amx_bf16": True, "avx512_bf16": False}, "bfloat16"),
        ({"avx512_bf16": False, "avx2": True}, "float32"),
    ],
)
def test_native_dtype_follows_the_cpu_and_auto_the_checkpoint(monkeypatch: pytest.MonkeyPatch, caps: dict, expected: str) -> None:
    from ue_tasks import dtypes

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    assert {k for k, v in caps.items() if v} <= dtypes.cpu_features()  # torch's probe is read
    monkeypatch.setattr(dtypes, "cpu_features", lambda: {k for k, v in caps.items() if v})
    assert models.preferred_dtype("cpu") == expected
    assert models.resolve_dtype("native", "cpu") == expected
    assert models.resolve_dtype("auto", "cpu") == "float32"  # the checkpoint's own (ue_tasks.dtypes), whatever the CPU
    assert models.resolve_dtype("float32", "cpu") == "float32"  # an explicit choice is kept


def test_unknown_dtype_names_the_choices() -> None:
    with pytest.raises(ValueError, match="float32, bfloat16"):
        models.resolve_dtype("int3", "cpu")


def test_ue_types_are_registered_with_lm_eval() -> None:
    from lm_eval.api.registry import get_model

    assert get_model("ue-hf") is models.UeHFLM
    assert get_model("ue-local-completions") is models.UeLocalCompletions
    assert get_model("ue-local-chat-completions") is models.UeLocalChatCompletions
    assert models.UE_TYPES["hf"] == "ue-hf"


def test_launcher_adds_ue_task_folder_only_when_missing() -> None:
    args = lm_eval_argv(["--model", "ue-hf", "--tasks", "utility_mini"])
    assert args[-2:] == ["--include_path", str(task_configs_dir())]
    assert lm_eval_argv(["--tasks", "x", "--include_path", "mine"]) == ["--tasks", "x", "--include_path", "mine"]
    assert lm_eval_argv(["ls", "tasks"]) == ["ls", "tasks"]


# ----------------------------------------------------------------------------------------------------------
# the embedded model
def _payloads(lm, out: Path, limit: int = 12, task: str = "utility_mini") -> list[dict]:
    from ue_tasks.harness.lm_eval.run import run_lm_eval

    run_lm_eval(lm, [task], out, limit=limit)
    (path,) = list(out.rglob(f"samples_{task}_*.jsonl"))
    return [dict(zip(PAYLOAD_FIELDS, json.loads(line)["holdout_accuracy"])) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_bf16_answers_within_001_of_fp32(model_path: str, tmp_path: Path) -> None:
    """On a fixed set of prompts (the first 12 of mini's plan) bf16 weights give the fp32 answer probabilities p_a to
    ±0.01 (bf16 runs on any CPU; it is only fast where native, which is what dtype=auto checks). Without the float32
    output layer the largest difference here is 0.010; with it about half."""
    fp32 = models.UeHFLM(pretrained=model_path, device="cpu", dtype="float32")
    bf16 = models.UeHFLM(pretrained=model_path, device="cpu", dtype="bfloat16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    a, b = _payloads(fp32, tmp_path / "fp32"), _payloads(bf16, tmp_path / "bf16")
    assert len(a) == len(b) == 12
    diffs = [abs(x["p_a"] - y["p_a"]) for x, y in zip(a, b)]
    assert max(diffs) <= 0.01, diffs
    # the raw mass on the two labels (a diagnostic, not the answer) moves a little more
    assert max(abs(x["label_mass"] - y["label_mass"]) for x, y in zip(a, b)) <= 0.02


@pytest.mark.slow
def test_greedy_text_through_the_sampler_equals_hf_generate(model_path: str) -> None:
    """top_k=1 makes the shared-prefill sampler greedy: its text equals transformers' greedy ``generate`` (lm-eval's
    ``hf``), which checks the stem cache, the padding between stem and tail and the rows leaving the batch."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from ue_tasks.harness.lm_eval.chat import chat_prompts

    ue = models.UeHFLM(pretrained=model_path, device="cpu", dtype="float32")
    prompts = chat_prompts(ue.tokenizer, [d["prompt"] for d in documents(outcomes="mini")[:5]])
    sampled = {"until": [], "do_sample": True, "temperature": 1.0, "top_k": 1, "max_gen_toks": 8}
    greedy = {"until": [], "do_sample": False, "max_gen_toks": 8}
    mine = ue.generate_until([Instance("generate_until", {}, (p, dict(sampled)), 0) for p in prompts], disable_tqdm=True)
    assert ue.prefills == 5 and ue.stem_length > 30
    hf = HFLM(pretrained=model_path, device="cpu", batch_size=1, dtype="float32")
    theirs = hf.generate_until([Instance("generate_until", {}, (p, dict(greedy)), 0) for p in prompts], disable_tqdm=True)
    assert mine == theirs


@pytest.mark.slow
def test_k_answers_from_one_prefill_follow_the_model(model_path: str, tmp_path: Path) -> None:
    """400 one-token answers to one prompt (one prefill) have the label frequencies of the model's next-token
    distribution; the sampled task draws its K = 10 answers per prompt from one prefill, reproducibly."""
    from lm_eval.api.instance import Instance

    from ue_tasks.harness.lm_eval.chat import chat_prompts

    ue = models.UeHFLM(pretrained=model_path, device="cpu", dtype="float32", seed=7)
    (prompt,) = chat_prompts(ue.tokenizer, [documents(outcomes="mini")[0]["prompt"]])
    ids = torch.tensor([ue.tok_encode(prompt)])
    with torch.no_grad():
        probs = ue.model(ids).logits[0, -1].float().softmax(-1)
    kw = {"until": [], "do_sample": True, "temperature": 1.0, "max_gen_toks": 1}
    answers = ue.generate_until([Instance("generate_until", {}, (prompt, dict(kw)), 0) for _ in range(400)], disable_tqdm=True)
    assert ue.prefills == 1 and ue.sampled_rows == 400
    top50 = float(probs.topk(50).values.sum())  # the model's generation config samples from the top 50 (as hf does)
    for label in ("A", "B"):
        p = float(probs[ue.tokenizer.convert_tokens_to_ids(label)]) / top50
        freq = answers.count(label) / 400
        assert abs(freq - p) <= 4 * math.sqrt(p * (1 - p) / 400) + 0.01, (label, freq, p)

    runs = []
    for k in range(2):
        lm = models.UeHFLM(pretrained=model_path, device="cpu", dtype="float32", seed=7)
        runs.append(_payloads(lm, tmp_path / f"s{k}", limit=3, task="utility_mini_sampled"))
        assert lm.prefills == 3 and lm.sampled_rows == 30  # one prefill per prompt, its ten answers drawn from it
    assert runs[0] == runs[1]
    assert all(p["n_a"] + p["n_b"] + p["n_unparsed"] == 10 for p in runs[0])


@pytest.mark.slow
def test_lm_eval_command_line_runs_ue_hf(model_path: str, tmp_path: Path) -> None:
    """``ue lm-eval --model ue-hf ...``: lm-eval's own command line, ue's task folder added, samples readable by
    ``ue fit``'s reader."""
    from ue_tasks.harness.readers import read_records

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        "-m",
        "ue_cli.main",
        "lm-eval",
        "--model",
        "ue-hf",
        "--model_args",
        f"pretrained={model_path},dtype=float32",
        "--tasks",
        "utility_mini",
        "--apply_chat_template",
        "--system_instruction",
        "You are a helpful assistant.",
        "--limit",
        "6",
        "--log_samples",
        "--output_path",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ue-hf" in proc.stdout and "holdout_accuracy" in proc.stdout
    records = read_records([tmp_path / "out"])
    assert len(records) == 6 and {r["mode"] for r in records} == {"logprob"}


def _lcp_unit(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_one_longest_common_prefix_helper() -> None:
    """Issue 23 item 4: the stem cache and the shared-prefix cache count shared leading tokens with one helper."""
    assert models.common_prefix_length() == 0
    assert models.common_prefix_length((1, 2, 3)) == 3
    assert models.common_prefix_length((1, 2, 3), (1, 2, 4), (1, 2)) == 2
    assert models.common_prefix_length((1, 2), (3,)) == 0
    assert not hasattr(models, "_lcp") and not hasattr(models.UeHFLM, "_common_prefix")


def _hand_filter(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """The sampler's former hand-written top-k/top-p filter (before issue 23), kept here as the reference."""
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cum <= (1 - top_p)
        drop[..., -1:] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    return logits


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (5, 1.0), (0, 0.9), (40, 0.95), (3, 0.5), (0, 0.0), (200, 1.5)])
def test_the_sampler_filters_with_transformers_warpers_and_draws_the_same_tokens(top_k: int, top_p: float) -> None:
    """Issue 23 item 4: ``_filter`` is transformers' top-k/top-p warpers; for a fixed seed the filtered logits, and
    so the tokens drawn, are exactly those of the former hand-written filter (ties included)."""
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(6, 100, generator=g) * 3
    logits[0, :10] = 2.5  # ties at the top-k boundary
    new, old = models.UeHFLM._filter(logits, top_k, top_p), _hand_filter(logits, top_k, top_p)
    assert torch.equal(new, old)
    draws = [
        torch.multinomial(x.softmax(-1), 20, replacement=True, generator=torch.Generator().manual_seed(3)) for x in (new, old)
    ]
    assert torch.equal(*draws)


def test_shared_prefix_store_finds_the_longest_cached_prefix_and_evicts_least_recent() -> None:
    """The second cache level's bookkeeping (no model): the longest shared prefix among earlier tails, the longest
    cached prefix of a tail, and least-recently-used eviction within the byte budget."""
    one = [(torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 4, 2))]  # 64 bytes per entry
    store = models._Prefixes(budget=128)
    assert store.shared([(1, 2, 3, 4, 5, 6), (1, 2, 3, 4, 9, 9), (7, 7, 7, 7)]) == [4, 4, 0]
    assert store.shared([(1, 2, 3, 4, 5, 6), (7, 7, 7, 8)]) == [6, 3]  # a repeat shares all of itself
    store.put((1, 2, 3, 4), one)
    store.put((5, 5, 5, 5), one)
    assert store.lookup((1, 2, 3, 4, 8))[0] == 4 and store.lookup((1, 2, 3, 9))[0] == 0  # under MIN_PREFIX
    store.put((6, 6, 6, 6), one)  # over budget: (5,5,5,5) was used least recently
    assert list(store.entries) == [(1, 2, 3, 4), (6, 6, 6, 6)] and store.bytes == 128
    assert store.lookup((5, 5, 5, 5, 1))[0] == 0 and store.keys == sorted(store.entries)
    assert _lcp_unit((1, 2), (1, 3)) == models.common_prefix_length((1, 2), (1, 3)) == 1
    # prefixes that differ only in their last tokens are kept once, as their common part
    store = models._Prefixes(budget=1024)
    store.put((1, 2, 3, 4, 5, 6, 7), [(torch.ones(1, 1, 7, 2), torch.ones(1, 1, 7, 2))])
    store.put((1, 2, 3, 4, 5, 6, 9), [(torch.ones(1, 1, 7, 2), torch.ones(1, 1, 7, 2))])
    assert list(store.entries) == [(1, 2, 3, 4, 5, 6)] and store.entries[(1, 2, 3, 4, 5, 6)][0][0].shape[2] == 6
    store.put((1, 2, 3, 4, 5, 6, 8, 8), [(torch.ones(1, 1, 8, 2), torch.ones(1, 1, 8, 2))])  # extends a cached prefix
    assert list(store.entries) == [(1, 2, 3, 4, 5, 6)] and store.bytes == 96


@pytest.mark.slow
def test_shared_prefix_cache_gives_the_same_log_probabilities(model_path: str) -> None:
    """Prompts that share their first option, asked over two calls (as active-learning rounds are): the second call
    runs only the tokens after the cached stem + first option, and every probability is within 1e-4 of the same
    model without the prefix cache (whose probabilities ``tests/test_lm_eval_demo.py`` holds to lm-eval's ``hf``)."""
    from lm_eval.api.instance import Instance
    from transformers import AutoTokenizer

    from ue_tasks.harness.lm_eval.chat import chat_prompts
    from ue_tasks.outcomes import load_outcomes
    from ue_tasks.templates import get_template

    texts = [o.text for o in load_outcomes("mini").outcomes[:7]]
    template = get_template("default")
    rounds = [[(0, 1), (0, 2), (3, 4), (5, 6)], [(0, 5), (3, 1), (3, 6), (0, 1), (2, 4)]]
    tok = AutoTokenizer.from_pretrained(model_path)
    cached = models.UeHFLM(pretrained=model_path, device="cpu", dtype="float32", batch_size=3)
    bare = models.UeHFLM(pretrained=model_path, device="cpu", dtype="float32", prefix_cache_mb=0)
    got: dict[str, list[float]] = {"cached": [], "bare": []}
    for pairs in rounds:
        prompts = chat_prompts(tok, [template.render(texts[a], texts[b], "") for a, b in pairs])
        reqs = [
            Instance(request_type="loglikelihood", doc={}, arguments=(p, label), idx=0) for p in prompts for label in ("A", "B")
        ]
        for name, lm in (("cached", cached), ("bare", bare)):
            got[name] += [lp for lp, _ in lm.loglikelihood(reqs, disable_tqdm=True)]
    assert cached.prefix_hits >= 3 and cached.prefix_tokens >= 3 * 8  # (0, ·) and (3, ·) in the second call
    assert bare.prefix_hits == 0 and len(got["cached"]) == 18
    for c, b in zip(got["cached"], got["bare"]):
        assert math.exp(c) == pytest.approx(math.exp(b), abs=1e-4)


def test_the_chat_prompt_module_is_named_for_what_it_holds() -> None:
    """Issue 23 item 6: ``prefix_cache.py`` held no cache (only ``chat_prompts``): it is ``chat.py``."""
    import importlib.util

    from ue_tasks.harness.lm_eval import chat

    assert callable(chat.chat_prompts) and not hasattr(chat, "shared_prefix_ids")
    assert importlib.util.find_spec("ue_tasks.harness.lm_eval.prefix_cache") is None
