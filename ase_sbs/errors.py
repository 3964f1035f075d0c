"""The project's errors, by whose fault they are, so callers (and the CLI) can tell them
apart: :class:`SBSInputError` when the input cannot be handled (the caller's to fix),
:class:`SBSStorageError` when results cannot be written (the machine's: a full disk, a
quota, a read-only directory, a file-size limit). Both derive from :class:`SBSError`,
and keep the builtin class a caller would catch for the same fault (``ValueError``,
``OSError``)."""

from __future__ import annotations

import errno as errno_codes
import os


class SBSError(Exception):
    """Base of the errors ase_sbs raises on purpose; the message says what is wrong and
    what to do."""


class SBSInputError(SBSError, ValueError):
    """The input cannot be handled; the message says what is wrong and what to do."""


class SBSStorageError(SBSError, OSError):
    """A result could not be written: the storage failed, not the input.

    ``path`` is the file (or database) being written, ``directory`` the folder it is in
    (what to free or fix), ``what`` what was being saved, ``reason`` the system's words
    with the errno name (``No space left on device [ENOSPC]``). Whatever was written
    before the failure is complete (every write is atomic), so the same command run again
    once the storage is fixed resumes from it."""

    def __init__(self, path: str, reason: str, what: str = "", errno: int | None = None):
        self.path = str(path)
        url = "://" in self.path  # a database server: no directory to name
        self.directory = self.path if url else os.path.dirname(os.path.abspath(self.path))
        self.what = what
        self.reason = reason
        target = self.path if url else f"{os.path.basename(self.path)} in {self.directory}"
        saving = f" ({what})" if what else ""
        super().__init__(f"cannot write {target}{saving}: {reason}")
        self.errno = errno  # OSError's attribute, for callers that test it

    def __reduce__(self):  # pickled whole (a Dask task's exception travels pickled)
        return type(self), (self.path, self.reason, self.what, self.errno)

    @classmethod
    def from_oserror(cls, path: str, exc: OSError, what: str = "") -> SBSStorageError:
        """The storage error for ``exc``, raised while writing ``path``."""
        return cls(path, describe_oserror(exc), what, exc.errno)


def describe_oserror(exc: OSError) -> str:
    """``No space left on device [ENOSPC]``: the system's message and the errno's name."""
    name = errno_codes.errorcode.get(exc.errno or 0)
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{text} [{name}]" if name else text
