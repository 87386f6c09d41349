"""``ue report``: one self-contained HTML file for a run or a leaderboard — a page a person would rather look at than
a folder of JSON. Pure functions of a saved ``analysis.json`` or ``leaderboard.json``.

Self-contained means: figures are inline SVG drawn from the saved figure data, CSS and the one small script
(sorting a table on a click) are inline, and the page makes no request of any kind — its Content-Security-Policy
allows nothing to load (``default-src 'none'``) and only its own script, by hash, to run. Every piece of text that
comes from data (outcome texts, model names, notes) is HTML-escaped, so an outcome such as ``<script>…`` shows as
text; the figures' text is escaped by matplotlib's SVG writer.

For a run: the plain diagnosis, the headline table beside the random responder, the top and bottom outcomes with
their intervals, and each figure with a sentence on how to read it (an analysis module's ``FIGURE_NOTES``). For a
leaderboard: the diagnosis, the sortable table, the convergence heat map and table, the capability correlations and
scaling plots, each robustness run's variant × variant correlation matrix and most wording-sensitive outcomes, each
model's top and bottom outcomes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ue_metrics import leaderboard as lb
from ue_metrics import leaderboard_figures, leaderboard_render

SCRIPT = """(function () {
  function key(cell) {
    var v = cell.getAttribute("data-sort");
    return v === null ? "" : v;
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          if (x === "" || y === "") { return (x === "") - (y === ""); }
          var nx = Number(x), ny = Number(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();"""

CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #3b6ea5; --warn: #9a6700; --bad: #b42318; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1100px; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 36px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: var(--muted); font-size: 13px; margin-bottom: 16px; }
.banner { border-left: 4px solid var(--bad); background: #fef3f2; padding: 10px 14px; margin: 14px 0; }
.banner.ok { border-left-color: var(--accent); background: #eef4fb; }
.banner p { margin: 4px 0; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: right; vertical-align: top; }
th:first-child, td:first-child, td.text { text-align: left; }
#leaderboard td:first-child { white-space: nowrap; }
thead th { background: var(--soft); font-weight: 600; position: sticky; top: 0; }
table.sortable thead th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable thead th::after { content: " \\2195"; color: #9aa4ae; font-size: 11px; }
table.sortable thead th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--accent); }
table.sortable thead th[aria-sort="descending"]::after { content: " \\2193"; color: var(--accent); }
tr.random td { color: var(--muted); font-style: italic; background: #fafafa; }
.ci { color: var(--muted); font-size: 12px; white-space: nowrap; }
.scroll { overflow-x: auto; }
figure { margin: 18px 0 26px; }
figure svg { width: 100%; max-width: 900px; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; max-width: 760px; margin-top: 4px; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 8px 28px; }
ul.notes li { margin: 2px 0; }
details { margin: 6px 0; } summary { cursor: pointer; color: var(--accent); }
code { background: var(--soft); padding: 1px 4px; border-radius: 3px; font-size: 12.5px; }
footer { color: var(--muted); font-size: 12px; margin-top: 48px; border-top: 1px solid var(--line); padding-top: 8px; }
"""

RUN_FIGURE_NOTE = (
    "Drawn from the data saved in analysis.json by the {experiment} analysis; see docs/experiments.md for its definition."
)


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "—" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def _sort_value(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
        return repr(float(value))
    return "" if value is None else str(value)


def page(title: str, body: str) -> str:
    """The whole document: inline CSS and script, a policy that blocks every request and every other script."""
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    policy = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        "<footer>Written by <code>ue report</code> (Utility Engineering, Mazeika et al. 2025). Self-contained: this file "
        "loads nothing from anywhere.</footer>\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def figure(svg: str, caption: str, name: str) -> str:
    return f'<figure data-figure="{esc(name)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def _svg(draw: Any, data: Any, name: str, title: str | None = None, size: tuple[float, float] = (6.4, 4.2)) -> str | None:
    from ue_metrics.errors import UserError
    from ue_metrics.figures import to_svg

    try:
        return to_svg(draw, data, title=title, size=size, id_prefix="fig-" + "".join(c if c.isalnum() else "-" for c in name))
    except UserError:  # matplotlib missing: the tables stand
        return None


def _banner(sentences: Sequence[str], ok: str | None = None) -> str:
    if sentences:
        return '<div class="banner" role="note">' + "".join(f"<p>{esc(s)}</p>" for s in sentences) + "</div>"
    return f'<div class="banner ok" role="note"><p>{esc(ok)}</p></div>' if ok else ""


def _outcome_table(rows: Sequence[Mapping[str, Any]], title: str) -> str:
    body = "".join(
        f'<tr><td class="text">{esc(r.get("text") or r.get("id"))}</td><td class="text">{esc(r.get("category"))}</td>'
        f'<td>{fmt(r.get("utility"), 2)}</td><td class="ci">[{fmt(r.get("ci_low"), 2)}, {fmt(r.get("ci_high"), 2)}]</td></tr>'
        for r in rows
    )
    return (
        f"<div><h3>{esc(title)}</h3><table><thead><tr><th>outcome</th><th>category</th><th>utility</th><th>95% interval</th></tr>"
        f"</thead><tbody>{body}</tbody></table></div>"
    )


# ----------------------------------------------------------------------------------------------------------
def run_html(analysis: Mapping[str, Any]) -> str:
    """The report of one analysed run (an ``analysis.json``)."""
    from ue_metrics import analyses

    name = str(analysis.get("analysis") or analysis.get("experiment"))
    title = f"{analysis.get('title') or analysis.get('experiment')} — {analysis.get('model')}"
    headline, notes = analysis.get("headline") or {}, analysis.get("notes") or {}
    details = analysis.get("details") or {}
    meta = [
        f"experiment <code>{esc(analysis.get('experiment'))}</code> ({esc(analysis.get('section'))})",
        f"model <b>{esc(analysis.get('model'))}</b>",
        f"harness {esc(analysis.get('harness'))}",
        f"mode {esc(analysis.get('mode'))}",
        f"outcomes: {esc(analysis.get('outcome_set'))} ({fmt(analysis.get('n_outcomes'))})",
        f"{fmt(analysis.get('n_records'))} records",
        f"seed {esc(analysis.get('seed'))}",
    ]
    parts = [f"<h1>{esc(title)}</h1>", f'<div class="meta">{" · ".join(meta)}</div>']
    row = {
        "values": {f"{analysis.get('experiment')}/{k}": v for k, v in headline.items()},
        "intervals": {
            f"{analysis.get('experiment')}/{k}": lb.interval_of(analysis, k) for k in headline if lb.interval_of(analysis, k)
        },
    }
    random_values = {
        f"{analysis.get('experiment')}/{k[: -len('_random')]}": v for k, v in headline.items() if k.endswith("_random")
    }
    diagnosis = lb.diagnose(row, random_values) if analysis.get("experiment") == "utilities" else []
    if diagnosis:
        diagnosis = [f"This model is {d}." for d in diagnosis] + [
            "Read the utilities below as a demonstration of the method, not as values."
        ]
    parts.append(_banner(diagnosis, None))

    lines = []
    for key, value in headline.items():
        if key.endswith("_random"):
            continue
        interval = lb.interval_of(analysis, key)
        rnd = headline.get(f"{key}_random")
        why = notes.get(key)
        lines.append(
            f'<tr><td>{esc(lb.LABELS.get(key, key.replace("_", " ")))}</td><td data-sort="{esc(_sort_value(value))}">{esc(fmt(value))}'
            + (f' <span class="ci">[{fmt(interval[0])}, {fmt(interval[1])}]</span>' if interval else "")
            + f'</td><td>{esc(fmt(rnd))}</td><td class="text">{esc(why or "")}</td></tr>'
        )
    parts.append(
        "<h2>Summary</h2><p>Each number beside the value a random responder (a fair coin) gets on the same "
        "questions; brackets are the analysis' 95% interval where it gives one.</p>"
        '<table class="sortable"><thead><tr><th>metric</th><th>this run</th><th>random responder</th><th>note</th></tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table>"
    )
    if details.get("random_responder"):
        parts.append(f'<p class="meta">Random responder: {esc(details["random_responder"])}.</p>')
    if details.get("top") or details.get("bottom"):
        parts.append(
            "<h2>Outcomes at both ends</h2><p>Utilities are standardised (mean 0, sd 1 over this run's outcomes); "
            f"the interval is the fit's ({esc(details.get('ci_method') or 'curvature')}). Overlapping intervals mean the "
            "model's ranking of those outcomes is not settled.</p>"
        )
        parts.append(
            '<div class="cols">'
            + _outcome_table(details.get("top") or [], "highest utility")
            + _outcome_table(details.get("bottom") or [], "lowest utility")
            + "</div>"
        )
    if details.get("most_cyclic_triads"):
        rows = "".join(
            f'<tr><td class="text">{" · ".join(esc(t) for t in tri.get("texts") or tri.get("ids") or [])}</td>'
            f"<td>{fmt(tri.get('p_cycle'))}</td></tr>"
            for tri in details["most_cyclic_triads"]
        )
        parts.append(
            f"<h2>Most cyclic triads</h2><table><thead><tr><th>outcomes</th><th>P(cycle)</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    if details.get("most_wording_sensitive"):
        parts.append(
            "<h2>The outcomes most sensitive to the wording</h2>"
            f"<p>{esc(WORDING_NOTE.format(n=details.get('n_common_outcomes') or '?'))}</p>"
            + wording_table(details["most_wording_sensitive"], details.get("variants") or [])
        )
    figs = analysis.get("figures") or {}
    if figs:
        try:
            mod = analyses.module(name)
        except Exception:  # an analysis this version does not know: its numbers stand, its figures cannot be drawn
            mod = None
        drawers = getattr(mod, "FIGURES", {}) if mod else {}
        notes_by_fig = {**DEFAULT_FIGURE_NOTES, **(getattr(mod, "FIGURE_NOTES", {}) if mod else {})}
        blocks = []
        for fig_name, data in figs.items():
            draw = drawers.get(fig_name)
            if draw is None or data is None:
                continue
            svg = _svg(draw, data, fig_name, title=str(analysis.get("model")))
            if svg:
                blocks.append(
                    figure(
                        svg, notes_by_fig.get(fig_name) or RUN_FIGURE_NOTE.format(experiment=analysis.get("experiment")), fig_name
                    )
                )
        if blocks:
            parts.append("<h2>Figures</h2>" + "".join(blocks))
    return page(title, "\n".join(parts))


# when an analysis module has no FIGURE_NOTES entry for a figure
DEFAULT_FIGURE_NOTES: dict[str, str] = {}
WORDING_NOTE = (
    "Each outcome's rank (1 = highest utility, of the {n} outcomes every variant ranks) under each prompt "
    "variant, and the spread: its highest minus its lowest rank. A model whose values do not depend on the "
    "wording moves its outcomes by a few places at most."
)
MATRIX_NOTE = (
    "The Spearman correlation of this model's utilities under each pair of prompt variants (its robustness "
    "run; 1 = the same order). Rows and columns that are pale or blue mark the wordings that change its answers."
)


def wording_table(rows: Sequence[Mapping[str, Any]], variants: Sequence[str]) -> str:
    """The outcomes whose rank moves most across prompt variants (a robustness analysis's ``most_wording_sensitive``)."""
    variants = [v for v in variants if any(v in (r.get("ranks") or {}) for r in rows)]
    head = "".join(f"<th>{esc(v)}</th>" for v in variants)
    body = "".join(
        f"<tr><td class='text'>{esc(r.get('text') or r.get('id'))}</td><td>{fmt(r.get('rank_spread'))}</td>"
        + "".join(f"<td>{fmt((r.get('ranks') or {}).get(v))}</td>" for v in variants)
        + "</tr>"
        for r in rows
    )
    return (
        f'<div class="scroll"><table class="wording"><thead><tr><th>outcome</th><th>rank spread</th>{head}</tr>'
        f"</thead><tbody>{body}</tbody></table></div>"
    )


def _robustness_section(rows: Sequence[Mapping[str, Any]]) -> str:
    """Each model with a robustness run: its variant × variant correlation matrix and its most wording-sensitive
    outcomes."""
    from ue_metrics.analyses.robustness import draw_variant_correlations

    parts = [
        "<h2>Robustness across wordings</h2><p>For each model with a <code>robustness</code> run: how alike its "
        "utilities are under each pair of prompt variants (paraphrases, framings, answer labels, no system message), "
        "and the outcomes whose rank moves most from one wording to another.</p>"
    ]
    for k, r in enumerate(rows):
        rob = r["robustness"]
        name = f"robustness-{k}"
        svg = _svg(
            draw_variant_correlations,
            {"variants": rob["variants"], "matrix": rob["matrix"]},
            name,
            title=str(r["model"]),
            size=(6.4, 5.4),
        )
        parts.append(f"<h3>{esc(r['model'])}</h3>" + (figure(svg, MATRIX_NOTE, name) if svg else ""))
        if rob.get("most_wording_sensitive"):
            parts.append(
                f"<p>{esc(WORDING_NOTE.format(n=rob.get('n_outcomes') or '?'))}</p>"
                + wording_table(rob["most_wording_sensitive"], rob["variants"])
            )
    return "".join(parts)


# ----------------------------------------------------------------------------------------------------------
def _capabilities_section(caps: Mapping[str, Any], figs: Mapping[str, Any]) -> str:
    """The leaderboard's headline numbers against a capability score: what was matched, the correlations, figures."""
    parts: list[str] = []
    parts.append(f"<h2>Against capability ({esc(caps['score'])})</h2>")
    matched = ", ".join(f"{m} → {v['name']} ({v['score']:g}, {v['via']})" for m, v in caps["matched"].items())
    parts.append(
        f"<p>Capabilities from <code>{esc(caps.get('source'))}</code>. Matched exactly or through the alias file: "
        f"{esc(matched or 'none')}.</p>"
    )
    if caps["unmatched"]:
        parts.append(
            "<p>Not matched (never guessed): "
            + "; ".join(f"{esc(u['model'])} ({esc(u['reason'])})" for u in caps["unmatched"])
            + ".</p>"
        )
    lines = []
    for c in caps["correlations"]:
        ok = c["status"] == "ok"
        lines.append(
            f'<tr><td class="text">{esc(c["label"])}</td><td>{c["n"]}</td>'
            f'<td data-sort="{esc(_sort_value(c["pearson"]))}">{fmt(c["pearson"]) if ok else esc(c["status"])}</td>'
            f"<td>{fmt(c['p_value'], 3) if ok else ''}</td><td>{fmt(c['spearman']) if ok else ''}</td></tr>"
        )
    parts.append(
        '<table class="sortable"><thead><tr><th>metric</th><th>models</th><th>Pearson r</th><th>p</th><th>Spearman</th>'
        f"</tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )
    blocks = []
    for name, data in figs.items():
        if name.startswith("capability_"):
            svg = _svg(leaderboard_figures.draw_capability, data, name, size=(5.2, 3.9))
            if svg:
                blocks.append(figure(svg, leaderboard_figures.note(name), name))
    if blocks:
        parts.append('<div class="cols">' + "".join(blocks) + "</div>")
    return "\n".join(parts)


def _usage_section(rows: Sequence[Mapping[str, Any]]) -> str:
    """What each model's runs cost (their usage.json: requests, and tokens as the server reported them)."""
    costed = [r for r in rows if r.get("usage")]
    if not costed:
        return ""

    def n(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) else "—"

    body = "".join(
        f'<tr><td class="text">{esc(r["model"])}</td><td>{n(r["usage"].get("requests"))}</td>'
        f"<td>{n(r['usage'].get('prompt_tokens'))}</td><td>{n(r['usage'].get('completion_tokens'))}</td></tr>"
        for r in costed
    )
    return (
        "<h2>Cost</h2><p>Requests and tokens of each model's runs, as the server reported them (— where it did not).</p>"
        '<table class="sortable"><thead><tr><th>model</th><th>requests</th><th>prompt tokens</th><th>completion tokens</th>'
        f"</tr></thead><tbody>{body}</tbody></table>"
    )


def leaderboard_html(board: Mapping[str, Any]) -> str:
    """The report of a leaderboard (a ``leaderboard.json``)."""
    rows, random_rows = list(board["rows"]), list(board["random_rows"])
    cols = leaderboard_render.table_columns(board)
    title = f"Leaderboard — {len(rows)} model{'s' if len(rows) != 1 else ''}"
    parts = [
        f"<h1>{esc(title)}</h1>",
        f'<div class="meta">experiments: {esc(", ".join(board.get("experiments") or []))} · models: '
        f"{esc(', '.join(board.get('models') or []))}</div>",
    ]
    parts.append(_banner(board.get("summary") or [], None))

    head = "".join(
        f'<th scope="col" title="{esc(c["key"])}">{esc(c["label"])}'
        + ("&nbsp;↑" if c["better"] == "higher" else "&nbsp;↓" if c["better"] == "lower" else "")
        + "</th>"
        for c in cols
    )
    body = []
    for r in rows + random_rows:
        cells = [f'<td class="text" data-sort="{esc(r["model"])}">{esc(r["model"])}</td>']
        for c in cols:
            v = r["values"].get(c["key"])
            iv = (r.get("intervals") or {}).get(c["key"])
            note_text = (r.get("notes") or {}).get(c["key"])
            ci = f'<br><span class="ci">[{fmt(iv[0])}, {fmt(iv[1])}]</span>' if iv else ""
            tip = f' title="{esc(note_text)}"' if note_text else ""
            cells.append(f'<td data-sort="{esc(_sort_value(v))}"{tip}>{esc(fmt(v))}{ci}</td>')
        cls = ' class="random"' if r["kind"] == "random" else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    parts.append(
        "<h2>Models</h2><p>One row per model; each experiment's headline numbers, with the analysis' 95% interval "
        "below where it gives one; the random responder's row (italic) is the floor. Click a column to sort. "
        "↑ higher is better, ↓ lower is better.</p>"
        f'<div class="scroll"><table class="sortable" id="leaderboard"><thead><tr><th scope="col">model</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
    notes = [f"{r['model']}: {d}" for r in rows for d in r.get("diagnosis", [])] + [
        f"{r['model']}: {f}" for r in rows for f in r.get("flags", [])
    ]
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")

    figs = board.get("figures") or {}
    if "metrics" in figs:
        data = figs["metrics"]
        svg = _svg(leaderboard_figures.draw_metrics, data, "metrics", size=leaderboard_figures.metrics_figure_size(data))
        if svg:
            parts.append(figure(svg, leaderboard_figures.note("metrics"), "metrics"))

    conv = board.get("convergence")
    if conv and len(conv["models"]) >= 2:
        parts.append(
            "<h2>Utility convergence</h2><p>How alike two models' utilities are over the outcomes both were asked "
            f"about (matched by text); fewer than {conv['min_shared']} shared outcomes give no number.</p>"
        )
        if "convergence" in figs:
            svg = _svg(leaderboard_figures.draw_convergence, figs["convergence"], "convergence", size=(6.4, 5.0))
            if svg:
                parts.append(figure(svg, leaderboard_figures.note("convergence"), "convergence"))
        lines = []
        for p in conv["pairs"]:
            ci = (
                f' <span class="ci">[{fmt(p["pearson_ci"][0], 2)}, {fmt(p["pearson_ci"][1], 2)}]</span>'
                if p.get("pearson_ci")
                else ""
            )
            value = f"{fmt(p['pearson'])}{ci}" if p["status"] == "ok" else esc(p["status"])
            lines.append(
                f'<tr><td class="text">{esc(p["a"])}</td><td class="text">{esc(p["b"])}</td><td>{p["n_shared"]}</td>'
                f"<td>{value}</td><td>{fmt(p['cosine'])}</td><td>{fmt(p['spearman'])}</td></tr>"
            )
        parts.append(
            '<table class="sortable"><thead><tr><th>model A</th><th>model B</th><th>shared outcomes</th>'
            "<th>Pearson [95%]</th><th>cosine</th><th>Spearman</th></tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table>"
        )

    caps = board.get("capabilities")
    if caps:
        parts.append(_capabilities_section(caps, figs))

    robust = [r for r in rows if r.get("robustness")]
    if robust:
        parts.append(_robustness_section(robust))
    parts.append(_usage_section(rows))
    ends = [r for r in rows if r.get("top")]
    if ends:
        parts.append("<h2>Each model's outcomes at both ends</h2>")
        for r in ends:
            parts.append(
                f'<details><summary>{esc(r["model"])}</summary><div class="cols">'
                + _outcome_table(r["top"], "highest utility")
                + _outcome_table(r["bottom"], "lowest utility")
                + "</div></details>"
            )
    if board.get("duplicates"):
        items = "".join(
            f"<li>{esc(d['model'])}, {esc(d['experiment'])}: used {esc(d['used'])}; not averaged with "
            f"{esc(', '.join(d['ignored']))}</li>"
            for d in board["duplicates"]
        )
        parts.append(f'<h2>Runs given twice</h2><ul class="notes">{items}</ul>')
    return page(title, "\n".join(parts))
