"""The lock of a run directory: ``.mlpnn-jax``, an ``flock`` held by the one process that writes the run,
recording its pid and host; the kernel drops it when the holder dies, so a killed run leaves no stale lock."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time

LOCK = ".mlpnn-jax"


class RunError(ValueError):
    """A run directory that cannot be used (in use, not writable, someone else's files): one line naming
    the option (``--out``) and why; exit code 2."""


class RunWriteError(Exception):
    """Writing a run's file failed (a full disk, a read-only file system): exit code 1."""

    def __init__(self, errno_, message):
        super().__init__(message)
        self.errno = errno_


class Lock:
    """An exclusive flock on ``DIR/.mlpnn-jax``, holding this process's pid and host."""

    def __init__(self, directory, option, kind):
        path = directory / LOCK
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise RunError(f"{option}: cannot write in {directory}: {e.strerror}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(self.fd)
            os.close(self.fd)
            raise RunError(
                f"{option}: {directory} is in use by {holder};"
                " wait for it to finish or pick another directory"
            ) from None
        except OSError as e:  # a file system without flock (some network mounts): trust the pid it names
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            self._check_pid(directory, option)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "kind": kind, "since": time.time()}
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, (json.dumps(record) + "\n").encode(), 0)
        except OSError as e:
            self.release()
            raise RunWriteError(e.errno, f"cannot write {path}: {e.strerror}") from None

    def _check_pid(self, directory, option):
        holder = _read_holder(self.fd)
        if holder and holder.get("host") == socket.gethostname() and _alive(holder.get("pid")):
            os.close(self.fd)
            raise RunError(f"{option}: {directory} is in use by {_describe(holder)}; wait or pick another")

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def _read_holder(fd):
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _holder(fd):
    """'mlpnn-jax process PID on HOST' as the lock file says; the holder writes it just after locking."""
    for _ in range(20):
        holder = _read_holder(fd)
        if holder is not None:
            return _describe(holder)
        time.sleep(0.025)
    return "another mlpnn-jax process"


def _describe(holder):
    return f"mlpnn-jax process {holder.get('pid')} on {holder.get('host')} ({holder.get('kind', 'run')})"


def _alive(pid):
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_is_free(directory):
    """Whether no live process holds ``directory``'s lock (a leftover of a killed run)."""
    try:
        fd = os.open(directory / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
