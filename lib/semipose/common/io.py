"""Atomic file writing and JSON reading with errors that name the file.

Every file semipose writes for later reading (checkpoints, results, annotations) goes through
``atomic_write``: the data is written to a hidden temporary file in the destination folder
(``.<name>.<pid>.<random>.tmp``), flushed and fsynced, then renamed over the destination with
``os.replace``. A reader therefore sees the old file or the new one, never a half-written one. A
process killed mid-write (SIGKILL, OOM) leaves its temporary file behind; the next atomic write of
the same name removes the temporaries of processes that no longer run (``remove_stale_temps``).
"""

import json
import logging
import os
import re
import tempfile

from semipose.common.errors import WriteFailed

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "read_json",
    "remove_stale_temps",
    "temp_prefix",
]

logger = logging.getLogger(__name__)

_TEMP_SUFFIX = ".tmp"


def temp_prefix(name):
    """The prefix of this process's temporary files for destination file name ``name``.

    Args:
        name: base name of the destination file (no folder).

    Returns:
        ``'.<name>.<pid>.'``; temporaries are ``<prefix><random>.tmp``.
    """
    return f".{name}.{os.getpid()}."


def pid_alive(pid):
    """True when a process ``pid`` runs on this machine (this process included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder, name):
    """Removes leftover temporaries of ``folder/name`` written by processes that no longer run.

    A temporary is ``.<name>.<pid>.<random>.tmp``; it is stale when no process ``pid`` runs on this
    machine. Temporaries without a pid field (``.<name>.<random>.tmp``, from earlier versions) are
    stale too. Temporaries of running processes (a concurrent writer) are kept.

    Args:
        folder: the destination folder.
        name: base name of the destination file.

    Returns:
        list of the removed paths.
    """
    prefix = f".{name}."
    removed = []
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(_TEMP_SUFFIX)):
            continue
        middle = entry[len(prefix) : -len(_TEMP_SUFFIX)]
        match = re.fullmatch(r"(\d+)\.[^.]+", middle)
        if match and pid_alive(int(match.group(1))):
            continue
        path = os.path.join(folder, entry)
        try:
            size = os.path.getsize(path)
            os.remove(path)
        except FileNotFoundError:
            continue
        logger.warning("removed a stale temporary file of an interrupted save: %s (%d bytes)",
                       path, size)
        removed.append(path)
    return removed


def atomic_write(path, write, mode="wb", encoding=None):
    """Writes ``path`` atomically: ``write(f)`` into a temporary file, fsync, ``os.replace``.

    The destination folder is created if needed, and stale temporaries of the same name are
    removed first. When ``write`` raises, the temporary file is removed and the previous
    ``path`` (if any) is left untouched.

    Args:
        path: destination file.
        write: callable taking the open temporary file object.
        mode: ``'wb'`` (binary) or ``'w'`` (text).
        encoding: text encoding (``'w'`` mode only; default UTF-8).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    os.makedirs(folder, exist_ok=True)
    remove_stale_temps(folder, name)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=temp_prefix(name), suffix=_TEMP_SUFFIX)
    try:
        if mode == "w":
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8")
        else:
            f = os.fdopen(fd, "wb")
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        cause = _os_cause(exc)
        if cause is not None and not isinstance(exc, WriteFailed):
            raise WriteFailed(f"could not write {path}: {cause}; the previous file (if any) is "
                              "intact") from None
        raise


def _os_cause(exc):
    """The ``OSError`` behind a failed write (torch's zip writer wraps it in a RuntimeError whose
    context is the OSError), as ``'[Errno 28] No space left on device'``; None for other
    errors."""
    seen = exc
    for _ in range(4):
        if isinstance(seen, OSError):
            return f"[Errno {seen.errno}] {seen.strerror}" if seen.errno else str(seen)
        seen = seen.__cause__ or seen.__context__
        if seen is None:
            return None
    return None


def atomic_write_bytes(path, data):
    """Writes the bytes ``data`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda f: f.write(data), mode="wb")


def atomic_write_text(path, text, encoding="utf-8"):
    """Writes the string ``text`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda f: f.write(text), mode="w", encoding=encoding)


def atomic_write_json(path, obj, **dump_kwargs):
    """Writes ``obj`` as JSON (``json.dump(obj, f, **dump_kwargs)``) to ``path`` atomically."""
    atomic_write(path, lambda f: json.dump(obj, f, **dump_kwargs), mode="w")


def atomic_torch_save(obj, path):
    """``torch.save(obj)`` to ``path`` atomically (see ``atomic_write``)."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f), mode="wb")


def read_json(path, what="JSON file"):
    """Loads the JSON file ``path``.

    Args:
        path: the file.
        what: what the file is, for the error messages (e.g. ``'COCO detection file'``).

    Returns:
        The decoded object.

    Raises:
        FileNotFoundError: naming ``what`` and ``path`` when the file does not exist.
        ValueError: naming ``what``, ``path`` and the position when it is not valid JSON (or not
            UTF-8).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text: {exc}") from exc
