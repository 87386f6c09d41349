"""Tokens per model on the leaderboard (issue 24 item 3): each run folder's usage.json (requests and tokens as the
server reported them) summed per model into leaderboard.json, the Markdown table and the HTML report; a model whose
server reported no tokens shows —, a damaged usage.json costs the row its counts and nothing else."""

from __future__ import annotations

import json

from ue_cmd import ue


def test_usage_is_summed_per_model_and_shown(tmp_path):
    for name in ("alpha", "beta"):
        ue(
            "run",
            "utilities",
            "--harness",
            "simulate",
            "--model",
            name,
            "--outcomes",
            "12",
            "--budget",
            "30",
            "--out",
            str(tmp_path / "runs" / name),
            "--no-cache",
            "--no-figures",
        )
    # what a server reported (the simulator reports no tokens): alpha's counts; beta's server counted requests only
    (tmp_path / "runs" / "alpha" / "usage.json").write_text(
        json.dumps({"requests": 120, "prompt_tokens": 9_000, "completion_tokens": 240, "retries": 2})
    )
    (tmp_path / "runs" / "beta" / "usage.json").write_text(json.dumps({"requests": 80, "prompt_tokens": None}))
    ue("leaderboard", str(tmp_path / "runs"), "--out", str(tmp_path / "board"), "--no-figures")
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    usage = {r["model"]: r.get("usage") for r in board["rows"]}
    assert usage["alpha"] == {"requests": 120, "prompt_tokens": 9000, "completion_tokens": 240}
    assert usage["beta"] == {"requests": 80, "prompt_tokens": None, "completion_tokens": None}
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "## Cost" in md and "| alpha | 120 | 9,000 | 240 |" in md and "| beta | 80 | — | — |" in md
    html = next((tmp_path / "board").glob("*.html")).read_text()
    assert "<h2>Cost</h2>" in html and "9,000" in html
    (tmp_path / "runs" / "beta" / "usage.json").write_text("{damaged")
    ue("leaderboard", str(tmp_path / "runs"), "--out", str(tmp_path / "board2"), "--no-figures")
    rows = json.loads((tmp_path / "board2" / "leaderboard.json").read_text())["rows"]
    assert {r["model"]: r.get("usage") for r in rows}["beta"] is None and len(rows) == 2
