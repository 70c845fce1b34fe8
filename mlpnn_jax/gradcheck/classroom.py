"""Class mode of ``mlpnn-jax gradcheck``: a whole class's submissions in one command.

``expand`` turns the targets (PATH:NAME, PATH a file, a directory or a quoted glob) into one target per
file; ``check_file`` checks one in its own child process (``isolate.run_isolated``, with its own time
limit) and makes it a ``Row``; ``check_all`` runs several at once (threads, each waiting on its child);
``write_summary`` and ``write_pages`` write what a teacher keeps.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import glob
import io
import json
import os
import time
from pathlib import Path

VERDICTS = {0: "ok", 1: "failed", 2: "not checked"}  # exit code -> verdict; the worst code is the largest
SOURCES = (".py", ".ipynb")
COLUMNS = ("path", "function", "verdict", "exit_code", "message", "seconds", "page")  # JSON: + params
PARAM_KEYS = (
    "ok",
    "status",
    "expected_shape",
    "got_shape",
    "max_abs_err",
    "max_rel_err",
    "max_entry_rel_err",
)
GLOB_CHARS = frozenset("*?[")


class ClassError(ValueError):
    """A target or option of class mode that cannot work (one line, exit 2)."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One submission's result: its summary columns, per-parameter errors, and the whole report."""

    path: str
    function: str
    verdict: str
    exit_code: int
    message: str
    seconds: float
    params: dict
    report: dict | None = None  # the JSON report (None when it could not be checked)
    traceback: str = ""  # the user's traceback, when their code raised
    page: str = ""  # the page's path relative to the summary, once written

    def summary(self):
        """The row as the JSON summary holds it."""
        return {**{k: getattr(self, k) for k in COLUMNS}, "params": self.params}


def default_jobs():
    """One child per core this process may use."""
    return len(os.sched_getaffinity(0))


def is_class(specs, summary=None):
    """Whether the targets are a class (several files, a directory, a glob, or a summary asked for)."""
    paths = [s.rpartition(":")[0] for s in specs]
    return (
        len(specs) > 1 or summary is not None or any(GLOB_CHARS & set(p) or Path(p).is_dir() for p in paths)
    )


def expand(specs):
    """['PATH:NAME', ...] -> one 'FILE:NAME' per file, in order, each once.

    PATH is a file, a glob (expanded here, so it may be quoted) or a directory: every .py and .ipynb
    under it that defines NAME (or has a definition of it that does not parse).
    """
    out = []
    for spec in specs:
        path, sep, name = spec.rpartition(":")
        if not sep or not path or not name:
            raise ClassError(f"expected PATH:NAME (PATH a file, a directory or a glob); got {spec!r}")
        files = _files(path, name)
        if not files:
            raise ClassError(f"{path}: no .py or .ipynb file there defines {name}")
        out += [t for t in (f"{f}:{name}" for f in files) if t not in out]
    return out


def _files(path, name):
    """The files PATH names for NAME: itself, its glob's matches, or those under a directory."""
    if GLOB_CHARS & set(path):
        matches = sorted(glob.glob(os.path.expanduser(path), recursive=True))
        files = [m for m in matches if Path(m).is_file() and Path(m).suffix in SOURCES]
        return files + [f for m in matches if Path(m).is_dir() for f in _defining(Path(m), name)]
    if Path(path).expanduser().is_dir():
        return _defining(Path(path).expanduser(), name)
    return [path]  # a missing or odd file: its row says why


def _defining(folder, name):
    """The .py and .ipynb files under ``folder`` (hidden folders left out) that define ``name``."""
    from mlpnn_jax.gradcheck import load

    head = name.partition(".")[0]
    found = []
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder).parts
        if f.suffix not in SOURCES or not f.is_file() or any(p.startswith(".") for p in rel):
            continue
        try:
            module = load.Module(f, {})
        except load.LoadError:  # an unreadable notebook: listed, so that its row says so
            found.append(str(f))
            continue
        if head in module.defs or head in module.broken:
            found.append(str(f))
    return found


def check_file(target, request, bounds):
    """Check one FILE:NAME in its own child process: a Row (never raises for the file's faults).

    ``request`` holds the other fields of ``isolate.Request`` (init, forward, loss, options...);
    ``bounds`` the keyword arguments of ``isolate.run_isolated`` (timeout, memory_limit).
    """
    from mlpnn_jax.gradcheck.isolate import Outcome, Request, run_isolated
    from mlpnn_jax.gradcheck.load import LoadError, precheck

    start = time.monotonic()
    try:
        precheck(target)  # a missing file or function, a definition that does not parse: no child
        outcome, _ = run_isolated(Request(target=target, as_json=True, **request), **bounds)
    except LoadError as e:
        outcome = Outcome(2, error=str(e))
    return row(target, outcome, time.monotonic() - start)


def row(target, outcome, seconds):
    """The Row of FILE:NAME's isolate.Outcome, whose report, if any, is JSON."""
    path, _, name = target.rpartition(":")
    seconds = round(seconds, 2)
    if outcome.code == 2:
        return Row(path, name, VERDICTS[2], 2, outcome.error, seconds, {}, traceback=outcome.traceback)
    report = json.loads(outcome.report)
    errors = [d["message"] for d in report["diagnoses"] if d["level"] == "error"]
    failing = [name for name, p in report["params"].items() if not p["ok"]]
    message = errors[0] if errors else f"{', '.join(failing)} wrong" if failing else report["network"]
    params = {name: {k: p[k] for k in PARAM_KEYS} for name, p in report["params"].items()}
    return Row(path, name, VERDICTS[outcome.code], outcome.code, message, seconds, params, report)


def check_all(targets, request, bounds, jobs):
    """Check every target, ``jobs`` at a time: yields (its index, its Row) as each check ends."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(check_file, t, request, bounds): i for i, t in enumerate(targets)}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


def labels(targets):
    """What names each FILE:NAME on stdout: FILE, or FILE:NAME where the targets name several functions."""
    names = {t.rpartition(":")[2] for t in targets}
    return [t if len(names) > 1 else t.rpartition(":")[0] for t in targets]


def line(label, row, width):
    """The row as stdout shows it: its label, verdict, the first diagnosis or error."""
    return f"{label:<{width}}  {row.verdict:<11}  {row.message}"


def total(rows):
    """'31 ok, 9 failed, 2 not checked'."""
    return ", ".join(f"{sum(r.verdict == v for r in rows)} {v}" for v in VERDICTS.values())


def exit_code(rows):
    """The worst of the files' exit codes (2 > 1 > 0)."""
    return max((r.exit_code for r in rows), default=0)


def check_summary_path(path):
    """Raise ClassError for a --summary that cannot be written as asked."""
    path = Path(path)
    if path.suffix not in _WRITERS:
        raise ClassError(f"--summary: {path} must end in .json or .csv")
    if not path.parent.is_dir():
        raise ClassError(f"--summary: {path.parent} is not a directory")


def pages_dir(summary):
    """The folder beside the summary that holds one page per submission: grades.csv -> grades-pages/."""
    summary = Path(summary)
    return summary.with_name(f"{summary.stem}-pages")


def page_names(rows):
    """The file name of each row's page: its path below the files' common folder, '/' as '__', and
    '-FUNCTION' where one file is checked for several functions."""
    paths = [Path(r.path).resolve() for r in rows]
    common = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path()
    stems = ["__".join(p.relative_to(common).parts) for p in paths]
    return [
        f"{s}-{r.function}.html" if stems.count(s) > 1 else f"{s}.html"
        for s, r in zip(stems, rows, strict=True)
    ]


def write_pages(rows, summary):
    """One page per row in ``pages_dir(summary)``; returns the rows with their ``page`` set."""
    from mlpnn_jax.checkpoint import write_text
    from mlpnn_jax.gradcheck import page

    folder = pages_dir(summary)
    folder.mkdir(exist_ok=True)
    out = []
    for r, name in zip(rows, page_names(rows), strict=True):
        write_text(folder / name, page.render(r.path, r.verdict, r.message, r.report, r.traceback))
        out.append(dataclasses.replace(r, page=f"{folder.name}/{name}"))
    return out


def _csv(rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([getattr(r, k) for k in COLUMNS] for r in rows)
    return buf.getvalue()


def _json(rows):
    return json.dumps([r.summary() for r in rows], indent=2, allow_nan=False) + "\n"


_WRITERS = {".json": _json, ".csv": _csv}


def write_summary(path, rows):
    """The summary as .json (with per-parameter errors) or .csv, written atomically."""
    from mlpnn_jax.checkpoint import write_text

    write_text(path, _WRITERS[Path(path).suffix](rows))
