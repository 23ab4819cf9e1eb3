"""Rendering on every core: the same results and the same tree as one process, and errors raised as in one.

Forking is refused in a process that runs threads (a pytest-xdist worker does), so what must
fork runs in a fresh single-threaded interpreter, through the real code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

from conftest import NOW, REPO, ScratchSite
from publisher import parallel
from test_render_cache import fresh_copy


def run(code: str, *args: str, cwd=REPO) -> subprocess.CompletedProcess:
    """Run Python code in a new process (one thread, so map_forked may fork)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_results_come_back_in_order_from_more_than_one_process():
    result = run("""
        import json, os
        from publisher import parallel
        print(json.dumps([parallel.processes(), parallel.map_forked(lambda i: [i * i, os.getpid()], range(1000))]))
    """)
    assert result.returncode == 0, result.stderr
    processes, pairs = json.loads(result.stdout)
    assert [square for square, _ in pairs] == [i * i for i in range(1000)]
    assert len({pid for _, pid in pairs}) == processes
    if (os.cpu_count() or 1) > 1:
        assert processes > 1


def test_an_error_in_a_child_is_raised_by_the_parent_with_its_traceback():
    result = run("""
        from publisher import parallel
        def square(i):
            if i == 301:  # in a child's share: 301 is odd, and the parent takes every other item from 0
                raise ValueError(f"item {i} is bad")
            return i * i
        parallel.map_forked(square, range(1000))
    """)
    assert result.returncode == 1
    assert "ValueError: item 301 is bad" in result.stderr
    assert 'in square' in result.stderr  # the traceback of the frame that raised it


def test_children_end_when_the_build_is_killed(tmp_path):
    """A killed build's children must not go on writing (and holding the output lock) by themselves."""
    marks = tmp_path / "marks"
    marks.mkdir()
    script = textwrap.dedent("""
        import os, sys, time
        from pathlib import Path
        from publisher import parallel
        def slow(i):
            Path(sys.argv[1], str(os.getpid())).touch()
            time.sleep(0.05)
        parallel.map_forked(slow, range(2000))
    """)
    build = subprocess.Popen([sys.executable, "-c", script, str(marks)], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = {int(path.name) for path in marks.iterdir()} - {build.pid}
        assert pids, "no child started"
    finally:
        build.kill()
        build.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)


def alive(pid: int) -> bool:
    """Tell whether a process runs (a zombie, reaped by init, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_process_that_runs_threads_does_the_work_itself():
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        assert parallel.processes() == 1
        assert {pid for pid in parallel.map_forked(lambda _: os.getpid(), range(1000))} == {os.getpid()}
    finally:
        stop.set()
        helper.join()


BUILD = """
    import sys
    from datetime import datetime
    from pathlib import Path
    from publisher import parallel
    from publisher.cli import main
    parallel.MIN_ITEMS = 1  # fork for even a small site
    sys.argv = ["publisher", *sys.argv[1:]]
    raise SystemExit(main())
"""


def forked_build(site: ScratchSite) -> subprocess.CompletedProcess:
    return run(BUILD, "build", "--now", NOW.isoformat(), cwd=site.root)


def test_a_site_rendered_on_every_core_equals_one_rendered_in_one_process(site, tmp_path):
    action = "{label: Write, url: 'https://example.org/act'}"
    for number in range(40):
        kind = {"type": "alert", "action": action} if number % 5 == 0 else {}
        site.entry(f"2026/entry-{number}.md", title=f"Entry {number}", date=f"2026-10-{1 + number % 28:02d}T10:00:00+04:00",
                   tags="[police, courts]", body=f"Entry {number}.\n\n## Details\n\nMore about it.", **kind)
    result = forked_build(site)
    assert result.returncode == 0, result.stderr
    assert site.tree() == fresh_copy(site, tmp_path, "serial").tree()


def test_a_template_error_met_in_a_child_names_the_template_and_line(site):
    for number in range(6):
        site.entry(f"2026/entry-{number}.md", title=f"Entry {number}", date=f"2026-10-{1 + number:02d}T10:00:00+04:00")
    site.write("templates/entry.html", '{% extends "base.html" %}{% block main %}\n\n{{ entry.nope }}{% endblock %}')
    result = forked_build(site)
    assert result.returncode == 1
    assert result.stderr.startswith("templates/entry.html:3: template error:")
    assert "Traceback" not in result.stderr


WARM_BUILD = """
    import sys
    from publisher import output, parallel
    from publisher.cli import main
    output.ASIDE_LIMIT = int(sys.argv[1])
    started = parallel.aside
    def aside(function):  # say what the archive's aside child did: its units, or gave them back
        helper = started(function)
        if helper is not None and getattr(function, "func", function).__name__ == "_sort_out_and_stage":
            result = helper.result
            def told():
                done = result()
                print("aside:", "handed back" if done is None else f"{len(done)} units", file=sys.stderr)
                return done
            helper.result = told
        return helper
    parallel.aside = aside
    sys.argv = ["publisher", *sys.argv[2:]]
    raise SystemExit(main())
"""


def warm_build(site: ScratchSite, limit: int = 256) -> subprocess.CompletedProcess:
    return run(WARM_BUILD, str(limit), "build", "--now", NOW.isoformat(), cwd=site.root)


def entries_with_tags(site: ScratchSite, count: int, body: str = "Words.") -> None:
    for number in range(count):
        site.entry(f"2026/entry-{number}.md", title=f"Entry {number}", date=f"2026-10-{1 + number % 28:02d}T10:00:00+04:00",
                   tags="[police, courts]" if number % 2 else "[baku]", body=f"{body} {number}.")


def test_a_warm_build_keys_the_archive_aside_and_equals_a_cold_one(site, tmp_path):
    entries_with_tags(site, 30)
    assert warm_build(site).returncode == 0
    site.entry("2026/entry-7.md", title="Entry seven", date="2026-10-08T10:00:00+04:00", tags="[police]", body="Edited.")
    result = warm_build(site)
    assert result.returncode == 0, result.stderr
    assert "aside: " in result.stderr and "units" in result.stderr, result.stderr  # the child did the archive
    assert site.tree() == fresh_copy(site, tmp_path, "cold").tree()


def test_an_aside_child_with_many_changed_units_hands_them_back(site, tmp_path):
    entries_with_tags(site, 30)
    assert warm_build(site).returncode == 0
    entries_with_tags(site, 30, body="Every entry edited.")
    result = warm_build(site, limit=3)
    assert result.returncode == 0, result.stderr
    assert "aside: handed back" in result.stderr
    assert site.tree() == fresh_copy(site, tmp_path, "cold").tree()


def test_an_aside_child_shares_many_changed_units_with_a_copy_of_itself(site, tmp_path):
    entries_with_tags(site, 12)
    assert warm_build(site).returncode == 0
    entries_with_tags(site, 12, body="Every entry edited.")
    script = WARM_BUILD.replace("output.ASIDE_LIMIT = int(sys.argv[1])", """output.ASIDE_LIMIT = int(sys.argv[1])
    output.SHARE_LIMIT = 4
    mapped = parallel.map_forked
    def map_forked(function, items, min_items=parallel.MIN_ITEMS):  # say when rendering is shared
        if len(items) >= min_items and parallel.processes() > 1:
            print("shared:", len(items), "units", file=sys.stderr)
        return mapped(function, items, min_items)
    parallel.map_forked = map_forked""")
    result = run(script, "256", "build", "--now", NOW.isoformat(), cwd=site.root)
    assert result.returncode == 0, result.stderr
    assert "shared: " in result.stderr and "aside: " in result.stderr and "handed back" not in result.stderr
    assert site.tree() == fresh_copy(site, tmp_path, "cold").tree()


def test_a_template_error_met_aside_is_reported_as_path_and_line(site):
    entries_with_tags(site, 6)
    assert warm_build(site).returncode == 0
    site.write("templates/entry.html", '{% extends "base.html" %}{% block main %}\n\n{{ entry.nope }}{% endblock %}')
    result = warm_build(site)
    assert result.returncode == 1
    assert "aside: handed back" in result.stderr
    assert "templates/entry.html:3: template error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_build_command_walks_content_aside_while_it_loads_and_stops_early_as_before(site, tmp_path):
    """The CLI takes stamp.survey in a child while it imports the rendering stack."""
    entries_with_tags(site, 5)
    script = WARM_BUILD.replace('getattr(function, "func", function).__name__ == "_sort_out_and_stage"', 'True').replace(
        'f"{len(done)} units"', 'type(done).__name__')
    first = run(script, "256", "build", "--now", NOW.isoformat(), cwd=site.root)
    assert first.returncode == 0 and "aside: Survey" in first.stderr, first.stderr
    time.sleep(2.1)  # past the racy window: the next build may trust the signature
    run(script, "256", "build", "--now", NOW.isoformat(), cwd=site.root)
    again = run(script, "256", "build", "--now", NOW.isoformat(), cwd=site.root)
    assert again.returncode == 0 and "aside: Survey" in again.stderr and "aside: list" not in again.stderr
    assert site.tree() == fresh_copy(site, tmp_path, "cold").tree()


def test_an_aside_child_is_collected_once_and_stopped_cleanly():
    result = run("""
        import os, time
        from publisher import parallel
        done = parallel.aside(lambda: os.getpid())
        assert done.result() not in (None, os.getpid())
        done.stop()  # after result(): nothing left to end, no descriptor closed twice
        slow = parallel.aside(lambda: time.sleep(60))
        slow.stop()  # ended at once, and reaped
        slow.stop()
        failing = parallel.aside(lambda: 1 / 0)
        assert failing.result() is None  # the caller does the work itself, and meets the error there
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
