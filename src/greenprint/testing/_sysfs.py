"""What the fake sysfs trees (powercap, hwmon) share: writing a value, and failing as Linux does.

A real sysfs file hands a reader a whole value, so a fake replaces its file in one step
(:func:`write_atomically`). Unreadable files come three ways (:func:`make_unreadable`); root can
read any file, so ``chmod`` alone cannot simulate a root-only counter when the tests run as root:
the fake's ``opener`` (:func:`open_unless_denied`) refuses the file too.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

__all__ = ["make_unreadable", "open_unless_denied", "remove", "write_atomically"]


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path``'s content in one step, as sysfs hands a reader a whole value."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def remove(path: Path) -> None:
    """Remove a file, a link or a directory tree at ``path``, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def make_unreadable(path: Path, how: str) -> bool:
    """Make the file at ``path`` unreadable.

    Args:
        path: the sensor's file.
        how: ``"permission"`` (``chmod 000``; the fake's opener must refuse it too),
            ``"missing"`` (a dangling symlink: ``FileNotFoundError`` for anyone, also in a
            subprocess) or ``"directory"`` (``IsADirectoryError`` for anyone).

    Returns:
        Whether the fake's opener must refuse the file (``"permission"``).

    Raises:
        ValueError: an unknown ``how`` (nothing is changed).
    """
    if how == "permission":
        if path.is_file():
            os.chmod(path, 0)
        return True
    if how == "missing":
        remove(path)
        path.symlink_to(path.with_name(path.name + ".gone"))
    elif how == "directory":
        remove(path)
        path.mkdir()
    else:
        raise ValueError(f"how must be 'permission', 'missing' or 'directory', not {how!r}")
    return False


def open_unless_denied(path: str, denied: Iterable[Path], *args: Any, **kwargs: Any) -> IO[Any]:
    """``open(path, ...)``, or :class:`PermissionError` when ``path`` is one of ``denied``."""
    target = Path(path)
    if any(target == refused for refused in denied):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    return open(path, *args, **kwargs)  # the caller closes it
