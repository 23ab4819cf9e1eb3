"""Benchmark what a build does with each local image: read its displayed size, and clean it.

    python benchmarks/bench_images.py                 # a 1600x1000 photo and screenshot
    python benchmarks/bench_images.py --width 4000 --height 3000 --runs 9

The generated corpora's images are a few hundred bytes, so they cannot show what an editor's
photo or screenshot costs. This makes one of each at a realistic size, in every format the
site publishes, and prints milliseconds per image (median of --runs, CPU time of this process)
for `images.size` (every page that shows the image needs it) and `images.clean` (once a build,
for the published copy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from publisher import images  # noqa: E402

ORIENTATION = 0x0112


def sample(kind: str, width: int, height: int, turned: bool) -> bytes:
    """A noisy picture (it compresses like a photo) in `kind`: with EXIF orientation 6 if `turned`,
    else with no metadata at all, as a screenshot or an exported graphic comes."""
    picture = Image.effect_noise((width, height), 40).convert("RGB")
    options = {"quality": 85} if kind in ("JPEG", "WEBP") else {}
    if turned:
        exif = Image.Exif()
        exif[ORIENTATION] = 6
        options["exif"] = exif
    out = BytesIO()
    picture.save(out, kind, **options)
    return out.getvalue()


def timed(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        action()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"| image ({args.width}x{args.height}) | bytes | size() ms | clean() ms |")
    print("|---|---|---|---|")
    for kind in ("JPEG", "PNG", "WEBP"):
        for turned in (False, True):
            data = sample(kind, args.width, args.height, turned)
            size_ms = timed(lambda: images.size(data), args.runs)
            clean_ms = timed(lambda: images.clean(data, kind), args.runs)
            label = f"{kind}{', EXIF turned' if turned else ''}"
            print(f"| {label} | {len(data):,} | {size_ms:.2f} | {clean_ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
