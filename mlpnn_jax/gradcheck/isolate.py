"""Running the check on a user's file in a child process, so that nothing their code does (hang,
``os._exit``, closing stdout, raising ``GeneratorExit``) can take the checker down with it.

``run_file(request)`` is the whole job (load, check, format) and runs in the child; ``run_isolated``
starts the child within bounds (time, memory, output kept; the child dies with the parent) and turns
whatever happened into an exit code and one-line error.
The child starts with ``python -P`` (no current directory on ``sys.path``) and never adds the user's
folder to it: the user's own modules are loaded under private names (see ``load``).

The child is the only process that imports JAX. It may keep JAX's compiled programs in a persistent
compilation cache (``devices.cache_dir``: the user's own cache folder), so that a second check of the
same shapes compiles nothing; a cache entry is the executable XLA built for the same program, so it
never changes a result, and a folder that cannot be used is simply not used.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from mlpnn_jax.devices import CACHE_ENV, cache_environment, mend_damaged_entries

DEFAULT_MEMORY_GB = 4.0  # the child's address space: JAX on the CPU needs about 1.5 GB of it
OUTPUT_LIMIT = 64 * 1024  # bytes of the user's own output kept
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_ORPHANED = 3  # the child's exit status when its parent was gone before it could watch it


@dataclasses.dataclass(frozen=True)
class Request:
    """What to check, as the CLI says it (all JSON-able)."""

    target: str
    forward: str | None = None
    init: str | None = None
    setup: str | None = None
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
    from mlpnn_jax.gradcheck import check_backprop, discover, load, statements

    path, name = load.split_target(req.target)
    modules = {}
    objs, module = load.load(path, [name], modules)
    built = statements.from_setup(module, req.setup, name) if req.setup else None
    forward, fsource = None, None
    if req.forward:
        fpath, fname = _named(req.forward, path)
        if "." not in fname and "." in name and not fname.startswith(name.split(".")[0]):
            fname = f"{name.split('.')[0]}.{fname}"
        forward = load.load(fpath, [fname], modules)[0][fname]
        fsource = modules[fpath].sources.get(fname) if "." not in fname else None
    target = discover.target_for(objs[name], name, module, forward, req.forward or "")
    found = discover.layouts_of(built) if built else _layouts(req, path, name, module, modules, target)
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
        found = found or discover.layouts_built(module, target.cls)
        if not found and discover.holds_nothing(target):
            name = target.cls.__name__
            raise load.LoadError(
                f"{discover.signature(target.cls)} builds an instance that holds no parameter arrays, and "
                f"{target.name} takes none: its layers are added by code the checker does not run (inside "
                f"a function?); pass --setup 'net = {name}(); net.add(...)' with the statements that build "
                "one, or --init FUNCTION"
            )
        return found
    found = []
    for iname in discover.auto_inits(module, {name}):
        found += discover.layouts_from(module.namespace[iname], iname, module.sources.get(iname))[0]
    return found


def child_main(request_path, result_path, parent, pipe_fd, memory):
    """The child: bound itself, read the request, run it, write the Outcome (JSON) to result_path."""
    _bound_self(parent, pipe_fd, memory)
    cache = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if cache and cache == os.environ.get(CACHE_ENV):  # ours (run_isolated gave it), not the user's JAX's
        mend_damaged_entries(cache)
    req = Request(**json.loads(Path(request_path).read_text()))
    try:
        outcome = run_file(req)
    except BaseException as e:
        from mlpnn_jax.gradcheck.errors import user_traceback

        outcome = Outcome(
            2,
            error=f"your code raised {type(e).__name__}: {e} (the check cannot continue)",
            traceback=user_traceback(e),
        )
    Path(result_path).write_text(json.dumps(dataclasses.asdict(outcome)))


def _bound_self(parent, pipe_fd, memory):
    """Dies with the parent, whatever ends it, and caps this process's address space at ``memory``."""
    if sys.platform.startswith("linux"):  # the kernel sends SIGKILL when the parent dies, even by kill -9
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(_ORPHANED)
    _start_guard(pipe_fd)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _start_guard(pipe_fd):
    """Forks the guard: it waits for the parent's end of the pipe to close, then kills this process group.

    The write end lives only in the parent, so EOF means it is gone, however it ended; the group holds
    the user's own subprocesses, which PR_SET_PDEATHSIG does not reach. A process of its own (forked
    while this one has no threads yet), so that no user code holding the GIL can stop it.
    """
    if os.fork() != 0:
        os.close(pipe_fd)
        return
    try:  # the guard never returns into the check
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the parent reads the child's output to its end: the guard holds none of it
            os.dup2(devnull, fd)
        while os.read(pipe_fd, 1):
            pass
        os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(_ORPHANED)


def memory_bytes(gb=None):
    """The child's address-space limit in bytes: ``gb`` GB (default DEFAULT_MEMORY_GB), at most the
    memory available now."""
    want = int((DEFAULT_MEMORY_GB if gb is None else gb) * 1e9)
    return min(want, _available_memory())


def _available_memory():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def run_isolated(req, timeout, memory_limit=None, cache=None):
    """Run the request in a bounded child process: (Outcome, the child's own output for stderr).

    Every check of a user's file goes through here, so each gets the same bounds: ``timeout`` seconds,
    ``memory_limit`` GB of address space (``memory_bytes``), the first OUTPUT_LIMIT bytes of its output,
    and no process left behind (the child's process group is killed on every way out of here; if this
    process is killed, the child sees it and kills its group). ``cache``: the folder of JAX's persistent
    compilation cache for the child (``devices.cache_dir``; a folder the user gave JAX itself wins), or
    None: none, whatever the environment says.
    """
    memory = memory_bytes(memory_limit)
    with tempfile.TemporaryDirectory(prefix="mlpnn-gradcheck-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(json.dumps(dataclasses.asdict(req)))
        # a folder the user gave JAX itself (JAX_COMPILATION_CACHE_DIR) is kept, as train keeps it
        own = cache is not None and os.environ.get("JAX_COMPILATION_CACHE_DIR")
        returncode, chatter = _run_child(
            request, result, timeout, memory, {} if own else cache_environment(cache)
        )
        if returncode is None:
            return Outcome(
                2,
                error=f"the check of {req.target} did not finish within {timeout:g} s (an endless loop, "
                "or waiting for input?); raise --timeout if it is just slow",
            ), chatter
        if not result.is_file():
            return Outcome(
                2,
                error=f"the process checking {req.target} ended ({_status(returncode)}) before "
                "the check finished: does the code call os._exit or exit the interpreter, or did it run "
                f"out of memory (it may use {memory / 1e9:.3g} GB: --memory-limit)?",
            ), chatter
        outcome = Outcome(**json.loads(result.read_text()))
    if outcome.traceback.rstrip().rsplit("\n", 1)[-1].split(":", 1)[0].endswith("MemoryError"):
        note = f"; the check allows {memory / 1e9:.3g} GB of memory (--memory-limit)"
        outcome = dataclasses.replace(outcome, error=outcome.error + note)
    return outcome, chatter


def _run_child(request, result, timeout, memory, cache_env):
    """Runs the child to its end or ``timeout``: (its exit status or None on timeout, its output).

    ``cache_env``: environment variables to set, or (None) to remove."""
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"), **cache_env}
    env = {k: v for k, v in env.items() if v is not None}
    env["MALLOC_ARENA_MAX"] = "2"  # glibc reserves 64 MB of address space per arena, one per thread
    r, w = os.pipe()
    args = [str(request), str(result), str(os.getpid()), str(r), str(memory)]
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "mlpnn_jax.gradcheck.isolate", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        pass_fds=(r,),
        process_group=0,
    )
    os.close(r)
    output = _Output(proc.stdout)
    try:
        returncode = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        with contextlib.suppress(ProcessLookupError):  # the child, its guard and the user's processes
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(w)
        proc.wait()
    return returncode, output.text()


def _status(returncode):
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


class _Output:
    """Reads a stream to its end on a thread, keeping its first OUTPUT_LIMIT bytes and counting the rest."""

    def __init__(self, stream):
        self.kept, self.more = bytearray(), 0
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        with stream:
            while chunk := stream.read1(1 << 16):
                room = OUTPUT_LIMIT - len(self.kept)
                self.kept += chunk[:room]
                self.more += max(0, len(chunk) - room)

    def text(self):
        """The output kept, and a line saying how much more was elided."""
        self._thread.join()
        text = self.kept.decode(errors="replace")
        if self.more:
            text += f"\n[gradcheck: {self.more / 1e6:.1f} MB more output of the code elided]\n"
        return text


if __name__ == "__main__":
    child_main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:]))
