"""Abuse of `tagrank serve` on loopback: oversized requests, pixel bombs and large inline vocabularies, while a
plain client keeps asking; reports the server's memory before and after and the plain requests' latency.

    python scripts/bench_abuse.py [--rounds 3] [--vocab-tags 20000]

Starts `tagrank serve` as its own process (loopback only), measures a plain one-photo request's latency alone,
then runs, in bounded loops beside that plain client: a 300 MB upload (announced, and streamed without a
length), four parallel requests of two 100-MP PNG bombs each, and distinct inline vocabularies of
``--vocab-tags`` tags. Prints each abuse's answers, the server's resident memory (VmRSS) before and after, and
the plain requests' p50/p95/max latency with and without abuse.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import start_server  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(seconds: list[float]) -> str:
    if not seconds:
        return "no requests"
    ordered = sorted(seconds)
    return (f"{len(ordered)} requests: p50 {statistics.median(ordered):.2f} s, "
            f"p95 {ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]:.2f} s, max {ordered[-1]:.2f} s")


def main() -> None:
    import httpx
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vocab-tags", type=int, default=20000)
    args = parser.parse_args()
    photo = (ROOT / "examples" / "coffee.jpg").read_bytes()
    bomb = io.BytesIO()
    Image.new("1", (10000, 10000)).save(bomb, format="PNG")  # 100 MP in a small file
    bomb = bomb.getvalue()

    server, base = start_server()
    client = httpx.Client(timeout=600)
    try:
        def plain() -> float:
            started = time.perf_counter()
            client.post(f"{base}/v1/tags", files=[("photos", ("coffee.jpg", photo, "image/jpeg"))]).raise_for_status()
            return time.perf_counter() - started

        quiet = [plain() for _ in range(10)]
        before = rss_mb(server.pid)
        answers: dict[str, list[int]] = {}
        busy, loud = True, []

        def keep_asking() -> None:
            while busy:
                loud.append(plain())

        asker = threading.Thread(target=keep_asking)
        asker.start()
        for round_ in range(args.rounds):
            big = b"\xff" * (300 * 2 ** 20)
            answers.setdefault("300 MB announced", []).append(client.post(
                f"{base}/v1/tags", files=[("photos", ("big.jpg", big, "image/jpeg"))]).status_code)

            def chunks():
                for _ in range(300):
                    yield b"\xff" * 2 ** 20
            answers.setdefault("300 MB streamed", []).append(client.post(
                f"{base}/v1/tags", content=chunks(),
                headers={"content-type": "multipart/form-data; boundary=x"}).status_code)
            bombs = []
            threads = [threading.Thread(target=lambda: bombs.append(client.post(
                f"{base}/v1/tags", files=[("photos", ("a.png", bomb, "image/png")),
                                          ("photos", ("b.png", bomb, "image/png"))]).status_code)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            answers.setdefault("4 x 2 pixel bombs", []).extend(bombs)
            vocab = ", ".join(f"thing {round_} number {i}" for i in range(args.vocab_tags))
            answers.setdefault(f"{args.vocab_tags}-tag inline vocabulary", []).append(client.post(
                f"{base}/v1/tags", files=[("photos", ("coffee.jpg", photo, "image/jpeg"))],
                data={"vocab": vocab}).status_code)
        busy = False
        asker.join()
        after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    for what, codes in answers.items():
        print(f"{what}: HTTP {', '.join(map(str, codes))}")
    print(f"server memory: {before:.0f} MB before the abuse, {after:.0f} MB after")
    print(f"plain requests alone: {percentiles(quiet)}")
    print(f"plain requests during the abuse: {percentiles(loud)}")


if __name__ == "__main__":
    main()
