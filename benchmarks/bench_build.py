"""Benchmark publisher's build against Pelican and Hugo on the same generated corpora.

    python benchmarks/bench_build.py                  # 1,000 and 10,000 entries, with peers
    python benchmarks/bench_build.py --quick          # 1,000 entries, no peers: a correctness smoke test

Prints one table: wall seconds (median, min-max, of --runs runs), peak memory of the largest
process, and the ratio to each peer. Cold = no cache, no previous output; warm = a second
build with nothing changed, and after one entry was edited. In every mode it checks that each
warm build's output is byte-identical to a cold build of the same content (exit 1 if not);
it never asserts a time. Peers: Pelican from PyPI in a throwaway venv, Hugo from Debian.
Every tool's timed run starts with the disk's write-back done (os.sync), and writes to a
folder nothing was just deleted from: the peers to a new one each time, publisher to a site
whose old output was moved aside (it is deleted once everything is measured).
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from publisher.stamp import RACY_SECONDS

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO.parent / "shared" / "bench"
NOW = "2026-11-22T12:00:00+04:00"
CONFIG = """\
title = "HR Newsroom"
base_url = "https://news.example.org/"
tag_authority = "news.example.org,2024"
timezone = "Asia/Baku"
languages = ["en", "az", "ru"]

[newsletter]
from_address = "newsletter@news.example.org"
unsubscribe_url = "https://news.example.org/unsubscribe"
unsubscribe_mailto = "unsubscribe@news.example.org"

[feeds]
limit = 100
"""


# What each tool does to the same text, so the table compares like with like (or says how not).
MARKDOWN_FEATURES = """\
Markdown: publisher tables, fenced_code, footnotes, toc (heading ids), sane_lists, def_list, abbr, then an
nh3 allowlist sanitiser, image sizes, and every entry also rendered into emails, plain text and feeds;
Pelican extra (abbr, attr_list, def_list, fenced_code, footnotes, md_in_html, tables), toc, smarty, meta;
Hugo Goldmark with tables, footnotes, definition lists, heading ids and typographer. publisher has no
smartypants (Pelican's smarty, Hugo's typographer): it leaves quotes as the editor typed them."""


@dataclass
class Run:
    wall: float
    peak_mib: float


@dataclass
class Row:
    name: str
    n: int
    runs: list[Run]

    def cells(self) -> list[str]:
        walls = [r.wall for r in self.runs]
        spread = f"{statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f})"
        return [self.name, str(self.n), str(len(walls)), spread, f"{max(r.peak_mib for r in self.runs):.0f}"]

    @property
    def median(self) -> float:
        return statistics.median(r.wall for r in self.runs)


def measure(command: list[str], cwd: Path | None = None, env: dict | None = None) -> Run:
    """Run a command to completion; return its wall time and the peak RSS of its largest process.

    Every run starts with the disk's write-back done, so that none pays for the one before: a
    cold build of 10,000 entries writes 1.3 GB. Right after the last one's output was deleted,
    its processes spent 11-14 s writing files and making folders; in a new folder after a sync,
    3-6 s (this machine's ext4 is mounted with discard).
    """
    os.sync()
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()[-2000:]}")
    # ru_maxrss of a waited child is the largest of it and its own waited children (the pool).
    return Run(wall, usage.ru_maxrss / 1024)


DISCARDED = "discarded"  # in the work folder: where old outputs wait to be deleted, after the runs


def set_aside(work: Path, prefix: str = "") -> Path:
    """Return a new empty folder for something to delete after the runs, on the work folder's file system."""
    (work / DISCARDED).mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=work / DISCARDED))


def generate(n: int, layout: str, out: Path) -> Path:
    if not out.exists():
        subprocess.run([sys.executable, str(BENCH / "gen_corpus.py"), "--n", str(n), "--layout", layout,
                        "--out", str(out), "--with-images"], check=True, stdout=subprocess.DEVNULL)
    return out


def tree_digest(folder: Path) -> str:
    """Hash every file's path and bytes, so two trees can be compared cheaply."""
    digest = hashlib.blake2b()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class Publisher:
    """Cold and warm builds of one corpus with this checkout's publisher."""

    def __init__(self, site: Path):
        self.site = site
        (site / "publisher.toml").write_text(CONFIG, encoding="utf-8")
        self.entry = sorted((site / "content").rglob("*.md"))[len(list((site / "content").rglob("*.md"))) // 2]
        self.original = self.entry.read_text(encoding="utf-8")

    def build(self) -> Run:
        return measure([sys.executable, "-m", "publisher", "build", "--now", NOW], cwd=self.site)

    def clean(self) -> None:
        """Start from no output and no cache, as Pelican and Hugo start from a new folder: the old
        ones are moved aside, and deleted once every run is measured: deleting 1.3 GB just before a
        run slowed it as much as the write-back does (see measure)."""
        for name in ("output", "state"):
            if (self.site / name).exists():
                os.rename(self.site / name, set_aside(self.site.parent) / name)

    def cold(self) -> Run:
        self.clean()
        # A build trusts no signature of inputs changed within RACY_SECONDS (publisher.toml
        # was just written, the corpus may be just made); one that started sooner left no stamp, and
        # the unchanged build after it ran in full (2.17 s, not 0.59 s, in one run of 10,000 entries).
        time.sleep(RACY_SECONDS)
        return self.build()

    def edit(self, round_: int) -> None:
        self.entry.write_text(self.original + f"\nEdited in round {round_}.\n", encoding="utf-8")

    def restore(self) -> None:
        self.entry.write_text(self.original, encoding="utf-8")

    def check_warm_equals_cold(self) -> None:
        """Build warm, then cold in a copy, and insist on identical trees."""
        warm = tree_digest(self.site / "output")
        copy = set_aside(self.site.parent, "cold-")
        shutil.copytree(self.site / "content", copy / "content")
        shutil.copy(self.site / "publisher.toml", copy)
        measure([sys.executable, "-m", "publisher", "build", "--now", NOW], cwd=copy)
        if tree_digest(copy / "output") != warm:
            raise SystemExit(f"warm output differs from a cold build in {self.site}")


def byte_compile() -> None:
    """Compile publisher's modules as installing a wheel would, so no run pays for compiling them.

    An editable install leaves that to the first import, and with PYTHONDONTWRITEBYTECODE set
    (as on some CI and development machines) every run compiled all of publisher again: 0.05 s
    of a one-edit build. Pelican, installed from a wheel, is byte-compiled by pip.
    """
    compileall.compile_dir(str(REPO / "publisher"), quiet=1)


def bench_publisher(n: int, work: Path, runs: int) -> list[Row]:
    byte_compile()
    site = generate(n, "plain", work / f"plain-{n}")
    tool = Publisher(site)
    cold = Row("publisher cold", n, [tool.cold() for _ in range(runs)])
    unchanged = Row("publisher warm, nothing changed", n, [tool.build() for _ in range(runs)])
    tool.check_warm_equals_cold()
    edited = []
    for round_ in range(runs):
        tool.edit(round_)
        edited.append(tool.build())
    tool.check_warm_equals_cold()
    tool.restore()
    tool.build()
    return [cold, unchanged, Row("publisher warm, 1 entry edited", n, edited)]


def bench_pelican(n: int, work: Path, runs: int) -> list[Row]:
    venv = work / "pelican-venv"
    if not (venv / "bin" / "pelican").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "pelican", "markdown"], check=True)
    corpus = generate(n, "pelican", work / f"pelican-{n}")
    pelican = [str(venv / "bin" / "pelican"), "-q", str(corpus / "content")]
    conf, cached = str(BENCH / "pelican" / "pelicanconf.py"), str(BENCH / "pelican" / "pelicanconf_cache.py")
    cold = [measure(pelican + ["-s", conf, "-o", str(work / f"pelican-out-{n}-{i}")]) for i in range(runs)]
    out = work / f"pelican-cached-{n}"
    env = {**os.environ, "PELICAN_CACHE_PATH": str(work / f"pelican-cache-{n}")}
    measure(pelican + ["-s", cached, "-o", str(out)], cwd=work, env=env)
    touched = []
    entry = sorted((corpus / "content").rglob("*.md"))[n // 2]
    for _ in range(runs):
        entry.touch()
        touched.append(measure(pelican + ["-s", cached, "-o", str(out)], cwd=work, env=env))
    return [Row("Pelican cold", n, cold), Row("Pelican rebuild, 1 entry touched (cache)", n, touched)]


def bench_hugo(n: int, work: Path, runs: int) -> list[Row]:
    if not shutil.which("hugo"):
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)  # a new machine has no lists
        subprocess.run(["apt-get", "install", "-y", "-qq", "hugo"], check=True, stdout=subprocess.DEVNULL)
    corpus = generate(n, "hugo", work / f"hugo-{n}")
    hugo = ["hugo", "--quiet", "-s", str(BENCH / "hugo"), "--contentDir", str(corpus / "content")]
    cold = [measure(hugo + ["-d", str(work / f"hugo-out-{n}-{i}")]) for i in range(runs)]
    out = work / f"hugo-out-{n}-0"
    entry = sorted((corpus / "content").rglob("*.md"))[n // 2]
    touched = []
    for _ in range(runs):
        entry.touch()
        touched.append(measure(hugo + ["-d", str(out)]))
    return [Row("Hugo cold", n, cold), Row("Hugo 2nd build, 1 entry touched", n, touched)]


def print_table(rows: list[Row]) -> None:
    peers = {(r.n, r.name.split()[0]): r for r in rows if r.name in ("Pelican cold", "Hugo cold")}
    header = ["build", "N", "runs", "wall s median (min-max)", "peak MiB", "vs Pelican cold", "vs Hugo cold"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        ratios = []
        for peer in ("Pelican", "Hugo"):
            other = peers.get((row.n, peer))
            ratios.append(f"{row.median / other.median:.2f}x" if other and row.name.startswith("publisher") else "")
        print("| " + " | ".join(row.cells() + ratios) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="corpus sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (the median is reported)")
    parser.add_argument("--no-peers", action="store_true", help="skip Pelican and Hugo")
    parser.add_argument("--quick", action="store_true", help="1,000 entries, 1 run, no peers (CI smoke test)")
    parser.add_argument("--work", type=Path, help="folder for corpora and outputs (default: a temporary one)")
    args = parser.parse_args()
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    runs = 1 if args.quick else args.runs
    work = args.work or Path(tempfile.mkdtemp(prefix="publisher-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    for n in sizes:
        rows += bench_publisher(n, work, runs)
        if not (args.quick or args.no_peers):
            rows += bench_pelican(n, work, runs) + bench_hugo(n, work, runs)
    shutil.rmtree(work / DISCARDED, ignore_errors=True)
    print_table(rows)
    print(f"\nwarm builds matched cold builds byte for byte; corpora in {work}")
    print(MARKDOWN_FEATURES)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
