"""The utility-control trainer (Mazeika et al. 2025, "Utility control"; docs/method.md §9): supervised fine-tuning
on forced-choice preference prompts (both orderings) whose target is a simulated citizen assembly's preference.

Objectives
  ``soft`` (default): cross-entropy between the assembly's probability of each answer label and the model's
  next-token distribution renormalised over the two labels — the same quantity lm-eval's log-prob elicitation
  reads, so training moves exactly what is measured.
  ``sft``: the paper's baseline — one label per example and step, drawn from the assembly's distribution,
  with ordinary next-token cross-entropy over the whole vocabulary.

Every optimizer step holds both orderings of each of its pairs with the assembly's order-free target, so the
targets of a step average ½ for label "A" and no update rewards a position (``paired_stream``); the evaluations
report the position bias (mean P("A") − ½) with the loss and the error. A finished output folder is refused, an
interrupted one resumes exactly from its newest checkpoint (LoRA checkpoints hold the adapter only).

Runs on one process (``ue control train --config FILE``) or many (``accelerate launch -m ue_control.train
--config FILE``; DDP, or DeepSpeed/FSDP through the accelerate config). ``batch_size`` is the number of
examples per optimizer step over all processes; gradient accumulation is derived from it, so the same config
gives the same updates on 1 or N processes. Data order and sampled labels are pure functions of
(seed, step), the learning rate is a function of the step, and checkpoints hold model, optimizer and RNG
states: a resumed run repeats an uninterrupted one. Only training outcomes are trained on; held-out outcomes
(chosen in ``ue control assemble``) are evaluated.

The result is a plain Hugging Face model folder (``OUT/model``; LoRA adapters merged) that lm-eval and Inspect
load like any other.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ue_control import config as cfg
from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json
from ue_tasks.templates import SYSTEM_MESSAGE


@dataclass
class TrainConfig:
    run: str  # folder written by `ue control assemble`
    out: str  # folder for checkpoints, logs and the trained model
    model: str = "embedded"  # a local HF folder, a hub name on a machine with the weights cached, or "embedded"
    method: Literal["full", "lora"] = "full"
    objective: Literal["soft", "sft"] = "soft"
    steps: int = 50
    batch_size: int = 8  # examples per optimizer step, summed over processes
    micro_batch_size: int = 4  # examples per forward pass and process
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    seed: int = 0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: str | list[str] = "all-linear"
    checkpoint_every: int = 0  # steps between checkpoints (0: only when stopping early)
    keep_checkpoints: int = 2
    resume: bool = True  # continue from the newest checkpoint in OUT/checkpoints when there is one
    stop_after: int | None = None  # stop (with a checkpoint) after this many steps, e.g. to fit a job slot
    log_every: int = 1
    eval_every: int = 0  # steps between evaluations on held-out outcomes (0: at the start and the end only)
    eval_max_examples: int = 256
    system_message: str | None = SYSTEM_MESSAGE
    max_length: int = 1024
    gradient_checkpointing: bool = False
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # weights as loaded (mixed precision is separate)
    cpu: bool = False  # train on the CPU even where a GPU exists (several processes without a GPU use the CPU anyway)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept with the results

    def check(self, where: str) -> None:
        for name in (
            "steps",
            "batch_size",
            "micro_batch_size",
            "log_every",
            "max_length",
            "keep_checkpoints",
            "eval_max_examples",
        ):
            if getattr(self, name) < 1:
                raise UserError(f"{where}: field {name!r} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise UserError(f"{where}: field {name!r} must not be negative, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise UserError(f"{where}: field 'learning_rate' must be positive, got {self.learning_rate}")
        if self.lora_r < 1 or self.lora_alpha <= 0:  # whatever the method: lora_r=0 must not read as "no LoRA"
            raise UserError(
                f"{where}: field 'lora_r' must be at least 1 and 'lora_alpha' positive (the LoRA adapter's rank and scale), got "
                f"lora_r={self.lora_r}, lora_alpha={self.lora_alpha}; lora_r=0 does not switch LoRA off — method: full (the "
                "default) trains every weight, method: lora trains an adapter of rank lora_r"
            )
        if self.stop_after is not None and self.stop_after < 1:
            raise UserError(f"{where}: field 'stop_after' must be at least 1 or null, got {self.stop_after}")


def load_config(path: str | Path | None, overrides: list[str] | None = None, **given: Any) -> TrainConfig:
    return cfg.load(TrainConfig, path, overrides, **given)


# ----------------------------------------------------------------------------------------------------------
def stream_indices(n: int, seed: int, start: int, count: int) -> np.ndarray:
    """Positions ``start .. start+count`` of the example stream: epoch ``e`` is a permutation drawn from
    ``default_rng([seed, e])``, epochs concatenated. Stateless, so any step can be recomputed on resume."""
    out = np.empty(count, dtype=np.int64)
    pos = 0
    while pos < count:
        epoch, offset = divmod(start + pos, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        take = min(n - offset, count - pos)
        out[pos : pos + take] = perm[offset : offset + take]
        pos += take
    return out


def paired_stream(n_examples: int, seed: int, step: int, batch_size: int) -> np.ndarray:
    """The example indices of optimizer step ``step``: ``batch_size / 2`` pairs from the pair stream
    (``stream_indices`` over pairs), each with both its orderings (examples ``2p`` and ``2p + 1``, see
    ``ue_control.examples.paired``). Every step then sees each shown position with complementary targets, so
    no step's update can reward answering "A" (or "B") for its own sake."""
    pairs = stream_indices(n_examples // 2, seed, step * (batch_size // 2), batch_size // 2)
    return np.stack([2 * pairs, 2 * pairs + 1], axis=1).reshape(-1)


def sampled_labels(targets: np.ndarray, seed: int, step: int, positions: np.ndarray) -> np.ndarray:
    """For ``sft``: label 0 ("A") with probability ``target`` per example, drawn from ``default_rng([seed,
    1, step])`` indexed by the example's position in the step's global batch (same on any process count)."""
    u = np.random.default_rng([seed, 1, step]).random(int(positions.max()) + 1 if len(positions) else 0)
    return (u[positions] >= targets).astype(np.int64)


def learning_rate_at(config: TrainConfig, step: int) -> float:
    """Linear warmup, then linear decay to zero at ``steps``."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    return config.learning_rate * max(0.0, 1.0 - (step - config.warmup_steps) / span)


def _checkpoints(out: Path) -> list[Path]:
    root = out / "checkpoints"
    found = [p for p in root.glob("step-*") if (p / "trainer_state.json").is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _load_model(config: TrainConfig):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ue_control.elicit import offline, resolve_model

    offline()
    path = resolve_model(config.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, config.dtype))
    except (OSError, ValueError) as exc:
        raise UserError(
            f"model {config.model!r} cannot be loaded ({str(exc).splitlines()[0]}); give a local model folder"
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_target_modules,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return path, tokenizer, model


def _batch_loss(model, enc, batch, targets, labels, objective, device):
    import torch

    pad = enc.tokenizer.pad_token_id
    from ue_control.examples import collate, label_logits

    ids, mask, pos = collate(batch, pad)
    full, two = label_logits(model, ids.to(device), mask, pos, enc.label_ids)
    if objective == "soft":
        t = torch.tensor(targets, dtype=torch.float32, device=device)
        logq = torch.log_softmax(two, dim=-1)
        per = -(t * logq[:, 0] + (1 - t) * logq[:, 1])
    else:
        token = torch.tensor([enc.label_ids[k] for k in labels], device=device)
        per = torch.nn.functional.cross_entropy(full, token, reduction="none")
    return per


def _evaluate(accelerator, model, enc, examples, ids_cache, micro: int) -> dict[str, float]:
    """Soft-label loss and mean absolute error of P(label A) on ``examples``, sharded over processes (every
    process runs the same number of forward passes; padding rows have weight 0)."""
    import torch

    from ue_control.examples import collate, label_logits

    world, rank = accelerator.num_processes, accelerator.process_index
    n = len(examples)
    per_rank = math.ceil(n / world)
    mine = [rank * per_rank + k for k in range(per_rank)]
    sums = torch.zeros(4, dtype=torch.float64, device=accelerator.device)
    model.eval()
    with torch.no_grad():
        for s in range(0, per_rank, micro):
            idx = mine[s : s + micro]
            real = [i < n for i in idx]
            idx = [i if i < n else 0 for i in idx]
            ids, mask, pos = collate([ids_cache[i] for i in idx], enc.tokenizer.pad_token_id)
            _, two = label_logits(model, ids.to(accelerator.device), mask, pos, enc.label_ids)
            q = torch.softmax(two, dim=-1)[:, 0].double()
            t = torch.tensor([examples[i].target_a_label for i in idx], dtype=torch.float64, device=q.device)
            w = torch.tensor(real, dtype=torch.float64, device=q.device)
            ce = -(t * torch.log(q.clamp_min(1e-12)) + (1 - t) * torch.log((1 - q).clamp_min(1e-12)))
            sums += torch.stack([(w * ce).sum(), (w * (q - t).abs()).sum(), w.sum(), (w * q).sum()])
    model.train()
    sums = accelerator.reduce(sums, reduction="sum")
    # the examples hold both orderings of each pair with complementary targets (mean 0.5), so the mean P(label A)
    # minus 0.5 is the model's position bias on them
    return {
        "loss": float(sums[0] / sums[2]),
        "mae": float(sums[1] / sums[2]),
        "n": int(sums[2]),
        "position_bias": float(sums[3] / sums[2]) - 0.5,
    }


def _method_words(config: TrainConfig) -> str:
    if config.method == "lora":
        return f"a LoRA adapter of rank {config.lora_r} (alpha {config.lora_alpha}) on {config.lora_target_modules}"
    return "full fine-tuning: every weight is trained (the lora_* fields apply only to method: lora)"


def _accumulation_steps(config: TrainConfig, world: int) -> int:
    """Micro-batches per optimizer step: the batch split over ``world`` processes, whole, both orderings together."""
    per_step = config.micro_batch_size * world
    if config.batch_size % per_step:
        raise UserError(
            f"batch_size={config.batch_size} is not a multiple of micro_batch_size × processes = "
            f"{config.micro_batch_size} × {world}; change one of them so that gradient accumulation is whole"
        )
    if config.batch_size % 2:
        raise UserError(
            f"batch_size={config.batch_size} must be even: both orderings of each pair go into the same optimizer step"
        )
    return config.batch_size // per_step


def train(config: TrainConfig, log=print) -> dict[str, Any]:
    """Run (or resume) training; returns the summary also written to ``OUT/train_summary.json``."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from ue_control.examples import Encoder, load_examples, paired

    out = Path(config.out)
    check_out_folder(out, config)
    log(f"ue control train: method {config.method} — {_method_words(config)}")
    train_examples = paired(load_examples(config.run, "train"), Path(config.run) / "assembly_records.jsonl")
    try:
        heldout_examples = load_examples(config.run, "heldout")
    except UserError:
        heldout_examples = []
    # accelerate picks the gloo CPU backend for several processes only when told to run on the CPU
    cpu = config.cpu or (not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=cpu)
    world = accelerator.num_processes
    accum = _accumulation_steps(config, world)
    set_seed(config.seed)
    model_path, tokenizer, model = _load_model(config)
    enc = Encoder(tokenizer, config.system_message, config.max_length)
    train_ids = [enc.encode(e.prompt) for e in train_examples]
    held_ids = [enc.encode(e.prompt) for e in heldout_examples]
    targets = np.array([e.target_a_label for e in train_examples])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    if config.method == "lora" and accelerator.distributed_type.name not in ("DEEPSPEED", "FSDP"):
        _adapter_only_checkpoints(accelerator, model)

    start, history, state = _resume(accelerator, out, config, log)

    evals: dict[str, Any] = {}
    micro = config.micro_batch_size
    train_probe = list(range(min(len(train_examples), config.eval_max_examples)))
    held_probe = list(range(min(len(heldout_examples), config.eval_max_examples)))

    def run_eval(tag: str) -> dict:
        res = {
            "train": _evaluate(
                accelerator, model, enc, [train_examples[i] for i in train_probe], [train_ids[i] for i in train_probe], micro
            )
        }
        if held_probe:
            res["heldout"] = _evaluate(
                accelerator, model, enc, [heldout_examples[i] for i in held_probe], [held_ids[i] for i in held_probe], micro
            )
        return res

    if start == 0:
        evals["start"] = run_eval("start")
    else:  # the checkpoint's own start evaluation (the file _resume read)
        evals["start"] = (state or {}).get("evals", {}).get("start")
    end = config.steps if config.stop_after is None else min(config.steps, start + config.stop_after)
    bar = tqdm(
        total=config.steps, initial=start, desc="training", unit="step", disable=not accelerator.is_main_process, file=sys.stderr
    )
    log_path = out / "train_log.jsonl"
    started = time.perf_counter()
    seen = 0
    for step in range(start, end):
        lr = learning_rate_at(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = paired_stream(len(train_examples), config.seed, step, config.batch_size)
        labels = (
            sampled_labels(targets[idx], config.seed, step, np.arange(config.batch_size)) if config.objective == "sft" else None
        )
        step_loss, finite_grads = _gradients(
            accelerator, model, params, enc, [train_ids[i] for i in idx], targets[idx], labels, config, accum
        )
        if not (math.isfinite(step_loss) and finite_grads):
            bar.close()
            optimizer.zero_grad(set_to_none=True)
            _stop_non_finite(accelerator, out, step, step_loss, lr)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seen += config.batch_size
        done = step + 1
        entry = {"step": done, "loss": step_loss, "lr": lr}
        if config.eval_every and done % config.eval_every == 0 and done < config.steps:
            entry["eval"] = run_eval(f"step {done}")
        history.append(entry)
        if accelerator.is_main_process:
            if done % config.log_every == 0 or "eval" in entry:
                with log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry) + "\n")
            bar.set_postfix(loss=f"{step_loss:.4f}")
            bar.update(1)
        if (config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.steps) or (
            done == end and done < config.steps
        ):
            _save_checkpoint(accelerator, out, done, history, config, evals)
    bar.close()
    seconds = time.perf_counter() - started
    finished = end >= config.steps
    summary = _summary(
        config, accelerator, model_path, accum, len(train_examples), len(heldout_examples), end, finished, history, seconds, seen
    )
    if finished:
        evals["end"] = run_eval("end")
        summary["evals"] = evals
        _save_model(accelerator, model, tokenizer, config, out / "model")
        summary["saved_model"] = str(out / "model")
    else:
        summary["evals"] = evals
        summary["resume_with"] = f"the same command: training continues from {out / 'checkpoints'} at step {end}"
    if accelerator.is_main_process:
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _summary(
    config: TrainConfig,
    accelerator: Any,
    model_path: str,
    accum: int,
    n_train: int,
    n_heldout: int,
    end: int,
    finished: bool,
    history: list[dict],
    seconds: float,
    seen: int,
) -> dict[str, Any]:
    """What ``train_summary.json`` says of a session (its evaluations and the saved model are added by ``train``)."""
    return {
        "config": cfg.to_dict(config),
        "model_path": model_path,
        "world_size": accelerator.num_processes,
        "process_index": accelerator.process_index,
        "gradient_accumulation": accum,
        "device": str(accelerator.device),
        "distributed_type": str(accelerator.distributed_type),
        "n_train_examples": n_train,
        "n_heldout_examples": n_heldout,
        "steps_done": end,
        "finished": finished,
        "final_loss": history[-1]["loss"] if history else None,
        "seconds_this_session": round(seconds, 2),
        "examples_per_second_this_session": round(seen / seconds, 3) if seconds > 0 and seen else None,
        "seeds": {"data_order": config.seed, "torch": config.seed},
    }


def _resume(accelerator: Any, out: Path, config: TrainConfig, log) -> tuple[int, list[dict], dict | None]:
    """(first step, history so far, the checkpoint's state or None): the last checkpoint loaded when ``resume`` finds
    one written with this config (its later log lines cut), else the folder's stale run files removed."""
    start = 0
    history: list[dict] = []
    state: dict | None = None
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    checkpoints = _checkpoints(out) if config.resume else []
    if checkpoints:
        state = read_json(
            checkpoints[-1] / "trainer_state.json",
            lambda exc: (
                f"{checkpoints[-1] / 'trainer_state.json'}: cannot be read ({exc}); remove the damaged checkpoint or set resume: false"
            ),
        )
        if state.get("config_fingerprint") != _fingerprint(config):
            raise UserError(
                f"{checkpoints[-1]}: was written with a different config (model, data, batch, objective or seed); "
                "use a new 'out' folder or set resume: false"
            )
        lora_plain = config.method == "lora" and accelerator.distributed_type.name not in ("DEEPSPEED", "FSDP")
        accelerator.load_state(str(checkpoints[-1]), **({"strict": False} if lora_plain else {}))
        start = int(state["step"])
        history = [h for h in state.get("history", []) if int(h["step"]) <= start]
        if accelerator.is_main_process:
            _truncate_log(out / "train_log.jsonl", start)  # steps after the checkpoint are redone: no duplicate lines
        log(f"ue control train: resumed from {checkpoints[-1]} at step {start}")
    elif accelerator.is_main_process:
        for stale in (out / "checkpoints", out / "train_log.jsonl", out / "train_summary.json"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
    accelerator.wait_for_everyone()
    return start, history, state


def _gradients(
    accelerator: Any,
    model: Any,
    params: list,
    enc: Any,
    batch_ids: list,
    batch_targets: np.ndarray,
    labels: np.ndarray | None,
    config: TrainConfig,
    accum: int,
) -> tuple[float, bool]:
    """One optimizer step's gradients, accumulated over ``accum`` micro-batches of this process's share of the
    step's examples (gradients clipped to ``max_grad_norm``): (the step's mean loss over all processes, whether
    every gradient is finite)."""
    import torch

    world, rank, micro = accelerator.num_processes, accelerator.process_index, config.micro_batch_size
    local_sum = torch.zeros(1, dtype=torch.float64, device=accelerator.device)
    for g in range(accum):
        lo = (g * world + rank) * micro
        rows = np.arange(lo, lo + micro)
        batch = [batch_ids[i] for i in rows]
        sync = g == accum - 1
        ctx = accelerator.no_sync(model) if not sync and world > 1 else contextlib.nullcontext()
        with ctx:
            with accelerator.autocast():
                per = _batch_loss(
                    model,
                    enc,
                    batch,
                    batch_targets[rows],
                    None if labels is None else labels[rows],
                    config.objective,
                    accelerator.device,
                )
            loss = per.sum() * world / config.batch_size
            accelerator.backward(loss)
        local_sum += per.detach().double().sum()
    step_loss = float(accelerator.reduce(local_sum, reduction="sum")) / config.batch_size
    if config.max_grad_norm:
        norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        finite_grads = bool(torch.isfinite(torch.as_tensor(norm)).all())
    else:
        finite_grads = all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None)
    return step_loss, finite_grads


def check_out_folder(out: Path, config: TrainConfig) -> None:
    """Refuse an output folder that already holds a finished run, or an unfinished one that cannot be resumed
    exactly (no checkpoint); ``resume: false`` starts such a folder again from scratch."""
    summary = out / "train_summary.json"
    if summary.is_file() and (out / "model").is_dir():
        try:
            done = json.loads(summary.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            done = {}
        if done.get("finished"):
            raise UserError(
                f"{out} already holds a finished training run ({done.get('steps_done')} steps; model in {out / 'model'}); "
                "nothing to do — give a new 'out' folder to train again"
            )
    if config.resume and not _checkpoints(out) and (out / "train_log.jsonl").is_file():
        raise UserError(
            f"{out} holds an unfinished run with no checkpoint to resume from; set resume: false to start it again "
            "from scratch (its log is replaced), or give a new 'out' folder"
        )


def _truncate_log(path: Path, step: int) -> None:
    """Keep the lines of ``train_log.jsonl`` up to ``step`` (a resumed run writes the later ones again)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line)["step"]) <= step:
                keep.append(line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            break
    path.write_text("".join(keep), encoding="utf-8")


def _adapter_only_checkpoints(accelerator, model) -> None:
    """LoRA: checkpoints hold the trainable (adapter) weights, the optimizer and the RNG states, not the frozen
    base model; they are loaded with ``strict=False`` over the base weights the run starts from."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}

    def keep_adapter(models, weights, output_dir) -> None:
        for k, w in enumerate(weights):
            weights[k] = {n: v for n, v in w.items() if n in trainable}

    accelerator.register_save_state_pre_hook(keep_adapter)


def _stop_non_finite(accelerator, out: Path, step: int, loss: float, lr: float) -> None:
    """The loss (or its gradient) became non-finite at ``step`` (0-based: the weights hold ``step`` updates): those
    weights are bad, so a checkpoint of them goes, the model is not saved, and the newest checkpoint that still
    gave a finite loss is named. Raises ``UserError``."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(out / "checkpoints" / f"step-{step}", ignore_errors=True)
    accelerator.wait_for_everyone()
    good = [p for p in _checkpoints(out) if int(p.name.split("-")[1]) < step]
    kept = f"the last good checkpoint, {good[-1]}, is kept" if good else "no checkpoint was saved before it"
    raise UserError(
        f"training stopped at step {step + 1}: the loss became non-finite ({loss}) at learning rate {lr:g}; no model was "
        f"saved and {kept} — lower learning_rate (or set max_grad_norm) and train again"
    )


def _fingerprint(config: TrainConfig) -> str:
    import hashlib

    keys = (
        "run",
        "model",
        "method",
        "objective",
        "steps",
        "batch_size",
        "learning_rate",
        "weight_decay",
        "warmup_steps",
        "seed",
        "lora_r",
        "lora_alpha",
        "lora_target_modules",
        "system_message",
    )
    return hashlib.sha1(json.dumps([getattr(config, k) for k in keys], default=str).encode()).hexdigest()[:16]


def _save_checkpoint(accelerator, out: Path, step: int, history: list, config: TrainConfig, evals: dict) -> None:
    path = out / "checkpoints" / f"step-{step}"
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        state = {
            "step": step,
            "history": history,
            "config_fingerprint": _fingerprint(config),
            "evals": {"start": evals.get("start")},
        }
        (path / "trainer_state.json").write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        for old in _checkpoints(out)[: -config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _save_model(accelerator, model, tokenizer, config: TrainConfig, folder: Path) -> None:
    """A plain HF folder: LoRA adapters merged into the base weights, full state gathered from any sharding."""
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)  # gathers DeepSpeed/FSDP shards; on every process
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        if config.method == "lora":
            if accelerator.distributed_type.name in ("DEEPSPEED", "FSDP"):
                unwrapped.load_state_dict(state)  # the gathered full weights, into the unsharded module
            unwrapped = unwrapped.merge_and_unload()
            unwrapped.save_pretrained(str(folder), safe_serialization=True)
        else:
            unwrapped.save_pretrained(str(folder), state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(str(folder))
        (folder / "ue_control.json").write_text(
            json.dumps(
                {
                    "trained_from": config.model,
                    "run": config.run,
                    "method": config.method,
                    "objective": config.objective,
                    "steps": config.steps,
                    "seed": config.seed,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    accelerator.wait_for_everyone()


# ----------------------------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML or JSON config (fields: see docs/control.md or ue_control/configs/train.yaml)")
    p.add_argument("--run", help="assemble run folder (overrides the config)")
    p.add_argument("--out", help="output folder (overrides the config)")
    p.add_argument("--model", help="model to train (overrides the config; 'embedded' = SmolLM2-135M-Instruct)")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override any config field, e.g. --set steps=40"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``accelerate launch -m ue_control.train --config FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m ue_control.train",
        description="Fine-tune a model toward a citizen assembly's preferences (run under accelerate launch for many processes).",
        epilog="example:\n  accelerate launch --num_processes 2 -m ue_control.train --config train.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.set, run=args.run, out=args.out, model=args.model)
        summary = train(config, log=lambda m: print(m, file=sys.stderr))
    except UserError as exc:
        print(f"ue: error: {exc}", file=sys.stderr)
        return 2
    if summary["finished"] and summary["process_index"] == 0:
        print(f"trained model saved to {summary['saved_model']} (final loss {summary['final_loss']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
