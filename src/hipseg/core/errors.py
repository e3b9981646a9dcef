"""Errors that the command line turns into one line and a non-zero exit code."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "HipsegError", "InputError", "VolumeError"]


class HipsegError(Exception):
    """Base class of every error hipseg reports to a user without a traceback.

    Every such error exits with code 2 (the input or the options cannot be used); exit code
    1 is left to the unexpected, which keeps its traceback.
    """

    exit_code = 2


class InputError(HipsegError):
    """A file given to hipseg cannot be used.

    Parameters
    ----------
    path : str or Path
        The offending file or folder.
    problem : str
        What is wrong with it, in a few words.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple:
        # Rebuilt from its two arguments, so it crosses a process pool intact.
        return type(self), (self.path, self.problem)


class ConfigError(HipsegError):
    """A configuration value or file is invalid."""


class VolumeError(ValueError):
    """A volume's content cannot be processed (no intensity spread, too large for memory).

    Raised by the numerical layers, which know no file names; the caller that read the volume
    turns it into an :class:`InputError` naming the file. Any other exception is a bug and
    keeps its traceback.
    """
