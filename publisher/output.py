"""Write the output tree atomically, rewriting only the files that changed.

A build that fails or is killed leaves the previous `output/` as it was. A first build (or
one that changes many files) fills a staging folder beside `output/` with the whole tree and
exchanges the two in a single rename (Linux `renameat2(RENAME_EXCHANGE)`; elsewhere two
renames that `recover` repairs if a crash falls between them).

A build that changes a few files stages just those, then commits a journal (the staged
files, the files to delete, the new manifest) with one fsync'd rename, and only then moves
the files in. Until the journal is committed nothing in `output/` has changed; once it is,
`recover` (run first by every build) finishes the moves if a crash cut them short.

The manifest (in the state folder) lists each unit's key and files, and the identity of the
`output/` folder it describes; it is how the next build knows what it need not render.
output/ belongs to the build: a file changed by hand inside it stays until its unit changes;
a replaced or emptied output/ is noticed and built whole.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import pickle
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from publisher import parallel
from publisher.locking import exclusive
from publisher.problems import EditorError, Problem
from publisher.units import Unit

KEEP = ".gitkeep"  # output/ is kept in git by this one empty file
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
MANIFEST_FORMAT = 1
# Past this many changed files a build swaps in a whole new tree (hard links for the rest)
# rather than moving files into place one by one: the move-in stays a moment, not seconds.
MOVE_LIMIT = 500
# Changed units the aside child renders itself; beyond this they are better shared by every core.
ASIDE_LIMIT = parallel.MIN_ITEMS
# Changed units past which the aside child shares their rendering with a forked copy of itself:
# a unit takes milliseconds to render, a fork of a 10,000-entry build about 20 ms.
SHARE_LIMIT = 32


class DuplicatePath(Exception):
    """Two outputs claim one path (a content file named like a generated page)."""

    def __init__(self, path: str):
        super().__init__(f"two outputs claim {path}")
        self.path = path


def write_tree(files: Iterable[tuple[str, bytes]], out_dir: Path) -> int:
    """Write every (relative path, bytes) into a fresh tree and swap it in; return the count."""
    return publish([Unit(b"", lambda: files)], out_dir, None)


def publish(units: Iterable[Unit], out_dir: Path, manifest: Path | None,
            aside: Callable[[], Iterable[Unit]] | None = None) -> int:
    """Bring `out_dir` to exactly the units' files, rendering only units the manifest lacks; return the file count.

    Without a manifest (or with one that does not describe `out_dir`) every unit is rendered
    into a new tree. Units with an empty key are always rendered. `aside()` yields more units,
    taken after `units`; see Plan.add_all.
    """
    out_dir = out_dir.resolve()
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    with exclusive(parent / f".{out_dir.name}.lock"):
        recover(out_dir)
        previous = load_manifest(manifest, out_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-staging-", dir=parent))
        plan = Plan(out_dir, staging, previous)
        try:
            plan.add_all(units, aside)
            count = len(plan.paths)
            if previous is None or len(plan.changed) > MOVE_LIMIT:
                plan.complete()
                (staging / KEEP).touch()
                staging.chmod(0o755)
                _swap(staging, out_dir)
                save_manifest(manifest, plan.units, out_dir)
            elif plan.changed or plan.deleted(previous):
                _commit(plan, manifest, previous)
            elif plan.units != previous:  # same files, new keys (an edit that changed no page): remember them
                save_manifest(manifest, plan.units, out_dir)
        finally:
            if not plan.committed:  # a committed journal's staged files are the build: recover() moves them in
                shutil.rmtree(staging, ignore_errors=True)
    return count


class Plan:
    """The units of one build: which were rendered (their files staged) and which kept."""

    def __init__(self, out_dir: Path, staging: Path, previous: dict[bytes, tuple[str, ...]] | None):
        self.out_dir = out_dir
        self.staging = staging
        self.previous = previous
        self.units: dict[bytes, tuple[str, ...]] = {}
        self.paths: set[str] = set()
        self.changed: list[str] = []
        self.committed = False

    def add_all(self, units: Iterable[Unit], aside: Callable[[], Iterable[Unit]] | None = None) -> None:
        """Take every unit: keep those the previous build made, render and stage the rest (on every core).

        `aside()`'s units come after `units`'. In a warm build a forked child keys them, and
        renders those that changed, while this process does the same for `units`: most of a
        one-edit build is finding the few units that changed among 25,000. A child that meets
        more than ASIDE_LIMIT changed units, or fails, hands them back to be done here, on
        every core.
        """
        helper = parallel.aside(partial(self._sort_out_and_stage, aside)) if aside and self.previous else None
        try:
            order, fresh = self._sort_out(units)
            self._claim(order, parallel.map_forked(self._stage, fresh))  # while the child may still work
            if aside:
                done = helper.result() if helper else None
                if done is None:
                    order, fresh = self._sort_out(aside())
                    self._claim(order, parallel.map_forked(self._stage, fresh))
                else:
                    self._claim([(key, None if files is not None else self.previous[key]) for key, files in done],
                                [files for _, files in done if files is not None])
        finally:
            if helper:
                helper.stop()

    def _claim(self, order: list[tuple[bytes, tuple[str, ...] | None]], staged: list) -> None:
        """Claim units' paths in the units' order, so the same duplicate is reported every time."""
        files = iter(staged)
        for key, kept in order:
            paths = self._keep(kept) if kept is not None else self._claim_staged(next(files))
            if key:
                self.units[key] = paths

    def _sort_out(self, units: Iterable[Unit], limit: int | None = None
                  ) -> tuple[list[tuple[bytes, tuple[str, ...] | None]], list[Unit]]:
        """Return each unit's key and, if the previous build made it, its files; and the units to render.

        Past `limit` units to render, raise parallel.Declined at once (see _sort_out_and_stage).
        """
        order: list[tuple[bytes, tuple[str, ...] | None]] = []
        fresh: list[Unit] = []
        for unit in units:
            kept = self.previous.get(unit.key) if unit.key and self.previous is not None else None
            order.append((unit.key, kept))
            if kept is None:
                if len(fresh) == limit:
                    raise parallel.Declined("many units changed: render them on every core")
                fresh.append(unit)
        return order, fresh

    def _sort_out_and_stage(self, units: Callable[[], Iterable[Unit]]) -> list[tuple[bytes, list | None]]:
        """In the aside child: each unit's key and, for one it rendered, its staged files (None if kept).

        The changed units are rendered once all are found: past SHARE_LIMIT of them, by this
        child and a forked copy of it (a new entry shifts every listing page of its language
        and of its tags, 200 pages at 10,000 entries), while the parent may still be at its own.
        """
        order, fresh = self._sort_out(units(), limit=ASIDE_LIMIT)
        staged = iter(parallel.map_forked(self._stage, fresh, min_items=SHARE_LIMIT))
        return [(key, None if kept is not None else next(staged)) for key, kept in order]

    def _keep(self, paths: tuple[str, ...]) -> tuple[str, ...]:
        if not self.paths.isdisjoint(paths):  # each path was checked when it was written
            raise DuplicatePath(sorted(self.paths.intersection(paths))[0])
        self.paths.update(paths)
        return paths

    def _claim_staged(self, staged: list[tuple[str, bool]]) -> tuple[str, ...]:
        for rel, written in staged:
            if rel in self.paths:
                raise DuplicatePath(rel)
            self.paths.add(rel)
            if written:
                self.changed.append(rel)
        return tuple(rel for rel, _ in staged)

    def _stage(self, unit: Unit) -> list[tuple[str, bool]]:
        """Render a unit and stage each of its files that differs from output/'s; return (path, staged) pairs.

        Runs in any process of parallel.map_forked, so it only writes: two units claiming one
        path are found by _claim_staged afterwards, and the staged tree is then thrown away.
        """
        staged = []
        for rel, data in unit.render():
            _check_path(rel)
            if self.previous is not None and _same(self.out_dir / rel, data):
                staged.append((rel, False))  # rendered again, unchanged: left as it is
                continue
            target = self.staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            staged.append((rel, True))
        return staged

    def deleted(self, previous: dict[bytes, tuple[str, ...]]) -> list[str]:
        return sorted({rel for paths in previous.values() for rel in paths} - self.paths)

    def complete(self) -> None:
        """Make the staging folder the whole tree: link in every file that was not written anew."""
        if self.previous is None:
            return
        written = set(self.changed)
        for rel in sorted(self.paths - written):
            target = self.staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.out_dir / rel, target)
            except FileNotFoundError:
                raise EditorError([Problem(f"{self.out_dir.name}/{rel}", 1, "removed by hand since the last build; "
                                           "delete the output folder and build again")]) from None


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _commit(plan: Plan, manifest: Path, previous: dict[bytes, tuple[str, ...]]) -> None:
    """Commit the staged changes through the journal, then apply them."""
    fresh = manifest.with_name(manifest.name + ".new")
    _write_manifest(fresh, plan.units, plan.out_dir)
    journal = {"staging": plan.staging.name, "moves": plan.changed, "deletes": plan.deleted(previous),
               "manifest": [str(fresh), str(manifest)]}
    path = _journal(plan.out_dir)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(journal, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(temporary, path)  # the commit: from here on the build happens, even after a crash
    plan.committed = True
    _apply(plan.out_dir, journal)


def _journal(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}-journal"


def _apply(out_dir: Path, journal: dict) -> None:
    """Carry out a committed journal; safe to repeat after a crash part-way."""
    staging = out_dir.parent / journal["staging"]
    for rel in journal["moves"]:
        source = staging / rel
        if source.exists():
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, out_dir / rel)
    for rel in journal["deletes"]:
        (out_dir / rel).unlink(missing_ok=True)
        _prune(out_dir, (out_dir / rel).parent)
    fresh, manifest = (Path(p) for p in journal["manifest"])
    if fresh.exists():
        os.rename(fresh, manifest)
    _journal(out_dir).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def _prune(out_dir: Path, folder: Path) -> None:
    """Remove folders a deletion left empty, up to out_dir."""
    while folder != out_dir and folder.is_relative_to(out_dir):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def load_manifest(manifest: Path | None, out_dir: Path) -> dict[bytes, tuple[str, ...]] | None:
    """Return the previous build's units, or None if there is none or it describes another output/."""
    if manifest is None:
        return None
    try:
        with open(manifest, "rb") as handle:
            recorded = pickle.load(handle)
        info = out_dir.stat()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(recorded, dict) or recorded.get("format") != MANIFEST_FORMAT:
        return None
    if recorded.get("output") != [info.st_dev, info.st_ino]:
        return None  # output/ was replaced or removed by hand since: build it whole
    with os.scandir(out_dir) as items:
        if recorded["units"] and not any(item.name != KEEP for item in items):
            return None  # emptied by hand (rm -rf output/*)
    return recorded["units"]


def save_manifest(manifest: Path | None, units: dict[bytes, tuple[str, ...]], out_dir: Path) -> None:
    if manifest is None:
        return
    fresh = manifest.with_name(manifest.name + ".new")
    _write_manifest(fresh, units, out_dir)
    os.rename(fresh, manifest)


def _write_manifest(path: Path, units: dict[bytes, tuple[str, ...]], out_dir: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = out_dir.stat() if out_dir.exists() else None
    # After a swap out_dir is the staging folder renamed: its identity is the one recorded.
    recorded = {"format": MANIFEST_FORMAT, "output": [info.st_dev, info.st_ino] if info else None, "units": units}
    with open(path, "wb") as handle:
        pickle.dump(recorded, handle, protocol=5)
        handle.flush()
        os.fsync(handle.fileno())


def recover(out_dir: Path) -> None:
    """Finish a committed journal or a swap a crash interrupted, and remove abandoned staging folders."""
    parent = out_dir.parent
    journal = _journal(out_dir)
    if journal.exists():
        try:
            _apply(out_dir, json.loads(journal.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError):
            journal.unlink()  # written by hand or damaged: the tree it would change is intact
    _journal(out_dir).with_name(journal.name + ".tmp").unlink(missing_ok=True)
    old = parent / f".{out_dir.name}-old"
    if old.exists() and not out_dir.exists():
        os.rename(old, out_dir)
    for leftover in parent.glob(f".{out_dir.name}-staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def _check_path(rel: str) -> None:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or ".." in parts or "" in parts or "\0" in rel:
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
