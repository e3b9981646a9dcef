"""Guards every verb runs before it writes: never over an input, never two outputs on one name,
never into a place that cannot be written.

A verb plans all its output paths first, checks them here, and only then starts working, so a
refused run has changed nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from hipseg.core.errors import InputError

__all__ = ["check_output_folder", "refuse_name_clashes", "refuse_overwriting_inputs"]


def check_output_folder(folder: Path) -> Path:
    """Check that ``folder`` can hold new files, creating nothing that stays.

    An existing folder gets a probe file; a missing one a probe folder in its nearest existing
    ancestor (so a refused run leaves no empty output folder behind). The writers create the
    folder when they write its first file.

    Raises
    ------
    InputError
        ``folder`` (or an ancestor) is a file, or nothing can be written there (read-only,
        ``/proc``, no permission).
    """
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise InputError(folder, "output folder is a broken symbolic link or a link loop")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "output folder" if existing == folder else f"output folder's parent {existing}"
        raise InputError(folder, f"{what} is an existing file")
    try:
        if existing == folder:
            fd, probe = tempfile.mkstemp(prefix=".hipseg-write-test-", dir=folder)
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".hipseg-write-test-", dir=existing))
    except OSError as err:
        raise InputError(folder, f"cannot write the output folder here ({err.strerror or err})") \
            from None
    return folder


def _identities(path: Path) -> set[object]:
    """What ``path`` is, as resolved path and (device, inode); a folder includes its files."""
    path = Path(path)
    found: set[object] = set()
    entries = [path]
    if path.is_dir():
        entries += [entry for entry in path.iterdir() if entry.is_file()]
    for entry in entries:
        found.add(os.path.realpath(entry))
        try:
            status = entry.stat()
        except OSError:
            continue
        found.add((status.st_dev, status.st_ino))
    return found


def refuse_overwriting_inputs(inputs: Iterable[Path], targets: Iterable[Path]) -> None:
    """Refuse when any planned output is one of the inputs (by resolved path or inode).

    A folder input (a DICOM series) counts with every file in it, so no output may replace a
    slice either. Hard links and symbolic links to an input count as the input.

    Raises
    ------
    InputError
        Naming the output and the input it would replace.
    """
    owners: dict[object, Path] = {}
    for path in inputs:
        for identity in _identities(Path(path)):
            owners.setdefault(identity, Path(path))
    for target in targets:
        target = Path(target)
        hits = [owners[i] for i in _identities(target) if i in owners] if target.exists() \
            else [owners[i] for i in (os.path.realpath(target),) if i in owners]
        if hits:
            raise InputError(target, f"would overwrite the input {hits[0]}: choose another "
                                     "--out folder")


def refuse_name_clashes(pairs: Iterable[tuple[Path, Path]]) -> None:
    """Refuse when two inputs would be written to the same output file.

    Parameters
    ----------
    pairs : iterable of (input, output)

    Raises
    ------
    InputError
        Naming the output and both inputs (e.g. ``a/x.nii.gz`` and ``b/x.nii.gz``).
    """
    first: dict[str, Path] = {}
    for source, target in pairs:
        key = os.path.realpath(target)
        if key in first and os.path.realpath(first[key]) != os.path.realpath(source):
            raise InputError(target, f"both {first[key]} and {source} would be written here "
                                     "(same file name): rename one or run them separately")
        first.setdefault(key, Path(source))
