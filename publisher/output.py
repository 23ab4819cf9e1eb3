"""Write the output tree atomically: stage everything, then swap it in at once.

A build that fails or is killed at any moment leaves the previous `output/` as it was:
files go to a staging folder beside it, and the finished folder is exchanged with the old
one in a single rename (Linux `renameat2(RENAME_EXCHANGE)`; elsewhere two renames that
`recover` repairs if a crash falls between them).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Iterable

from publisher.locking import exclusive

KEEP = ".gitkeep"  # output/ is kept in git by this one empty file
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class DuplicatePath(Exception):
    """Two outputs claim one path (a content file named like a generated page)."""

    def __init__(self, path: str):
        super().__init__(f"two outputs claim {path}")
        self.path = path


def write_tree(files: Iterable[tuple[str, bytes]], out_dir: Path) -> int:
    """Write every (relative path, bytes) into a fresh tree and swap it in; return the count."""
    out_dir = out_dir.resolve()
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    with exclusive(parent / f".{out_dir.name}.lock"):
        recover(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-staging-", dir=parent))
        try:
            count = _fill(staging, files)
            (staging / KEEP).touch()
            staging.chmod(0o755)
            _swap(staging, out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return count


def recover(out_dir: Path) -> None:
    """Finish or undo a swap a crash interrupted, and remove abandoned staging folders."""
    parent = out_dir.parent
    old = parent / f".{out_dir.name}-old"
    if old.exists() and not out_dir.exists():
        os.rename(old, out_dir)
    for leftover in parent.glob(f".{out_dir.name}-staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def _fill(staging: Path, files: Iterable[tuple[str, bytes]]) -> int:
    seen: set[str] = set()
    for rel, data in files:
        _check_path(rel)
        if rel in seen:
            raise DuplicatePath(rel)
        seen.add(rel)
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return len(seen)


def _check_path(rel: str) -> None:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts or rel.endswith("/"):
        raise ValueError(f"unsafe output path {rel!r}")


def _swap(staging: Path, out_dir: Path) -> None:
    """Put `staging` at `out_dir`; afterwards `staging` holds the old tree (or nothing)."""
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    if _exchange(staging, out_dir):
        return
    old = out_dir.parent / f".{out_dir.name}-old"
    os.rename(out_dir, old)  # a crash here is repaired by recover()
    os.rename(staging, out_dir)
    os.rename(old, staging)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two folders where the kernel can; False where it cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))
