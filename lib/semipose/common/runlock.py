"""One run per output folder: a lock file holding the owner's process id and host.

A training run takes ``<output folder>/run.lock`` before it writes anything there and removes it
when it ends (normally, by an error, by Ctrl-C or by a handled signal). A second run into the same
folder finds the lock and refuses with one line naming the folder and the holder. A lock whose
process no longer runs on this host (the run was killed with SIGKILL, or the machine rebooted) is
taken over with a warning. A lock written on another host cannot be checked from here: it is
refused, and the message says how to remove it when that run is known to be gone.
"""

import json
import logging
import os
import socket
import time

from semipose.common.errors import UserError
from semipose.common.io import pid_alive

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError"]

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"


class RunLockedError(UserError):
    """Another run holds the output folder."""


def _describe(holder):
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {when}"


class RunLock:
    """The lock of one output folder (a context manager; ``acquire`` / ``release``).

    Args:
        folder: the run's output folder (created if missing).
        what: what holds it, for messages (``'training'``).
        command: the holder's command line, written into the lock for whoever finds it.
    """

    def __init__(self, folder, what="training", command=""):
        self.folder = str(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.what = what
        self.command = command
        self.held = False

    def _record(self):
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "what": self.what, "command": self.command}

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable or half written: treated as held by an unknown owner

    def acquire(self):
        """Takes the lock.

        Raises:
            RunLockedError: a running process (or one on another host) holds it.
        """
        os.makedirs(self.folder, exist_ok=True)
        for _ in range(3):
            try:
                self._create()
            except FileExistsError:
                if self._take_over_stale():
                    continue
                raise self._locked_error() from None
            self.held = True
            return self
        raise self._locked_error()

    def _create(self):
        """Creates the lock file whole: the record is written to a private file first and then
        hard-linked to ``run.lock`` (atomic, and refused when the name exists), so no reader
        ever sees it half written. Where hard links are unsupported, an exclusive create.

        Raises:
            FileExistsError: the lock exists.
        """
        tmp = f"{self.path}.{os.getpid()}.{socket.gethostname()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self._record(), f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            raise
        except OSError:  # no hard links on this file system
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._record(), f)
        finally:
            os.remove(tmp)

    def _take_over_stale(self):
        """Removes the lock when its process is gone from this host; True when it did."""
        holder = self._read()
        if holder is None:
            return True  # removed meanwhile: try again
        if not holder or holder.get("host") != socket.gethostname():
            return False
        pid = holder.get("pid")
        if isinstance(pid, int) and pid_alive(pid):
            return False
        logger.warning(f"{self.path}: the run that held this folder ({_describe(holder)}) is no "
                       "longer running (killed?); taking the folder over")
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        return True

    def _locked_error(self):
        holder = self._read() or {}
        if holder and holder.get("host") != socket.gethostname():
            hint = (f"it was written on host {holder.get('host')}, where this host cannot check "
                    f"the process; if that run is gone, delete {self.path}")
        else:
            hint = "wait for it to end, or give this run another OUTPUT_DIR"
        who = _describe(holder) if holder else "an unreadable lock file"
        return RunLockedError(f"output folder {self.folder} is in use by another "
                              f"{holder.get('what', 'run')} ({who}); {hint}")

    def release(self):
        """Removes the lock if this process holds it."""
        if not self.held:
            return
        self.held = False
        holder = self._read()
        if holder and holder.get("pid") == os.getpid():
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
