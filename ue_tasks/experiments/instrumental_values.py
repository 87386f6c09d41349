"""Instrumental values (Mazeika et al. 2025, §4 "instrumental values"; docs/method.md §4.5, §5.4).

Markov processes (start states with probabilities, transitions, terminal states) are rolled out — 100 seeded
rollouts per process, at most 10 steps — and every observed prefix of a rollout becomes an outcome, its states'
observations joined by " -> " ("A town upgrades its water treatment plant. -> The town's tap water stays clean and
safe."). One active-learning run (the paper's 200-pairs-per-round configuration) elicits utilities over the
prefixes; the analysis (``ue_metrics/analyses/instrumental_values.py``) fits, per process, a reward R and a value
V under which the utilities are Bellman-consistent, and reports how far they are from it.

Natural and control. The paper elicits twice: once over the natural processes, once over the same states with
implausible transitions (the control). The prefixes of both are the same sentences — only the transition
probabilities differ — so here one run asks each prefix once, and the analysis fits the Bellman model twice on
the same utilities: with the natural rollouts and with the control's. The difference between the two losses then
isolates the dynamics, without the noise of a second elicitation (and at half the queries).

Data: this project's own 21 processes (``data/markov_processes.json``) and their control
(``data/markov_processes_control.json``: the two starting rows of transitions swapped). The companion's
``markov_processes.json`` is read unchanged as ``--outcomes FILE``, its control with
``--option control=markov_processes_unnatural.json``. Options: ``control`` (a file, ``none``, or ``auto`` = the
shipped control for the shipped processes, none for a user's file), ``rollouts``, ``max_steps``, ``rollout_seed``,
``processes`` (the first k), ``gamma``, ``solver`` (``closed_form`` or the paper's ``adam``).

Each outcome carries, per set (``natural``/``control``), its process, how often it was observed, its observed
successors with their counts and the transition probabilities of its last state.

Simulated responders: ``instrumental`` (terminal outcomes get utilities ~ N(0, 1); every other prefix is worth γ
times the expected utility of its successors under the natural dynamics — Bellman-consistent with zero reward
at the start) and ``random`` (utilities ~ N(0, 1) unrelated to the dynamics), plus a fair ``coin``.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics.analyses.instrumental_values import GAMMA, Options
from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json
from ue_metrics.simulate import Responder, coin_responder, thurstonian_responder
from ue_tasks.experiments import Experiment, register
from ue_tasks.outcomes import Outcome, OutcomeSet
from ue_tasks.plan import PlanSpec

DATA = Path(__file__).with_name("data")
NATURAL = DATA / "markov_processes.json"
CONTROL = DATA / "markov_processes_control.json"
SEPARATOR = " -> "
# the analysis's options (gamma, solver) and the processes' own
OPTIONS = Options.declare(control="auto", rollouts=100, max_steps=10, rollout_seed=0, processes=0)
HEADLINE = (
    "instrumentality_loss",
    "instrumentality_loss_control",
    "instrumentality_gap",
    "instrumentality_loss_random",
    "n_processes",
)


@dataclass(frozen=True)
class Process:
    name: str
    observation: dict[int, str]
    terminal: frozenset[int]
    transitions: dict[int, list[tuple[int, float]]]
    start: list[tuple[int, float]]

    def is_terminal(self, state: int) -> bool:
        return state in self.terminal or not self.transitions.get(state)


def _distribution(rows: Any, where: str, states: set[int]) -> list[tuple[int, float]]:
    if not isinstance(rows, list) or not rows:
        raise UserError(f"{where} must be a non-empty list of [state id, probability] pairs")
    out = []
    for row in rows:
        if not (isinstance(row, (list, tuple)) and len(row) == 2):
            raise UserError(f"{where}: {row!r} is not a [state id, probability] pair")
        sid, p = row
        if isinstance(sid, bool) or not isinstance(sid, int) or sid not in states:
            raise UserError(f"{where}: {sid!r} is not the id of one of the process's states")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1 or not math.isfinite(p):
            raise UserError(f"{where}: probability {p!r} is not a number in [0, 1]")
        out.append((sid, float(p)))
    total = sum(p for _, p in out)
    if abs(total - 1) > 1e-6:
        raise UserError(f"{where}: the probabilities sum to {total:.6g}, not 1")
    return out


def read_processes(path: str | Path) -> list[Process]:
    """Markov processes of a file in the companion's format (docs/method.md §5.4), checked."""
    path = Path(path)
    data = read_json(
        path,
        lambda exc: f"{path}: cannot be read as JSON ({exc}); give a Markov-process file",
        missing=f"{path}: no such file; give a Markov-process file in the format of docs/method.md §5.4",
    )
    items = data.get("MarkovProcesses") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise UserError(f"{path}: expected an object with a non-empty list 'MarkovProcesses' (docs/method.md §5.4)")
    out = []
    for k, item in enumerate(items, 1):
        where = f"{path}: process {k}"
        if not isinstance(item, dict):
            raise UserError(f"{where} is not an object")
        name = str(item.get("name") or f"process {k}")
        states = item.get("states")
        if not isinstance(states, list) or len(states) < 2:
            raise UserError(f"{where} ({name}) needs a list 'states' of at least two states")
        observation, terminal = {}, set()
        for s in states:
            if not isinstance(s, dict) or isinstance(s.get("id"), bool) or not isinstance(s.get("id"), int):
                raise UserError(f"{where} ({name}): every state needs a whole-number 'id'")
            if not isinstance(s.get("observation"), str) or not s["observation"].strip():
                raise UserError(f"{where} ({name}): state {s['id']} has no text 'observation'")
            if s["id"] in observation:
                raise UserError(f"{where} ({name}): state id {s['id']} is used twice")
            observation[s["id"]] = s["observation"].strip()
            if s.get("is_terminal"):
                terminal.add(s["id"])
        ids = set(observation)
        raw = item.get("transitions") or {}
        if not isinstance(raw, dict):
            raise UserError(f"{where} ({name}): 'transitions' must map a state id to its [next id, probability] pairs")
        transitions = {}
        for key, rows in raw.items():
            try:
                sid = int(key)
            except ValueError:
                raise UserError(f"{where} ({name}): transition key {key!r} is not a state id") from None
            if sid not in ids:
                raise UserError(f"{where} ({name}): transitions from unknown state {key!r}")
            transitions[sid] = _distribution(rows, f"{where} ({name}), transitions from state {sid}", ids)
        start = _distribution(item.get("start_state_distribution"), f"{where} ({name}), start_state_distribution", ids)
        out.append(Process(name, observation, frozenset(terminal), transitions, start))
    return out


def rollouts(process: Process, n: int, max_steps: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``n`` rollouts (state paths) from the start distribution until a terminal state or ``max_steps`` states."""
    starts = [s for s, _ in process.start]
    p_start = np.array([p for _, p in process.start])
    out = []
    for _ in range(n):
        path = [starts[int(rng.choice(len(starts), p=p_start))]]
        while len(path) < max_steps and not process.is_terminal(path[-1]):
            rows = process.transitions[path[-1]]
            path.append(rows[int(rng.choice(len(rows), p=np.array([p for _, p in rows])))][0])
        out.append(tuple(path))
    return out


def _int(options: Mapping[str, Any], key: str, low: int) -> int:
    value = options.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"--option {key} must be a whole number of at least {low}, got {value!r}")
    return value


def process_sets(options: Mapping[str, Any]) -> dict[str, list[Process]]:
    """``{"natural": [...], "control": [...]}`` (no ``control`` key when there is none)."""
    given = options.get("outcomes")
    natural = read_processes(given or NATURAL)
    control_opt = str(options.get("control") or "auto")
    if control_opt == "auto":
        control_path: str | Path | None = None if given else CONTROL
    elif control_opt == "none":
        control_path = None
    else:
        control_path = control_opt
    sets = {"natural": natural}
    if control_path is not None:
        sets["control"] = read_processes(control_path)
    limit = _int(options, "processes", 0)
    if limit:
        sets = {k: v[:limit] for k, v in sets.items()}
    return sets


def outcomes(options: Mapping[str, Any]) -> OutcomeSet:
    """Every observed prefix of every process's rollouts (natural and control), in process order, each process's
    prefixes sorted as tuples of state ids; identical sentences are one outcome."""
    sets = process_sets(options)
    n_roll = _int(options, "rollouts", 1)
    max_steps = _int(options, "max_steps", 2)
    seed = options.get("rollout_seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"--option rollout_seed must be a whole number, got {seed!r}")
    width = max(2, len(str(max(len(v) for v in sets.values()) - 1)))
    by_text: dict[str, dict[str, Any]] = {}
    for set_no, (set_name, processes) in enumerate(sets.items()):
        for k, proc in enumerate(processes):
            rng = np.random.default_rng([seed, set_no, k])
            paths = rollouts(proc, n_roll, max_steps, rng)
            observed: Counter = Counter()
            successors: dict[tuple[int, ...], Counter] = {}
            for path in paths:
                for m in range(1, len(path) + 1):
                    observed[path[:m]] += 1
                    if m < len(path):
                        successors.setdefault(path[:m], Counter())[path[: m + 1]] += 1
            key = f"mp{k:0{width}d}"
            for prefix in sorted(observed):
                text = SEPARATOR.join(proc.observation[s] for s in prefix)
                entry = by_text.get(text)
                if entry is None:
                    oid = f"{key}:{'-'.join(map(str, prefix))}"
                    if any(e["id"] == oid for e in by_text.values()):
                        oid = f"{key}{set_name[0]}:{'-'.join(map(str, prefix))}"
                    entry = by_text[text] = {"id": oid, "path": list(prefix), "sets": {}}
                elif set_name in entry["sets"]:
                    raise UserError(
                        f"the {set_name} processes {entry['sets'][set_name]['process_name']!r} and {proc.name!r} share the "
                        f"prefix {text[:80]!r}; give each process its own observations"
                    )
                entry["sets"][set_name] = {
                    "process": k,
                    "process_name": proc.name,
                    "observed": observed[prefix],
                    "terminal": proc.is_terminal(prefix[-1]) or len(prefix) >= max_steps,
                    "successors": {"-".join(map(str, nxt)): c for nxt, c in sorted(successors.get(prefix, {}).items())},
                    "transitions": {str(s): p for s, p in proc.transitions.get(prefix[-1], [])}
                    if not proc.is_terminal(prefix[-1])
                    else {},
                }
    items = []
    ids_by_path: dict[tuple[str, int, tuple[int, ...]], str] = {}
    for entry in by_text.values():
        for set_name, info in entry["sets"].items():
            ids_by_path[(set_name, info["process"], tuple(entry["path"]))] = entry["id"]
    for text, entry in sorted(
        by_text.items(), key=lambda kv: (kv[1]["sets"][next(iter(kv[1]["sets"]))]["process"], kv[1]["path"])
    ):
        sets_attr = {}
        for set_name, info in entry["sets"].items():
            succ = {}
            for path_key, count in info["successors"].items():
                path = tuple(int(x) for x in path_key.split("-"))
                succ[ids_by_path[(set_name, info["process"], path)]] = count
            sets_attr[set_name] = {**info, "successors": succ}
        first = next(iter(entry["sets"].values()))
        items.append(
            Outcome(
                id=entry["id"],
                text=text,
                category=first["process_name"],
                attributes={"kind": "prefix", "path": entry["path"], "sets": sets_attr},
            )
        )
    name = Path(str(options["outcomes"])).stem if options.get("outcomes") else "markov"
    return OutcomeSet(
        name=name + ("+control" if "control" in sets else ""),
        outcomes=items,
        source=f"{options.get('outcomes') or NATURAL} (control: {options.get('control')}; {n_roll} rollouts, seed {seed})",
    )


# ----------------------------------------------------------------------------------------------------------
# simulated responders


def instrumental_agent(outcomes: OutcomeSet, seed: int, gamma: float = GAMMA) -> Responder:
    """Bellman-consistent utilities under the natural dynamics: a terminal prefix's utility is its reward
    (~ N(0, 1), drawn per prefix from the seed), every other prefix is worth γ·Σ P(next)·U(prefix + next) — so
    the start states carry no reward of their own, exactly the model the analysis fits."""
    by_id = {o.id: o for o in outcomes.outcomes}

    def reward(oid: str) -> float:
        return float(np.random.default_rng([seed, zlib.crc32(oid.encode())]).standard_normal())

    memo: dict[str, float] = {}

    def value(oid: str, info: Mapping[str, Any]) -> float:
        if oid in memo:
            return memo[oid]
        if info["terminal"] or not info["transitions"]:
            memo[oid] = reward(oid)
        else:
            total = 0.0
            for state, p in info["transitions"].items():
                nxt = f"{oid}-{state}"
                nxt_info = (by_id[nxt].attributes["sets"].get("natural") if nxt in by_id else None) or {
                    "terminal": True,
                    "transitions": {},
                }
                total += p * value(nxt, nxt_info)
            memo[oid] = gamma * total
        return memo[oid]

    mu = {}
    for o in outcomes.outcomes:
        info = o.attributes["sets"].get("natural") or next(iter(o.attributes["sets"].values()))
        mu[o.id] = value(o.id, info)
    return Responder(
        "instrumental",
        mu,
        {k: 0.1 for k in mu},
        description="Bellman-consistent utilities under the natural dynamics (γ = 0.99, no reward at the start)",
    )


register(
    Experiment(
        name="instrumental_values",
        title="Instrumental values: utilities of Markov-process prefixes against a Bellman-consistent value",
        section="§4.5",
        outcomes=outcomes,
        plan=PlanSpec(kind="active", round_size=200),
        headline=HEADLINE,
        lower_is_better=("instrumentality_loss", "instrumentality_loss_random"),
        responders={
            "instrumental": instrumental_agent,
            "random": lambda o, s: thurstonian_responder(
                o.ids, s, name="random", description="utilities ~ N(0, 1) unrelated to the processes' dynamics"
            ),
            "coin": lambda o, s: coin_responder("coin"),
        },
        options=OPTIONS,
        description="Mean Bellman error of the utilities of process prefixes under the natural transitions and "
        "under implausible ones (the control); a model whose utilities are instrumental has a small natural loss and "
        "a larger control loss.",
    )
)
