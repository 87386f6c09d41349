"""An analysis's options (``ue_metrics.analyses.AnalysisOptions``): one frozen dataclass per analysis, the text forms
the front doors pass coerced, an unknown name, a wrong type or a value out of range refused in one sentence naming
the option; the experiment specs declare them with their own options, and the inputs of a run travel apart from
them (never into ``analysis.json``'s options)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from ue_cmd import one_sentence
from ue_cmd import ue_here as ue

from ue_metrics import analyses
from ue_metrics.analyses import AnalysisOptions, DeclaredOptions, Inputs
from ue_metrics.errors import UserError
from ue_tasks import experiments


@dataclass(frozen=True)
class Options(AnalysisOptions):
    bootstrap: int = 200
    flag: bool = False
    margin: float = 0.1
    pairs: int | str = 1000
    highlight: str | tuple[str, ...] = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.whole("bootstrap")


def test_the_text_forms_of_the_front_doors_are_coerced():
    o = Options.from_mapping({"bootstrap": "200", "flag": "true", "margin": "0.25", "pairs": "all", "highlight": ["a", "b"]})
    assert (o.bootstrap, o.flag, o.margin, o.pairs, o.highlight) == (200, True, 0.25, "all", ("a", "b"))
    assert Options.from_mapping({"flag": "False", "pairs": "30", "margin": 1}).as_dict() == {
        "bootstrap": 200,
        "flag": False,
        "margin": 1.0,
        "pairs": 30,
        "highlight": "",
    }
    assert Options.from_mapping({}) == Options() and Options.defaults()["bootstrap"] == 200
    with pytest.raises(dataclasses.FrozenInstanceError):
        Options().bootstrap = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("given", "sentence"),
    [
        (
            {"bootstrapp": 3},
            "the test_options analysis has no option 'bootstrapp' (its options: bootstrap, flag, margin, pairs, highlight)",
        ),
        ({"bootstrap": "x"}, "--option bootstrap must be a whole number, got 'x'"),
        ({"bootstrap": 2.5}, "--option bootstrap must be a whole number, got 2.5"),
        ({"bootstrap": True}, "--option bootstrap must be a whole number, got True"),
        ({"bootstrap": -1}, "--option bootstrap must be a whole number ≥ 0, got -1"),
        ({"flag": "yes"}, "--option flag must be true or false, got 'yes'"),
        ({"margin": "nan"}, "--option margin must be a number, got 'nan'"),
        ({"pairs": [3]}, "--option pairs must be a whole number or a text, got [3]"),
    ],
)
def test_a_bad_option_is_one_sentence_naming_it(given, sentence):
    with pytest.raises(UserError) as err:
        Options.from_mapping(given)
    assert str(err.value) == sentence


def test_every_experiment_declares_its_analysis_options_and_its_own():
    for exp in experiments.all_experiments().values():
        kind = analyses.module(exp.analysis_name).Options
        assert isinstance(exp.options, DeclaredOptions) and exp.options.analysis is kind, exp.name
        assert {k: exp.options[k] for k in kind.names()} == kind.defaults(), exp.name
        assert not set(kind.names()) & set(exp.options.others), exp.name
    with pytest.raises(ValueError, match="declared both"):
        Options.declare(bootstrap=3)


def test_resolve_options_checks_the_analysis_options_and_keeps_the_values_as_given():
    exp = experiments.get("time_discounting")
    assert exp.resolve_options({"bootstrap": "50"})["bootstrap"] == "50"  # analysis.json records what was given
    with pytest.raises(UserError, match=r"^--option scoring must be one of separate, strict, got 'loose'$"):
        exp.resolve_options({"scoring": "loose"})
    with pytest.raises(UserError, match="has no option 'gama'"):
        experiments.get("instrumental_values").resolve_options({"gama": 0.9})
    with pytest.raises(UserError, match=r"--option gamma must be a discount factor in \(0, 1\], got 1.5"):
        experiments.get("instrumental_values").resolve_options({"gamma": "1.5"})


def test_a_bad_analysis_option_is_refused_before_any_question_is_asked(capsys, tmp_path):
    code, _, err = ue(
        capsys,
        "run",
        "time_discounting",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--out",
        tmp_path / "run",
        "--option",
        "bootstrap=many",
    )
    one_sentence(code, err, "--option bootstrap must be a whole number, got 'many'")
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_inputs_travel_apart_from_the_options(simulated):
    result = simulated("political_values", "left", {"bootstrap": "20"}, seed=3)
    assert result["options"] == experiments.get("political_values").resolve_options({"bootstrap": "20"})
    assert not {"seed", "generations", "run_dir", "entity_utilities"} & set(result["options"]) and result["seed"] == 3
    assert Inputs().extra == {} and Inputs(seed=4).seed == 4
