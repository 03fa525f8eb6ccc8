"""One writer per profile directory: an advisory ``flock`` on ``<profile>/.lock``.

The kernel drops the lock when the holder exits, however it exits (``kill -9`` included), so a
crashed profiler never leaves a stale lock behind. The holder writes its pid, host and start
time into the file so a second profiler can say who holds it.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from hwnas.errors import ProfileError
from hwnas.types import utc_now
from hwnas.profiles.schema import LOCK_FILE


class ProfileLock:
    """``with ProfileLock(dir): ...`` — raises :class:`ProfileError` at once if another process holds it."""

    def __init__(self, root: str | os.PathLike, purpose: str = "profiling") -> None:
        self.path = Path(root) / LOCK_FILE
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> ProfileLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = _holder(self.path)
            raise ProfileError(
                f"Another process is writing to profile '{self.path.parent}' ({who}). Wait for it to finish, "
                "or write to another --out directory."
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                "since": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl

        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> ProfileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return "holder unknown"
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host')}, {info.get('purpose', '')} since {info.get('since')}"
