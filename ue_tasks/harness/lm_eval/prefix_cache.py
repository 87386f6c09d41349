"""The prompt-stem cache of ue's tasks: every prompt of a ue task starts with the same token stem (chat header,
system message, the instruction up to "Option A:"), whose key/value cache is computed once so that each batch only
runs the tokens after it; the log-probabilities are those of the full prompt (``tests/test_lm_eval_demo.py`` pins
this). The cache itself lives in lm-eval's ``ue-hf`` model type (``ue_tasks.harness.lm_eval.models``), which finds
the stem from the requests; this module keeps the helpers around it (``chat_prompts``, ``shared_prefix_ids``).
"""

from __future__ import annotations

from ue_tasks.templates import SYSTEM_MESSAGE


def shared_prefix_ids(tokenizer, prompts: list[str]) -> list[int]:
    """The longest run of leading token ids shared by all ``prompts`` (minus one token, so that a BPE merge
    across the boundary can never make a prompt's own tokenisation differ from the cached one)."""
    encoded = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
    common = encoded[0]
    for ids in encoded[1:]:
        n = 0
        while n < min(len(common), len(ids)) and common[n] == ids[n]:
            n += 1
        common = common[:n]
    return list(common[:-1]) if len(common) > 1 else []


def chat_prompts(tokenizer, prompts: list[str], system_message: str | None = SYSTEM_MESSAGE) -> list[str]:
    """The chat-templated prompts lm-eval sends for user turns ``prompts`` with --apply_chat_template
    --system_instruction (no system turn when ``system_message`` is empty)."""
    head = [{"role": "system", "content": system_message}] if system_message else []
    return [
        tokenizer.apply_chat_template(head + [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]
