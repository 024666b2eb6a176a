"""Writing files so that nothing is lost: atomic replacement (a full disk or a kill leaves
the old file whole), content fingerprints (a rerun can tell that the file at the same path
changed), and a lock for output folders that one run at a time may write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mirg.errors import MirgError

LOCK_FILE = ".mirg.lock"
#: Files of a model folder that record the run that wrote it (who, when, with which
#: arguments), not the model: a model retrained to the same weights is the same model.
RUN_RECORDS = frozenset({LOCK_FILE, "mirg_run.json", "training_args.bin"})
#: Bytes read from the start and the end of each weight file for a model fingerprint.
SAMPLE_BYTES = 1 << 20


class FolderBusyError(MirgError):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write ``path`` through a temporary file that replaces it only when complete, with
    the permissions a plain write would give. A device or pipe (``/dev/stdout``,
    ``/dev/full``) is written in place: renaming over it would replace the device. An OS
    error of the output names ``path``, not the temporary file."""
    path = Path(path)
    if "b" in mode:
        encoding = None
    try:
        if path.exists() and not path.is_file():
            if path.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
            with path.open(mode, encoding=encoding) as handle:
                yield handle
            return
        keep = path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~_umask()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, mode, encoding=encoding) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, keep)  # mkstemp makes it private (0600)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        ours = exc.filename is None or Path(str(exc.filename)).name.startswith(f".{path.name}.")
        if exc.errno is None or not ours or str(exc.filename) == str(path):
            raise  # an input's error (an unreadable image) already names its own file
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(path: str | Path, text: str) -> None:
    """``text`` to ``path``, atomically."""
    with atomic_write(path) as handle:
        handle.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    """JSON, indented, written atomically."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _hash_file(digest: Any, path: Path, sample: bool) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}:".encode())
    with path.open("rb") as handle:
        if not sample or size <= 2 * SAMPLE_BYTES:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            return
        digest.update(handle.read(SAMPLE_BYTES))
        handle.seek(size - SAMPLE_BYTES)
        digest.update(handle.read(SAMPLE_BYTES))


def fingerprint(path: str | Path) -> str | None:
    """A short content hash: every byte of a file; for a folder (a model), every small file
    and the first and last MiB of each large one (weights change throughout when retrained),
    except the records of the run that wrote it (:data:`RUN_RECORDS`). None for a path that
    does not exist here (a hub model name)."""
    p = Path(path)
    digest = hashlib.sha256()
    if p.is_file():
        _hash_file(digest, p, sample=False)
    elif p.is_dir():
        for child in sorted(c for c in p.iterdir() if c.is_file() and c.name not in RUN_RECORDS):
            _hash_file(digest, child, sample=True)
    else:
        return None
    return digest.hexdigest()[:16]


def _busy(folder: Path, lock: IO) -> FolderBusyError:
    """The refusal, naming the holder that ``lock`` (the lock file) records."""
    lock.seek(0)
    holder = " ".join(lock.read(500).split()) or "another process"
    return FolderBusyError(
        f"{folder} is in use by {holder}; wait for it to finish, or write to another folder"
    )


def check_free(folder: str | Path) -> None:
    """Refuse ``folder`` now, naming the holder, when another process holds its lock;
    creates and changes nothing (a command checks this before it refuses the folder's
    content, which a run in progress is still writing)."""
    import fcntl

    folder = Path(folder)
    try:
        handle = (folder / LOCK_FILE).open("r", encoding="utf-8", errors="replace")
    except OSError:
        return  # no lock file: nobody has held it
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(folder, handle) from None
        except OSError:
            return
        fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold ``folder``'s lock while writing it; a second holder gets FolderBusyError naming
    the first (process, host, start time). The lock is advisory (``flock``): the kernel
    drops it when its holder dies, even by kill -9.

    The lock file stays (removing it would let two processes lock two different files),
    but is emptied on release: a finished folder's content does not depend on who wrote it
    or when, so a rerun, or another run refused by the lock, leaves it byte for byte the
    same.
    """
    import fcntl

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise MirgError(f"{folder} is a file; give the path of a folder to write")
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_FILE
    handle = lock.open("a+", encoding="utf-8")
    held = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(folder, handle) from None
        held = True
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"{what} (pid {os.getpid()} on {socket.gethostname()}, since {started})")
        handle.flush()
        yield
    finally:
        if held:
            with contextlib.suppress(OSError):
                handle.truncate(0)
        handle.close()
