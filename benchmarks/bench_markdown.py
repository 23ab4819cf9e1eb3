"""Benchmark Markdown rendering (publisher.markup.render_markdown) on a generated corpus.

    python benchmarks/bench_markdown.py                  # 1,000 generated entries
    python benchmarks/bench_markdown.py --n 300 --runs 5
    python benchmarks/bench_markdown.py --content DIR    # the entries under DIR instead

Prints entries/s per core, the median of --runs passes over every body: CPU time of this one
process (other processes on a shared machine disturb it less than wall time, also shown). Then
what each extension costs (the full configuration against it minus that extension), which
extensions the per-text sniffing keeps, and how one rendering splits between Markdown, nh3 and
the rest (relink is not part of render_markdown; it is timed as the pages apply it).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from publisher import markup  # noqa: E402
from publisher.content import split_front_matter  # noqa: E402
from publisher.text import clean_text  # noqa: E402

GENERATOR = REPO.parent / "shared" / "bench" / "gen_corpus.py"

Body = tuple[str, str]  # (Markdown source, the entry's site-absolute folder)


def load_bodies(content: Path) -> list[Body]:
    """Read every entry's body as the build hands it to render_markdown."""
    bodies = []
    for path in sorted(content.rglob("*.md")):
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        split = split_front_matter(text)
        if isinstance(split, tuple):
            folder = path.parent.relative_to(content).as_posix()
            bodies.append((clean_text(split[1]), "/" if folder == "." else f"/{folder}/"))
    return bodies


def generated_bodies(n: int) -> list[Body]:
    work = Path(tempfile.mkdtemp(prefix="bench-md-"))
    try:
        subprocess.run([sys.executable, str(GENERATOR), "--n", str(n), "--layout", "plain", "--out", str(work)],
                       check=True, stdout=subprocess.DEVNULL)
        return load_bodies(work / "content")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def timed(passes: int, works: dict[str, Callable[[], object]]) -> dict[str, tuple[float, float]]:
    """Run each work `passes` times, taking turns so that a busy spell hits all alike; return
    each one's median CPU and wall seconds for one pass."""
    cpu: dict[str, list[float]] = {name: [] for name in works}
    wall: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(passes):
        for name, work in works.items():
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            work()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)
    return {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in works}


def render(source: str, folder: str, flavour: markup.Flavour | None, sniffing: bool) -> markup.Rendered:
    """render_markdown with a given flavour (None: the text's own), and if not `sniffing` as the library
    runs it: every inline pattern tried on every piece of text, every block processor's test searching every block."""
    body = markup.sanitize(markup.to_html(clean_text(source), folder, flavour, sniffing))
    return markup.Rendered(body, markup.first_paragraph(body))


def print_table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def throughput(bodies: list[Body], runs: int) -> None:
    renderings = {
        "render_markdown": markup.render_markdown,
        "render_markdown, the library's inline loop and block tests": partial(render, flavour=None, sniffing=False),
        "full configuration, as the library runs it (no sniffing at all)": partial(render, flavour=markup.FULL, sniffing=False),
    }
    for name, rendering in renderings.items():
        if any(rendering(*b) != markup.render_markdown(*b) for b in bodies[:50]):  # also warms the caches
            raise SystemExit(f"{name} renders differently from render_markdown")
    times = timed(runs, {name: (lambda rendering=rendering: [rendering(*b) for b in bodies])
                         for name, rendering in renderings.items()})
    n = len(bodies)
    print_table(["rendering", "entries/s (CPU)", "entries/s (wall)", "ms/entry"],
                [[name, f"{n / cpu:.0f}", f"{n / wall:.0f}", f"{1000 * cpu / n:.2f}"]
                 for name, (cpu, wall) in times.items()])


def extension_costs(bodies: list[Body], runs: int) -> None:
    """Time Markdown alone with every extension, without each one, with none, and as sniffed."""
    flavours = {"all of them": markup.FULL}
    for name in markup.EXTENSIONS:
        flavours[name] = markup.Flavour(tuple(e for e in markup.EXTENSIONS if e != name))
    flavours["none (core Markdown)"] = markup.Flavour(())
    flavours["sniffed per text (to_html)"] = None
    for flavour in flavours.values():  # build the Markdown instances before the clock runs
        [markup.to_html(source, folder, flavour) for source, folder in bodies[:50]]
    times = timed(runs, {name: (lambda flavour=flavour: [markup.to_html(s, f, flavour) for s, f in bodies])
                         for name, flavour in flavours.items()})
    full, n = times["all of them"][0], len(bodies)
    sniffed = Counter(name for source, _ in bodies for name in markup.flavour_of(source).extensions)
    rows = []
    for name, (cpu, _) in times.items():
        if name in markup.EXTENSIONS:  # its cost: the time it adds to all the others
            rows.append([f"cost of {name}", f"{1000 * (full - cpu) / n:+.2f}", f"{100 * (full - cpu) / full:+.0f}%",
                         f"{sniffed[name]}/{n}"])
        else:
            rows.append([name, f"{1000 * cpu / n:.2f}", f"{100 * cpu / full:.0f}%", ""])
    print_table(["Markdown with", "ms/entry", "share of all of them", "texts the sniffing keeps it for"], rows)


def stage_shares(bodies: list[Body], runs: int) -> None:
    """Split render_markdown into its stages, each timed over every body."""
    sources = [clean_text(source) for source, _ in bodies]
    htmls = [markup.to_html(source, folder) for source, folder in bodies]
    cleaned = [markup.sanitize(html) for html in htmls]
    stages = {
        "clean_text (input)": lambda: [clean_text(source) for source, _ in bodies],
        "flavour_of (sniffing)": lambda: [markup.flavour_of(source) for source in sources],
        "Markdown (to_html, sniffing included)": lambda: [markup.to_html(s, f) for s, (_, f) in zip(sources, bodies)],
        "sanitize (nh3 and its filter)": lambda: [markup.sanitize(html) for html in htmls],
        "first_paragraph": lambda: [markup.first_paragraph(html) for html in cleaned],
        "relink (per page, outside render_markdown)": lambda: [markup.relink(html, "../../") for html in cleaned],
    }
    times = {name: cpu for name, (cpu, _) in timed(runs, stages).items()}
    total = sum(cpu for name, cpu in times.items() if not name.startswith(("flavour_of", "relink")))
    print_table(["stage", "ms/entry", "share of render_markdown"],
                [[name, f"{1000 * cpu / len(bodies):.3f}", f"{100 * cpu / total:.0f}%"] for name, cpu in times.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="entries to generate (default 1000)")
    parser.add_argument("--content", type=Path, help="benchmark the .md files under this folder instead")
    parser.add_argument("--runs", type=int, default=3, help="passes per measurement, median reported (default 3)")
    parser.add_argument("--no-breakdown", action="store_true", help="only the entries/s table")
    args = parser.parse_args()
    bodies = load_bodies(args.content) if args.content else generated_bodies(args.n)
    if not bodies:
        raise SystemExit("no entries to render")
    print(f"{len(bodies)} entries, {sum(len(s) for s, _ in bodies) / len(bodies):.0f} characters on average, "
          f"median of {args.runs} passes\n")
    throughput(bodies, args.runs)
    if not args.no_breakdown:
        extension_costs(bodies, args.runs)
        stage_shares(bodies, args.runs)


if __name__ == "__main__":
    main()
