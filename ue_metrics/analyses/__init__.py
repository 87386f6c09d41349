"""The paper's analyses, one module per experiment, mirrored by name in ``ue_tasks/experiments/``.

Each module is a pure function of (records, outcome attributes, an optional Thurstonian fit, its options, its
inputs):

    @dataclass(frozen=True)
    class Options(AnalysisOptions): ...       # the analysis's options, their defaults and their checks
    analyse(records, outcomes, fit: FitResult | None, options: Options, inputs: Inputs)
        -> {"headline": {...}, "notes": {...}, "details": {...}, "figures": {name: data}}
    FIGURES = {name: draw(data, fig) -> None}   # matplotlib, imported only when drawing

``options`` are what a user chooses (``--option key=value``; written into ``analysis.json``); ``inputs`` what the
run hands over besides the records (the seed, free answers, the run folder, another run's utilities), never written
into the options.

``headline`` is flat: each value a finite number, a short string (a name, a form) or None — and every None has a
reason in ``notes``. ``figures`` holds the data each figure is drawn from, so figures are redrawn from a saved
``analysis.json`` without the records (``draw_figures``). numpy/scipy only, no torch, no harness.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json, write_json

if TYPE_CHECKING:  # the fit's type only: ue_metrics.fitting imports no analysis, and none of it is needed at run time
    from ue_metrics.fitting import FitResult

ANALYSIS_FILE = "analysis.json"
_WHOLE = re.compile(r"[+-]?\d+")
_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a text"}
OptionsT = TypeVar("OptionsT", bound="AnalysisOptions")


@dataclass(frozen=True)
class AnalysisOptions:
    """The base of every analysis's ``Options``: a frozen dataclass whose fields are the options (``--option
    key=value``, lm-eval ``--metadata '{"option": {...}}'``, Inspect ``-T options=...``) with their defaults.
    Constructing one coerces each value to its field's type (the text forms ``"200"`` → 200, ``"true"`` → True that
    the front doors pass) and refuses a wrong one in one sentence; a subclass's ``__post_init__`` calls this one's and
    then checks ranges and choices (``self.whole(...)``, ``self.choice(...)``)."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def from_mapping(cls: type[OptionsT], given: Mapping[str, Any] | None = None) -> OptionsT:
        """The options of ``given`` (the rest at their defaults); an unknown name is one sentence."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(cls.names()))
        if unknown:
            known = ", ".join(cls.names()) or "none"
            raise UserError(
                f"the {cls.__module__.rpartition('.')[2]} analysis has no option {unknown[0]!r} (its options: {known})"
            )
        return cls(**given)

    @classmethod
    def declare(cls, **others: Any) -> DeclaredOptions:
        """An experiment's options: these analysis options and the experiment's ``others`` (what its elicitation
        reads: outcome files, variants, the consumed run), each with its default."""
        return DeclaredOptions(cls, others)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.names()}

    def whole(self, name: str, low: int = 0) -> None:
        value = getattr(self, name)
        if value < low:
            raise UserError(f"--option {name} must be a whole number ≥ {low}, got {value!r}")

    def choice(self, name: str, allowed: Sequence[str]) -> None:
        value = getattr(self, name)
        if value not in allowed:
            raise UserError(f"--option {name} must be one of {', '.join(allowed)}, got {value!r}")


class DeclaredOptions(Mapping[str, Any]):
    """What an experiment spec declares as its ``options``: its analysis's ``Options`` class and its own options
    with their defaults. A read-only mapping of every option's default; ``check(options)`` is the analysis's
    options of a resolved set (validated there, once, for every front door)."""

    def __init__(self, analysis: type[AnalysisOptions], others: Mapping[str, Any]) -> None:
        both = sorted(set(analysis.names()) & set(others))
        if both:
            raise ValueError(f"option {both[0]!r} is declared both by {analysis.__module__}.Options and by the experiment")
        self.analysis, self.others = analysis, dict(others)
        self._all = {**analysis.defaults(), **self.others}

    def __getitem__(self, key: str) -> Any:
        return self._all[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def __repr__(self) -> str:
        return f"DeclaredOptions({self.analysis.__module__}.Options, {self.others!r})"

    def check(self, options: Mapping[str, Any]) -> AnalysisOptions:
        return self.analysis.from_mapping({k: options[k] for k in self.analysis.names() if k in options})


@dataclass(frozen=True)
class Inputs:
    """What an analysis reads besides the records and its options (never written into ``analysis.json``'s options):
    the seed of its random draws, the run's free answers (``ue.generation/1`` entries), the run folder (files saved
    beside the records), and ``extra``: what the experiment's ``inputs`` hook read from other runs (``base_utilities``,
    ``base_outcomes`` and ``base_run`` of a consumed utilities run; ``entity_utilities`` and ``entity_runs``;
    robustness's ``first_label``)."""

    seed: int = 0
    generations: tuple[Mapping[str, Any], ...] | None = None
    run_dir: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """``value`` as the type ``kind`` (int, float, bool, str, tuple[str, ...] or a union of them, None included), or
    one sentence naming the option."""
    members = typing.get_args(kind) if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union else (kind,)
    for member in members:
        ok, out = _as(value, member)
        if ok:
            return out
    words = " or ".join(_WORDS.get(m, "a list of texts" if typing.get_origin(m) is tuple else "nothing") for m in members)
    raise UserError(f"--option {name} must be {words}, got {value!r}")


def _as(value: Any, kind: Any) -> tuple[bool, Any]:
    if kind is type(None):
        return value is None, None
    if kind is bool:
        if isinstance(value, bool):
            return True, value
        text = str(value).strip().lower() if isinstance(value, str) else None
        return (True, text == "true") if text in ("true", "false") else (False, None)
    if kind is int:
        if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
            return True, int(value.strip())
        return (not isinstance(value, bool) and isinstance(value, int)), value
    if kind is float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                return False, None
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        return ok, float(value) if ok else None
    if kind is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # `--option reference=2020` reads as a number
            return True, str(value)
        return isinstance(value, str), value
    if typing.get_origin(kind) is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return True, tuple(value)
        return False, None
    raise TypeError(f"an option of type {kind!r} is not supported")


def module(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{name}":
            raise UserError(f"there is no analysis named {name!r} in ue_metrics.analyses") from None
        raise


def check_headline(result: dict[str, Any], where: str) -> dict[str, Any]:
    """Every headline value is a finite number, a string or None; a None carries a reason in ``notes``."""
    headline = result.setdefault("headline", {})
    notes = result.setdefault("notes", {})
    for key, value in list(headline.items()):
        if isinstance(value, bool):
            headline[key] = value
        elif isinstance(value, (int, float)):
            if not math.isfinite(float(value)):
                notes.setdefault(key, f"{key} is not finite ({value}) on these records")
                headline[key] = None
            else:
                headline[key] = float(value) if isinstance(value, float) else value
        elif value is not None and not isinstance(value, str):
            raise TypeError(f"{where}: headline {key!r} is a {type(value).__name__}; headlines are flat numbers or strings")
        if headline[key] is None and key not in notes:
            raise ValueError(f"{where}: headline {key!r} is null without a reason in notes")
    return result


def run(
    name: str,
    records: Sequence[dict],
    outcomes: Mapping[str, dict],
    fit: FitResult | None = None,
    options: AnalysisOptions | Mapping[str, Any] | None = None,
    inputs: Inputs | None = None,
) -> dict[str, Any]:
    """Run analysis ``name`` (its options given as its ``Options`` or as a mapping of them) and check its result."""
    mod = module(name)
    if not isinstance(options, AnalysisOptions):
        options = mod.Options.from_mapping(options)
    result = mod.analyse(records, outcomes, fit, options, inputs or Inputs())
    return check_headline(result, f"analysis {name}")


def write(result: Mapping[str, Any], out: str | Path) -> Path:
    """``out/analysis.json`` through a temporary name (a full disk or read-only folder is one sentence, and the old
    file, if any, stays whole)."""
    return write_json(Path(out) / ANALYSIS_FILE, result, hint="free space or give --out a folder you can write to")


def read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / ANALYSIS_FILE
    result = read_json(
        path,
        lambda exc: f"{path}: cannot be read as an analysis ({exc}); rerun `ue analyse`",
        missing=f"{path}: no analysis here; run `ue analyse` on the run folder first",
    )
    if not isinstance(result, dict):
        kind = {list: "an array", str: "a string", type(None): "null"}.get(type(result), "a number")
        raise UserError(
            f"{path}: not an analysis (it holds {kind}, not the JSON object `ue analyse` writes); rerun "
            "`ue analyse` on the run folder"
        )
    return result


def draw_figures(result: Mapping[str, Any], out: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Draw every figure of ``result`` (from its saved data) as PNG and SVG into ``out/figures``."""
    from ue_metrics import figures

    name = result.get("analysis") or result.get("experiment")
    drawers = getattr(module(str(name)), "FIGURES", {})
    paths: list[Path] = []
    for fig_name, data in (result.get("figures") or {}).items():
        draw = drawers.get(fig_name)
        if draw is None or data is None:
            continue
        paths += figures.save(draw, data, Path(out) / "figures" / fig_name, formats, title=result.get("model"))
    return paths
