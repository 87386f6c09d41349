"""`ue run representations` end to end: simulated hidden states with and without a planted utility signal told
apart, `ue analyse` refitting the probes from the saved features alone, a utilities run of another model
refused in one sentence; on the embedded model, the hidden states read with the shared prompt stem cached and the
sequences cut after the outcome equal those of the whole prompt, and the run writes its analysis and figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ue_cmd import analysis, ue

from ue_metrics.errors import UserError
from ue_tasks import experiments


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rep")
    ue(
        "run",
        "utilities",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--outcomes",
        "80",
        "--out",
        str(root / "u"),
        "--no-cache",
        "--no-figures",
    )
    for responder in ("planted", "none"):
        ue(
            "run",
            "representations",
            "--harness",
            "simulate",
            "--model",
            "sim",
            "--responder",
            responder,
            "--utilities",
            str(root / "u"),
            "--out",
            str(root / responder),
        )
    return {"u": root / "u", "planted": root / "planted", "none": root / "none"}


def test_planted_and_absent_signals_are_told_apart(runs):
    planted, none = analysis(runs["planted"]), analysis(runs["none"])
    assert planted["experiment"] == "representations" and planted["harness"] == "simulate"
    hp, hn = planted["headline"], none["headline"]
    assert set(hp) == set(experiments.get("representations").headline)
    assert all(v is not None for v in hp.values())
    assert hp["probe_r2"] > 0.4 and hp["probe_p_value"] < 0.06 and hp["probe_pair_accuracy"] > 0.7
    assert hp["embedding_r2"] < 0.15 and hp["embedding_gain"] > 0.3  # planted after the embeddings: the layers' gain
    # noise: at the level of probes fitted to shuffled utilities (pair accuracy over 158 pairs that share 80 outcomes
    # scatters widely around ½, so the p-value of the best layer's R² is the test)
    # (a permutation p-value is uniform on {1/21, ..., 1} without a signal: "p > 0.05" of one seed fails one time in
    # 21 by design, so with every seed fixed the deterministic value is asserted, a rank rounding does not move:
    # 18 of the 20 shuffles' probes do at least as well)
    assert hn["probe_r2"] < 0.15 and hn["probe_p_value"] == pytest.approx(19 / 21) and abs(hn["probe_pair_accuracy"] - 0.5) < 0.25
    assert hp["n_outcomes"] == 80 and hp["n_holdout_pairs"] > 0
    for suffix in ("png", "svg"):
        figure = runs["planted"] / "figures" / f"by_layer.{suffix}"
        assert figure.is_file() and figure.stat().st_size > 5000
    assert (runs["planted"] / "features.npz").is_file()
    # the run folder is self-contained: the utilities run's records and outcomes travel with it
    assert (runs["planted"] / "records.jsonl").read_text() == (runs["u"] / "records.jsonl").read_text()
    cfg = json.loads((runs["planted"] / "config.json").read_text())
    assert cfg["options"]["utilities"] == str(runs["u"].resolve()) and cfg["utilities_run"]["model"] == "sim"


def test_ue_analyse_refits_the_probes_from_the_saved_features(runs):
    before = (runs["planted"] / "analysis.json").read_text()
    ue("analyse", str(runs["planted"]))
    assert (runs["planted"] / "analysis.json").read_text() == before
    # another analysis option is one flag away, no model needed
    ue(
        "analyse",
        str(runs["planted"]),
        "--option",
        "features=bare_last",
        "--option",
        "folds=4",
        "--no-figures",
        "--out",
        str(runs["planted"].parent / "again"),
    )
    again = analysis(runs["planted"].parent / "again")
    assert again["details"]["feature_kind"] == "bare_last" and again["details"]["folds"] == 4
    # synthetic outcomes share one category: holding out whole categories is refused in one sentence
    proc = ue("analyse", str(runs["planted"]), "--option", "cv=category", "--out", str(runs["planted"].parent / "y"), check=False)
    assert proc.returncode == 2 and "needs at least 5 categories" in proc.stderr
    # the records alone are not enough, and say so
    proc = ue(
        "analyse",
        str(runs["planted"] / "records.jsonl"),
        "--experiment",
        "representations",
        "--out",
        str(runs["planted"].parent / "x"),
        check=False,
    )
    assert proc.returncode == 2 and "features.npz" in proc.stderr and "Traceback" not in proc.stderr


def test_grouped_analysis_reads_the_hidden_states_of_the_run_folder(runs):
    """`ue analyse RUN --by model`: each group's analysis still finds features.npz beside the records."""
    out = runs["planted"].parent / "by_model"
    ue("analyse", str(runs["planted"]), "--by", "model", "--no-figures", "--out", str(out))
    (group,) = [p for p in out.iterdir() if (p / "analysis.json").is_file()]
    grouped = analysis(group)
    assert grouped["group"]["by"] == "model"
    assert grouped["headline"] == analysis(runs["planted"])["headline"]  # one model: the same probes


def test_a_rerun_reuses_the_features_and_another_model_is_refused(runs):
    proc = ue(
        "run",
        "representations",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--responder",
        "planted",
        "--utilities",
        str(runs["u"]),
        "--out",
        str(runs["planted"]),
        "--no-figures",
    )
    assert "holds the hidden states already" in proc.stderr
    proc = ue(
        "run",
        "representations",
        "--harness",
        "simulate",
        "--model",
        "other",
        "--utilities",
        str(runs["u"]),
        "--out",
        str(runs["u"].parent / "other"),
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        "is a utilities run of 'simulated:sim', not of 'simulated:other'" in proc.stderr
        and len(proc.stderr.strip().splitlines()) == 1
    )
    proc = ue(
        "run", "representations", "--harness", "simulate", "--model", "sim", "--out", str(runs["u"].parent / "none2"), check=False
    )
    assert proc.returncode == 2 and "--utilities RUN_DIR" in proc.stderr
    proc = ue(
        "run",
        "representations",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--utilities",
        str(runs["planted"]),
        "--out",
        str(runs["u"].parent / "x"),
        check=False,
    )
    assert proc.returncode == 2 and "not of 'utilities'" in proc.stderr


def test_representations_is_listed_but_is_no_harness_task():
    out = ue("experiments").stdout
    line = next(x for x in out.splitlines() if x.startswith("representations"))
    assert "hidden states" in line and "1,710" in line and "utilities" in line  # 3 forward passes per outcome of core
    from ue_tasks.harness.lm_eval import configs

    assert not any(rel.startswith("representations/") for rel in configs.generate())
    exp = experiments.get("representations")
    with pytest.raises(UserError, match="no harness task"):
        exp.build_plan(exp.outcome_set())
    proc = ue("run", "transitivity", "--out", "unused", check=False)
    assert proc.returncode == 2 and "needs --harness" in proc.stderr


def test_bf16_only_where_the_hardware_has_it(monkeypatch):
    pytest.importorskip("torch")
    from ue_tasks import dtypes
    from ue_tasks import hidden_states as hs

    monkeypatch.setattr(dtypes, "cpu_features", lambda: {"avx2", "fma"})
    assert hs.choose_dtype("native") == hs.choose_dtype("auto") == "float32"
    monkeypatch.setattr(dtypes, "cpu_features", lambda: {"avx2", "avx512_bf16"})
    assert hs.choose_dtype("native") == "bfloat16"
    assert hs.choose_dtype("auto") == "float32"  # auto is the checkpoint's own dtype (ue_tasks.dtypes), whatever the CPU
    assert hs.choose_dtype("float32") == "float32"
    with pytest.raises(UserError, match="dtype must be"):
        hs.choose_dtype("int8")
    partners = hs.draw_partners(10, 0)
    assert len(set(partners.tolist())) == 2 and all(partners[k] != k for k in range(10))


# ------------------------------------------------------------------------------------------------------------
# the embedded model


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.parametrize("key", ["smollm2-135m", "gemma3-270m"])
def test_cached_and_cut_sequences_give_the_states_of_the_whole_prompt(key):
    """Both embedded models: SmolLM2 (chat template) and Gemma 3 270M (a base model: the base-model prompt; sliding-
    window attention layers)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ue_tasks import hidden_states as hs
    from ue_tasks import model as embedded
    from ue_tasks.outcomes import load_outcomes

    model_path = str(embedded.prepare(name=key, log=lambda *_: None))
    texts = load_outcomes("mini").texts[:3]
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    chat = hs.has_chat_template(tok)
    assert chat == (key == "smollm2-135m")  # Gemma 3 270M is a base model: the base-model prompt
    items = [
        hs.place(tok, texts[0], texts[1], "A", chat=chat),
        hs.place(tok, texts[2], texts[1], "A", chat=chat),
        hs.place(tok, texts[0], texts[1], "B", chat=chat),
        hs.bare(texts[2]),
    ]
    got = hs.read_states(model, tok, items, batch_size=2)
    for k, item in enumerate(items):
        enc = tok(item.text, add_special_tokens=item.special, return_offsets_mapping=True)
        span = [t for t, (s, e) in enumerate(enc["offset_mapping"]) if e > s and e > item.start and s < item.end]
        with torch.inference_mode():
            full = model(input_ids=torch.tensor([enc["input_ids"]]), output_hidden_states=True).hidden_states
        states = torch.stack([h[0] for h in full])  # (L+1, T, d), the whole prompt, nothing cached or cut
        # float32 rounding scales with the largest state in the computation (SmolLM2 ~2.5·10⁴, Gemma ~10⁵: differences
        # of 10⁻⁴ and 5·10⁻³ measured): within 2·10⁻⁴, or 10⁻⁷ of the prompt's largest state where that is more
        tol = max(2e-4, 1e-7 * float(states.abs().max()))
        assert np.abs(got["last"][k] - states[:, span[-1]].numpy()).max() <= tol
        assert np.abs(got["mean"][k] - states[:, span].mean(1).numpy()).max() <= tol
    assert item.text == texts[2]
    assert items[0].text[items[0].start : items[0].end] == texts[0] and "Option A:\n" + texts[0] in items[0].text


@pytest.mark.slow
def test_representations_on_the_embedded_model(embedded_representations):
    """The hidden states of 36 outcomes of `mini` read from the embedded model (the fixture runs `ue run
    representations` on it), saved, probed, drawn."""
    folder = embedded_representations
    assert "108 forward passes" in (folder / "stderr.txt").read_text()
    a = analysis(folder)
    assert a["harness"] == "transformers" and a["headline"]["n_outcomes"] == 36
    assert a["details"]["features"]["n_layers"] == 31 and a["details"]["features"]["hidden_size"] == 576
    assert a["details"]["features"]["chat_template"] is True
    assert all(a["headline"][k] is not None for k in ("best_layer", "probe_r2", "baseline_r2", "shuffled_r2"))
    assert (folder / "figures" / "by_layer.png").is_file()
    from ue_metrics.features import load

    states = load(folder)
    assert np.isfinite(states.layer("prompt_mean", 30)).all() and len(set(states.partners)) == 2


def test_utilities_answered_by_other_weights_in_the_same_folder_are_refused(tmp_path):
    from types import SimpleNamespace

    from ue_tasks.experiments import representations as rep
    from ue_tasks.model_identity import fingerprint_folder

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    config = SimpleNamespace(harness="transformers", model_args=f"pretrained={folder}")
    read = rep.model_folder(config.model_args)  # the folder the run reads, as collect() finds it once
    now = fingerprint_folder(folder)
    rep._check_same_weights(read, [{"model_fingerprint": now}], "runs/u")  # the same weights: accepted
    rep._check_same_weights(read, [{"model": "old-run-without-fingerprint"}], "runs/u")  # nothing to compare
    with pytest.raises(UserError, match="answered by other weights"):
        rep._check_same_weights(read, [{"model_fingerprint": "0123456789abcdef"}], "runs/u")
