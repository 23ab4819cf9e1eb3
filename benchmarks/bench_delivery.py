"""Benchmark `publisher send`: messages per second to a local aiosmtpd sink, and the sender's peak memory.

    .venv/bin/python benchmarks/bench_delivery.py [--subscribers 10000] [--html-kb 40]

The sink runs in its own process so the figures are the sender's alone: one SMTP connection,
a ledger commit before and after each message, no rate limit. Peak memory is
resource.getrusage(RUSAGE_SELF).ru_maxrss of the sending process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
CONFIG = """\
title = "Bench"
base_url = "https://news.example.org/"
tag_authority = "news.example.org,2024"
languages = ["en", "az", "ru"]

[newsletter]
from_address = "newsletter@news.example.org"
unsubscribe_url = "https://news.example.org/unsubscribe"
unsubscribe_mailto = "unsubscribe@news.example.org"

[delivery]
rate = 0
"""


def run_sink() -> None:
    """Accept and count messages on a free loopback port; print the port, then the count on stdin EOF."""
    from aiosmtpd.controller import Controller

    class Counter:
        accepted = 0

        async def handle_DATA(self, server, session, envelope):
            Counter.accepted += 1
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Counter(), hostname="127.0.0.1", port=port)
    controller.start()
    print(port, flush=True)
    sys.stdin.read()
    controller.stop()
    print(Counter.accepted, flush=True)


def built_message(lang: str, html_kb: int) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Bench <newsletter@news.example.org>"
    message["Subject"] = f"Weekly issue ({lang})"
    message["Message-ID"] = f"<bench.{lang}@news.example.org>"
    message["List-Unsubscribe"] = "<https://news.example.org/unsubscribe>, <mailto:unsubscribe@news.example.org>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    paragraph = "Полиция ворвалась на вечеринку; ə ğ ı İ ş ç ö ü. " * 4
    message.set_content((paragraph + "\n") * (html_kb * 2))
    message.add_alternative("<html><body>" + f"<p>{paragraph}</p>\n" * (html_kb * 4) + "</body></html>", subtype="html")
    return bytes(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10000)
    parser.add_argument("--html-kb", type=int, default=15, help="scales the message; 15 makes about 40 KiB, like a real issue")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        return run_sink()

    from publisher.config import load_config
    from publisher.delivery import send
    from publisher.subscribers import SubscriberList

    os.environ.setdefault("PUBLISHER_SECRET", "bench-" + "s" * 40)
    sink = subprocess.Popen([sys.executable, __file__, "--sink"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(sink.stdout.readline())
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "publisher.toml").write_text(CONFIG + f'\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n')
        size = 0
        for lang in ("en", "az", "ru"):
            path = root / "output" / "newsletter" / lang / "2026-W47" / "issue.eml"
            path.parent.mkdir(parents=True)
            data = built_message(lang, args.html_kb)
            path.write_bytes(data)
            size = len(data)
        csv = root / "list.csv"
        csv.write_text("address,language\n" + "".join(
            f"reader{n:06d}@example.org,{('en', 'az', 'ru')[n % 3]}\n" for n in range(args.subscribers)))
        config = load_config(root)
        with SubscriberList(config) as subscribers:
            subscribers.import_csv(csv, NOW)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        report = send(config, "2026-W47", NOW)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    sink.stdin.close()
    accepted = int(sink.stdout.readline())
    sink.wait(timeout=30)
    print(f"subscribers:          {args.subscribers}")
    print(f"message size:         {size / 1024:.0f} KiB")
    print(f"sent / sink accepted: {report.sent} / {accepted}")
    print(f"elapsed:              {elapsed:.1f} s")
    print(f"messages/second:      {report.sent / elapsed:.0f}")
    print(f"sender CPU:           {cpu:.1f} s ({report.sent / cpu:.0f} messages per CPU-second; the rest is waiting for the sink)")
    print(f"peak memory (maxrss): {after.ru_maxrss / 1024:.1f} MiB (before sending: {usage.ru_maxrss / 1024:.1f} MiB)")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
