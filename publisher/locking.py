"""Exclusive locks that the kernel drops when their holder dies: one scheduler per site, one writer at a time."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_NAME = "schedule.lock"


class SchedulerBusy(Exception):
    """Another process holds the site's scheduler lock."""

    def __init__(self, path: Path, holder: str):
        who = f"process {holder}" if holder else "another process"
        super().__init__(f"{who} is already scheduling this site (lock {path}); stop it first")
        self.path = path
        self.holder = holder


@contextmanager
def site_lock(state: Path) -> Iterator[Path]:
    """Hold the site's scheduler lock, or raise SchedulerBusy at once (never wait).

    flock() belongs to the open file, so a SIGKILLed holder releases it with its last
    descriptor: no stale lock file to clean up, unlike a pid file checked with kill(0).
    """
    state.mkdir(parents=True, exist_ok=True)
    path = state / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SchedulerBusy(path, os.pread(fd, 32, 0).decode("ascii", "replace").strip()) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)  # for the message above; the lock is the flock
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def exclusive(path: Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing); without `wait`, raise BlockingIOError if taken."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
