"""A build in a process of its own, for the scheduler, whose jobs run in threads.

A process that runs threads must not fork (a lock another thread holds at the fork stays
locked in the child for ever), so a build run in the scheduler's job thread could use one
core only: no forked copies rendering the outputs, none keying the archive aside (see
publisher/parallel.py). A process of its own runs one thread, so it may; it also gives the
memory back when it ends.

Build processes are forked by multiprocessing's fork server, a single-threaded process
started once with the rendering stack imported (see `prepare` and publisher/build_server.py),
so a build does not pay for an interpreter and its imports (a quarter of a one-edit build at
10,000 entries). Each is named publisher-build, which ps and top show, and so are its forked
copies. A build process ignores SIGINT and SIGTERM: the scheduler decides when its build
stops (a first Ctrl-C or SIGTERM, which the terminal or systemd send to every process, lets
the build finish); Linux kills the fork server when the scheduler dies, and the build when
the server does (see parallel.die_with). It sends back its result or its editor problems;
one that crashes has printed its traceback to stderr, where the scheduler logs.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

from publisher.problems import EditorError

log = logging.getLogger(__name__)
_SERVER = multiprocessing.get_context("forkserver")
_NAME = b"publisher-build"
_PR_SET_NAME = 15


class BuildCrashed(Exception):
    """The build process ended without a result (its traceback is on stderr)."""


def prepare() -> None:
    """Start the fork server with the rendering stack imported, before anything else starts it.

    The process pool that renders entries uses the same server, and it imports less: the
    first to start the server decides what every process forked from it has already imported.
    Call it from a thread that lasts as long as the process: Linux ends the server when the
    thread that started it ends (and a later call starts another).
    """
    _SERVER.set_forkserver_preload(["publisher.build_server"])
    multiprocessing.forkserver.ensure_running()


def build_apart(root: Path, now: datetime):
    """Build the site in `root` at `now` in a process of its own; return its BuildResult, or raise EditorError."""
    prepare()
    reader, writer = _SERVER.Pipe(duplex=False)
    child = _SERVER.Process(target=_child, args=(os.fspath(root), now, writer, log.isEnabledFor(logging.DEBUG)),
                            name="publisher-build")
    child.start()
    writer.close()
    try:
        kind, value = reader.recv()
    except EOFError:
        kind, value = None, None
    finally:
        reader.close()
        child.join()
    if kind is None or child.exitcode != 0:
        raise BuildCrashed(f"the build process ended with exit code {child.exitcode} and no result; "
                           f"its error is logged above")
    if kind == "problems":
        raise EditorError(value)
    return value


def _child(root: str, now: datetime, writer, verbose: bool) -> None:
    """Build, send ("built", BuildResult) or ("problems", [Problem, ...]), and leave without a teardown."""
    from publisher import parallel
    from publisher.logs import configure_logging

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    parallel.die_with(os.getppid())  # the fork server, which Linux ends with the scheduler (see build_server)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, ctypes.c_char_p(_NAME))
    except (OSError, AttributeError):  # no C library to ask: the name is only for people looking
        pass
    configure_logging(verbose)
    held: list = []  # what the build loaded, dropped by os._exit below rather than freed object by object
    writer.send(_build(Path(root), now, held))
    writer.close()
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0)  # the site in memory need not be freed object by object (see cli.run)


def _build(root: Path, now: datetime, keep: list) -> tuple[str, object]:
    from publisher.build import build

    try:
        return "built", build(root, now, keep=keep)
    except EditorError as error:
        return "problems", error.problems
