"""The chat-templated prompts lm-eval sends for ue's tasks (``chat_prompts``): what ``--apply_chat_template
--system_instruction`` makes of a user turn, for the tests and benchmarks that compare ue's answers with lm-eval's.
Every prompt of a ue task starts with the same token stem (chat header, system message, the instruction up to
"Option A:"); its key/value cache lives in lm-eval's ``ue-hf`` model type (``ue_tasks.harness.lm_eval.models``).
"""

from __future__ import annotations

from ue_tasks.templates import SYSTEM_MESSAGE


def chat_prompts(tokenizer, prompts: list[str], system_message: str | None = SYSTEM_MESSAGE) -> list[str]:
    """The chat-templated prompts lm-eval sends for user turns ``prompts`` with --apply_chat_template
    --system_instruction (no system turn when ``system_message`` is empty)."""
    head = [{"role": "system", "content": system_message}] if system_message else []
    return [
        tokenizer.apply_chat_template(head + [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]
