"""Reading hidden states for the ``representations`` experiment on the embedded model (CPU): ue's reader (the
prompt stem shared by every outcome run once and cached, each sequence cut after the outcome's last token, the
transformer body only) against the plain way (every whole prompt through the causal LM with
``output_hidden_states``), on the same outcomes, side by side in one process. Prints wall and CPU seconds per
outcome (three readings each: as Option A, as Option B, bare), the ratio, the tokens each way runs, and the
extrapolation to the 570 outcomes of ``core``. CPU seconds are the figure to trust on a shared machine: wall time
there depends on everyone else's load (the load average is printed).

Run:  python benchmarks/representations_speed.py [--outcomes 60] [--batch-size 16] [--threads N] [--dtype auto]
"""

from __future__ import annotations

import argparse
import os
import time

for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def plain(model, tok, items, batch_size: int) -> int:
    """Every whole prompt through the causal LM (logits included), states of the outcome's span pooled; returns
    the tokens run."""
    import torch

    from ue_tasks.hidden_states import _encode

    tokens = 0
    rows = []
    for it in items:
        enc = tok(it.text, add_special_tokens=it.special, return_offsets_mapping=True)
        rows.append(enc["input_ids"])
        _encode(tok, it)
    pad = tok.pad_token_id or 0
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            width = max(len(r) for r in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            for k, r in enumerate(batch):
                ids[k, : len(r)] = torch.tensor(r)
            tokens += ids.numel()
            model(input_ids=ids, output_hidden_states=True)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outcomes", type=int, default=60, help="outcomes of core to read (default 60)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 where native), float32, bfloat16")
    args = parser.parse_args()

    import torch

    from ue_tasks import hidden_states as hs
    from ue_tasks import model as embedded
    from ue_tasks.outcomes import load_outcomes

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = str(embedded.prepare())
    model, tok, dtype = hs.load_model(folder, args.dtype)
    core = load_outcomes("core")
    n = min(args.outcomes, len(core))
    ids, texts = core.ids[:n], core.texts[:n]
    partners = hs.draw_partners(n, 0)
    print(
        f"{n} outcomes of core, {dtype} ({'native' if hs.bf16_supported() else 'no native'} bf16 on this CPU), "
        f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    hs.read_states(model, tok, [hs.bare(t) for t in texts[:4]], batch_size=4)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    features = hs.outcome_features(model, tok, ids, texts, partners, batch_size=args.batch_size)
    ue_wall, ue_cpu = time.perf_counter() - wall, time.process_time() - cpu

    items = [hs.place(tok, texts[k], texts[partners[k]], pos) for pos in ("A", "B") for k in range(n)] + [
        hs.bare(t) for t in texts
    ]
    ue_tokens = 0
    groups: dict[tuple, list[int]] = {}
    for it in items:
        row, first, last = hs._encode(tok, it)
        groups.setdefault(tuple(row[:first]), []).append(last - first + 1)
    ue_tokens = sum(len(p) for p in groups if p) + sum(sum(v) for v in groups.values())
    wall, cpu = time.perf_counter(), time.process_time()
    plain_tokens = plain(model, tok, items, args.batch_size)
    plain_wall, plain_cpu = time.perf_counter() - wall, time.process_time() - cpu

    print(f"{'':<34}{'wall s/outcome':>16}{'CPU s/outcome':>15}{'tokens':>9}")
    print(f"{'ue reader (stem cached, cut)':<34}{ue_wall / n:>16.3f}{ue_cpu / n:>15.3f}{ue_tokens:>9}")
    print(f"{'whole prompts through the LM':<34}{plain_wall / n:>16.3f}{plain_cpu / n:>15.3f}{plain_tokens:>9}")
    print(
        f"ratio (plain / ue): wall {plain_wall / ue_wall:.2f}×, CPU {plain_cpu / ue_cpu:.2f}×, tokens {plain_tokens / ue_tokens:.2f}×"
    )
    print(
        f"570 outcomes of core with ue's reader: about {570 * ue_cpu / n:.0f} CPU s "
        f"({570 * ue_wall / n:.0f} s wall at this load); features {features.n_layers} layers × {features.hidden_size}"
    )


if __name__ == "__main__":
    main()
