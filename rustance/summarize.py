"""Stance over time and by source: aggregate ``rustance predict`` output folders with DuckDB.

Per (period, group..., topic) the summary gives the number of sentences about the topic, the share of each
stance with its 95 % Wilson score interval, the share of each sentiment label and the mean sentiment
probabilities, and the mean topic probability and stance confidence (the chosen stance's probability).
All the work is SQL over the Parquet (or JSON lines) parts: rows are never looped over in Python, and
DuckDB streams the parts, so memory stays bounded whatever the corpus size.

Rows without a usable date go to the ``undated`` period (counted, never dropped); rows without a value in a
group column go to the ``(missing)`` group.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rustance import __version__
from rustance.errors import RustanceError
from rustance.labels import SENTIMENTS, STANCES

MANIFEST = "_manifest.json"  # as written by rustance.inference.engine
PERIODS = ("day", "week", "month", "quarter")
UNDATED = "undated"
MISSING = "(missing)"
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval
FIRST_READABLE = (0, 2)  # output folders of rustance 0.1 have another layout (manifest.json, no version column)
LABEL_COLUMNS = ("sentence_index", "start", "end", "sentence", "topics", "sentiment",
                 *(f"sentiment_{s}" for s in SENTIMENTS), "truncated", "model", "rustance_version")
ROW_COLUMNS = ("doc_id", "source", "line", *LABEL_COLUMNS)  # source, line: the input file and line of the document
REQUIRED = ("doc_id", "sentence", "topics", "sentiment", *(f"sentiment_{s}" for s in SENTIMENTS), "model",
            "rustance_version")


class SummarizeError(RustanceError, ValueError):
    """A folder that cannot be summarized as asked (not a predict output, wrong version, mixed models...)."""


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in str(text).split(".")[:2])
    except ValueError:
        return (0,)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


@dataclass
class Source:
    """One predict output folder: its row files and what its manifest says."""

    path: Path
    files: list[Path]
    format: str  # parquet | jsonl
    manifest: dict
    complete: bool


def open_output(folder: str | Path) -> Source:
    """Check that ``folder`` is an output folder of ``rustance predict`` this version reads; list its row files."""
    folder = Path(folder)
    hint = "give the folder written by `rustance predict --output`"
    if not folder.exists():
        raise SummarizeError(f"{folder} does not exist; {hint}")
    if not folder.is_dir():
        raise SummarizeError(f"{folder} is a file, not a predict output folder; {hint}")
    if (folder / MANIFEST).is_file():
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            parts = [part["name"] for part in manifest["parts"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise SummarizeError(f"{folder / MANIFEST} is not a readable rustance manifest ({exc})") from None
        version = manifest.get("rustance", "0")
        if _version(version) < FIRST_READABLE:
            raise SummarizeError(f"{folder} was written by rustance {version}, whose layout this version "
                                 f"({__version__}) does not read; label the corpus again with this version")
        missing = [name for name in parts if not (folder / name).is_file()]
        if missing:
            raise SummarizeError(f"{folder}: {len(missing)} part(s) listed in {MANIFEST} are missing "
                                 f"(first: {missing[0]}); the folder is damaged, run predict again")
        files = [folder / name for name in parts]
        return Source(folder, files, _format_of(folder, files), manifest, bool(manifest.get("complete")))
    if (folder / "manifest.json").is_file():
        raise SummarizeError(f"{folder} was written by rustance 0.1 (manifest.json), whose layout this version "
                             f"({__version__}) does not read; label the corpus again with this version")
    rows = folder / "rows"  # the Ray engine writes OUT/rows/ and OUT/rejects/
    if rows.is_dir():
        files = sorted(p for p in rows.iterdir() if p.suffix in (".parquet", ".json", ".jsonl"))
        return Source(folder, files, _format_of(folder, files), {}, True)
    raise SummarizeError(f"{folder} is not a rustance predict output folder (no {MANIFEST}); {hint}")


def _format_of(folder: Path, files: list[Path]) -> str:
    kinds = {"parquet" if p.suffix == ".parquet" else "jsonl" for p in files}
    if len(kinds) > 1:
        raise SummarizeError(f"{folder} mixes Parquet and JSON lines parts; it is not one predict run")
    return kinds.pop() if kinds else "parquet"


@dataclass
class Summary:
    """What ``summarize`` did: counts for the printed summary and the files written."""

    folders: list[str]
    model: str
    version: str
    rows: int
    documents: int
    topic_rows: int  # (sentence, topic) pairs: a sentence about two topics counts in both
    cells: int  # rows of the summary table
    period: str | None
    groups: list[str]
    undated: int = 0  # sentences in the undated bucket
    unparsed_dates: int = 0  # of those, sentences whose date was there but not a date
    missing_groups: dict[str, int] = field(default_factory=dict)  # group column → sentences without a value
    incomplete: list[str] = field(default_factory=list)  # folders of runs that did not finish
    files: list[str] = field(default_factory=list)
    attribution: str = ""

    def describe(self) -> str:
        lines = [f"read {self.rows:,} sentences of {self.documents:,} documents from {', '.join(self.folders)} "
                 f"(model {self.model}, rustance {self.version})"]
        lines += [f"note: the run in {f} has not finished; only its finished parts are summarized"
                  for f in self.incomplete]
        lines.append(f"{self.topic_rows:,} (sentence, topic) pairs in {self.cells:,} cells of "
                     f"{' × '.join([*([self.period] if self.period else []), *self.groups, 'topic'])}")
        if self.period:
            detail = f" ({self.unparsed_dates:,} with a value that is not a date)" if self.unparsed_dates else ""
            lines.append(f"undated: {self.undated:,} sentences have no date{detail}; they are in the "
                         f"'{UNDATED}' period")
        for column, count in self.missing_groups.items():
            lines.append(f"{column}: {count:,} sentences have no value; they are in the '{MISSING}' group")
        if not self.topic_rows:
            lines.append("no sentence is about any topic: the summary tables are empty")
        lines.append("wrote " + ", ".join(self.files))
        return "\n".join(lines)


class Corpus:
    """A DuckDB view ``rows`` over one or more predict output folders of one model, checked on opening."""

    def __init__(self, folders: Sequence[str | Path], threads: int | None = None, memory_limit: str = "2GB"):
        import duckdb

        if not folders:
            raise SummarizeError("give at least one predict output folder")
        self.sources = [open_output(f) for f in folders]
        files = [str(p) for s in self.sources for p in s.files]
        self.con = duckdb.connect(config={"memory_limit": memory_limit, "preserve_insertion_order": False,
                                          **({"threads": threads} if threads else {})})
        self.con.execute("SET TimeZone = 'UTC'")
        names = ", ".join(str(s.path) for s in self.sources)
        if not files:
            raise SummarizeError(f"{names} holds no labelled sentences (no row parts): nothing to summarize")
        listing = "[" + ", ".join(_literal(f) for f in files) + "]"
        if {s.format for s in self.sources} == {"parquet"}:
            reader = f"read_parquet({listing}, union_by_name = true)"
        elif {s.format for s in self.sources} == {"jsonl"}:
            reader = f"read_json({listing}, format = 'newline_delimited', union_by_name = true, sample_size = -1)"
        else:
            raise SummarizeError(f"{names} mix Parquet and JSON lines output; summarize one format at a time")
        try:
            self.con.execute(f"CREATE VIEW rows AS SELECT * FROM {reader}")
            self.types = {name: str(kind) for name, kind in
                          self.con.execute("SELECT column_name, column_type FROM (DESCRIBE rows)").fetchall()}
        except duckdb.Error as exc:
            raise SummarizeError(f"{names}: the row parts cannot be read ({str(exc).splitlines()[0]})") from None
        self.columns = list(self.types)
        lacking = [c for c in REQUIRED if c not in self.types]
        if lacking:
            raise SummarizeError(f"{names} is not rustance predict output: its rows lack {', '.join(lacking)}")
        self._check_models()

    def _check_models(self) -> None:
        names = ", ".join(str(s.path) for s in self.sources)
        found = self.con.execute("SELECT model, rustance_version, count(*) FROM rows GROUP BY ALL "
                                 "ORDER BY 3 DESC").fetchall()
        if not found:
            raise SummarizeError(f"{names} holds no labelled sentences (0 rows): nothing to summarize")
        old = sorted({v for _, v, _ in found if _version(v) < FIRST_READABLE})
        if old:
            raise SummarizeError(f"{names} holds rows of rustance {', '.join(map(str, old))}, whose layout this "
                                 f"version ({__version__}) does not read; label the corpus again")
        models = {}
        for model, _, count in found:
            models[model] = models.get(model, 0) + count
        weights = {s.manifest.get("fingerprint", {}).get("weights_sha256") for s in self.sources} - {None}
        if len(models) > 1 or len(weights) > 1:
            what = (", ".join(f"{m} ({n:,} sentences)" for m, n in models.items()) if len(models) > 1
                    else f"{len(weights)} different weight files of {next(iter(models))}")
            raise SummarizeError(f"{names} mix the output of several models: {what}; summarize one model's "
                                 "output at a time")
        self.model = next(iter(models))
        self.version = ", ".join(sorted({str(v) for _, v, _ in found}))

    def kept_columns(self) -> list[str]:
        """The columns predict --keep-column added (as the manifests list them, else the non-standard ones)."""
        listed = [c["name"] for s in self.sources for c in s.manifest.get("kept_columns", [])]
        if listed:
            return list(dict.fromkeys(listed))
        return [c for c in self.columns if c not in ROW_COLUMNS]

    # --- expressions ----------------------------------------------------------------------------
    def timestamp(self, date_column: str) -> str:
        """SQL for a row's date as a UTC timestamp (NULL when there is none or it is not a date)."""
        kind = self.types[date_column].upper()
        column = _quote(date_column)
        if kind.startswith("TIMESTAMP") or kind == "DATE":
            return f"CAST({column} AS TIMESTAMP)"
        return f"CAST(TRY_CAST(CAST({column} AS VARCHAR) AS TIMESTAMPTZ) AS TIMESTAMP)"

    def unparsed(self, date_column: str) -> str:
        """SQL true for rows whose date value is present but not a date."""
        raw = f"{date_column}_raw"  # predict --keep-column keeps an unparsable date's text there
        checks = []
        if raw in self.types:
            checks.append(f"{_quote(raw)} IS NOT NULL")
        if not self.types[date_column].upper().startswith(("TIMESTAMP", "DATE")):
            checks.append(f"({_quote(date_column)} IS NOT NULL AND {self.timestamp(date_column)} IS NULL)")
        return " OR ".join(checks) or "false"

    def check_columns(self, period: str | None, groups: Sequence[str], date_column: str) -> None:
        kept = ", ".join(self.kept_columns()) or "none"
        if period and date_column not in self.types:
            raise SummarizeError(f"--by {period} needs dates, but the rows have no {date_column!r} column "
                                 f"(kept columns: {kept}); label the corpus with `rustance predict "
                                 f"--keep-column {date_column}` or name the date column with --date-column")
        for group in groups:
            if group not in self.types:
                raise SummarizeError(f"--by {group}: the rows have no {group!r} column (kept columns: {kept}); "
                                     f"label the corpus with `rustance predict --keep-column {group}`")
            if group in LABEL_COLUMNS:
                raise SummarizeError(f"--by {group}: {group!r} is a label column, not a group; group by a period "
                                     f"({', '.join(PERIODS)}) or a kept column ({kept})")

    def base(self, period: str | None, groups: Sequence[str], date_column: str) -> str:
        """SQL of the rows with ``period``/``period_start`` and one text column per group."""
        if period:
            ts = self.timestamp(date_column)
            label = {"day": f"strftime({ts}, '%Y-%m-%d')",
                     "week": f"CAST(isoyear({ts}) AS VARCHAR) || '-W' || lpad(CAST(week({ts}) AS VARCHAR), 2, '0')",
                     "month": f"strftime({ts}, '%Y-%m')",
                     "quarter": f"CAST(year({ts}) AS VARCHAR) || '-Q' || CAST(quarter({ts}) AS VARCHAR)"}[period]
            start = f"CAST(date_trunc('{period}', {ts}) AS DATE)"
            timing = f"coalesce({label}, '{UNDATED}') AS period, {start} AS period_start, {ts} AS _ts"
        else:
            timing = "'all' AS period, CAST(NULL AS DATE) AS period_start, CAST(NULL AS TIMESTAMP) AS _ts"
        if not groups:
            return f"SELECT *, {timing} FROM rows"
        replaced = ", ".join(f"coalesce(CAST({_quote(g)} AS VARCHAR), {_literal(MISSING)}) AS {_quote(g)}"
                             for g in groups)
        return f"SELECT * REPLACE ({replaced}), {timing} FROM rows"


def wilson_sql(k: str, n: str) -> tuple[str, str]:
    """SQL for the 95 % Wilson score interval (low, high) of the proportion k/n."""
    p, z2 = f"(CAST({k} AS DOUBLE) / {n})", f"{Z95 ** 2!r}"
    centre = f"({p} + {z2} / (2 * {n}))"
    spread = f"({Z95!r} * sqrt({p} * (1 - {p}) / {n} + {z2} / (4 * {n} * {n})))"
    scale = f"(1 + {z2} / {n})"
    return f"greatest(0.0, ({centre} - {spread}) / {scale})", f"least(1.0, ({centre} + {spread}) / {scale})"


def summary_sql(corpus: Corpus, period: str | None, groups: Sequence[str], date_column: str) -> str:
    """One row per (period, group..., topic): counts, stance shares with intervals, sentiment, confidence."""
    keys = ["period", "period_start", *map(_quote, groups)]
    counts = ", ".join(f"count(*) FILTER (WHERE t.stance = '{s}') AS n_{s}" for s in STANCES)
    sentiment = ", ".join(f"avg(CASE WHEN sentiment = '{s}' THEN 1.0 ELSE 0.0 END) AS sentiment_{s}_share, "
                          f"avg(sentiment_{s}) AS sentiment_{s}_mean" for s in SENTIMENTS)
    confidence = f"greatest({', '.join(f't.{s}' for s in STANCES)})"
    shares = []
    for s in STANCES:
        low, high = wilson_sql(f"n_{s}", "sentences")
        shares.append(f"CAST(n_{s} AS DOUBLE) / sentences AS {s}_share, {low} AS {s}_low, {high} AS {s}_high")
    stance_order = [f"n_{s}" for s in STANCES]
    return f"""
        WITH base AS ({corpus.base(period, groups, date_column)}),
        pairs AS (SELECT {', '.join(keys)}, doc_id, sentiment, {', '.join(f'sentiment_{s}' for s in SENTIMENTS)},
                         unnest(topics) AS t FROM base),
        cells AS (SELECT {', '.join(keys)}, t.topic AS topic, count(*) AS sentences,
                         count(DISTINCT doc_id) AS documents, {counts}, {sentiment},
                         avg(t.probability) AS mean_topic_probability, avg({confidence}) AS mean_stance_confidence
                  FROM pairs GROUP BY ALL)
        SELECT {', '.join(keys)}, topic, sentences, documents, {', '.join(stance_order)}, {', '.join(shares)},
               {', '.join(f'sentiment_{s}_share' for s in SENTIMENTS)},
               {', '.join(f'sentiment_{s}_mean' for s in SENTIMENTS)}, mean_topic_probability, mean_stance_confidence
        FROM cells ORDER BY period_start NULLS LAST, period, {', '.join([*map(_quote, groups), 'topic'])}"""


def volume_sql(corpus: Corpus, period: str | None, groups: Sequence[str], date_column: str) -> str:
    """One row per (period, group...): all sentences (with or without a topic) and documents."""
    keys = ", ".join(["period", "period_start", *map(_quote, groups)])
    return f"""SELECT {keys}, count(*) AS sentences, count(DISTINCT doc_id) AS documents,
                      count(*) FILTER (WHERE len(topics) > 0) AS sentences_with_topic
               FROM ({corpus.base(period, groups, date_column)}) GROUP BY ALL
               ORDER BY period_start NULLS LAST, {keys}"""


def split_by(by: Sequence[str]) -> tuple[str | None, list[str]]:
    """``--by`` values → (the period or None, the group columns in order)."""
    periods = [b for b in by if b in PERIODS]
    if len(periods) > 1:
        raise SummarizeError(f"--by takes one period at most, got {', '.join(periods)}")
    groups = [b for b in by if b not in PERIODS]
    if len(set(groups)) != len(groups):
        raise SummarizeError(f"--by names a column twice: {', '.join(groups)}")
    return (periods[0] if periods else None), groups


def summarize(folders: Sequence[str | Path], by: Sequence[str], out: str | Path, date_column: str = "date",
              threads: int | None = None, memory_limit: str = "2GB", html: str | Path | None = None,
              min_sentences: int = 10, attribution: str | None = None) -> Summary:
    """Write ``summary.parquet``/``.csv`` (per period, group, topic) and ``volume.parquet``/``.csv`` (per
    period and group, every sentence) into ``out``, and with ``html`` the interactive report
    (:mod:`rustance.report`); return counts for the printed summary."""
    period, groups = split_by(by)
    if min_sentences < 1:
        raise SummarizeError(f"--min-sentences must be at least 1, got {min_sentences}")
    import duckdb

    corpus = Corpus(folders, threads=threads, memory_limit=memory_limit)
    corpus.check_columns(period, groups, date_column)
    try:
        result = write_summary(corpus, period, groups, out, date_column)
        if html is not None:
            from rustance.report import write_report

            result.attribution = write_report(corpus, period, list(groups), Path(html), date_column,
                                              min_sentences, attribution)
            result.files.append(str(html))
    except duckdb.Error as exc:  # a damaged part, a full disk...
        raise SummarizeError(f"summarizing {', '.join(str(s.path) for s in corpus.sources)} failed: "
                             f"{str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise SummarizeError(f"cannot write the summary: {exc}") from None
    return result


def write_summary(corpus: Corpus, period: str | None, groups: Sequence[str], out: str | Path,
                  date_column: str = "date") -> Summary:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SummarizeError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    con = corpus.con
    con.execute(f"CREATE OR REPLACE TEMP TABLE summary AS {summary_sql(corpus, period, groups, date_column)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE volume AS {volume_sql(corpus, period, groups, date_column)}")
    files = []
    for table in ("summary", "volume"):
        for suffix, options in ((".parquet", "FORMAT parquet"), (".csv", "FORMAT csv, HEADER true")):
            path = out / f"{table}{suffix}"
            con.execute(f"COPY (SELECT * FROM {table}) TO {_literal(str(path))} ({options})")
            files.append(str(path))
    rows = con.execute("SELECT sum(sentences) FROM volume").fetchone()[0]
    documents = con.execute("SELECT count(DISTINCT doc_id) FROM rows").fetchone()[0]
    topic_rows, cells = con.execute("SELECT coalesce(sum(sentences), 0), count(*) FROM summary").fetchone()
    result = Summary(folders=[str(s.path) for s in corpus.sources], model=corpus.model, version=corpus.version,
                     rows=int(rows), documents=int(documents), topic_rows=int(topic_rows), cells=int(cells),
                     period=period, groups=list(groups), files=files,
                     incomplete=[str(s.path) for s in corpus.sources if not s.complete])
    if period:
        result.undated, result.unparsed_dates = map(int, con.execute(
            f"SELECT count(*) FILTER (WHERE _ts IS NULL), count(*) FILTER (WHERE _ts IS NULL AND "
            f"({corpus.unparsed(date_column)})) FROM ({corpus.base(period, [], date_column)})").fetchone())
    for group in groups:
        missing = con.execute(f"SELECT count(*) FROM rows WHERE {_quote(group)} IS NULL").fetchone()[0]
        if missing:
            result.missing_groups[group] = int(missing)
    return result

