"""The gradcheck command's terminal side: one check (its report, ``--json``, ``--html``) or a class
of files (one line each, a total, ``--summary`` and its pages); ``check_backprop`` and ``isolate`` work."""

from __future__ import annotations

import json
import sys

from mlpnn_jax import options
from mlpnn_jax.gradcheck.names import LOSS_OPTIONS
from mlpnn_jax.options import UsageError
from mlpnn_jax.terminal import FAILED, progress, say


def run_gradcheck(
    target, *, out=None, err=None, timeout=60.0, memory_limit=None, isolate=True, html=None, **request
):
    """``mlpnn-jax gradcheck PATH:NAME``: check in a child process, print; returns the exit code.

    ``isolate=False`` runs the same request in this process (no time limit, the user's prints go to
    this process's stdout; what the tests use). The child keeps its compiled programs in JAX's
    persistent compilation cache in ``devices.cache_dir()`` (class mode's children keep none).

    ``request`` holds the fields of ``gradcheck.isolate.Request`` (loss, forward, init, as_json...).
    The report (table or JSON) goes to ``out``; whatever the user's code printed, and for exit 2 the
    user's traceback and one ``error:`` line, go to ``err``. ``html``: also write the check's page
    there. Exit 0 when everything matches, 1 when anything does not, 2 when the check could not run
    (bad PATH:NAME, the code raised, hung, exited or ran out of ``memory_limit`` GB); with ``as_json``
    exit 2 also prints a JSON object to ``out``.
    """
    from mlpnn_jax.devices import cache_dir
    from mlpnn_jax.gradcheck.isolate import Outcome, Request, run_file, run_isolated
    from mlpnn_jax.gradcheck.load import LoadError, precheck

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    as_json = request.pop("as_json", False)
    try:
        precheck(target)  # a missing file or function: no child process needed to say so
    except LoadError as e:
        outcome = Outcome(2, error=str(e))
        if html is not None:
            _write_page(html, target, outcome)
        return _not_checked(outcome, as_json, out, err)
    options = {k: request.pop(k) for k in LOSS_OPTIONS if request.get(k) is not None}
    request = {k: v for k, v in request.items() if k not in LOSS_OPTIONS}
    req = Request(target=target, options=options, as_json=as_json or html is not None, **request)
    if isolate:
        outcome, chatter = run_isolated(req, timeout, memory_limit, cache=cache_dir())
    else:
        outcome, chatter = run_file(req), ""
    err.write(chatter)
    if html is not None:
        _write_page(html, target, outcome)
    if outcome.code == 2:
        return _not_checked(outcome, as_json, out, err)
    out.write(outcome.report if as_json or html is None else json.loads(outcome.report)["table"] + "\n")
    return outcome.code


def _not_checked(outcome, as_json, out, err):
    """Exit 2: the traceback and one ``error:`` line to ``err``; with ``as_json`` also one JSON object."""
    err.write(outcome.traceback)
    err.write(f"error: {outcome.error}\n")
    if as_json:
        record = {"status": "not checked", "error": outcome.error, "traceback": outcome.traceback or None}
        out.write(json.dumps(record, indent=2) + "\n")
    return 2


def _write_page(path, target, outcome):
    """The check's page (``--html``), written atomically."""
    from mlpnn_jax.checkpoint import write_text
    from mlpnn_jax.gradcheck import classroom, page

    row = classroom.row(target, outcome, 0.0)
    write_text(path, page.render(row.path, row.verdict, row.message, row.report, row.traceback))


def run_gradcheck_class(targets, *, jobs, summary, bounds, **request):
    """``mlpnn-jax gradcheck`` on many files: one line each, a total, ``summary`` and its pages.

    ``targets`` are PATH:NAME with PATH a file, a directory or a glob; ``request`` the fields of
    ``gradcheck.isolate.Request`` but the target; ``bounds`` each child's timeout and memory_limit.
    Returns the worst of the files' exit codes.
    """
    from mlpnn_jax.gradcheck import classroom

    files = classroom.expand(targets)
    labels = classroom.labels(files)
    width = max(map(len, labels))
    bar = progress(len(files), "gradcheck", unit="file")
    rows = [None] * len(files)
    for i, row in classroom.check_all(files, request, bounds, jobs):
        rows[i] = row
        say(bar, classroom.line(labels[i], row, width))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    print(classroom.total(rows), flush=True)
    if summary is None:
        return classroom.exit_code(rows)
    try:
        classroom.write_summary(summary, classroom.write_pages(rows, summary))
    except OSError as e:  # e.g. a full disk, or a file where the pages' folder belongs
        print(f"mlpnn-jax gradcheck: error: could not write {summary} and its pages: {e}", file=sys.stderr)
        return max(classroom.exit_code(rows), FAILED)
    return classroom.exit_code(rows)


def cmd_gradcheck(args, signals):
    """The gradcheck subcommand (see ``add_gradcheck_parser``): one file, or a class of them."""
    from mlpnn_jax.gradcheck import classroom

    for name, value in (("--timeout", args.timeout), ("--memory-limit", args.memory_limit)):
        if value is not None and not value > 0:
            raise UsageError(f"{name} must be positive; got {value:g}")
    keys = ("loss", "forward", "init", "setup", "activation", "output", "l2", "soft_targets", "seed")
    request = {k: getattr(args, k) for k in keys}
    loss_options = {k: v for k in LOSS_OPTIONS if (v := getattr(args, k)) is not None}
    bounds = {"timeout": args.timeout, "memory_limit": args.memory_limit}
    try:
        one = not classroom.is_class(args.target, args.summary)
        options.check_gradcheck_options(args, one)
        if one:
            return run_gradcheck(
                args.target[0], as_json=args.json, html=args.html, **bounds, **request, **loss_options
            )
        jobs = args.jobs or classroom.default_jobs()
        return run_gradcheck_class(
            args.target, jobs=jobs, summary=args.summary, bounds=bounds, options=loss_options, **request
        )
    except classroom.ClassError as e:
        raise UsageError(str(e)) from e
