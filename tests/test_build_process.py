"""The scheduler's builds run in a process of their own: the same tree, problems as path:line, on every core.

build_apart is called from this pytest process, which runs threads, as the scheduler does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import NOW, REPO, ScratchSite
from publisher.build import build
from publisher.build_process import BuildCrashed, build_apart
from publisher.problems import EditorError
from test_render_cache import fresh_copy


def populate(site: ScratchSite, count: int = 150, title: str = "Entry") -> None:
    """Enough entries for a build that lasts a while and has outputs to share between cores."""
    for index in range(count):
        site.entry(f"e{index}.md", title=f"{title} {index}", date=f"2023-0{1 + index % 9}-01",
                   body=f"{title} words, *some* [linked](https://example.org/{index}). " * 60)


def processes_named_build() -> set[int]:
    """The pids of every process named publisher-build (build processes and their forked copies)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if (proc / "comm").read_text().strip() == "publisher-build" and _state(int(proc.name)) != "Z":
                found.add(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def builds_of(caller: int) -> set[int]:
    """The build processes `caller` started: forked by its fork server, so its grandchildren."""
    return {pid for pid in processes_named_build() if parent_of(parent_of(pid) or 0) == caller}


def wait_for_build_of(caller: int, ignoring_sigterm: bool = False) -> int:
    """Return the pid of a build process `caller` started, once it runs (and ignores SIGTERM, if asked)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for pid in builds_of(caller):
            if not ignoring_sigterm or _ignores_sigterm(pid):
                return pid
        time.sleep(0.002)
    raise AssertionError("no build process started")


def _ignores_sigterm(pid: int) -> bool:
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return False
    ignored = next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(ignored, 16) & (1 << (signal.SIGTERM - 1)))


def _state(pid: int) -> str | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


def parent_of(pid: int) -> int | None:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_build_apart_equals_a_build_here(site, tmp_path):
    populate(site, 20)
    site.write("content/images/a.txt", "a file\n")
    result = build_apart(site.root, NOW)
    here = fresh_copy(site, tmp_path, "here")  # built in this process
    assert result == build(here.root, NOW)
    assert site.tree() == here.tree()


def test_editor_problems_come_back_as_problems(site):
    site.entry("good.md")
    site.entry("bad.md", type="nope")
    site.entry("worse.md", date="2023-02-30")
    with pytest.raises(EditorError) as apart:
        build_apart(site.root, NOW)
    with pytest.raises(EditorError) as here:
        build(site.root, NOW)
    assert [str(p) for p in apart.value.problems] == [str(p) for p in here.value.problems]
    assert [(p.path, p.line) for p in apart.value.problems] == [("content/bad.md", 3), ("content/worse.md", 4)]
    assert not list(site.output.rglob("index.html"))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing to share")
def test_the_build_forks_though_the_caller_runs_threads(site):
    """Forked copies of the build process (same command line, its children) render beside it."""
    populate(site, 300)
    copies: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            builds = builds_of(os.getpid())
            copies.update(pid for pid in processes_named_build() if parent_of(pid) in builds)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = build_apart(site.root, NOW)
    finally:
        done.set()
        watcher.join()
    assert result.entries == 300
    assert copies, "no forked copy of the build process was seen"


def test_a_killed_build_process_is_an_error_and_leaves_the_output(site):
    populate(site, 150)
    build_apart(site.root, NOW)
    before = site.tree()
    populate(site, 150, title="Changed")
    outcome: dict = {}

    def run() -> None:
        try:
            build_apart(site.root, NOW)
        except BaseException as exc:  # noqa: BLE001 - the test looks at what it was
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    os.kill(wait_for_build_of(os.getpid()), signal.SIGKILL)
    thread.join(timeout=60)
    assert isinstance(outcome.get("error"), BuildCrashed), outcome
    assert "exit code -9" in str(outcome["error"])
    assert site.tree() == before


# Another process that calls build_apart, as the scheduler does, and prints the entries built.
CALLER = textwrap.dedent("""
    import sys
    from datetime import datetime
    from pathlib import Path
    from publisher.build_process import build_apart
    print(build_apart(Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2])).entries)
""")


def start_caller(site: ScratchSite) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CALLER, str(site.root), NOW.isoformat()], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)


def test_the_build_ignores_sigterm_and_dies_with_its_caller(site):
    """systemd's SIGTERM reaches every process of the service: the scheduler lets its build finish.
    A scheduler that dies (SIGKILL, a second SIGTERM) takes its build with it."""
    populate(site, 150)
    build_apart(site.root, NOW)
    populate(site, 150, title="Changed")
    caller = start_caller(site)
    try:
        os.kill(wait_for_build_of(caller.pid, ignoring_sigterm=True), signal.SIGTERM)
        assert caller.wait(timeout=120) == 0
        assert caller.stdout.read().strip() == "150"
    finally:
        caller.kill()
        caller.wait()
    assert "Changed" in next(site.output.glob("en/*/*/e0/index.html")).read_text()

    populate(site, 150, title="Again")
    caller = start_caller(site)
    build = wait_for_build_of(caller.pid, ignoring_sigterm=True)  # past its start: it is building
    caller.kill()
    caller.wait()
    deadline = time.monotonic() + 10
    while _state(build) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _state(build) in (None, "Z")  # gone (or dead, waiting to be reaped by init)
    assert "Changed" in next(site.output.glob("en/*/*/e0/index.html")).read_text()  # the last tree, whole
