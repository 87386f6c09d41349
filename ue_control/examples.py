"""Training examples for utility control: one per (pair, ordering) preference prompt, rendered exactly as the
lm-eval task sends it (chat template, system message, the paper's prompt), with the assembly's probability of
the answer label "A" as the target.

The target is order-free: the assembly's P(a ≻ b) pooled over citizens and both orderings, mapped onto the
label of whichever outcome is shown first. Examples come from the ``assembly_records.jsonl`` of an assemble
run folder; ``outcome_split`` says whether a pair's outcomes are training or held-out outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ue_metrics.errors import UserError
from ue_tasks.queries import Query
from ue_tasks.templates import LABELS


@dataclass(frozen=True)
class Example:
    a_id: str
    b_id: str
    shown_first: str
    prompt: str  # user turn
    target_a_label: float  # P(answer label "A") the model should give
    outcome_split: str


def examples_from_records(records: list[dict], outcome_split: str | None = None) -> list[Example]:
    """One example per assembly record (a record per (pair, ordering)), optionally of one outcome split."""
    out = []
    for r in records:
        if outcome_split is not None and r.get("outcome_split") != outcome_split:
            continue
        if r.get("p_a") is None:
            continue
        q = Query(
            pair=0,
            a_id=r["a_id"],
            b_id=r["b_id"],
            a_text=r["a_text"],
            b_text=r["b_text"],
            a_category="",
            b_category="",
            shown_first=r["shown_first"],
            split=r["split"],
            template=r.get("template", "default"),
            outcome_set=r["outcome_set"],
            seed=0,
            context=r.get("context", ""),
        )
        target, _, _ = q.label_terms(float(r["p_a"]))
        out.append(
            Example(
                a_id=q.a_id,
                b_id=q.b_id,
                shown_first=q.shown_first,
                prompt=q.prompt(),
                target_a_label=float(target),
                outcome_split=str(r.get("outcome_split", "")),
            )
        )
    out.sort(key=lambda e: (e.a_id, e.b_id, e.shown_first))
    return out


def load_examples(run: str | Path, outcome_split: str) -> list[Example]:
    from ue_metrics.records import read

    path = Path(run) / "assembly_records.jsonl"
    if not path.is_file():
        raise UserError(f"{path}: not found; 'run' must be a folder written by `ue control assemble`")
    examples = examples_from_records(read(path), outcome_split)
    if not examples:
        raise UserError(f"{path}: has no records of {outcome_split} outcomes; re-run `ue control assemble` with more outcomes")
    return examples


def paired(examples: list[Example], where: object = "the assembly records") -> list[Example]:
    """The examples with both orderings of each pair adjacent (``a`` shown first, then ``b``); a pair asked in
    one ordering only is refused, since training on it alone would teach a position."""
    by: dict[tuple[str, str], dict[str, Example]] = {}
    for e in examples:
        by.setdefault((e.a_id, e.b_id), {})[e.shown_first] = e
    one = [k for k, v in by.items() if set(v) != {"a", "b"}]
    if one:
        raise UserError(
            f"{where}: the pair {one[0][0]} / {one[0][1]} has records of one ordering only; training needs both "
            "orderings of every pair — run `ue control assemble` again"
        )
    return [v[o] for _, v in sorted(by.items()) for o in ("a", "b")]


class Encoder:
    """Chat-templated token ids of example prompts and the token ids of the two answer labels (as lm-eval
    scores them: the label directly after the assistant header)."""

    def __init__(self, tokenizer, system_message: str | None, max_length: int = 1024) -> None:
        self.tokenizer = tokenizer
        self.system_message = system_message
        self.max_length = max_length
        probe = self.context("x")
        self.label_ids = []
        for label in LABELS:
            whole = tokenizer(probe + label, add_special_tokens=False).input_ids
            head = tokenizer(probe, add_special_tokens=False).input_ids
            tail = whole[len(head) :]
            if whole[: len(head)] != head or len(tail) != 1:
                raise UserError(
                    f"the answer label {label!r} is not one token after the chat template of this tokenizer; "
                    "utility-control training needs single-token labels"
                )
            self.label_ids.append(tail[0])

    def context(self, prompt: str) -> str:
        messages = ([{"role": "system", "content": self.system_message}] if self.system_message else []) + [
            {"role": "user", "content": prompt}
        ]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, prompt: str) -> list[int]:
        ids = self.tokenizer(self.context(prompt), add_special_tokens=False).input_ids
        if len(ids) > self.max_length:
            raise UserError(
                f"a prompt is {len(ids)} tokens, longer than max_length={self.max_length}; raise max_length in the config"
            )
        return ids


def collate(batch_ids: list[list[int]], pad_id: int):
    """Left-padded ``input_ids``, ``attention_mask`` and ``position_ids`` (counting real tokens only, so a
    padded row gives the same logits as the row alone); the answer position is the last column."""
    import torch

    n = max(len(x) for x in batch_ids)
    ids = torch.full((len(batch_ids), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch_ids), n), dtype=torch.long)
    for k, x in enumerate(batch_ids):
        ids[k, n - len(x) :] = torch.tensor(x, dtype=torch.long)
        mask[k, n - len(x) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    return ids, mask, positions


def label_logits(model, ids, mask, positions, label_ids: list[int]):
    """(full-vocabulary logits at the answer position, the two label logits) for a left-padded batch; only
    the last position goes through the output layer (``logits_to_keep=1``)."""
    dev = ids.device
    out = model(input_ids=ids, attention_mask=mask.to(dev), position_ids=positions.to(dev), logits_to_keep=1)
    final = out.logits[:, -1].float()
    return final, final[:, label_ids]


def predict_a_label(model, tokenizer, examples: list[Example], system_message: str | None, batch_size: int = 8) -> list[float]:
    """The model's renormalised P(label "A") for each example (no gradients)."""
    import torch

    enc = Encoder(tokenizer, system_message)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[float] = []
    with torch.no_grad():
        for s in range(0, len(examples), batch_size):
            ids, mask, pos = collate([enc.encode(e.prompt) for e in examples[s : s + batch_size]], pad)
            _, two = label_logits(model, ids.to(device), mask, pos, enc.label_ids)
            out += torch.softmax(two, dim=-1)[:, 0].tolist()
    model.train(was_training)
    return out
