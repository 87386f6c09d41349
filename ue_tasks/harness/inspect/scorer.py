"""Inspect side of the forced-choice elicitation (docs/method.md §1, §10): the solver that asks one (pair, ordering)
query, the scorer that turns the model's answer into a preference, and the epoch reducer that pools sampled votes.
The metrics (the experiment's headline numbers from one analysis of all scores) are in
``ue_tasks.harness.inspect.metrics``.

Prompts, plans, parsing and records all come from ``ue_tasks.queries``; this module only translates between
Inspect's objects (``TaskState``, ``Score``, ``SampleScore``) and ``Query``. The pure helpers at the top
(``label_probabilities``, ``combine_values``, ``record_from_value``) are shared with the log reader
``ue_tasks.harness.inspect.reader``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from inspect_ai.model import ModelOutput
from inspect_ai.scorer import Score, Scorer, ScoreReducer, Target, score_reducer, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver

from ue_metrics.errors import UserError
from ue_tasks.queries import UNPARSED_KEPT, Query
from ue_tasks.templates import LABELS

logger = logging.getLogger(__name__)

QUERY_KEY = "ue_query"  # sample metadata: Query.to_dict()
MODE_KEY = "ue_mode"  # sample metadata: "logprob" or "sample"
GENERATION_KEY = "ue_generation"  # sample metadata of a free-form request: Generation.to_dict()
MODEL_KEY = "ue_model"  # score metadata: the identity of the model that answered (ue_tasks.model_identity), taken at eval time
OPTIONS_KEY = "ue_options"  # sample metadata: the experiment options its analysis reads (a utilities run, entity runs)
MODES = ("logprob", "sample")
# Token spellings of a label: byte-level BPE marks a leading space with "Ġ", SentencePiece with "▁"; API
# providers return plain text (" A").
_SPACE_MARKS = "Ġ▁ \t"

try:  # Inspect prints a PrerequisiteError as one message with no traceback
    from inspect_ai._util.error import PrerequisiteError as _Plain
except ImportError:  # pragma: no cover - older or newer Inspect without it
    _Plain = Exception  # type: ignore[misc,assignment]


class InspectUserError(UserError, _Plain):  # type: ignore[misc]
    """A user mistake in an Inspect task's options; Inspect shows the sentence without a traceback."""

    def __init__(self, message: str) -> None:
        UserError.__init__(self, message)
        self.message = message


def exit_2_on_user_errors() -> None:
    """Inspect's command line prints a ``PrerequisiteError``'s message and exits 1; a ue task's bad ``-T`` argument is
    a user mistake, so it exits 2 as every ``ue`` command does. Wraps the exception hook Inspect's command line
    installed (only that one: a program that imports ue's Inspect tasks keeps its own hook), once."""
    hook = sys.excepthook
    if getattr(hook, "_ue_exit_2", False) or getattr(hook, "__module__", None) != "inspect_ai._util.error":
        return

    def handler(exc_type, exc, tb):
        hook(exc_type, exc, tb)  # Inspect's: the message alone, no traceback
        if isinstance(exc, InspectUserError):
            sys.exit(2)

    handler._ue_exit_2 = True  # type: ignore[attr-defined]
    sys.excepthook = handler


exit_2_on_user_errors()


class LogprobsUnavailableError(RuntimeError):
    """The provider returned no log-probabilities, so logprob mode cannot measure P(A) and P(B)."""


def logprobs_missing_message(model: str) -> str:
    return (
        f"the model {model} returned no log-probabilities, so P(A) and P(B) cannot be read in logprob mode; "
        "run the sampled variant instead (e.g. `inspect eval ue/utility_mini_sampled` or `-T mode=sample`)"
    )


# ----------------------------------------------------------------------------------------------------------
# pure helpers (shared with the log reader)


def first_token_alternatives(output: ModelOutput) -> list[tuple[str, float]] | None:
    """(token, logprob) pairs of the first generated token: its top alternatives, or the token alone; None when
    the provider returned no log-probabilities."""
    if not output.choices:
        return None
    logprobs = output.choices[0].logprobs
    if logprobs is None or not logprobs.content:
        return None
    first = logprobs.content[0]
    if first.top_logprobs:
        return [(t.token, t.logprob) for t in first.top_logprobs]
    return [(first.token, first.logprob)]


def label_probabilities(alternatives: Iterable[tuple[str, float]], labels: Sequence[str] = LABELS) -> tuple[float, float]:
    """P("A"), P("B") (or of the query's own ``labels``: "1", "2") summed over the spellings of each label ("A",
    " A", "ĠA", "▁A") among the alternatives."""
    probs = {label: 0.0 for label in labels}
    for token, logprob in alternatives:
        label = token.lstrip(_SPACE_MARKS)
        if label in probs and math.isfinite(logprob):
            probs[label] += math.exp(logprob)
    return probs[labels[0]], probs[labels[1]]


def logprob_value(query: Query, alternatives: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """Score value of one logprob answer; a query whose labels are both absent from the top alternatives
    counts as one unparsed answer (p_a null)."""
    prob_a, prob_b = label_probabilities(alternatives, query.labels)
    if prob_a + prob_b <= 0.0:
        return {"p_a": None, "label_mass": 0.0, "n_a": 0, "n_b": 0, "n_unparsed": 1}
    p_a, mass = query.p_a_from_labels(prob_a, prob_b)
    return {"p_a": p_a, "label_mass": min(mass, 1.0), "n_a": 0, "n_b": 0, "n_unparsed": 0}


def sample_value(query: Query, answers: list[str | None]) -> dict[str, Any]:
    """Score value of sampled answers: votes for outcome a / b and unparsed answers (shared parser)."""
    n_a, n_b, n_u = query.votes(answers)
    exact_a, exact_b = query.exact_votes(answers)
    return {
        "p_a": (n_a / (n_a + n_b)) if n_a + n_b else None,
        "label_mass": None,
        "n_a": n_a,
        "n_b": n_b,
        "n_unparsed": n_u,
        "n_a_exact": exact_a,
        "n_b_exact": exact_b,
        **_flat(query.unanswered(answers)),
    }


def combine_values(values: Sequence[Mapping[str, Any]], mode: str) -> dict[str, Any]:
    """Pool the score values of one query's epochs: votes are summed (sample mode); probabilities are averaged
    over the epochs that produced one (logprob mode, where repeated epochs give the same answer)."""
    n_a = sum(int(v.get("n_a") or 0) for v in values)
    n_b = sum(int(v.get("n_b") or 0) for v in values)
    n_u = sum(int(v.get("n_unparsed") or 0) for v in values)
    if mode == "sample":
        pooled = {
            "p_a": (n_a / (n_a + n_b)) if n_a + n_b else None,
            "label_mass": None,
            "n_a": n_a,
            "n_b": n_b,
            "n_unparsed": n_u,
        }
        if values and all("n_a_exact" in v for v in values):  # strict-scoring counts (absent in older logs)
            pooled.update({k: sum(int(v.get(k) or 0) for v in values) for k in ("n_a_exact", "n_b_exact")})
        pooled.update(_flat(_pooled_unanswered(values)))
        return pooled
    usable = [v for v in values if v.get("p_a") is not None]
    if not usable:
        return {"p_a": None, "label_mass": 0.0, "n_a": 0, "n_b": 0, "n_unparsed": n_u}
    p_a = sum(float(v["p_a"]) for v in usable) / len(usable)
    masses = [float(v["label_mass"]) for v in usable if v.get("label_mass") is not None]
    mass = sum(masses) / len(masses) if masses else None
    return {"p_a": p_a, "label_mass": mass, "n_a": 0, "n_b": 0, "n_unparsed": n_u}


def record_from_value(query: Query, value: Mapping[str, Any], mode: str, **ids: Any) -> dict | None:
    """A ``ue.preference/1`` record for one query's pooled value (``ids``: model, harness, task, run_id and
    extra fields); None for a logprob query with no usable probability (counted as unparsed instead)."""
    if mode == "logprob":
        if value.get("p_a") is None:
            return None
        return query.record(mode="logprob", p_a=float(value["p_a"]), label_mass=value.get("label_mass"), **ids)
    exact = {k: int(value[k]) for k in ("n_a_exact", "n_b_exact") if value.get(k) is not None}
    exact.update(_pooled_unanswered([value]))
    return query.record(
        mode="sample", n_a=int(value["n_a"]), n_b=int(value["n_b"]), n_unparsed=int(value["n_unparsed"]), **exact, **ids
    )


def _pooled_unanswered(values: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The epochs' answers that are not votes, pooled: thinking blocks cut by the budget summed, raw unparsed texts
    joined (at most ``UNPARSED_KEPT``; a score value holds them as JSON text, see ``_flat``)."""
    out: dict[str, Any] = {}
    cut = sum(int(v.get("n_thinking_cut") or 0) for v in values)
    if cut:
        out["n_thinking_cut"] = cut
    texts = [str(t) for v in values for t in _texts(v.get("unparsed_answers"))]
    if texts:
        out["unparsed_answers"] = texts[:UNPARSED_KEPT]
    return out


def _flat(unanswered: dict[str, Any]) -> dict[str, Any]:
    """What the unanswered were, as an Inspect score value holds it: a value's entries are numbers or text, so the
    raw texts travel as one JSON text."""
    if "unparsed_answers" in unanswered:
        unanswered = {**unanswered, "unparsed_answers": json.dumps(list(unanswered["unparsed_answers"]), ensure_ascii=False)}
    return unanswered


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return [str(t) for t in value] if isinstance(value, (list, tuple)) else []


# ----------------------------------------------------------------------------------------------------------
# solver, scorer, reducer


def greedy(model: str) -> dict[str, Any]:
    """Generation arguments for a greedy answer. Inspect's Hugging Face provider samples by default and transformers
    refuses temperature 0 when sampling, so there the answer is sampled from its single most likely token (top_k = 1,
    the same as greedy); every other provider gets temperature 0."""
    return {"top_k": 1} if model.startswith("hf/") else {"temperature": 0.0}


async def free_answer(state: TaskState, generate: Generate) -> TaskState:
    """Ask a free-form request (``GENERATION_KEY`` in the sample's metadata) once, greedily, with its token cap."""
    request = state.metadata[GENERATION_KEY]
    return await generate(state, max_tokens=int(request["max_tokens"]), **greedy(str(state.model)))


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InspectUserError(f"unknown mode {mode!r}; use -T mode=logprob (next-token probabilities) or -T mode=sample")
    return mode


def epoch_seed(run_seed: int, sample_id: Any, epoch: int) -> int:
    """The generation seed of one (sample, epoch): each of the K sampled answers of a query is its own draw (one
    seed for every epoch would make providers that honour seeds return one answer K times)."""
    digest = hashlib.sha256(f"{run_seed}|{sample_id}|{epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@solver
def elicit_preference(mode: str = "logprob", seed: int | None = None) -> Solver:
    """Ask the forced-choice question (the sample's system and user turns) once; in logprob mode the task's
    generation config asks for one token with its top log-probabilities, and their absence is an error. In sample
    mode each epoch gets its own seed derived from ``seed``, the sample and the epoch."""
    check_mode(mode)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if GENERATION_KEY in state.metadata:
            return await free_answer(state, generate)
        if mode == "sample" and seed is not None:
            state = await generate(state, seed=epoch_seed(seed, state.sample_id, state.epoch))
        else:
            state = await generate(state)
        if mode == "logprob" and not state.output.error and first_token_alternatives(state.output) is None:
            raise LogprobsUnavailableError(logprobs_missing_message(str(state.model)))
        return state

    return solve


@score_reducer
def preference_votes() -> ScoreReducer:
    """Pool a query's epochs into one preference: summed votes (sample mode) or the mean probability."""

    def reduce(scores: list[Score]) -> Score:
        if (scores[0].metadata or {}).get("kind") == "free_answer":
            return scores[0]  # a greedy answer: every epoch says the same
        mode = (scores[0].metadata or {}).get("mode", "sample")
        values = [s.value for s in scores if isinstance(s.value, Mapping)]
        pooled = combine_values(values, mode)
        answers = [s.answer for s in scores if s.answer is not None]
        return Score(
            value=pooled,
            answer=answers[0] if len(set(answers)) == 1 else None,
            explanation=f"{len(scores)} epoch(s) pooled",
            metadata={**(scores[0].metadata or {}), "epochs": len(scores)},
        )

    return reduce


# the task sets its metrics (the experiment's headline, ue_tasks.harness.inspect.metrics), overriding these
@scorer(metrics=[])
def preference(mode: str = "logprob") -> Scorer:
    """Record one query's preference in the orientation of its pair: ``p_a`` = P(outcome a ≻ outcome b) with
    the label mass (logprob mode), or votes ``n_a``/``n_b``/``n_unparsed`` parsed from the answer (sample mode)."""
    check_mode(mode)

    async def score(state: TaskState, target: Target) -> Score:
        if GENERATION_KEY in state.metadata:
            text = state.output.completion
            return Score(value={"answered": 1 if text.strip() else 0}, answer=text, metadata={"kind": "free_answer"})
        query = Query.from_dict(state.metadata[QUERY_KEY])
        if mode == "logprob":
            alternatives = first_token_alternatives(state.output)
            if alternatives is None:
                raise LogprobsUnavailableError(logprobs_missing_message(str(state.model)))
            value = logprob_value(query, alternatives)
            top = max(alternatives, key=lambda t: t[1])[0]
            first, second = query.labels
            explanation = (
                "no label among the top log-probabilities"
                if value["p_a"] is None
                else f"P({first})+P({second}) = {value['label_mass']:.3f}"
            )
            return Score(value=value, answer=top, explanation=explanation, metadata={"mode": mode, **_identity(str(state.model))})
        text = state.output.completion
        value = sample_value(query, [text])
        return Score(value=value, answer=text, metadata={"mode": mode, **_identity(str(state.model))})

    return score


_IDENTITIES: dict[str, dict] = {}


def _identity(model: str) -> dict:
    """``{MODEL_KEY: identity}`` of the model answering in this eval (its name, dtype and, for a local folder, the
    weights' fingerprint — ``ue_tasks.model_identity.from_inspect``, the identity lm-eval's records of the same folder
    carry), computed once per model; empty when the active model cannot be read."""
    import json

    try:
        from inspect_ai.model import get_model

        args = dict(getattr(get_model(), "model_args", None) or {})
        key = json.dumps([model, args], sort_keys=True, default=str)
    except Exception:  # no active model (a scorer called outside an eval)
        return {}
    if key not in _IDENTITIES:
        from ue_tasks.model_identity import from_inspect

        _IDENTITIES[key] = from_inspect(model, args).to_dict()
    return {MODEL_KEY: _IDENTITIES[key]}
