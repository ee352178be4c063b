"""A self-contained interactive HTML report of a summarized corpus (plotly, with its JavaScript embedded).

Per topic: stance shares over time with 95 % Wilson intervals and the volume of sentences, with change points
in the stance shares found by ``ruptures``; a source × stance heat map whose cells show example sentences
(highest stance confidence first, with date, source, document id, probability and, when the rows carry
explanations (``rustance predict --explain``), the words that drove the label; when they carry none the report
says so) when clicked; and the same examples as plain tables. Every chart
has a plain-language caption saying what it shows and how many sentences it rests on; cells and periods with
fewer than ``min_sentences`` sentences are drawn grey, not hidden.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rustance.labels import STANCES
from rustance.summarize import UNDATED, Corpus, _quote, wilson_sql

COLOURS = {"conciliatory": "#1b9e77", "critical": "#d95f02", "conditional": "#7570b3", "neutral": "#8c8c8c"}
GREY = "#c8c8c8"
EXAMPLES = 3  # example sentences per (topic, source, stance) cell
NOT_EXPLAINED = "not explained (labelled without rustance predict --explain)"
NO_WORD = "none: deleting no single word lowered this stance"
UNEXPLAINED_NOTE = ("The words that drove each label are not shown: these sentences were labelled without "
                    "explanations. Run rustance predict with --explain to add them (reports/explain-faithfulness.md "
                    "gives its cost and faithfulness).")
CHANGE_MIN_SIZE = 2  # periods per segment at least
CHANGE_PENALTY = 3.0  # × stances × σ² × ln(periods)


@dataclass
class ChangePoints:
    """Change points in a topic's stance shares and the settings that found them."""

    periods: list[str]  # the first period of each new segment
    settings: str


def change_points(shares: np.ndarray, counts: np.ndarray, labels: list[str]) -> ChangePoints:
    """Change points of a (periods × stances) share signal with ruptures' Pelt search and an l2 cost.

    The penalty is ``CHANGE_PENALTY · stances · σ² · ln(periods)``: σ² is the larger of the mean binomial
    variance of the shares (p(1-p)/n) and the noise estimated from the median absolute difference of
    consecutive shares, so month-to-month wobble as large as the data's own is not called a change.
    """
    import ruptures

    periods, stances = shares.shape
    settings = (f"ruptures {ruptures.__version__} Pelt, l2 cost on the {stances} stance shares, at least "
                f"{CHANGE_MIN_SIZE} periods per segment, penalty {CHANGE_PENALTY:g}·{stances}·σ²·ln(periods)")
    if periods < 2 * CHANGE_MIN_SIZE:
        return ChangePoints([], settings + f"; not searched: {periods} periods are too few")
    binomial = float(np.mean(shares * (1 - shares) / counts[:, None]))
    mad = np.median(np.abs(np.diff(shares, axis=0)), axis=0) / (0.6745 * np.sqrt(2))
    sigma2 = max(binomial, float(np.median(mad) ** 2), 1e-6)
    penalty = CHANGE_PENALTY * stances * sigma2 * np.log(periods)
    breaks = ruptures.Pelt(model="l2", min_size=CHANGE_MIN_SIZE, jump=1).fit(shares).predict(pen=penalty)
    return ChangePoints([labels[b] for b in breaks[:-1]], settings + f" = {penalty:.3g}")


def _rows(con, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _stance_columns() -> str:
    columns = []
    for s in STANCES:
        low, high = wilson_sql(f"count(*) FILTER (WHERE t.stance = '{s}')", "count(*)")
        columns.append(f"count(*) FILTER (WHERE t.stance = '{s}') AS n_{s}, {low} AS {s}_low, {high} AS {s}_high")
    return ", ".join(columns)


def _json(value) -> str:
    """JSON safe inside a <script> element."""
    import plotly.utils

    return json.dumps(value, cls=plotly.utils.PlotlyJSONEncoder, ensure_ascii=False).replace("</", "<\\/")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _time_figure(topic: str, points: list[dict], period: str, min_sentences: int):
    """Stance shares (lines with Wilson whiskers) over ``period``s and the sentences per period (bars)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06)
    x = [p["period_start"] for p in points]
    labels = [p["period"] for p in points]
    n = np.array([p["n"] for p in points])
    thin = n < min_sentences
    for s in STANCES:
        share = np.array([p[f"n_{s}"] for p in points]) / n
        low, high = np.array([p[f"{s}_low"] for p in points]), np.array([p[f"{s}_high"] for p in points])
        fig.add_trace(go.Scatter(
            x=x, y=share.tolist(), name=s, mode="lines+markers", line={"color": COLOURS[s]}, legendgroup=s,
            marker={"color": [GREY if t else COLOURS[s] for t in thin], "size": 7},
            error_y={"type": "data", "array": (high - share).tolist(), "arrayminus": (share - low).tolist(),
                     "color": COLOURS[s], "thickness": 1}, customdata=[[label, int(m)] for label, m in zip(labels, n)],
            hovertemplate=f"%{{customdata[0]}}: {s} %{{y:.0%}} of %{{customdata[1]}} sentences<extra></extra>"),
            row=1, col=1)
    fig.add_trace(go.Bar(x=x, y=n.tolist(), name="sentences", marker={"color": [GREY if t else "#4a6fa5" for t in thin]},
                         customdata=labels, hovertemplate="%{customdata}: %{y} sentences<extra></extra>"),
                  row=2, col=1)
    fig.update_yaxes(title_text="share of sentences", tickformat=".0%", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="sentences", row=2, col=1)
    fig.update_layout(title={"text": f"{topic}: stance by {period}", "y": 0.98, "yanchor": "top"}, height=540,
                      margin={"t": 90, "b": 30}, legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return fig


def _heat_figure(topic: str, cells: list[dict], source: str, min_sentences: int):
    """Source × stance shares; sources with fewer than ``min_sentences`` sentences in grey."""
    import plotly.graph_objects as go

    sources = [c["source"] for c in cells]
    n = np.array([c["n"] for c in cells])
    share = np.array([[c[f"n_{s}"] for s in STANCES] for c in cells]) / n[:, None]
    text = [[f"{share[i, j]:.0%} (n={n[i]})" for j in range(len(STANCES))] for i in range(len(cells))]
    ok = [[v if m >= min_sentences else None for v in row] for row, m in zip(share.tolist(), n)]
    thin = [[v if m < min_sentences else None for v in row] for row, m in zip(share.tolist(), n)]
    fig = go.Figure()
    for z, scale, show in ((ok, "Blues", True), (thin, [[0, GREY], [1, GREY]], False)):
        fig.add_trace(go.Heatmap(
            z=z, x=list(STANCES), y=sources, text=text, texttemplate="%{text}", colorscale=scale, zmin=0, zmax=1,
            showscale=show, colorbar={"title": "share", "tickformat": ".0%"}, hoverongaps=False,
            hovertemplate=f"{source} %{{y}}, %{{x}}: %{{text}}<extra></extra>"))
    fig.update_layout(title=f"{topic}: stance by {source}", height=max(260, 80 + 28 * len(cells)),
                      margin={"t": 50, "b": 30}, yaxis={"autorange": "reversed", "type": "category"},
                      xaxis={"side": "top"})
    return fig


def write_report(corpus: Corpus, period: str | None, groups: list[str], path: Path, date_column: str = "date",
                 min_sentences: int = 10, attribution: str | None = None, examples: int = EXAMPLES) -> str:
    """Write the HTML report to ``path``; returns the attribution line it carries."""
    import plotly.offline

    con = corpus.con
    source = groups[0] if groups else None
    has_date = date_column in corpus.types
    base = corpus.base(period, groups[:1], date_column)
    topics = [r[0] for r in con.execute(f"SELECT DISTINCT t.topic FROM (SELECT unnest(topics) AS t FROM rows) "
                                        f"ORDER BY 1").fetchall()]
    timeline = _rows(con, f"""SELECT t.topic AS topic, period, period_start, count(*) AS n,
                                     count(DISTINCT doc_id) AS documents, {_stance_columns()}
                              FROM (SELECT period, period_start, doc_id, unnest(topics) AS t FROM ({base}))
                              GROUP BY ALL ORDER BY topic, period_start NULLS LAST""") if period else []
    heat = _rows(con, f"""SELECT t.topic AS topic, CAST({_quote(source)} AS VARCHAR) AS source, count(*) AS n,
                                 count(DISTINCT doc_id) AS documents, {_stance_columns()}
                          FROM (SELECT {_quote(source)}, doc_id, unnest(topics) AS t FROM ({base}))
                          GROUP BY ALL ORDER BY topic, n DESC, source""") if source else []
    explained = "words" in corpus.types["topics"]  # some rows carry words (a mix leaves the others' NULL)
    date_sql = f"strftime({corpus.timestamp(date_column)}, '%Y-%m-%d')" if has_date else "NULL"
    picked = _examples(corpus, base, source, date_sql, explained, examples)
    by_topic_examples: dict = {}
    for e in picked:
        by_topic_examples.setdefault(e["topic"], {}).setdefault(e["source"], {}).setdefault(e["stance"], []).append(e)

    total = int(con.execute("SELECT count(*) FROM rows").fetchone()[0])
    line = attribution or _manifest_attribution(corpus)
    figures, sections = [], []
    for topic in topics:
        parts = [f'<section id="topic-{html.escape(topic)}"><h2>{html.escape(topic)}</h2>']
        points = [p for p in timeline if p["topic"] == topic and p["period"] != UNDATED]
        undated = sum(p["n"] for p in timeline if p["topic"] == topic and p["period"] == UNDATED)
        if period and points:
            fig = _time_figure(topic, points, period, min_sentences)
            n = np.array([p["n"] for p in points])
            dated = [p for p, m in zip(points, n) if m >= min_sentences]
            shares = np.array([[p[f"n_{s}"] / p["n"] for s in STANCES] for p in dated]).reshape(len(dated), len(STANCES))
            found = change_points(shares, np.array([p["n"] for p in dated]), [p["period"] for p in dated])
            for label in found.periods:
                start = next(p["period_start"] for p in points if p["period"] == label)
                fig.add_vline(x=start, line_dash="dash", line_color="#333")
                fig.add_annotation(x=start, y=1.02, yref="y domain", text=f"change {label}", showarrow=False,
                                   xanchor="left", font={"size": 11})
            changes = (f"Change points in the stance shares (dashed lines): {', '.join(found.periods)}."
                       if found.periods else "No change point found in the stance shares.")
            caption = (f"How the {_plural(int(n.sum()), 'dated sentence')} about «{topic}» (from "
                       f"{_plural(sum(p['documents'] for p in points), 'document')}) divide "
                       f"among the four stances, {period} by {period}: lines give each stance's share of the "
                       f"{period}'s sentences with 95 % Wilson intervals as whiskers; bars give the number of "
                       f"sentences. {period.capitalize()}s with fewer than {min_sentences} sentences are grey. "
                       + (f"{_plural(undated, 'sentence')} about «{topic}» have no date and are not on this chart "
                          f"(they are in the '{UNDATED}' rows of the tables). " if undated else "")
                       + f"{changes} Change points were searched over the {len(dated)} {period}s with at least "
                       f"{min_sentences} sentences: {found.settings}.")
            figures.append(fig)
            parts.append(_figure_html(len(figures) - 1, caption, "time"))
        cells = [c for c in heat if c["topic"] == topic]
        if cells:
            fig = _heat_figure(topic, cells, source, min_sentences)
            thin = sum(c["n"] < min_sentences for c in cells)
            caption = (f"For each {source}, the share of its sentences about «{topic}» that take each stance "
                       f"(colour; n = sentences). Rests on {_plural(sum(c['n'] for c in cells), 'sentence')} from "
                       f"{_plural(len(cells), source)}"
                       + (f"; {thin} with fewer than {min_sentences} sentences are grey" if thin else "")
                       + ". Click a cell to see its example sentences below.")
            figures.append(fig)
            parts.append(_figure_html(len(figures) - 1, caption, "heat", topic))
            parts.append(f'<div class="picked" id="picked-{html.escape(topic)}">Click a cell of the heat map '
                         f'to read its example sentences.</div>')
        parts.append(_examples_html(topic, by_topic_examples.get(topic, {}), source, explained, examples))
        parts.append("</section>")
        sections.append("".join(parts))

    document = _PAGE.format(
        plotly=plotly.offline.get_plotlyjs(),
        title=html.escape(f"rustance report: {corpus.model}"),
        meta=html.escape(f"{total:,} sentences labelled by {corpus.model} (rustance {corpus.version}); "
                         f"grouped by {', '.join([*([period] if period else []), *groups]) or 'topic only'}; "
                         f"cells under {min_sentences} sentences are grey."
                         + ("" if explained else " " + UNEXPLAINED_NOTE)),
        attribution=html.escape(line),
        toc=" · ".join(f'<a href="#topic-{html.escape(t)}">{html.escape(t)}</a>' for t in topics),
        sections="".join(sections) or "<p>No sentence is about any topic: nothing to chart.</p>",
        figures=_json([json.loads(f.to_json()) for f in figures]),
        examples=_json(by_topic_examples),
        words_missing=_json(NOT_EXPLAINED),
        no_word=_json(NO_WORD),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return line


def _examples(corpus: Corpus, base: str, source: str | None, date_sql: str, explained: bool, k: int) -> list[dict]:
    """The ``k`` sentences of highest stance confidence per (topic, source, stance)."""
    confidence = f"greatest({', '.join(f't.{s}' for s in STANCES)})"
    source_sql = f"CAST({_quote(source)} AS VARCHAR)" if source else "'all'"
    words = ", t.words AS words" if explained else ""
    return _rows(corpus.con, f"""
        WITH pairs AS (SELECT {source_sql} AS source, doc_id, sentence, {date_sql} AS date, unnest(topics) AS t
                       FROM ({base})),
        ranked AS (SELECT t.topic AS topic, source, t.stance AS stance, doc_id, sentence, date,
                          round(CAST({confidence} AS DOUBLE), 3) AS probability,
                          round(CAST(t.probability AS DOUBLE), 3) AS topic_probability{words},
                          row_number() OVER (PARTITION BY t.topic, source, t.stance
                                             ORDER BY {confidence} DESC, doc_id, sentence) AS rank
                   FROM pairs)
        SELECT * EXCLUDE (rank) FROM ranked WHERE rank <= {int(k)} ORDER BY topic, source, stance, rank""")


def _manifest_attribution(corpus: Corpus) -> str:
    for source in corpus.sources:
        if source.manifest.get("attribution"):
            return str(source.manifest["attribution"])
    inputs = sorted({str(i) for s in corpus.sources for i in s.manifest.get("fingerprint", {}).get("inputs", [])})
    return ("Data: " + ", ".join(inputs) if inputs else "Data: " + ", ".join(str(s.path) for s in corpus.sources)) \
        + " (no attribution given: pass --attribution)"


def _figure_html(index: int, caption: str, kind: str, topic: str = "") -> str:
    return (f'<figure class="{kind}"><div class="chart" id="chart-{index}" data-kind="{kind}" '
            f'data-topic="{html.escape(topic)}"></div><figcaption>{html.escape(caption)}</figcaption></figure>')


def _words_text(words: list[dict] | None) -> str:
    """The words of an example with their weights; says so when the row has none or was not explained."""
    if words is None:
        return NOT_EXPLAINED
    if not words:
        return NO_WORD
    return ", ".join(f"{w['word']} ({w['weight']:+.2f})" for w in words)


def _examples_html(topic: str, by_source: dict, source: str | None, explained: bool, k: int) -> str:
    """The ``k`` most confident examples per stance over all sources, as a plain table (readable without
    JavaScript; a heat-map cell shows its own source's examples)."""
    rows = []
    for stance in STANCES:
        merged = [(src, e) for src, stances in by_source.items() for e in stances.get(stance, [])]
        for src, e in sorted(merged, key=lambda item: -item[1]["probability"])[:k]:
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                stance, e["probability"], e["date"] or "no date", src, e["doc_id"], e["sentence"],
                *([_words_text(e.get("words"))] if explained else []))) + "</tr>")
    head = ["stance", "probability", "date", source or "source", "doc id", "sentence", *(
        ["words that drove the label"] if explained else [])]
    where = f" from all {html.escape(source)}s (click a heat-map cell for one {html.escape(source)}'s)" if source else ""
    note = "" if explained else f'<p class="no-words">{html.escape(UNEXPLAINED_NOTE)}</p>'
    return (f"<details><summary>Example sentences about «{html.escape(topic)}»: up to {k} per stance, highest "
            f"stance probability first{where}</summary>{note}<table><thead><tr>{''.join(f'<th>{h}</th>' for h in head)}"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></details>")


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script>
window.reportErrors = [];
window.addEventListener("error", function (e) {{ window.reportErrors.push(String(e.message));
  document.documentElement.setAttribute("data-errors", window.reportErrors.join(" | ")); }});
</script>
<script>{plotly}</script>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 1em auto; color: #222; }}
figcaption {{ font-size: 0.9em; color: #444; margin: 0.3em 0 1.2em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }} td, th {{ border: 1px solid #ddd; padding: 3px 6px;
vertical-align: top; }} .picked {{ background: #f6f6f6; padding: 0.5em; font-size: 0.9em; }}
.meta, .attribution {{ color: #555; font-size: 0.9em; }}
</style></head>
<body data-status="loading">
<h1>{title}</h1>
<p class="meta">{meta}</p>
<p class="attribution">{attribution}</p>
<nav>{toc}</nav>
{sections}
<script type="application/json" id="figures">{figures}</script>
<script type="application/json" id="examples">{examples}</script>
<script>
(function () {{
  var figures = JSON.parse(document.getElementById("figures").textContent);
  var examples = JSON.parse(document.getElementById("examples").textContent);
  var wordsMissing = {words_missing}, noWord = {no_word};
  function show(topic, source, stance) {{
    var box = document.getElementById("picked-" + topic);
    if (!box) return;
    var list = ((examples[topic] || {{}})[source] || {{}})[stance] || [];
    box.textContent = "";
    var head = document.createElement("p");
    head.textContent = source + ", " + stance + ": " + (list.length ? list.length + " example sentences, highest "
      + "probability first" : "no sentence");
    box.appendChild(head);
    list.forEach(function (e) {{
      var p = document.createElement("p");
      var words = " — words: " + (e.words == null ? wordsMissing : e.words.length
        ? e.words.map(function (w) {{ return w.word; }}).join(", ") : noWord);
      p.textContent = "«" + e.sentence + "» (" + (e.date || "no date") + ", " + e.doc_id + ", p = " + e.probability + ")" + words;
      box.appendChild(p);
    }});
  }}
  var drawn = figures.map(function (figure, i) {{
    var element = document.getElementById("chart-" + i);
    return Plotly.newPlot(element, figure.data, figure.layout, {{displaylogo: false, responsive: true}}).then(function () {{
      if (element.dataset.kind === "heat") {{
        element.on("plotly_click", function (event) {{
          var point = event.points[0];
          show(element.dataset.topic, String(point.y), String(point.x));
        }});
      }}
    }});
  }});
  Promise.all(drawn).then(function () {{
    document.body.setAttribute("data-plots", String(document.querySelectorAll(".chart .main-svg").length ? drawn.length : 0));
    document.body.setAttribute("data-status", "ok");
  }}, function (error) {{
    window.reportErrors.push(String(error));
    document.documentElement.setAttribute("data-errors", window.reportErrors.join(" | "));
    document.body.setAttribute("data-status", "failed");
  }});
}})();
</script>
</body></html>
"""
