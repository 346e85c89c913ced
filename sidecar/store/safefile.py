"""Reading a file of the home without trusting what sits at its path.

A FIFO blocks a plain ``read`` forever, a link to ``/dev/zero`` never ends and a
huge file exhausts memory: the home is the user's, but anything can land in it
(a sync tool, a botched ``ln -s``, another program). So only regular files are
read, never more than :data:`MAX_FILE_BYTES`, and the open itself cannot block.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "MAX_FILE_BYTES",
    "NotRegularFile",
    "TooLarge",
    "kind_of",
    "read_capped",
    "read_capped_stat",
]

# Generous: a pool of a thousand OAuth logins is well under 4 MiB.
MAX_FILE_BYTES = 16 * 1024 * 1024


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket or a directory (a link is followed)."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.path = path
        self.kind = kind


class TooLarge(OSError):
    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(f"{path} is larger than {limit // (1024 * 1024)} MiB")
        self.path = path
        self.limit = limit


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words for a message."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def read_capped(path: Path, limit: int = MAX_FILE_BYTES) -> bytes | None:
    """The bytes of the regular file at ``path``; None when nothing is there.

    Raises :class:`NotRegularFile` or :class:`TooLarge` without reading past the
    limit, and any other ``OSError`` (permission denied) as it comes.
    """
    return read_capped_stat(path, limit)[0]


def read_capped_stat(
    path: Path, limit: int = MAX_FILE_BYTES
) -> tuple[bytes | None, os.stat_result | None]:
    """:func:`read_capped`, with the ``fstat`` of the very file that was read.

    The stat comes from the open file, not the path: should the file be replaced
    between the two, the stat still describes the bytes returned (what a cache keys on).
    """
    try:
        st = os.stat(path)  # follows a link: its target is what would be read
    except FileNotFoundError:
        return None, None  # nothing, or a dangling link
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path, kind_of(st.st_mode))
    # O_NONBLOCK: should the file have been swapped for a FIFO since the stat, the
    # open returns at once instead of waiting for a writer; fstat then tells.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, kind_of(st.st_mode))
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(path, limit)
    return data, st
