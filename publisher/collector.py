"""Keep Python's cycle collector off the site a build has loaded.

Loading 10,000 entries from the render cache makes a few hundred thousand objects in a
burst, and the collector, which runs every 700 new objects, walks the whole growing heap
again and again: 0.18 s of a 1.5 s one-edit build went to it, and none of those objects is
garbage. So reading cached entries runs with the collector paused, and the loaded site is
then frozen out of its sight until the build ends. Rendering, which does make cyclic
garbage (Jinja, Python-Markdown), runs with the collector on, as before.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def paused() -> Iterator[None]:
    """Run a block that makes many objects and no cyclic garbage with the collector off."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def frozen() -> Iterator[None]:
    """Freeze every object that exists now (the loaded site) until the block ends.

    Unfreezing matters in processes that build many times (the scheduler, the preview): each
    build's site must be collectable once its build is over.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
