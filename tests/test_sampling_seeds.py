"""Sampled answers are independent draws (issue 10, item 10): against a tiny OpenAI-compatible server on 127.0.0.1
that honours seeds (the same seed gives the same answer, as vLLM, SGLang and OpenAI do), the K answers of one
prompt must not be one answer K times — through Inspect (each epoch its own seed) and through lm-eval's API
clients (``ue-local-completions`` / ``ue-local-chat-completions``: each repeat its own seed, or none).

No network: the server is written here and listens on the loopback interface only.
"""

from __future__ import annotations

import json
import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class SeededServer:
    """``/v1/chat/completions`` and ``/v1/completions``: each answer is "A" or "B", drawn from ``random.Random(seed)``
    when the request has a seed (so equal seeds give equal answers) and from fresh randomness when it has none.
    ``seeds[prompt]`` lists the seeds each prompt was sent with (None for no seed)."""

    def __init__(self) -> None:
        self.seeds: dict[str, list] = defaultdict(list)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seed = body.get("seed")
                chat = "messages" in body
                prompts = [json.dumps(body["messages"])] if chat else body["prompt"]
                # one prompt (text, or token ids) or a batch of them
                if not isinstance(prompts, list) or (prompts and isinstance(prompts[0], int)):
                    prompts = [prompts]
                choices = []
                for k, prompt in enumerate(prompts):
                    with server.lock:
                        server.seeds[str(prompt)].append(seed)
                    for j in range(int(body.get("n") or 1)):
                        rng = random.Random(f"{seed}|{j}") if seed is not None else random.SystemRandom()
                        answer = rng.choice("AB")
                        index = k * int(body.get("n") or 1) + j
                        if chat:
                            choices.append(
                                {
                                    "index": index,
                                    "message": {"role": "assistant", "content": answer},
                                    "finish_reason": "stop",
                                    "logprobs": None,
                                }
                            )
                        else:
                            choices.append({"index": index, "text": answer, "finish_reason": "stop", "logprobs": None})
                reply = {
                    "id": "x",
                    "object": "chat.completion" if chat else "text_completion",
                    "created": 0,
                    "model": body.get("model", "m"),
                    "choices": choices,
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> SeededServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[SeededServer]:
    with SeededServer() as s:
        yield s


def _lm_eval_votes(model: str, server: SeededServer, out: Path, tokenizer: str | None = None, **args) -> list[tuple[int, int]]:
    """Votes of four prompts of utility_mini_sampled through lm-eval's client ``model``; the completions clients apply
    the chat template on the client with ``tokenizer`` (the embedded model's)."""
    from lm_eval.api.registry import get_model

    import ue_tasks.harness.lm_eval.models  # noqa: F401 - registers ue's types
    from ue_tasks.harness.lm_eval.run import records_from_results, run_lm_eval

    chat = "chat" in model
    tok = {"tokenizer_backend": None} if chat else {"tokenizer_backend": "huggingface", "tokenizer": tokenizer}
    lm = get_model(model)(
        model="m", base_url=f"{server.url}/{'chat/completions' if chat else 'completions'}", num_concurrent=1, **tok, **args
    )
    results = run_lm_eval(lm, ["utility_mini_sampled"], out, metadata={"outcomes": "mini"}, limit=4)
    records = records_from_results(results, "utility_mini_sampled", model=model, run_id="t")
    assert all(r["n_a"] + r["n_b"] + r["n_unparsed"] == 10 for r in records)
    return [(r["n_a"], r["n_b"]) for r in records]


def test_lm_eval_fixed_seed_repeats_one_answer(server: SeededServer, tmp_path: Path) -> None:
    """The bug being fixed, shown on lm-eval's own client: one seed for all K repeats, one answer K times."""
    votes = _lm_eval_votes("local-chat-completions", server, tmp_path)
    assert all(len(set(seeds)) == 1 for seeds in server.seeds.values())
    assert all(0 in v for v in votes)  # every prompt: 10 votes for one side


@pytest.mark.parametrize("model", ["ue-local-chat-completions", "ue-local-completions"])
def test_lm_eval_each_repeat_has_its_own_seed(model: str, server: SeededServer, tmp_path: Path, model_path: str) -> None:
    votes = _lm_eval_votes(model, server, tmp_path, model_path)
    assert len(server.seeds) == 4
    for seeds in server.seeds.values():
        assert len(seeds) == 10 and len(set(seeds)) == 10 and None not in seeds
    assert any(a and b for a, b in votes)  # draws differ within a prompt
    # the seeds are derived from the run seed, the prompt and the repeat: a rerun sends the same ones
    first = {p: list(s) for p, s in server.seeds.items()}
    server.seeds.clear()
    assert _lm_eval_votes(model, server, tmp_path / "again", model_path) == votes
    assert {p: list(s) for p, s in server.seeds.items()} == first


def test_lm_eval_seed_none_sends_no_seed(server: SeededServer, tmp_path: Path) -> None:
    _lm_eval_votes("ue-local-chat-completions", server, tmp_path, seed="none")
    assert all(seeds == [None] * 10 for seeds in server.seeds.values())


def test_inspect_each_epoch_has_its_own_seed(server: SeededServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openai", reason="Inspect's OpenAI-compatible provider needs the openai package (pip install openai)")
    from inspect_ai import eval as inspect_eval

    from ue_tasks.harness.inspect.reader import read
    from ue_tasks.harness.inspect.tasks import utility

    monkeypatch.setenv("LOCAL_API_KEY", "test")
    task = utility(outcomes="mini", mode="sample", samples=6, seed=3)
    (log,) = inspect_eval(
        task,
        model="openai-api/local/m",
        model_base_url=server.url,
        limit=4,
        log_dir=str(tmp_path),
        display="none",
        max_connections=2,
    )
    assert log.status == "success", log.error
    assert len(server.seeds) == 4
    for seeds in server.seeds.values():
        assert len(seeds) == 6 and len(set(seeds)) == 6 and None not in seeds
    records = read(Path(log.location))
    assert all(r["n_a"] + r["n_b"] == 6 for r in records)
    assert any(r["n_a"] and r["n_b"] for r in records)
