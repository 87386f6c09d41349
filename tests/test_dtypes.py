"""One dtype rule for every local model (ue_tasks/dtypes.py, issue 22 item 23): the same dtype through lm-eval,
Inspect, hidden states and control on any CPU, recorded in every record and part of the model's identity, so the
answer cache and `ue fit` never take bfloat16 and float32 answers for one model's. The CPU's features are faked
both ways (a CPU with native bf16, one without)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ue_metrics import pooling
from ue_metrics.errors import UserError
from ue_tasks import dtypes

WITH_BF16 = {"avx2", "avx512f", "avx512_bf16"}
WITHOUT_BF16 = {"avx2", "fma"}
SYSTEM = "You are a helpful assistant."


def _model(folder: Path, dtype: str | None = "float32") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "llama"} | ({"dtype": dtype} if dtype else {})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


@pytest.fixture(params=[WITH_BF16, WITHOUT_BF16], ids=["cpu-with-bf16", "cpu-without-bf16"])
def cpu(request, monkeypatch):
    """The CPU's features, faked: the one detector every path asks."""
    monkeypatch.setattr(dtypes, "cpu_features", lambda: set(request.param))
    return request.param


def test_the_rule_auto_is_the_checkpoints_native_follows_the_cpu(tmp_path):
    assert dtypes.resolve_dtype("auto", "float32", WITH_BF16) == "float32"  # a bf16 CPU no longer changes auto
    assert dtypes.resolve_dtype(None, "bfloat16", WITHOUT_BF16) == "bfloat16"  # the checkpoint's own, even if emulated
    assert dtypes.resolve_dtype("auto", None, WITH_BF16) == "float32"  # unknown: transformers' default
    assert dtypes.resolve_dtype("native", "float32", WITH_BF16) == "bfloat16"
    assert dtypes.resolve_dtype("native", "float32", WITHOUT_BF16) == "float32"
    assert dtypes.resolve_dtype("native", "float32", {"amx_bf16"}) == "bfloat16"
    assert dtypes.resolve_dtype("torch.float16", "float32", WITH_BF16) == "float16"
    with pytest.raises(UserError, match="dtype must be one of auto, native, float32"):
        dtypes.resolve_dtype("int3", "float32", WITH_BF16)
    assert dtypes.checkpoint_dtype(_model(tmp_path / "a", "bfloat16")) == "bfloat16"
    assert dtypes.checkpoint_dtype(_model(tmp_path / "b", None)) == "float32"
    assert dtypes.checkpoint_dtype(tmp_path / "nowhere") is None


def test_the_embedded_models_conversion_declares_float32(model_path):
    assert dtypes.checkpoint_dtype(model_path) == "float32"


@pytest.mark.parametrize("requested", ["auto", "native", "bfloat16"])
def test_lm_eval_inspect_hidden_states_and_control_resolve_one_dtype(tmp_path, cpu, requested):
    """Before: on a CPU with avx512_bf16, ue-hf's auto was bfloat16 while Inspect's hf provider loaded float32, and
    both runs' records said model_dtype null."""
    from ue_tasks import hidden_states as hs
    from ue_tasks.elicitation.backends import InspectBackend, LmEvalBackend
    from ue_tasks.harness.lm_eval import models

    folder = _model(tmp_path / "my-model")
    expected = {"auto": "float32", "bfloat16": "bfloat16", "native": "bfloat16" if cpu is WITH_BF16 else "float32"}[requested]
    lm = LmEvalBackend("hf", f"pretrained={folder},dtype={requested}", "logprob", 10, SYSTEM)
    ins = InspectBackend("hf/local", f"model_path={folder},dtype={requested}", "logprob", 10, 0)
    # what each path loads: ue-hf's own resolution, the dtype handed to Inspect's hf provider, the hidden states'
    assert models.resolve_dtype(requested, "cpu", str(folder)) == expected
    assert ins._model_args["dtype"] == expected
    assert hs.choose_dtype(requested, "cpu", str(folder)) == expected
    # what each path records
    assert lm.identity.dtype == ins.identity.dtype == expected
    assert lm.identity.record_fields()["model_dtype"] == ins.identity.record_fields()["model_dtype"] == expected


def test_default_settings_give_both_harnesses_the_checkpoints_dtype(tmp_path, cpu):
    from ue_tasks.elicitation.backends import InspectBackend, LmEvalBackend
    from ue_tasks.model_identity import from_inspect_log, from_lm_eval_results

    folder = _model(tmp_path / "my-model")
    lm = LmEvalBackend("hf", f"pretrained={folder}", "logprob", 10, SYSTEM)
    ins = InspectBackend("hf/local", f"model_path={folder}", "logprob", 10, 0)
    assert lm.identity.dtype == ins.identity.dtype == "float32"
    assert "dtype" not in dict(lm.identity.args) and ins._model_args == {"model_path": str(folder), "dtype": "float32"}
    # outputs of the plain commands read back with the same dtype: lm-eval's own config says what it ran in
    plain = from_lm_eval_results(
        {"config": {"model": "hf", "model_args": f"pretrained={folder}", "model_dtype": "torch.float32"}}
    )
    assert plain.dtype == "float32"
    ran_bf16 = from_lm_eval_results(
        {"config": {"model": "hf", "model_args": f"pretrained={folder}", "model_dtype": "torch.bfloat16"}}
    )
    assert ran_bf16.dtype == "bfloat16"

    class Spec:
        model, model_args, task_args, metadata = "hf/local", {"model_path": str(folder)}, {}, {}

    assert from_inspect_log(Spec()).dtype == "float32"


def test_the_answer_cache_keeps_dtypes_apart(tmp_path, cpu):
    from ue_tasks.elicitation.backends import LmEvalBackend
    from ue_tasks.elicitation.cache import AnswerCache

    folder = _model(tmp_path / "my-model")
    auto = LmEvalBackend("hf", f"pretrained={folder}", "logprob", 10, SYSTEM)
    fp32 = LmEvalBackend("hf", f"pretrained={folder},dtype=float32", "logprob", 10, SYSTEM)
    bf16 = LmEvalBackend("hf", f"pretrained={folder},dtype=bfloat16", "logprob", 10, SYSTEM)
    assert auto.key_parts() == fp32.key_parts()  # the default spelt out is the same model
    assert AnswerCache.for_backend(tmp_path, fp32.key_parts()).path != AnswerCache.for_backend(tmp_path, bf16.key_parts()).path


def test_control_paths_record_the_dtype_they_load(tmp_path, cpu):
    """Control loads its models in float32 (explicit): its records say so whatever the checkpoint declares."""
    from ue_tasks.model_identity import from_lm_eval

    folder = _model(tmp_path / "bf16-model", "bfloat16")
    assert from_lm_eval("hf", {"pretrained": str(folder)}).dtype == "bfloat16"
    assert from_lm_eval("hf", {"pretrained": str(folder), "dtype": "float32"}).dtype == "float32"


def _records(dtype: str | None, run_id: str) -> list[dict]:
    import numpy as np

    from ue_metrics.simulate import simulate_records, true_utilities
    from ue_tasks.plan import PlanSpec, make_plan

    n = 12
    plan = make_plan(n, PlanSpec(seed=0))
    rng = np.random.default_rng(0)
    mu, var = true_utilities(n, rng)
    out = simulate_records(
        plan.pairs,
        plan.split,
        [f"o{k:03d}" for k in range(n)],
        [f"Outcome {k}." for k in range(n)],
        mu,
        var,
        rng,
        samples=0,
        model="SmolLM2-135M-Instruct",
        run_id=run_id,
    )
    return [{**r, "model_fingerprint": "04df8cc07c158da8", **({"model_dtype": dtype} if dtype else {})} for r in out]


def test_fit_refuses_one_model_at_two_dtypes_unless_pooled(tmp_path, capsys):
    from ue_cli.main import main

    mixed = _records("float32", "fp32") + _records("bfloat16", "bf16")
    with pytest.raises(UserError, match=r"one model, 'SmolLM2-135M-Instruct', run at 2 different dtypes \(.*bfloat16 .*float32"):
        pooling.check_not_mixed(mixed)
    pooling.check_not_mixed(mixed, pool=["dtype"])
    pooling.check_not_mixed(_records("float32", "a") + _records("float32", "b"))
    # older records that never said their dtype are not taken for float32 ones
    with pytest.raises(UserError, match="not recorded"):
        pooling.check_not_mixed(_records(None, "old") + _records("float32", "new"))

    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in mixed))
    code = main(["fit", str(path), "--out", str(tmp_path / "fit")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert [x for x in err.splitlines() if x.startswith("ue: error:")] and "--pool dtype" in err
    assert not (tmp_path / "fit" / "utilities.csv").exists()
    assert main(["fit", str(path), "--out", str(tmp_path / "fit"), "--pool", "dtype"]) == 0
    capsys.readouterr()


def test_a_run_started_at_another_dtype_is_not_resumed(tmp_path, capsys):
    """A run folder whose answers came at one dtype is not continued at another (nor an older ue's, which did not
    record the dtype it ran in)."""
    from ue_cli.main import main

    args = [
        "elicit",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--outcomes",
        "12",
        "--budget",
        "20",
        "--no-cache",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(args) == 0
    cfg_path = tmp_path / "run" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model_identity"]["dtype"] = "bfloat16"
    cfg_path.write_text(json.dumps(cfg))
    before = (tmp_path / "run" / "records.jsonl").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("ue: error:")]
    assert len(lines) == 1 and "was started in bfloat16" in lines[0] and "Traceback" not in err
    assert (tmp_path / "run" / "records.jsonl").read_bytes() == before
