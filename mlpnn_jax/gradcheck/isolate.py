"""Running the check on a user's file in a child process, so that nothing their code does (hang,
``os._exit``, closing stdout, raising ``GeneratorExit``) can take the checker down with it.

``run_file(request)`` is the whole job (load, check, format) and runs in the child; ``run_isolated``
starts the child with a time limit and turns whatever happened into an exit code and one-line error.
The child starts with ``python -P`` (no current directory on ``sys.path``) and never adds the user's
folder to it: the user's own modules are loaded under private names (see ``load``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Request:
    """What to check, as the CLI says it (all JSON-able)."""

    target: str
    forward: str | None = None
    init: str | None = None
    loss: str | None = None
    activation: str | None = None
    output: str | None = None
    l2: float | None = None
    soft_targets: bool = False
    seed: int = 0
    as_json: bool = False
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Outcome:
    code: int
    report: str = ""  # the report (table or JSON) for stdout
    error: str = ""  # the one-line error (exit 2)
    traceback: str = ""  # the user's traceback, when their code raised


def _named(spec, default_path):
    """'NAME' or 'PATH:NAME' -> (Path, NAME)."""
    from mlpnn_jax.gradcheck import load

    if ":" in spec:
        return load.split_target(spec)
    return default_path, spec


def check_file(target, *, forward=None, init=None, loss=None, seed=0, **options):
    """Check a backprop in a file, as ``mlpnn-jax gradcheck`` does but in this process (no time limit).

    Args:
        target: "FILE.py:function", "FILE.py:Class.method" or "NOTEBOOK.ipynb:function".
        forward, init: the forward and init functions' names (or "PATH:NAME"), as --forward and --init.
        loss, seed: as ``check_backprop``'s.
        **options: activation, output, l2, soft_targets, and the loss options (label_smoothing, gamma,
            margin), as the command's flags.
    Returns:
        A ``Report``.
    Raises:
        load.LoadError: no such file or function.  GradcheckUsageError: as ``check_backprop``.
    """
    fields = {f.name for f in dataclasses.fields(Request)} - {"options"}
    given = {k: options.pop(k) for k in list(options) if k in fields}
    req = Request(target, forward=forward, init=init, loss=loss, seed=seed, options=options, **given)
    return _check(req)


def _check(req):
    """Load the user's code and check it: the Report."""
    from mlpnn_jax.gradcheck import check_backprop, discover, load

    path, name = load.split_target(req.target)
    modules = {}
    objs, module = load.load(path, [name], modules)
    forward, fsource = None, None
    if req.forward:
        fpath, fname = _named(req.forward, path)
        if "." not in fname and "." in name and not fname.startswith(name.split(".")[0]):
            fname = f"{name.split('.')[0]}.{fname}"
        forward = load.load(fpath, [fname], modules)[0][fname]
        fsource = modules[fpath].sources.get(fname) if "." not in fname else None
    target = discover.target_for(objs[name], name, forward, req.forward or "")
    found = _layouts(req, path, name, module, modules, target)
    source = module.sources.get(name.split(".")[0])
    return check_backprop(
        target,
        loss=req.loss,
        soft_targets=req.soft_targets,
        seed=req.seed,
        params=found or None,
        source=source if "." not in name else None,
        forward_source=fsource,
        activation=req.activation,
        output=req.output,
        l2=req.l2,
        skipped=tuple(load.skipped_summary(module)),
        **req.options,
    )


def run_file(req):
    """Load the user's code, check it, and format the report: an Outcome (in the child)."""
    from mlpnn_jax.gradcheck import GradcheckUsageError, load

    try:
        report = _check(req)
    except load.LoadError as e:
        return Outcome(2, error=str(e))
    except GradcheckUsageError as e:
        return Outcome(2, error=str(e), traceback=e.formatted_traceback or "")
    text = json.dumps(report.to_json(), indent=2, allow_nan=False) if req.as_json else report.to_table()
    return Outcome(0 if report.ok else 1, report=text + "\n")


def _layouts(req, path, name, module, modules, target):
    from mlpnn_jax.gradcheck import discover, load

    if req.init:
        ipath, iname = _named(req.init, path)
        maker = load.load(ipath, [iname], modules)[0][iname]
        src = modules[ipath].sources.get(iname.split(".")[0])
        found, errors = discover.layouts_from(maker, iname, src)
        if not found:
            why = f" (it raised {type(errors[0]).__name__}: {errors[0]})" if errors else ""
            raise load.LoadError(
                f"{iname} did not return the parameters for layer sizes such as [5, 4, 3]{why}"
            )
        return found
    if target.is_method() and target.cls is not None:
        found, _ = discover.layouts_from(target.cls, f"the constructor of {target.cls.__name__}", None)
        return found
    found = []
    for iname in discover.auto_inits(module, {name}):
        found += discover.layouts_from(module.namespace[iname], iname, module.sources.get(iname))[0]
    return found


def child_main(request_path, result_path):
    """The child: read the request, run it, write the Outcome (JSON) to result_path."""
    req = Request(**json.loads(Path(request_path).read_text()))
    try:
        outcome = run_file(req)
    except BaseException as e:
        from mlpnn_jax.gradcheck.probe import user_traceback

        outcome = Outcome(
            2,
            error=f"your code raised {type(e).__name__}: {e} (the check cannot continue)",
            traceback=user_traceback(e),
        )
    Path(result_path).write_text(json.dumps(dataclasses.asdict(outcome)))


def run_isolated(req, timeout):
    """Run the request in a child process: (Outcome, the child's own output for stderr)."""
    with tempfile.TemporaryDirectory(prefix="mlpnn-gradcheck-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(json.dumps(dataclasses.asdict(req)))
        env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
        cmd = [sys.executable, "-P", "-m", "mlpnn_jax.gradcheck.isolate", str(request), str(result)]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as e:
            chatter = _text(e.stdout) + _text(e.stderr)
            return Outcome(
                2,
                error=f"the check of {req.target} did not finish within {timeout:g} s (an endless loop, "
                "or waiting for input?); raise --timeout if it is just slow",
            ), chatter
        chatter = proc.stdout + proc.stderr
        if not result.is_file():
            return Outcome(
                2,
                error=f"the process checking {req.target} ended (exit status {proc.returncode}) before "
                "the check finished: does the code call os._exit or exit the interpreter?",
            ), chatter
        return Outcome(**json.loads(result.read_text())), chatter


def _text(b):
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


if __name__ == "__main__":
    child_main(sys.argv[1], sys.argv[2])
