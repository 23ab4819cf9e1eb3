"""The build benchmark still runs and still finds warm builds equal to cold ones (never a time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO.parent / "shared" / "bench" / "gen_corpus.py"


@pytest.mark.skipif(not GENERATOR.is_file(), reason="needs shared/bench/gen_corpus.py beside the repository")
def test_quick_benchmark_checks_warm_builds_against_cold_ones(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_build.py"), "--quick", "--work", str(tmp_path)],
        capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warm builds matched cold builds byte for byte" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| publisher")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| publisher cold", "| publisher warm, nothing changed", "| publisher warm, 1 entry edited"]
