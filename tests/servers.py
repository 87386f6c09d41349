"""A real OpenAI-compatible server for the tests: ``transformers serve`` (``pip install 'transformers[serving]'``)
on 127.0.0.1, a free port, serving a local model folder. Started by a fixture, waited for with a bounded timeout,
stopped by the fixture (also when a test fails)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_TIMEOUT = 180  # seconds for the model to load and /health to answer on 2 shared cores
REQUEST_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def transformers_cli() -> str | None:
    """The ``transformers`` command of this interpreter's environment, when its serving extra is installed."""
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        found = shutil.which("transformers")
        exe = Path(found) if found else None
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return None
    return str(exe) if exe else None


@dataclass
class Served:
    """A running server: its model name (as requests must name it), base URL (``.../v1``) and process."""

    name: str
    base_url: str
    proc: subprocess.Popen
    log: Path
    start_s: float
    timings: list[float] = field(default_factory=list)

    def chat(self, content: str, max_tokens: int = 8, **extra) -> tuple[dict, float]:
        body = {"model": self.name, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, **extra}
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as r:
            out = json.loads(r.read())
        return out, time.perf_counter() - t


def start_transformers_serve(model_folder: Path, log: Path) -> Served:
    """``transformers serve FOLDER`` run from the folder's parent, so the served name is the folder's name (the
    server answers only to the name it was started with)."""
    cli = transformers_cli()
    if cli is None:
        raise RuntimeError("transformers serve needs its serving extra: pip install 'transformers[serving]'")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "2"}
    t0 = time.perf_counter()
    fh = log.open("w")
    proc = subprocess.Popen(
        [
            cli,
            "serve",
            model_folder.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
            "--log-level",
            "warning",
        ],
        cwd=model_folder.parent,
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = t0 + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited ({proc.returncode}) before answering: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.perf_counter() > deadline:
            stop(proc)
            raise RuntimeError(f"transformers serve did not answer /health within {START_TIMEOUT} s: {log.read_text()[-2000:]}")
        time.sleep(0.25)
    return Served(model_folder.name, f"{base}/v1", proc, log, time.perf_counter() - t0)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


class Forwarder:
    """A pass-through TCP proxy on 127.0.0.1 (test-only): every connection to ``port`` is relayed to ``target``
    until ``close()``, after which the port refuses connections, as a server that died."""

    def __init__(self, target_port: int, port: int | None = None):
        import threading

        self.target_port = target_port
        self.port = port or free_port()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._open = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while self._open:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=REQUEST_TIMEOUT)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._open = False
        with contextlib.suppress(OSError):
            self._sock.close()


class FaultProxy:
    """An HTTP pass-through proxy on 127.0.0.1 (test-only, threaded) in front of a server on ``target_port`` that
    injects faults into the POSTs it is sent, counted from 1: every ``every``-th is answered 429 (with
    ``Retry-After: 1``) and 503 in turn without reaching the server, and POST ``hang_at`` is held ``hang_s`` seconds
    (past the client's time-out) and its connection closed unanswered. Everything else is relayed as it is.
    ``faults`` lists (POST number, what was done) and ``forwarded`` counts the POSTs the server answered."""

    def __init__(self, target_port: int, every: int = 3, hang_at: int | None = None, hang_s: float = 0.0):
        import http.server
        import threading

        self.target_port, self.every, self.hang_at, self.hang_s = target_port, every, hang_at, hang_s
        self.posts, self.forwarded = 0, 0
        self.faults: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect of a server

            def do_GET(self):  # noqa: N802
                proxy._relay(self, b"")

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with proxy._lock:
                    proxy.posts += 1
                    n = proxy.posts
                if n == proxy.hang_at:
                    proxy.faults.append((n, "hang"))
                    time.sleep(proxy.hang_s)
                    self.close_connection = True  # no answer: the client has given up by now
                    return
                if proxy.every and n % proxy.every == 0:
                    status = 429 if (n // proxy.every) % 2 else 503
                    proxy.faults.append((n, str(status)))
                    data = json.dumps({"error": {"message": "injected by the test's fault proxy", "code": status}}).encode()
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "1")
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                proxy._relay(self, body)
                with proxy._lock:
                    proxy.forwarded += 1

            def log_message(self, *args):  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _relay(self, handler: Any, body: bytes) -> None:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=REQUEST_TIMEOUT)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection", "content-length")}
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        handler.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                handler.send_header(key, value)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StubChatServer:
    """A stand-in OpenAI-compatible chat server on 127.0.0.1 for the fast retry tests (test-only, threaded): every
    ``/v1/chat/completions`` request is answered at once with ``answer`` and a usage report; the real server is
    ``transformers serve`` (``start_transformers_serve``)."""

    def __init__(self, answer: str = "A"):
        import http.server
        import threading

        self.requests = 0

        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                stub.requests += 1
                out = {
                    "id": f"stub-{stub.requests}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "stub"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
                }
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
