"""Local files: regular files only, never blocking on a FIFO, bounded by ``maxBytes``."""

from __future__ import annotations

import os
import stat

from ..errors import SourceError

# O_NONBLOCK: opening a FIFO must not wait for a writer; checking the type on
# the open descriptor (not the path) leaves no window to swap the file.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


def read_local(path: str, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes`` of them.

    It blocks as long as the file system does: the caller bounds it by its
    deadline (see :class:`~sparkimg_ml.fetch.deadline.BlockingCalls`).

    Examples
    --------
    >>> read_local("/dev/null", 10)
    Traceback (most recent call last):
    ...
    sparkimg_ml.errors.SourceError: not_a_file: /dev/null is a character device
    """
    if "\0" in path:
        raise SourceError("invalid_source", "NUL character in a local path")
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise file_error(path, exc) or SourceError("io_error", f"{path}: {os.strerror(exc.errno or 0)}") \
            from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceError("not_a_file", f"{path} is a {_file_kind(info.st_mode)}")
        if info.st_size > max_bytes:
            raise SourceError("too_large", f"{info.st_size} bytes > maxBytes {max_bytes}")
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, 1024 * 1024)
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > max_bytes:  # the file grew after fstat
                raise SourceError("too_large", f"more than maxBytes {max_bytes}")
            parts.append(chunk)
    except OSError as exc:
        raise SourceError("io_error", f"{path}: {os.strerror(exc.errno or 0)}") from None
    finally:
        os.close(fd)


def file_error(path: str, exc: OSError) -> SourceError | None:
    """The reason for a missing, directory or forbidden path (local or storage), else None."""
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return SourceError("not_found", path)
    if isinstance(exc, IsADirectoryError):
        return SourceError("not_a_file", f"{path} is a directory")
    if isinstance(exc, PermissionError):
        return SourceError("permission_denied", path)
    return None


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"
