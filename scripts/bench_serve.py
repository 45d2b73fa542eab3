"""Load test of `tagrank serve` on loopback against offline tagging of the same photos, in one run.

    python scripts/bench_serve.py [--shared ../shared] [--clients 8] [--requests 200] [--bad-every 10]

Starts `tagrank serve` as its own process, then ``--clients`` threads each send ``--requests`` requests
of one photo (Corel5k test photos, or the repository's examples without ../shared); every
``--bad-every``-th request is a broken upload, which must get a 4xx while every good one gets a 200.
The reference is `Tagger.rank` over the same photos in this process (the same model, batch 32).
Prints photos/s for both and their ratio (goal >= 80 %), p50/p99 latency and error counts.
"""

from __future__ import annotations

import argparse
import glob
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    """`tagrank serve` as its own process on a free loopback port, once it answers /v1/health; and its URL."""
    import httpx

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tagrank.cli", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(f"{base}/v1/health", timeout=1).raise_for_status()
            return server, base
        except httpx.HTTPError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit(f"the server did not start: {server.stderr.read() if server.poll() is not None else ''}")
            time.sleep(0.2)


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--bad-every", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    photos = sorted(glob.glob(str(args.shared / "data" / "corel5k" / "images" / "test" / "*.jpeg")))[: args.requests]
    photos = photos or [str(p) for p in sorted((ROOT / "examples").glob("*.jpg"))]
    plan = [photos[i % len(photos)] for i in range(args.requests)]
    blobs = {p: Path(p).read_bytes() for p in set(plan)}

    server, base = start_server()
    try:
        httpx.post(f"{base}/v1/tags", files=[("photos", ("warm.jpg", blobs[plan[0]], "image/jpeg"))], timeout=60)
        latencies: list[float] = []
        counts = {"good_ok": 0, "good_failed": 0, "bad_4xx": 0, "bad_other": 0}
        lock = threading.Lock()

        def client(index: int) -> None:
            with httpx.Client(base_url=base, timeout=120) as http:
                for i, path in enumerate(plan):
                    bad = args.bad_every and (i + index) % args.bad_every == 0
                    body = b"broken upload" if bad else blobs[path]
                    start = time.perf_counter()
                    response = http.post("/v1/tags", files=[("photos", (Path(path).name, body, "image/jpeg"))])
                    elapsed = time.perf_counter() - start
                    with lock:
                        if bad:
                            counts["bad_4xx" if 400 <= response.status_code < 500 else "bad_other"] += 1
                        else:
                            latencies.append(elapsed)
                            counts["good_ok" if response.status_code == 200 else "good_failed"] += 1

        threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        served_seconds = time.perf_counter() - start
        health = httpx.get(f"{base}/v1/health").json()
    finally:
        server.terminate()
        server.wait(timeout=30)

    from tagrank.tagger import Tagger

    tagger = Tagger.load()
    good = [p for c in range(args.clients) for i, p in enumerate(plan)
            if not (args.bad_every and (i + c) % args.bad_every == 0)]
    tagger.rank(good[:32], top=5)  # warm
    start = time.perf_counter()
    tagger.rank(good, top=5, batch_size=32)
    offline_seconds = time.perf_counter() - start
    served = counts["good_ok"] / served_seconds
    offline = len(good) / offline_seconds
    cuts = statistics.quantiles(latencies, n=100)
    from tagrank.evaluation.markdown import table, write_section

    rows = [["served photos/s", f"{served:.1f} ({health['batches']} CNN batches of "
             f"{health['photos'] / max(1, health['batches']):.1f} photos on average)"],
            ["offline `Tagger.rank` of the same photos, photos/s", f"{offline:.1f}"],
            ["served / offline", f"**{served / offline:.0%}** (goal ≥ 80 %)"],
            ["latency of good requests, p50 / p99", f"{1000 * cuts[49]:.0f} / {1000 * cuts[98]:.0f} ms"],
            ["good requests failed", f"{counts['good_failed']} of {counts['good_ok'] + counts['good_failed']} (goal 0)"],
            ["broken uploads answered 4xx", f"{counts['bad_4xx']} of {counts['bad_4xx'] + counts['bad_other']}"]]
    for row in rows:
        print(": ".join(row))
    reading = (f"`tagrank serve` (default model, CNN on the fastest runtime installed) on loopback: {args.clients} "
               f"clients each send {args.requests} one-photo requests of Corel5k test photos, every "
               f"{args.bad_every}th a broken upload; the reference is `Tagger.rank` of the same good photos in one "
               "process, same run, same runtime.")
    write_section(ROOT / "BENCHMARKS.md", "serve", "### The service under load", "python scripts/bench_serve.py",
                  time.perf_counter() - started, reading, table(["what", "figure"], rows))


if __name__ == "__main__":
    main()
