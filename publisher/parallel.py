"""Run one function over many items on every core, by forking the process that holds them.

A build's outputs (pages, feeds, emails) are rendered from a site already in memory, from
closures that cannot be pickled and would be costly to rebuild in a fresh process. A forked
child has all of it for free, copy-on-write: each process renders every n-th item, so long
and short kinds of output spread evenly, and hands back only what the function returned.

Forking is done only where it is safe: on Linux, and in a process running a
single thread (a thread holding a lock at the fork would leave the child's copy of it locked
for ever: the scheduler and the preview run builds from threads, and render in one process).
A child that fails is not trusted to explain why: the parent runs its items itself, so an
error is raised where it happened, with its traceback (which turns a template error into
path:line). Children end with os._exit: they never run the parent's cleanup.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import select
import signal
import sys
import threading
from typing import Callable, Iterable, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Below this many items a fork (tens of milliseconds for a large site) costs more than it saves.
MIN_ITEMS = 256
MAX_PROCESSES = 4
_PR_SET_PDEATHSIG = 1


def processes() -> int:
    """Return how many processes may share the work here and now (1: do it in this one)."""
    # Linux only: macOS system libraries are not safe to use in a forked child, and Windows has no fork.
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return 1
    return min(len(os.sched_getaffinity(0)), MAX_PROCESSES)  # the cores this process may run on


def map_forked(function: Callable[[Item], Result], items: Sequence[Item], min_items: int = MIN_ITEMS) -> list[Result]:
    """Return [function(item) for item in items], computed by as many processes as may share the work.

    Fewer than `min_items` items are worth no fork: the caller says so when its items are costly.
    """
    count = processes() if len(items) >= min_items else 1
    if count == 1:
        return [function(item) for item in items]
    children: dict[int, tuple[int, int]] = {}  # share -> (pid, read end of its pipe), until collected
    results: list = [None] * len(items)
    try:
        for share in range(1, count):
            children[share] = _fork(function, items, share, count)
        for index in range(0, len(items), count):  # this process's share: every count-th item from 0
            results[index] = function(items[index])
        for share in range(1, count):
            _collect(function, items, share, count, *children.pop(share), results)
    except BaseException:
        _stop(children.values())
        raise
    return results


class Aside:
    """A function running in a forked child while this process goes on; `result()` collects it.

    A child that fails (or whose function raises Declined) yields `None`: the caller then
    does the work itself, so any error is raised where it happened, as in map_forked.
    """

    def __init__(self, pid: int, reader: int):
        self.pid, self.reader = pid, reader

    def ready(self) -> bool:
        """Tell, without waiting, whether the child is done: what it sends (or its end) can be read."""
        return bool(select.select([self.reader], [], [], 0)[0])

    def result(self) -> object | None:
        reader, self.reader = self.reader, -1  # closed below, whatever happens
        try:
            with os.fdopen(reader, "rb") as pipe:
                data = pipe.read()  # to the end before waiting: a full pipe would block the child
        except BaseException:
            self.stop()
            raise
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        return pickle.loads(data)[0] if os.waitstatus_to_exitcode(status) == 0 else None  # _fork sends a list

    def stop(self) -> None:
        """End and reap the child if it has not been collected (after an error in this process)."""
        if self.reader >= 0:
            os.close(self.reader)
            self.reader = -1
        if self.pid:
            _end(self.pid)
            self.pid = 0


class Declined(Exception):
    """Raised by a function run aside that finds its work better done by the caller."""


def aside(function: Callable[[], Result]) -> Aside | None:
    """Start function() in a forked child, or return None where forking is not safe or useful here."""
    if processes() < 2:
        return None
    return Aside(*_fork(lambda _: function(), [None], 0, 1))


def _fork(function, items, share: int, count: int) -> tuple[int, int]:
    reader, writer = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: compute its share, send it, and leave without running anything of the parent's
        code = 1
        try:
            os.close(reader)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C ends it; the parent reports the interrupt
            die_with(parent)
            done = [function(items[index]) for index in range(share, len(items), count)]
            with os.fdopen(writer, "wb") as pipe:
                pickle.dump(done, pipe, protocol=pickle.HIGHEST_PROTOCOL)
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    return pid, reader


def die_with(parent: int) -> None:
    """Ask Linux to end this process when `parent` (the thread of it that started this one) ends.

    A forked copy of a build holds the build's lock (inherited) until it ends; a build the
    scheduler started must not go on once the scheduler is gone (see build_process).
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no C library to ask: the child finishes its share and exits by itself
        pass
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _collect(function, items, share: int, count: int, pid: int, reader: int, results: list) -> None:
    """Take a child's results; if it failed, compute its share here (and so raise its error, if any)."""
    try:
        with os.fdopen(reader, "rb") as pipe:
            data = pipe.read()  # read to the end before waiting: a full pipe would block the child
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    _, status = os.waitpid(pid, 0)
    indices = range(share, len(items), count)
    if os.waitstatus_to_exitcode(status) == 0:
        for index, result in zip(indices, pickle.loads(data)):
            results[index] = result
        return
    for index in indices:
        results[index] = function(items[index])


def _stop(children: Iterable[tuple[int, int]]) -> None:
    """End and reap the children not yet collected (after an error or an interrupt in the parent)."""
    for pid, reader in children:
        os.close(reader)
        _end(pid)


def _end(pid: int) -> None:
    """Kill a child and reap it (it may have ended already)."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
