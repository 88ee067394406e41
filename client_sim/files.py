"""The device's two file mechanisms: outputs that appear whole, and sources of known size.

Every writer on the device that must never leave half a file behind (the
keystore, the card cache, a decrypted download, ``encrypt_file``, the age
command line's ``-o``) uses :func:`atomic_output`; every reader that needs
to know how many bytes a source will deliver before it starts (an upload's
reservation, the sealed framing) uses :func:`sized_source`.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

__all__ = [
    "PRIVATE",
    "WRITEBACK_EVERY",
    "atomic_output",
    "atomic_write",
    "sized_source",
    "start_writeback",
    "umask_mode",
]

#: The mode of a file only its owner may read (keys, tokens, plaintext).
PRIVATE = 0o600
# Temporary files are named ``.<name>.<random>.tmp`` beside their target, so
# a crash leaves something recognisable that never shadows the real name.
_TMP_SUFFIX = ".tmp"


#: A long write to a durable file hands each this many bytes to the disk as it goes.
WRITEBACK_EVERY = 8 * 1024 * 1024


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes of ``fd`` at ``offset``
    to disk now, without waiting for it.

    For a file that ends with an fsync (:func:`atomic_output`): written
    pages would otherwise wait in memory until the fsync writes them all at
    once, after the last byte arrived; started as they are written, the
    disk works while the rest is still coming.  On Linux
    ``POSIX_FADV_DONTNEED`` starts writeback of the range's dirty pages
    (pages still dirty or being written stay cached).  It is only a hint: a
    system without it, or a file it does not apply to, is left alone.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    with contextlib.suppress(OSError):  # a hint: never worth failing the write for
        advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def umask_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    *,
    mode: int = PRIVATE,
    durable: bool = True,
) -> Iterator[BinaryIO]:
    """A new file beside ``path`` that replaces ``path`` only if the block succeeds.

    The temporary file is created exclusively (``O_EXCL | O_NOFOLLOW``, so a
    planted name or symlink can't redirect the write) with ``mode`` from the
    start -- a private file is never readable by others, not even for a
    moment.  On success it is flushed, renamed over ``path`` in one step, and
    (``durable``) both the file and its directory entry are synced to disk,
    so after a crash ``path`` holds the old bytes or the new ones, never a
    mix.  On any exception the temporary file is removed and ``path`` is
    untouched.

    Args:
        mode: permissions of the result; :data:`PRIVATE` (0600) by default,
            :func:`umask_mode` for an ordinary user file.
        durable: fsync the file and the directory (off only where a caller
            trades crash-safety for speed and says why).

    Raises:
        OSError: the file system failed (nothing is left behind).
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    tmp = directory / f".{target.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        # os.open applies the umask to ``mode``; set it exactly.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(directory)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = PRIVATE) -> None:
    """Replace ``path`` with ``data`` through :func:`atomic_output`."""
    with atomic_output(path, mode=mode) as out:
        out.write(data)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def sized_source(
    source: str | os.PathLike[str] | IO[bytes] | Any,
) -> Iterator[tuple[IO[bytes], int | None]]:
    """``source`` as a binary stream, and how many bytes are left in it.

    A path is opened (and closed again when the block ends) and measured by
    ``fstat``; a seekable stream is measured from its current position to
    its end, and left at that position.  A stream that can't tell (a pipe,
    a socket, any reader without ``seek``) gives ``None``: the caller
    decides how to learn the size (the SDK encrypts into a spooled
    temporary file, so only ciphertext can touch the disk).
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size
        return
    try:
        position = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(position)
    except (OSError, AttributeError, ValueError):
        yield source, None
        return
    yield source, end - position
