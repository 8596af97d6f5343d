"""How fast `gankit serve` answers slider moves: a real HTTP client (httpx, in threads) against the server on a free
port, on one run. Each request is what the page sends while a direction slider is dragged (POST /decode with a
kept sample's z and the 8 slider amounts). Reports the median and p95 latency and the error count for one client
and for 20 clients in parallel.

    gankit train --config digits --steps 300 --out runs --name dcgan-digits     # a 32x32 DCGAN
    OMP_NUM_THREADS=1 python benchmarks/serve_load.py runs/dcgan-digits [--requests 200] [--threads 1]

Goals (README): p95 <= 100 ms for one client and <= 500 ms for 20 in parallel, on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx


def start(run: str, threads: int) -> tuple[subprocess.Popen, str]:
    """`gankit serve RUN --port 0` in its own process (so that the clients here do not share its interpreter), and
    the URL it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "serve", run, "--port", "0", "--threads", str(threads)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    found = re.search(r"http://\S+?/", line)
    if not found:
        proc.kill()
        raise SystemExit(f"gankit serve did not start: {line!r}")
    return proc, found.group(0).rstrip("/")


def client() -> httpx.Client:
    """An HTTP client that sends small writes at once (TCP_NODELAY), as browsers do: without it a POST's body waits
    for the server's delayed ACK of its headers, about 40 ms on Linux, which no page would see."""
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    return httpx.Client(timeout=30, transport=httpx.HTTPTransport(socket_options=nodelay))


def one(http: httpx.Client, url: str, z: list[float], label, step: int) -> tuple[float, bool]:
    amounts = [((step % 61) - 30) / 10] + [0.0] * 7                  # a slider dragged from -3 to 3
    t = time.perf_counter()
    try:
        r = http.post(url, json={"z": z, "label": label, "amounts": amounts})
        ok = r.status_code == 200 and r.json()["image"].startswith("data:image/png")
    except httpx.HTTPError:
        ok = False
    return time.perf_counter() - t, ok


def measure(base: str, rid: str, clients: int, requests: int) -> dict:
    with client() as c:
        kept = c.post(f"{base}/api/runs/{rid}/samples", json={"n": 1, "seed": 0}).json()["samples"][0]
    url = f"{base}/api/runs/{rid}/decode"

    def worker(k: int) -> list[tuple[float, bool]]:
        with client() as c:
            return [one(c, url, kept["z"], kept["label"], k * requests + i) for i in range(requests // clients)]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for part in pool.map(worker, range(clients)) for r in part]
    wall = time.perf_counter() - t0
    ms = sorted(1000 * s for s, _ in results)
    return {"clients": clients, "requests": len(results), "errors": sum(not ok for _, ok in results),
            "median_ms": round(statistics.median(ms), 1), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
            "throughput_per_s": round(len(results) / wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a run folder (a 32x32 DCGAN: gankit train --config digits --steps 300)")
    ap.add_argument("--requests", type=int, default=200, help="requests per measurement [200]")
    ap.add_argument("--threads", type=int, default=1, help="torch's CPU threads in the server [1]")
    args = ap.parse_args()
    proc, base = start(args.run, args.threads)
    try:
        rid = httpx.get(f"{base}/api/runs").json()["runs"][0]["id"]
        httpx.get(f"{base}/api/runs/{rid}", timeout=120).raise_for_status()    # load G and its directions once
        measure(base, rid, 1, 20)                                              # warm up
        rows = [measure(base, rid, n, args.requests) for n in (1, 20)]
    finally:
        proc.terminate()
        proc.wait(10)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(json.dumps({"run": args.run, "cpu": cpu, "torch_threads": args.threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
