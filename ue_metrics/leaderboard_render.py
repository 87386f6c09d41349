"""The leaderboard (``ue_metrics.leaderboard.build``'s board) written for people: a paste-able Markdown page, a
terminal table and one CSV line per model (Mazeika et al. 2025, §4.1; docs/method.md §9)."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ue_metrics.leaderboard import _is_number


def _cell(row: Mapping[str, Any], key: str, digits: int = 3) -> str:
    v = row["values"].get(key)
    if v is None:
        return "—"
    if not _is_number(v):
        return str(v)
    text = f"{v:.{digits}f}" if isinstance(v, float) else str(v)
    iv = (row.get("intervals") or {}).get(key)
    return f"{text} [{iv[0]:.{digits}f}, {iv[1]:.{digits}f}]" if iv else text


def table_columns(board: Mapping[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
    """The columns worth a human table: every numeric column but the counts (``n_*``)."""
    cols = [c for c in board["columns"] if not c["metric"].startswith("n_")]
    return cols[:limit] if limit else cols


def render_markdown(board: Mapping[str, Any]) -> str:
    """A paste-able Markdown leaderboard: the table (intervals in brackets), convergence, capabilities, notes."""
    cols = table_columns(board)
    lines = ["# Leaderboard", ""]
    lines += [f"> {s}" for s in board.get("summary") or []] + ([""] if board.get("summary") else [])
    head = ["model"] + [c["label"] + (" ↑" if c["better"] == "higher" else " ↓" if c["better"] == "lower" else "") for c in cols]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for row in list(board["rows"]) + list(board["random_rows"]):
        name = row["model"] if row["kind"] == "model" else f"*{row['model']}*"
        lines.append("| " + " | ".join([_md(name)] + [_md(_cell(row, c["key"])) for c in cols]) + " |")
    lines.append("")
    lines.append(
        "↑ higher is better, ↓ lower is better; brackets: the analysis' 95% interval; — : not measured (see leaderboard.json notes)."
    )
    conv = board.get("convergence")
    if conv and len(conv["models"]) >= 2:
        lines += [
            "",
            "## Utility convergence",
            "",
            "| model A | model B | shared outcomes | Pearson [95%] | cosine | Spearman |",
            "|---|---|---|---|---|---|",
        ]
        for p in conv["pairs"]:
            if p["status"] != "ok":
                lines.append(f"| {_md(p['a'])} | {_md(p['b'])} | {p['n_shared']} | {_md(p['status'])} | | |")
                continue
            ci = f" [{p['pearson_ci'][0]:.2f}, {p['pearson_ci'][1]:.2f}]" if p.get("pearson_ci") else ""
            lines.append(
                f"| {_md(p['a'])} | {_md(p['b'])} | {p['n_shared']} | {p['pearson']:.3f}{ci} | {p['cosine']:.3f} | {p['spearman']:.3f} |"
            )
    caps = board.get("capabilities")
    if caps:
        lines += ["", f"## Correlation with capability ({_md(caps['score'])})", ""]
        matched = ", ".join(f"{_md(m)} → {_md(v['name'])} ({v['via']}, {v['score']:g})" for m, v in caps["matched"].items())
        lines.append(f"Matched: {matched or 'none'}.")
        if caps["unmatched"]:
            lines.append(f"Not in the table (not guessed): {', '.join(_md(u['model']) for u in caps['unmatched'])}.")
        lines += ["", "| metric | models | Pearson | p | Spearman |", "|---|---|---|---|---|"]
        for c in caps["correlations"]:
            if c["status"] == "ok":
                lines.append(f"| {_md(c['label'])} | {c['n']} | {c['pearson']:.3f} | {c['p_value']:.3g} | {c['spearman']:.3f} |")
            else:
                lines.append(f"| {_md(c['label'])} | {c['n']} | {_md(c['status'])} | | |")
    lines += usage_lines(board)
    notes = [f"{r['model']}: {d}" for r in board["rows"] for d in r.get("diagnosis", [])]
    notes += [f"{r['model']}: {f}" for r in board["rows"] for f in r.get("flags", [])]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {_md(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def usage_lines(board: Mapping[str, Any]) -> list[str]:
    """The Markdown table of what each model's runs cost (their ``usage.json``: requests, and tokens as the server
    reported them; — where none did), when any run has one."""
    rows = [r for r in board["rows"] if r.get("usage")]
    if not rows:
        return []

    def n(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) else "—"

    out = ["", "## Cost", "", "| model | requests | prompt tokens | completion tokens |", "|---|---|---|---|"]
    for r in rows:
        u = r["usage"]
        out.append(
            f"| {_md(r['model'])} | {n(u.get('requests'))} | {n(u.get('prompt_tokens'))} | {n(u.get('completion_tokens'))} |"
        )
    return out


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_text(board: Mapping[str, Any], limit: int = 6) -> str:
    """A terminal table of the leaderboard's first columns."""
    cols = table_columns(board, limit)
    head = ["model"] + [c["label"] for c in cols]
    body = [[r["model"]] + [_cell(r, c["key"]) for c in cols] for r in list(board["rows"]) + list(board["random_rows"])]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body]]
    lines += [f"note: {s}" for s in board.get("summary") or []]
    return "\n".join(lines)


def write_csv(board: Mapping[str, Any], path: Path) -> None:
    """One line per model and random responder: every column, its interval's ends where there is one, flags."""
    cols = board["columns"]
    header = ["model", "kind"]
    for c in cols:
        header.append(c["key"])
        if any(c["key"] in (r.get("intervals") or {}) for r in board["rows"]):
            header += [c["key"] + ":low", c["key"] + ":high"]
    header += ["flags", "diagnosis"]
    from ue_metrics.jsonl import atomic_file

    with atomic_file(path, "w", hint="free space or give --out a folder you can write to") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in list(board["rows"]) + list(board["random_rows"]):
            line: dict[str, Any] = {
                "model": r["model"],
                "kind": r["kind"],
                "flags": "; ".join(r.get("flags", [])),
                "diagnosis": "; ".join(r.get("diagnosis", [])),
            }
            for c in cols:
                v = r["values"].get(c["key"])
                line[c["key"]] = "" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)
                iv = (r.get("intervals") or {}).get(c["key"])
                if iv:
                    line[c["key"] + ":low"], line[c["key"] + ":high"] = f"{iv[0]:.6g}", f"{iv[1]:.6g}"
            w.writerow([line.get(h, "") for h in header])
