"""`ue run` against a real OpenAI-compatible server on 127.0.0.1: `transformers serve` on the embedded SmolLM2 chat
model (started and stopped by the fixture; tiny budgets), through Inspect's ``openai-api/<service>/<model>`` and
lm-eval's ``ue-local-chat-completions``, in sample mode (the server returns no log-probabilities)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from servers import start_transformers_serve, stop, transformers_cli
from ue_cmd import ENV, UE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(model_path, tmp_path_factory):
    if transformers_cli() is None:
        pytest.skip("needs transformers serve: pip install 'transformers[serving]' (the dev extra brings it)")
    server = start_transformers_serve(Path(model_path), tmp_path_factory.mktemp("serve") / "serve.log")
    print(f"\ntransformers serve answered /health {server.start_s:.1f} s after start")
    try:
        yield server
    finally:
        stop(server.proc)


def run_ue(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([*UE, *args], capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines() if line.strip()]


TINY = ["--outcomes", "mini", "--budget", "4", "--holdout-fraction", "0", "--no-cache", "--no-figures", "--mode", "sample"]


def test_served_per_request_time(served):
    """Four sequential sampled chat requests of the size ue asks (a bounded, informative measurement, not a limit)."""
    times = []
    for seed in range(4):
        out, t = served.chat("Which do you prefer, A or B? Answer with one letter.", max_tokens=10, temperature=1.0, seed=seed)
        assert out["choices"][0]["message"]["content"] is not None
        assert out["usage"]["prompt_tokens"] > 0
        times.append(t)
    print(f"\ntransformers serve: {sum(times) / len(times):.2f} s per request (mean of 4)")


def test_served_inspect_sample_run(served, tmp_path):
    """`ue run utilities --harness inspect --model openai-api/local/<served name> --mode sample --samples 2` runs,
    fits and writes its records, every one with K = 2 answers."""
    out = tmp_path / "u"
    t = time.perf_counter()
    run_ue(
        "run",
        "utilities",
        "--harness",
        "inspect",
        "--model",
        f"openai-api/local/{served.name}",
        "--samples",
        "2",
        *TINY,
        "--out",
        str(out),
        env={"LOCAL_API_KEY": "none", "LOCAL_BASE_URL": served.base_url},
    )
    print(f"\nue run through Inspect: {time.perf_counter() - t:.1f} s")
    recs = records(out)
    assert len(recs) == 8 and {r["harness"] for r in recs} == {"inspect"}
    assert all(r["mode"] == "sample" and r["n_a"] + r["n_b"] + r["n_unparsed"] == 2 for r in recs)
    assert {r["model"] for r in recs} == {served.name} and {r["model_endpoint"] for r in recs} == {served.base_url}
    usage = json.loads((out / "usage.json").read_text())
    assert usage["requests"] == 16 and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0, usage
    # the dry run of the same command said so before asking anything
    dry = run_ue(
        "run",
        "utilities",
        "--harness",
        "inspect",
        "--model",
        f"openai-api/local/{served.name}",
        "--samples",
        "2",
        *TINY,
        "--out",
        str(tmp_path / "dry"),
        "--dry-run",
        env={"LOCAL_API_KEY": "none", "LOCAL_BASE_URL": served.base_url},
    )
    assert "requests           16  (8 (pair, ordering) prompts × 2 answers)" in dry.stdout, dry.stdout
    assert "estimated at 4 characters a token" in dry.stdout and not (tmp_path / "dry").exists()
    assert json.loads((out / "analysis.json").read_text())["n_records"] == 8


def test_served_lm_eval_sample_any_k(served, tmp_path):
    """The same through lm-eval with K = 3 (the task's YAML says 10): every record holds 3 answers."""
    out = tmp_path / "u"
    t = time.perf_counter()
    run_ue(
        "run",
        "utilities",
        "--harness",
        "lm-eval",
        "--model",
        "local-chat-completions",
        "--model-args",
        f"model={served.name},base_url={served.base_url}/chat/completions,num_concurrent=1",
        "--samples",
        "3",
        *TINY,
        "--out",
        str(out),
    )
    print(f"\nue run through lm-eval: {time.perf_counter() - t:.1f} s")
    recs = records(out)
    assert len(recs) == 8 and {r["harness"] for r in recs} == {"lm-eval"}
    assert all(r["mode"] == "sample" and r["n_a"] + r["n_b"] + r["n_unparsed"] == 3 for r in recs)
    assert {r["model_endpoint"] for r in recs} == {f"{served.base_url}/chat/completions"}
    usage = json.loads((out / "usage.json").read_text())
    assert usage["requests"] == 24 and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0, usage
    assert usage["tokens_from"] == "the server's usage reports"
    assert json.loads((out / "analysis.json").read_text())["n_records"] == 8


def test_lm_eval_sample_any_k_in_process(model_path, tmp_path):
    """K = 3 through lm-eval on the embedded model in process (ue-hf draws the K repeats from one prefill)."""
    out = tmp_path / "u"
    run_ue(
        "run",
        "utilities",
        "--harness",
        "lm-eval",
        "--model",
        "hf",
        "--model-args",
        f"pretrained={model_path}",
        "--samples",
        "3",
        *TINY,
        "--out",
        str(out),
    )
    recs = records(out)
    assert len(recs) == 8 and all(r["n_a"] + r["n_b"] + r["n_unparsed"] == 3 for r in recs)


def test_dry_run_counts_with_the_local_tokenizer(model_path, capsys):
    """`ue run utilities --dry-run` at the paper's K on `core`: requests and tokens, nothing asked, no folder written."""
    from ue_cmd import ue_here

    code, out, err = ue_here(
        capsys,
        "run",
        "utilities",
        "--harness",
        "lm-eval",
        "--model",
        "hf",
        "--model-args",
        f"pretrained={model_path}",
        "--mode",
        "sample",
        "--outcomes",
        "core",
        "--out",
        "/nonexistent/x",
        "--dry-run",
    )
    assert code == 0, err
    assert "570 outcomes: nothing asked (dry run)" in out
    assert "requests           228,720  (22,872 (pair, ordering) prompts × 10 answers)" in out, out
    assert "counted with SmolLM2-135M-Instruct's tokenizer and chat template" in out
    assert "completion tokens  at most 2,287,200" in out
    assert not Path("/nonexistent/x").exists()


def test_server_down_then_resumed(served, tmp_path):
    """A run whose server is down ends with one sentence naming what was saved (exit 2, no traceback); the same
    command, once the server answers again at that address, completes the run; a third asks nothing."""
    from servers import Forwarder

    port = int(served.base_url.rsplit(":", 1)[1].split("/")[0])
    proxy_port = __import__("servers").free_port()
    out = tmp_path / "u"
    args = [
        *UE,
        "run",
        "utilities",
        "--harness",
        "lm-eval",
        "--model",
        "local-chat-completions",
        "--model-args",
        f"model={served.name},base_url=http://127.0.0.1:{proxy_port}/v1/chat/completions,num_concurrent=1,max_retries=1",
        "--samples",
        "2",
        *TINY,
        "--out",
        str(out),
    ]
    down = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert down.returncode == 2 and "Traceback" not in down.stderr, down.stderr[-2000:]
    assert "the model's server stopped answering" in down.stderr
    assert f"0 answered queries of this run are saved in {out / 'records.jsonl'}" in down.stderr
    proxy = Forwarder(port, proxy_port)
    try:
        up = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
        assert up.returncode == 0, up.stderr[-2000:]
        assert "8 queries asked" in up.stderr, up.stderr[-1000:]
        again = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
        assert again.returncode == 0 and "0 queries asked" in again.stderr, again.stderr[-1000:]
    finally:
        proxy.close()
    assert len(records(out)) == 8


def _answers(folder: Path) -> list[tuple]:
    """Each record's question and votes, in a fixed order (what must not change through a faulty network)."""
    return sorted((r["a_id"], r["b_id"], r["shown_first"], r["n_a"], r["n_b"], r["n_unparsed"]) for r in records(folder))


@pytest.mark.heavy  # minutes on 2 cores; tests/test_retries.py runs the same proxy against a stand-in server in `make test`
def test_retries_through_a_fault_proxy(served, tmp_path):
    """A proxy that answers every 3rd request 429 or 503 and holds one past the client's time-out, in front of the
    real server: `ue run` through Inspect (its max_retries / attempt_timeout) and through lm-eval's
    ue-local-chat-completions (its max_retries / timeout) retries each, finishes with the same answers as without the
    proxy, and usage.json counts the retries; the server answered each question once."""
    from servers import FaultProxy

    port = int(served.base_url.rsplit(":", 1)[1].split("/")[0])
    tiny = [*TINY, "--samples", "1", "--budget", "2"]  # 4 requests; a request takes 1.6 s on 2 idle cores, 10 s on busy ones
    inspect_args = ["run", "utilities", "--harness", "inspect", "--model", f"openai-api/local/{served.name}", *tiny]

    def lm_eval_args(base: str, extra: str) -> list[str]:
        args = f"model={served.name},base_url={base}/chat/completions,num_concurrent=1{extra}"
        return ["run", "utilities", "--harness", "lm-eval", "--model", "local-chat-completions", "--model-args", args, *tiny]

    t = time.perf_counter()
    run_ue(*inspect_args, "--out", str(tmp_path / "i0"), env={"LOCAL_API_KEY": "none", "LOCAL_BASE_URL": served.base_url})
    run_ue(*lm_eval_args(served.base_url, ""), "--out", str(tmp_path / "l0"))
    clean = time.perf_counter() - t
    for harness, out, make in (
        (
            "inspect",
            tmp_path / "i1",
            lambda base: (
                [*inspect_args, "--model-args", "max_connections=1,max_retries=5,attempt_timeout=30"],
                {"LOCAL_API_KEY": "none", "LOCAL_BASE_URL": base},
            ),
        ),
        ("lm-eval", tmp_path / "l1", lambda base: (lm_eval_args(base, ",max_retries=5,timeout=30"), {})),
    ):
        proxy = FaultProxy(port, every=3, hang_at=2, hang_s=35)  # past the 30 s time-out
        try:
            args, env = make(f"http://127.0.0.1:{proxy.port}/v1")
            t = time.perf_counter()
            run_ue(*args, "--out", str(out), env=env)
            took = time.perf_counter() - t
        finally:
            proxy.close()
        usage = json.loads((out / "usage.json").read_text())
        print(
            f"\n{harness} through the fault proxy: {took:.1f} s, {proxy.posts} requests sent, faults {proxy.faults}, "
            f"usage.json retries {usage['retries']} (both clean runs {clean:.1f} s)"
        )
        assert {kind for _, kind in proxy.faults} == {"hang", "429", "503"}, proxy.faults
        assert usage["requests"] == 4 and proxy.forwarded == 4, (usage, proxy.forwarded)  # nothing answered twice
        assert usage["retries"] == len(proxy.faults), (usage, proxy.faults)
        assert _answers(out) == _answers(tmp_path / ("i0" if harness == "inspect" else "l0"))


def test_many_models_served_and_simulated(served, tmp_path):
    """`ue run utilities --models FILE`: the served model through lm-eval and through Inspect (one endpoint: one lane,
    one after the other) beside a simulated responder (its own lane, at the same time), each into OUT/<name>/, end
    in one leaderboard; the same command again skips all three."""
    port = served.base_url.rsplit(":", 1)[1].split("/")[0]
    models = tmp_path / "models.jsonl"
    models.write_text(
        json.dumps(
            {
                "name": "smol-lm",
                "harness": "lm-eval",
                "model": "local-chat-completions",
                "model_args": f"model={served.name},base_url={served.base_url}/chat/completions,num_concurrent=1",
            }
        )
        + "\n"
        + json.dumps(
            {
                "name": "smol-inspect",
                "harness": "inspect",
                "model": f"openai-api/local/{served.name}",
                "model_args": {"max_connections": 1},
            }
        )
        + "\n"
        + json.dumps({"name": "coin", "harness": "simulate", "model": "coin", "model_args": "responder=random"})
        + "\n"
    )
    out = tmp_path / "many"
    env = {"LOCAL_API_KEY": "none", "LOCAL_BASE_URL": served.base_url}
    small = ["--samples", "1", *TINY, "--budget", "2"]  # 4 requests a served model: ≤ 90 s in all on busy cores
    t = time.perf_counter()
    proc = run_ue("run", "utilities", "--models", str(models), *small, "--out", str(out), env=env)
    print(f"\nthree models, two served by one server: {time.perf_counter() - t:.1f} s")
    assert f"3 models in 2 lanes (endpoint:127.0.0.1:{port}: 2, simulate:coin: 1)" in proc.stderr, proc.stderr[-2000:]
    for name in ("smol-lm", "smol-inspect", "coin"):
        assert f"{name}: finished in" in proc.stderr, proc.stderr[-2000:]
        assert name in proc.stdout
    board = json.loads((out / "leaderboard.json").read_text())
    assert sorted(board["inputs"]) == [str(out / "coin"), str(out / "smol-inspect"), str(out / "smol-lm")]
    for name, harness in (("smol-lm", "lm-eval"), ("smol-inspect", "inspect")):
        recs = records(out / name)
        assert len(recs) == 4 and {r["model"] for r in recs} == {name} and {r["harness"] for r in recs} == {harness}
    again = run_ue("run", "utilities", "--models", str(models), *small, "--out", str(out), env=env)
    assert again.stderr.count("finished earlier with the same configuration — skipped") == 3
