"""Retries on 429 / 5xx / time-outs, fast: `ue run` through lm-eval's ue-local-chat-completions and Inspect's
openai-api provider against a stand-in chat server behind the fault-injecting proxy (tests/servers.py), which
answers every 3rd request 429 or 503 and holds one past the client's time-out; both harnesses retry with their own
options, the server answers each question once, and usage.json counts every retry. The same against the real
``transformers serve``: tests/test_served.py::test_retries_through_a_fault_proxy."""

from __future__ import annotations

import json
import subprocess

import pytest
from servers import FaultProxy, StubChatServer
from ue_cmd import ENV, UE

from ue_metrics.errors import UserError
from ue_tasks.harness.inspect.retry import split_generate_args

RUN = [
    "run",
    "utilities",
    "--outcomes",
    "mini",
    "--budget",
    "2",
    "--holdout-fraction",
    "0",
    "--no-cache",
    "--no-figures",
    "--mode",
    "sample",
    "--samples",
    "1",
]


def test_inspect_generate_args_split():
    assert split_generate_args(
        {"max_connections": "4", "max_retries": "0", "attempt_timeout": "30", "timeout": 600, "x": "y"}
    ) == ({"x": "y"}, {"max_connections": 4, "max_retries": 0, "attempt_timeout": 30, "timeout": 600})
    with pytest.raises(UserError, match="Inspect's attempt_timeout is a whole number"):
        split_generate_args({"attempt_timeout": "soon"})
    with pytest.raises(UserError, match="max_connections='0': must be at least 1"):
        split_generate_args({"max_connections": "0"})


@pytest.fixture
def faulty():
    stub = StubChatServer("A")
    proxy = FaultProxy(stub.port, every=3, hang_at=2, hang_s=6)
    try:
        yield stub, proxy
    finally:
        proxy.close()
        stub.close()


@pytest.mark.parametrize("harness", ["lm-eval", "inspect"])
def test_retries_counted(harness, faulty, tmp_path):
    stub, proxy = faulty
    base = f"http://127.0.0.1:{proxy.port}/v1"
    if harness == "lm-eval":
        args = [
            "--harness",
            "lm-eval",
            "--model",
            "local-chat-completions",
            "--model-args",
            f"model=stub,base_url={base}/chat/completions,num_concurrent=1,max_retries=5,timeout=3",
        ]
        env = ENV
    else:
        args = [
            "--harness",
            "inspect",
            "--model",
            "openai-api/local/stub",
            "--model-args",
            "max_connections=1,max_retries=5,attempt_timeout=3",
        ]
        env = {**ENV, "LOCAL_API_KEY": "none", "LOCAL_BASE_URL": base}
    proc = subprocess.run([*UE, *RUN, *args, "--out", str(tmp_path / "u")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    usage = json.loads((tmp_path / "u" / "usage.json").read_text())
    assert {kind for _, kind in proxy.faults} == {"hang", "429", "503"}, proxy.faults
    assert usage["requests"] == 4 and stub.requests == 4 and proxy.forwarded == 4, (usage, stub.requests)
    assert usage["retries"] == len(proxy.faults) == proxy.posts - 4, (usage, proxy.faults)
    recs = [json.loads(x) for x in (tmp_path / "u" / "records.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(r["n_a"] + r["n_b"] == 1 and r["n_unparsed"] == 0 for r in recs)
