"""Atomic file writes: a temporary file in the target folder, then a rename.

A run killed at any moment leaves either the old file or the new one, never half of one. What
a killed run leaves behind is its temporary file; the name says which host and process wrote
it, so the next run can remove those whose writer is gone (:func:`remove_stale_temporaries`)
without touching the files of a run still going on beside it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_folder", "atomic_path", "atomic_write_text", "is_temporary",
           "remove_stale_temporaries"]

#: A temporary of another host is only judged by its age: its process cannot be looked up.
FOREIGN_TEMPORARY_AGE_S = 24 * 3600

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[A-Za-z0-9_]+"
                        r"\.tmp")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def _temporary_prefix(name: str) -> str:
    return f".{name}.{_host()}-{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary name keeps ``path``'s suffixes (``.nii.gz``), so writers that choose a
    format by file name behave the same. On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(path.name), suffix=f".tmp{suffix}",
                                    dir=path.parent)
    # mkstemp makes the file private (0600); the renamed result should get the permissions
    # any other new file gets here (0666 less the umask), so colleagues can read the outputs.
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; put it in ``path``'s place when the block succeeds.

    An existing ``path`` is replaced whole (the caller decides whether it may be): it is
    renamed aside, the new folder renamed in, and only then the old one removed. On error the
    temporary folder and everything in it are removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path.name), suffix=".tmp",
                                dir=path.parent))
    old = None
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path.name), suffix=".tmp",
                                        dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is the temporary file or folder of an atomic write."""
    return _TEMPORARY.match(Path(path).name) is not None


def _writer_gone(path: Path) -> bool:
    match = _TEMPORARY.match(path.name)
    if match is None:
        return False
    if match["host"] != _host():
        return time.time() - path.lstat().st_mtime > FOREIGN_TEMPORARY_AGE_S
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries in ``folder`` left by killed runs; returns what was removed.

    A temporary is stale when its writer, named in the file name, is no longer running on
    this host (or, for another host's, after :data:`FOREIGN_TEMPORARY_AGE_S`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        if not _writer_gone(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
