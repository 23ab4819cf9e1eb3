"""Keep Python's cycle collector off the site a build has loaded.

Loading 10,000 entries from the render cache makes a few hundred thousand objects in a
burst, and the collector, which runs every 700 new objects, walked the whole growing heap
again and again: 0.18 s of a 1.5 s one-edit build, and none of those objects is garbage.
So loading runs with the collector off; within a build, what was loaded is then frozen
(out of the collector's sight) until the build ends, rather than walked once more when the
collector comes back on. Rendering, which does make cyclic garbage (Jinja,
Python-Markdown), runs with the collector on, as before.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

_builds = 0  # builds running in this process: the scheduler and the preview build from threads
_lock = threading.Lock()


@contextmanager
def build_scope() -> Iterator[None]:
    """Run a build: what its `loading` blocks make stays frozen until the last running build ends."""
    global _builds
    with _lock:
        _builds += 1
    try:
        yield
    finally:
        with _lock:
            _builds -= 1
            if not _builds:
                gc.unfreeze()  # the site can be collected again, once nothing holds it


@contextmanager
def loading() -> Iterator[None]:
    """Run a block that makes many long-lived objects and no cyclic garbage with the collector off."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _builds:
            gc.freeze()
        if was_enabled:
            gc.enable()
