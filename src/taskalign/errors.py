"""Errors a user can fix, as opposed to bugs (STYLE.md habit 15).

Every exception the library raises for a mistake of its user (a bad argument, an unknown
registry name, a missing or unreadable file, a folder that is not a study, a refused checkpoint,
a full disk) is a `UserError`. The CLI prints such an error as one line,
`taskalign: error: <message>`, and exits with status 2; anything else is a bug and keeps its
traceback. The subclasses also derive from the built-in exception a caller would expect
(`ValueError`, `KeyError`, `OSError`), so `except ValueError` keeps working.

This module imports nothing of the package, so every room can raise these errors.
"""
from __future__ import annotations

import errno

# OS errors that come from the user's files or machine (missing file, no permission, full disk),
# not from a bug: the CLI reports them in one line like a `UserError`.
USER_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EROFS,
                         errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.EIO})


class UserError(Exception):
    """A mistake the user can fix; the message names the file, case or key and what to do."""


class InputError(UserError, ValueError):
    """A bad argument or a bad input file (a ValueError for callers that expect one)."""


class UnknownName(UserError, KeyError):
    """A name no registry holds; the message lists the registered names."""

    def __str__(self) -> str:   # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder the user named does not exist; the message says which and what to give."""


class WriteFailed(UserError, OSError):
    """A file could not be written (full disk, no permission); nothing half-written is left.
    `WriteFailed(errno, message, path)`: the message is the whole text."""

    def __str__(self) -> str:
        return str(self.strerror)


def is_user_error(err: BaseException) -> bool:
    """True for a `UserError` and for an OS error about the user's files (see `USER_ERRNOS`)."""
    return isinstance(err, UserError) or (isinstance(err, OSError) and err.errno in USER_ERRNOS)


def one_line(err: BaseException) -> str:
    """The error as `taskalign: error: …`: its message's first line (further lines, such as a
    listing or a conversion hint, follow indented), with the file of an OS error."""
    text = str(err)
    if isinstance(err, OSError) and not isinstance(err, UserError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        text = f"{where}{err.strerror}"
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            text += "; free some space and run the same command again (finished work is kept)"
        elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            text += "; choose a folder you can write to, or fix its permissions"
    first, *rest = (text or type(err).__name__).splitlines()
    return "\n".join([f"taskalign: error: {first}"] + [f"  {line}" for line in rest if line.strip()])
