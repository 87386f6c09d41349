"""A simulated citizen assembly's preferences (Mazeika et al. 2025, "Utility control"; docs/method.md §9):
sample citizens, have a simulator model role-play each one on the same forced-choice queries as the model
under study (through the lm-eval plugin, log-prob mode, both orderings), aggregate their answers per pair, fit
the assembly's Thurstonian utilities, and measure political bias for the assembly and each partisan slice.

The outcome set is split (seeded, stratified by the left/right coding) into *training outcomes* and
*held-out outcomes*; each part gets its own comparison plan, so pairs of held-out outcomes never reach the
trainer. Run folder::

    assemble_config.json        the configuration, written first: a rerun with another one is refused
    assemble.json               config, seeds, citizens per party, timings
    citizens.jsonl              one citizen per line: id, attributes, source, persona
    outcomes_train.jsonl        training outcomes      outcomes_heldout.jsonl   held-out outcomes
    citizen_records.jsonl       every citizen's ue.preference/1 records (appended as each citizen finishes)
    assembly_records.jsonl      the assembly's records (one per pair × ordering, order-free target)
    assembly/{train,heldout}/   fit folders (utilities.csv, metrics.json), like `ue fit`
    slices/<party>/{train,heldout}/  the same for each partisan slice
    bias.json                   bias measures of the assembly and each slice

Re-running the same command on the same folder skips the citizens whose records are already there, so an
interrupted run loses nothing. A rerun with another configuration (other ``n_citizens``, seed, outcome split...)
is refused before anything is written, as ``ue run`` refuses a run folder of other options: two assemblies'
citizens or outcome splits never mix in one folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ue_control import bias
from ue_control import config as cfg
from ue_control.citizens import Citizen, party_slice, read_microdata, sample_citizens, write_citizens
from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json

PARTS = ("train", "heldout")
CONFIG_FILE = "assemble_config.json"
# fields that say how the assembly is computed, not what it is: a rerun may change them
RUNTIME_FIELDS = ("out", "batch_size", "device")
# files of an assembly folder: one of them without a configuration is an assembly of unknown configuration
ASSEMBLY_FILES = (
    "citizens.jsonl",
    "citizen_records.jsonl",
    "outcomes_train.jsonl",
    "outcomes_heldout.jsonl",
    "assembly_records.jsonl",
    "bias.json",
)


@dataclass
class AssembleConfig:
    out: str
    outcomes: str = "policies"  # "policies" (shipped, left/right coded), a set name or a file with politics:left/right tags
    simulator: str = "embedded"  # the model that role-plays citizens, or "simulate" (known utilities, ue_control.simulated)
    utility_model: dict | None = None  # simulator: simulate — parameters of ue_control.simulated.UtilityModel
    backend: str = "hf"  # any lm-eval model backend
    model_args: dict | None = None  # extra lm-eval model arguments
    batch_size: int = 16
    device: str = "cpu"
    n_citizens: int = 8
    citizens_csv: str | None = None  # microdata, one row per person (real joint distribution)
    marginals: str | None = None  # a marginals JSON in the format of ue_control/data/us_marginals.json
    republican_fix: bool = True  # add the paper's "When your Political Party is Republican, ..." sentence
    aggregation: Literal["mean", "majority"] = "mean"
    heldout_outcome_fraction: float = 0.25
    budget: int | None = None  # training pairs per part's plan (default ⌊2·N·log2 N⌋ of the part)
    degree: int = 2
    holdout_fraction: float = 0.2  # pairs held out inside each part's plan (coherence of the fits)
    seed: int = 0
    task: str = "utility_mini"  # the lm-eval log-prob task; the outcomes come from the plan metadata
    prefix_cache: bool = True  # hf backend: reuse the key/value cache of each persona's shared prompt stem

    def check(self, where: str) -> None:
        if self.n_citizens < 1:
            raise UserError(f"{where}: field 'n_citizens' must be at least 1, got {self.n_citizens}")
        if not 0 < self.heldout_outcome_fraction < 1:
            raise UserError(
                f"{where}: field 'heldout_outcome_fraction' must be between 0 and 1, got {self.heldout_outcome_fraction}"
            )
        if not 0 <= self.holdout_fraction < 1:
            raise UserError(f"{where}: field 'holdout_fraction' must be in [0, 1), got {self.holdout_fraction}")
        if self.batch_size < 1:
            raise UserError(f"{where}: field 'batch_size' must be at least 1, got {self.batch_size}")
        if self.utility_model is not None:
            if self.simulator != "simulate":
                raise UserError(f"{where}: field 'utility_model' applies only to simulator: simulate")
            self.simulated_model()  # checks the fields

    def simulated_model(self):
        from ue_control.simulated import UtilityModel

        known = {f.name for f in dataclasses.fields(UtilityModel)}
        given = dict(self.utility_model or {})
        bad = sorted(set(given) - known)
        if bad:
            raise UserError(f"utility_model: unknown field {bad[0]!r}; the fields are {', '.join(sorted(known))}")
        given.setdefault("model_seed", self.seed)
        return cfg.build(UtilityModel, given, "utility_model")

    def plan(self) -> dict[str, Any]:
        out = {"seed": self.seed, "degree": self.degree, "holdout_fraction": self.holdout_fraction}
        if self.budget is not None:
            out["budget"] = self.budget
        return out


def policies_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("ue_control") / "data" / "policies.jsonl"))


def load_policy_outcomes(spec: str):
    from ue_tasks.outcomes import load_outcomes

    return load_outcomes(str(policies_path()) if spec == "policies" else spec)


def split_outcomes(outcomes: list, fraction: float, seed: int) -> tuple[list, list]:
    """(training, held-out) outcomes: within each coding stratum (left, right, uncoded) a seeded share
    ``fraction`` (rounded, at least 1 of a stratum of ≥ 2) is held out; file order is kept."""
    rng = np.random.default_rng([seed, 7])
    coding = bias.coding_from_outcomes(outcomes)
    held: set[str] = set()
    for stratum in ("left", "right", None):
        ids = [o.id for o in outcomes if coding.get(o.id) == stratum]
        if len(ids) < 2:
            continue
        k = min(len(ids) - 1, max(1, int(round(fraction * len(ids)))))
        held.update(ids[i] for i in rng.choice(len(ids), size=k, replace=False))
    train = [o for o in outcomes if o.id not in held]
    heldout = [o for o in outcomes if o.id in held]
    return train, heldout


# ----------------------------------------------------------------------------------------------------------
def citizen_pair_probabilities(records: list[dict]) -> dict[str, dict[tuple[str, str], float]]:
    """``{citizen: {(a, b): P(a ≻ b)}}`` pooled over each citizen's two orderings."""
    by: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by[r["citizen"]].append(r)
    return {c: bias.pair_preferences(rs) for c, rs in by.items()}


def aggregate_assembly(citizen_records: list[dict], method: str = "mean", **extra: Any) -> list[dict]:
    """The assembly's records: one per (pair, ordering) query of the citizens' plan.

    ``mean``: P(a ≻ b) = mean over citizens of each citizen's P(a ≻ b) (both orderings pooled); log-prob mode.
    ``majority``: each citizen casts one vote for the outcome they prefer (P > 0.5; an exact 0.5 casts none);
    the records carry the vote counts in sample mode, so P(a ≻ b) is the vote share.
    Both give the same target for both orderings of a pair: the simulator's order bias is not taught.
    """
    if method not in ("mean", "majority"):
        raise UserError(f"unknown aggregation {method!r}; use mean or majority")
    per_citizen = citizen_pair_probabilities(citizen_records)
    if not per_citizen:
        raise UserError("no citizen records to aggregate; run the simulation first")
    pooled: dict[tuple[str, str], list[float]] = defaultdict(list)
    for probs in per_citizen.values():
        for key, p in probs.items():
            pooled[key].append(p)
    seen: set[tuple[str, str, str]] = set()
    out = []
    for r in citizen_records:
        key = (r["a_id"], r["b_id"], r["shown_first"])
        if key in seen:
            continue
        seen.add(key)
        a, b = r["a_id"], r["b_id"]
        pair, flip = ((a, b), False) if a < b else ((b, a), True)
        ps = pooled[pair]
        fields = {
            k: r[k] for k in ("outcome_set", "a_id", "b_id", "a_text", "b_text", "shown_first", "template", "split", "round")
        }
        fields.update({"a_category": r.get("a_category"), "b_category": r.get("b_category"), "seed": r.get("seed")})
        if method == "mean":
            p = float(np.mean(ps))
            p_a = 1.0 - p if flip else p
            rec = {**fields, "mode": "logprob", "p_a": p_a, "n_a": 0, "n_b": 0, "n_unparsed": 0, "label_mass": None}
        else:
            votes_a = sum(1 for p in ps if (1.0 - p if flip else p) > 0.5)
            votes_b = sum(1 for p in ps if (1.0 - p if flip else p) < 0.5)
            usable = votes_a + votes_b
            rec = {
                **fields,
                "mode": "sample",
                "p_a": votes_a / usable if usable else None,
                "n_a": votes_a,
                "n_b": votes_b,
                "n_unparsed": len(ps) - usable,
                "label_mass": None,
            }
        rec.update({"n_citizens": len(ps), "aggregation": method, **extra})
        out.append(rec)
    from ue_metrics.records import make_record

    return [make_record(**r) for r in out]


def fit_or_none(records: list[dict], out: Path | None = None, seed: int = 0) -> tuple[dict[str, float] | None, dict]:
    """(utilities by id, fit metrics) — or (None, {"error": why}) when the records cannot be fitted, so that
    one unfit slice never discards the rest of a run."""
    from ue_metrics.fitting import fit_records

    try:
        result = fit_records(records, per_component=False, seed=seed)
    except UserError as exc:
        return None, {"error": str(exc)}
    if out is not None:
        result.write(out)
    utilities = {oid: float(u) for oid, u in zip(result.data.ids, result.model.utilities_)}
    return utilities, result.metrics


def measures(records: list[dict], coding: dict[str, str], out: Path | None, seed: int = 0) -> dict[str, Any]:
    """Bias measures and coherence of one set of records (a model, the assembly, a slice)."""
    utilities, metrics = fit_or_none(records, out, seed)
    prefs = bias.pair_preferences(records)
    row: dict[str, Any] = bias.bias_measures(utilities, prefs, coding)
    row["holdout_accuracy"] = metrics.get("holdout_accuracy", float("nan"))
    if "error" in metrics:
        row["fit_error"] = metrics["error"]
    return row


# ----------------------------------------------------------------------------------------------------------
def load_config(path: str | Path | None, overrides: list[str] | None = None, **given: Any) -> AssembleConfig:
    return cfg.load(AssembleConfig, path, overrides, **given)


def _done_citizens(path: Path) -> dict[tuple[str, str], int]:
    """{(citizen, part): records} already in ``citizen_records.jsonl``; a torn last line is dropped."""
    done: dict[tuple[str, str], int] = defaultdict(int)
    if not path.is_file():
        return done
    good = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                break
            good.append(line if line.endswith("\n") else line + "\n")
            done[(r["citizen"], r["outcome_split"])] += 1
    path.write_text("".join(good), encoding="utf-8")
    return done


def _what_it_is(config: AssembleConfig) -> dict[str, Any]:
    return json.loads(json.dumps({k: v for k, v in cfg.to_dict(config).items() if k not in RUNTIME_FIELDS}))


def check_assembly_folder(out: Path, config: AssembleConfig) -> bool:
    """Refuse (one sentence) an ``out`` folder that holds an assembly of another configuration, or assembly files
    without a readable configuration; nothing is written. True when the folder already holds this configuration."""
    path = out / CONFIG_FILE
    theirs: Any = None
    if path.is_file():
        theirs = read_json(
            path,
            lambda exc: (
                f"{path}: cannot be read ({exc}); the assembly folder's configuration is damaged — "
                "restore it or choose a new 'out' folder"
            ),
        )
    elif (out / "assemble.json").is_file():  # a finished assembly of an older ue: its summary holds the config
        try:
            theirs = json.loads((out / "assemble.json").read_text(encoding="utf-8")).get("config")
        except (OSError, ValueError, AttributeError):
            theirs = None
    if theirs is None:
        found = [name for name in ASSEMBLY_FILES if (out / name).exists()]
        if found:
            raise UserError(
                f"{out} holds an assembly ({found[0]}) but no readable configuration ({CONFIG_FILE}); its "
                "citizens and outcome split cannot be checked — choose a new 'out' folder"
            )
        return False
    if not isinstance(theirs, dict):
        raise UserError(f"{path}: not a configuration (a JSON object of fields); restore it or choose a new 'out' folder")
    mine = _what_it_is(config)
    defaults = _what_it_is(AssembleConfig(out=config.out))
    diff = sorted(k for k in mine if theirs.get(k, defaults.get(k)) != mine[k])
    if diff:
        shown = ", ".join(f"{k}: {theirs.get(k, defaults.get(k))!r} → {mine[k]!r}" for k in diff[:3])
        raise UserError(
            f"{out} holds an assembly with another configuration ({shown}); rerun it with the same "
            "configuration to resume it, or choose a new 'out' folder"
        )
    return True


def assemble(config: AssembleConfig, log=print) -> dict[str, Any]:
    """Run the assembly; returns the summary written to ``OUT/assemble.json``."""
    from ue_control.elicit import elicit, load_lm, write_outcomes
    from ue_control.elicit import resolve_model as _resolve
    from ue_control.simulated import SIMULATE
    from ue_metrics import records as rec
    from ue_tasks.plan import PlanSpec
    from ue_tasks.queries import build_queries, run_id_for

    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; give 'out' a folder path")
    same = check_assembly_folder(out, config)  # before anything is written (the outcome split included)
    oset = load_policy_outcomes(config.outcomes)
    coding = bias.coding_from_outcomes(oset.outcomes)
    if not any(v == "left" for v in coding.values()) or not any(v == "right" for v in coding.values()):
        raise UserError(
            f"outcome set {config.outcomes!r} has no outcomes tagged both 'politics:left' and 'politics:right'; "
            "tag them (JSONL 'tags' field) or use the shipped set 'policies'"
        )
    train_o, held_o = split_outcomes(oset.outcomes, config.heldout_outcome_fraction, config.seed)
    if len(train_o) < 2 or len(held_o) < 2:
        raise UserError(
            f"{len(oset)} outcomes split into {len(train_o)} training and {len(held_o)} held-out outcomes; each part needs 2 or more"
        )
    part_outcomes = {"train": train_o, "heldout": held_o}
    if not same:
        from ue_metrics.jsonl import write_json

        write_json(out / CONFIG_FILE, _what_it_is(config))
    files = {
        "train": write_outcomes(train_o, out / "outcomes_train.jsonl"),
        "heldout": write_outcomes(held_o, out / "outcomes_heldout.jsonl"),
    }
    plans = {part: connected_plan(str(f), config.plan(), part, log) for part, f in files.items()}
    queries = {part: build_queries(str(f), PlanSpec(**plans[part])) for part, f in files.items()}
    n_docs = {part: len(q) for part, q in queries.items()}
    csv_file, n = config.citizens_csv, config.n_citizens
    citizens = read_microdata(csv_file, n, config.seed) if csv_file else sample_citizens(n, config.seed, config.marginals)
    write_citizens(citizens, out / "citizens.jsonl", config.republican_fix)

    started = time.perf_counter()
    crec_path = out / "citizen_records.jsonl"
    done = _done_citizens(crec_path)
    todo = [(c, part) for c in citizens for part in PARTS if done.get((c.id, part), 0) != n_docs[part]]
    if any(done.get((c.id, p), 0) not in (0, n_docs[p]) for c, p in todo):
        raise UserError(f"{crec_path}: holds partial records of a citizen from a different config; use a new 'out' folder")
    how = (
        "known utilities (ue_control.simulated)"
        if config.simulator == SIMULATE
        else f"{config.simulator} via lm-eval ({config.backend})"
    )
    log(
        f"ue control assemble: {len(citizens)} citizens × ({n_docs['train']} + {n_docs['heldout']}) prompts, "
        f"{len(todo)} citizen-parts to simulate with {how}"
    )
    by_citizen: dict[str, list[str]] = defaultdict(list)
    for c, part in todo:
        by_citizen[c.id].append(part)
    if todo and config.simulator == SIMULATE:
        _ask_simulated(config, [c for c in citizens if c.id in by_citizen], by_citizen, part_outcomes, queries, crec_path)
    elif todo:
        from tqdm.auto import tqdm

        from ue_tasks.model_identity import from_lm_eval

        # the dtype the simulator is loaded in (float32 unless model_args say otherwise), so the records carry it
        loaded = {"dtype": "float32"} if config.backend in ("hf", "hf-auto", "huggingface") else {}
        model_args = {"pretrained": _resolve(config.simulator), **loaded, **(config.model_args or {})}
        ident = from_lm_eval(config.backend, model_args, chat_template=True).record_fields()
        # the simulator is loaded once for the whole assembly; with the prefix cache only its prompt stem changes
        lm = (
            load_lm(config.simulator, config.backend, config.model_args, config.batch_size, config.device)
            if not (config.prefix_cache and config.backend == "hf")
            else None
        )
        for citizen in tqdm([c for c in citizens if c.id in by_citizen], desc="citizens", unit="citizen", file=sys.stderr):
            persona = citizen.persona(config.republican_fix)
            lm = _prefix_cached_lm(config, lm)
            for part in by_citizen[citizen.id]:
                records = elicit(
                    lm,
                    str(files[part]),
                    plans[part],
                    persona,
                    task=config.task,
                    model_name=f"{ident['model']} as {citizen.id}",
                    run_id=run_id_for("assembly", config.simulator, citizen.id, part, config.seed),
                    citizen=citizen.id,
                    party=citizen.party,
                    outcome_split=part,
                    role="citizen",
                    **{k: v for k, v in ident.items() if k != "model"},
                )
                rec.write(records, crec_path, append=True)  # each citizen's answers are kept as soon as they exist
        del lm
    sim_seconds = time.perf_counter() - started
    citizen_records = rec.read(crec_path)
    known = {c.id for c in citizens}
    citizen_records = [r for r in citizen_records if r["citizen"] in known]
    summary = summarise(citizen_records, citizens, coding, out, config)
    summary.update(
        {
            "config": cfg.to_dict(config),
            "seeds": {"citizens": config.seed, "outcome_split": [config.seed, 7], "plan": config.seed},
            "n_train_outcomes": len(train_o),
            "n_heldout_outcomes": len(held_o),
            "prompts_per_citizen": n_docs,
            "plans": plans,
            "simulation_seconds": round(sim_seconds, 1),
        }
    )
    if config.simulator == SIMULATE:
        from ue_control.simulated import assembly_truth

        umodel = config.simulated_model()
        summary["utility_model"] = umodel.to_dict()
        summary["true_utilities"] = {part: assembly_truth(citizens, part_outcomes[part], umodel) for part in PARTS}
    (out / "assemble.json").write_text(json.dumps(summary, indent=2, default=_nan_safe) + "\n", encoding="utf-8")
    return summary


def _ask_simulated(
    config: AssembleConfig,
    citizens: list,
    by_citizen: Mapping[str, list[str]],
    part_outcomes: Mapping[str, Any],
    queries: Mapping[str, Any],
    crec_path: Path,
) -> None:
    """The simulated citizens' answers (``ue_control.simulated``: known utilities), appended citizen by citizen."""
    from ue_control.simulated import SIMULATE, citizen_utilities
    from ue_control.simulated import citizen_records as simulated_records
    from ue_metrics import records as rec
    from ue_tasks.queries import run_id_for

    umodel = config.simulated_model()
    for citizen in citizens:
        for part in by_citizen[citizen.id]:
            utilities = citizen_utilities(citizen, part_outcomes[part], umodel)
            records = simulated_records(
                citizen,
                queries[part],
                utilities,
                umodel,
                task="assembly-simulate",
                run_id=run_id_for("assembly", SIMULATE, citizen.id, part, config.seed),
                citizen=citizen.id,
                party=citizen.party,
                outcome_split=part,
                role="citizen",
            )
            rec.write(records, crec_path, append=True)


def _prefix_cached_lm(config: AssembleConfig, lm: Any = None):
    """lm-eval's ``ue-hf`` model (stem cache: the key/value cache of the prompts' shared stem, found from the
    requests, so each persona's stem is computed once). ``lm``: the model already loaded for an earlier citizen,
    returned as is — the simulator is loaded once per assembly."""
    from ue_control.elicit import offline, resolve_model
    from ue_tasks.harness.lm_eval.models import UeHFLM

    if lm is not None:
        return lm
    offline()
    kwargs = {"device": config.device, "batch_size": config.batch_size, "dtype": "float32", **(config.model_args or {})}
    return UeHFLM(pretrained=resolve_model(config.simulator), **kwargs)


def connected_plan(outcomes: str, plan: dict[str, Any], part: str, log=print) -> dict[str, Any]:
    """``plan`` with its budget raised, if needed, until the training pairs connect every outcome of the part:
    utilities fitted on separate components share no scale, so they are never compared or averaged."""
    from ue_tasks.plan import PlanSpec, make_plan

    n = sum(1 for _ in open(outcomes, encoding="utf-8") if _.strip())
    plan = dict(plan)
    m = n * (n - 1) // 2
    while True:
        cp = make_plan(n, PlanSpec(**plan))
        pairs = cp.pairs[cp.split == "train"]
        if components(n, pairs) == 1:
            return plan
        budget = int(cp.config["budget"])
        if budget >= m - int((cp.split != "train").sum()):
            raise UserError(
                f"the {part} outcomes' comparison plan cannot connect its {n} outcomes (holdout_fraction "
                f"{plan['holdout_fraction']} leaves too few pairs); lower holdout_fraction"
            )
        new = min(m, max(budget + 1, int(math.ceil(budget * 1.25))))
        log(f"ue control assemble: a budget of {budget} pairs leaves the {n} {part} outcomes in separate groups; raised to {new}")
        plan["budget"] = new


def components(n: int, pairs: np.ndarray) -> int:
    """The number of connected components of the graph on ``n`` nodes with edges ``pairs``."""
    from ue_metrics.graph import n_components

    return n_components(n, pairs)


def summarise(
    citizen_records: list[dict], citizens: list[Citizen], coding: dict[str, str], out: Path, config: AssembleConfig
) -> dict[str, Any]:
    """Aggregate, fit and measure the assembly and its partisan slices; writes records, fits and bias.json."""
    from ue_metrics import records as rec

    assembly_records: list[dict] = []
    for part in PARTS:
        part_records = [r for r in citizen_records if r["outcome_split"] == part]
        assembly_records += aggregate_assembly(
            part_records,
            config.aggregation,
            model="assembly",
            harness="ue_control",
            task="assembly",
            run_id=f"assembly-{config.seed}",
            outcome_split=part,
            role="assembly",
        )
    rec.write(assembly_records, out / "assembly_records.jsonl")
    table: dict[str, dict[str, Any]] = {}
    for part in PARTS:
        table.setdefault("assembly", {})[part] = measures(
            [r for r in assembly_records if r["outcome_split"] == part], coding, out / "assembly" / part, config.seed
        )
    slices: dict[str, list[str]] = defaultdict(list)
    for c in citizens:
        slices[party_slice(c.party)].append(c.id)
    for name, ids in sorted(slices.items()):
        members = set(ids)
        for part in PARTS:
            rs = [r for r in citizen_records if r["outcome_split"] == part and r["citizen"] in members]
            if not rs:
                continue
            agg = aggregate_assembly(
                rs,
                config.aggregation,
                model=f"assembly:{name}",
                harness="ue_control",
                task="assembly",
                run_id=f"assembly-{name}-{config.seed}",
                outcome_split=part,
                role="slice",
            )
            row = measures(agg, coding, out / "slices" / name / part, config.seed)
            row["n_citizens"] = len(ids)
            table.setdefault(f"slice:{name}", {})[part] = row
    (out / "bias.json").write_text(json.dumps(table, indent=2, default=_nan_safe) + "\n", encoding="utf-8")
    return {
        "bias": table,
        "citizens_per_party": {k: len(v) for k, v in sorted(slices.items())},
        "n_citizen_records": len(citizen_records),
        "n_assembly_records": len(assembly_records),
    }


def _nan_safe(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(type(x))


def format_bias_table(table: dict[str, dict[str, Any]], part: str = "heldout") -> str:
    lines = [f"{'who':<24}{'utility gap (L−R)':>19}{'left share':>12}{'pairs':>7}{'holdout acc':>13}"]
    for who, parts in table.items():
        row = parts.get(part)
        if not row:
            continue
        lines.append(
            f"{who:<24}{_f(row['utility_gap']):>19}{_f(row['left_share']):>12}{row['n_left_right_pairs']:>7}{_f(row['holdout_accuracy']):>13}"
        )
    return "\n".join(lines)


def _f(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.3f}" if isinstance(x, float) and x < 0 else f"{x:.3f}"
