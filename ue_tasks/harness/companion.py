"""The companion code's results files (``centerforaisafety/emergent-values``) as ``ue fit`` / ``ue leaderboard``
inputs, with the model name they carry (docs/method.md §3.5).

``results_<model>.json`` (and ``results_utilities_<model>.json``, the published pre-computed utilities) hold
``options`` ([{id, description}]), ``utilities`` ({id: {mean, variance}}), ``metrics`` and ``holdout_metrics``
({log_loss, accuracy}), and — in the full file — ``graph_data`` with every queried pair as an edge
``{option_A, option_B, probability_A, aux_data}`` plus ``holdout_edge_indices``. Each edge becomes one record: the
companion pools both orderings into one probability, so the record is one soft label (``mode`` logprob, ``p_a`` the
edge's probability, shown first ``a``; order-bias metrics cannot be computed on it), in the train split when the
file lists it among ``training_edges`` (else: holdout when its index is in ``holdout_edge_indices``); pseudolabel
edges are no answers and are left out. A file without edges (utilities only) has no records to fit; ``ue leaderboard`` shows its
published utilities and holdout metrics as they are.

The model: ``create_agent_config.model`` when the file has one, else the file name without ``results_`` /
``results_utilities_`` and the default suffix ``_thurstonianactivelearningutilitymodel``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ue_metrics import records as rec
from ue_metrics.errors import UserError

SUFFIX = "_thurstonianactivelearningutilitymodel"
_NAME = re.compile(r"^results_(?:utilities_)?(.+)\.json$")


def claims(path: Path) -> bool:
    """A ``results_*.json`` whose top level has ``options`` (a list) and ``utilities`` (an object)."""
    if not _NAME.match(path.name):
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("options"), list) and isinstance(data.get("utilities"), dict)


def model_name(path: Path, data: dict) -> str:
    agent = data.get("create_agent_config")
    if isinstance(agent, dict) and isinstance(agent.get("model"), str) and agent["model"].strip():
        return agent["model"].strip()
    match = _NAME.match(path.name)
    name = match.group(1) if match else path.stem
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) and len(name) > len(SUFFIX) else name


def load(path: Path) -> tuple[dict, str, dict[str, str]]:
    """(the file's data, its model, option id → text), every field it needs checked (one sentence each)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as a companion results file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("options"), list) or not isinstance(data.get("utilities"), dict):
        raise UserError(f"{path}: not a companion results file (it needs 'options' and 'utilities', docs/method.md §3.5)")
    texts = {}
    for k, o in enumerate(data["options"]):
        if not isinstance(o, dict) or "id" not in o or not isinstance(o.get("description"), str):
            raise UserError(f"{path}: option {k} needs an 'id' and a 'description' text")
        texts[str(o["id"])] = o["description"]
    return data, model_name(Path(path), data), texts


def utilities(path: Path) -> dict[str, float]:
    """Outcome text → published mean utility."""
    data, _, texts = load(path)
    out = {}
    for oid, u in data["utilities"].items():
        mean = u.get("mean") if isinstance(u, dict) else None
        if str(oid) in texts and isinstance(mean, (int, float)) and not isinstance(mean, bool):
            out[texts[str(oid)]] = float(mean)
    return out


def read(path: Path) -> list[dict]:
    """One ``ue.preference/1`` record per edge of ``graph_data`` (none when the file has no edges)."""
    data, model, texts = load(path)
    graph = data.get("graph_data")
    edges = graph.get("edges") if isinstance(graph, dict) else None
    if not isinstance(edges, dict) or not edges:
        return []
    order = list(edges)
    training = graph.get("training_edges")
    train_pairs = {_pair(t) for t in training} if isinstance(training, list) else None
    holdout = {int(k) for k in (graph.get("holdout_edge_indices") or []) if isinstance(k, int) and not isinstance(k, bool)}
    # the same options (texts) are the same outcome set, whichever model's file they come from
    digest = hashlib.sha256(json.dumps(sorted(texts.values())).encode()).hexdigest()[:8]
    outcome_set = f"companion-{len(texts)}-{digest}"
    out = []
    for k, key in enumerate(order):
        e = edges[key]
        where = f"{path}: edge {key}"
        if not isinstance(e, dict):
            raise UserError(f"{where} is not an object")
        a, b = e.get("option_A"), e.get("option_B")
        a_id = str(a.get("id") if isinstance(a, dict) else a)
        b_id = str(b.get("id") if isinstance(b, dict) else b)
        p = e.get("probability_A")
        if a_id not in texts or b_id not in texts:
            raise UserError(f"{where} names an option that is not in the file's 'options'")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise UserError(f"{where}: 'probability_A' must be a number in [0, 1], got {p!r}")
        aux = e.get("aux_data") if isinstance(e.get("aux_data"), dict) else {}
        if aux.get("is_pseudolabel"):
            continue  # a synthetic edge of the companion's pseudolabels, not an answer
        out.append(
            rec.make_record(
                run_id=f"companion-{model}",
                model=model,
                harness="companion",
                task=f"utilities_{outcome_set}",
                outcome_set=outcome_set,
                a_id=a_id,
                b_id=b_id,
                a_text=texts[a_id],
                b_text=texts[b_id],
                shown_first="a",
                mode="logprob",
                template="default",
                p_a=float(p),
                n_a=0,
                n_b=0,
                n_unparsed=0,
                label_mass=1.0,
                split=_split(k, (a_id, b_id), train_pairs, holdout),
                round=0,
                experiment="utilities",
                source=str(path),
            )
        )
    return out


def _pair(value: Any) -> tuple[str, str] | None:
    """An edge as an (id, id) pair: a two-item list, or the companion's key string "(a, b)"."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return str(value[0]), str(value[1])
    if isinstance(value, str):
        parts = [x.strip().strip("'\"") for x in value.strip().strip("()").split(",")]
        if len(parts) == 2:
            return parts[0], parts[1]
    return None


def _split(k: int, pair: tuple[str, str], train_pairs: set | None, holdout: set[int]) -> str:
    """Train when the file lists the edge among its training edges (else: holdout when its index is a holdout index)."""
    if train_pairs is not None:
        return "train" if pair in train_pairs or pair[::-1] in train_pairs else "holdout"
    return "holdout" if k in holdout else "train"


def entry_analysis(path: Path) -> dict[str, Any]:
    """A leaderboard row's analysis of a file with published utilities and no edges: its own metrics, as published."""
    data, model, texts = load(path)
    hold = data.get("holdout_metrics") if isinstance(data.get("holdout_metrics"), dict) else {}
    return {
        "experiment": "utilities",
        "model": model,
        "harness": "companion",
        "n_records": 0,
        "n_outcomes": len(texts),
        "headline": {"holdout_accuracy": hold.get("accuracy"), "holdout_log_loss": hold.get("log_loss")},
        "notes": {
            "source": f"published by the companion code ({Path(path).name}): its utilities and holdout metrics as they are"
        },
        "details": {},
    }
