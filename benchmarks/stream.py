"""Streaming against holding the set in memory, on a generated folder of images (README "Data larger than memory").

    python benchmarks/stream.py /tmp/streambench                      # 200,000 PNGs at 64 px
    python benchmarks/stream.py /tmp/sb --n 20000 --rounds 2          # a quicker look

1. DIR/images/: n PNG images (smooth random colours and a disc, 64x64), made once and reused.
2. Speed, side by side in one process (a shared machine's load then falls on both alike): the folder loaded into
   memory and the same folder streamed (DataLoader workers, as `stream: on` trains), one model and one training
   step (gankit's Step) fed alternately from each, in rounds of --round-steps steps; the first PREFETCH steps of
   every round are not timed, so batches the workers decoded during the other mode's round do not count. For the
   default DCGAN (widths 64) and a small one (widths 16), where decoding weighs more against the step.
3. Memory: `gankit train --stream on` and `--stream off` as separate processes for --memory-steps steps; the peak
   resident memory of the process and its DataLoader workers together, sampled every 0.2 s from /proc: RSS summed
   (an upper bound: pages the forked workers share count once per process) and PSS summed (shared pages split);
   and the start-up time (wall clock less the training loop).
Prints a table and writes DIR/stream-bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from multiprocessing import Pool
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))  # this checkout's gankit, also when another one is installed


def _make(args):
    import numpy as np
    from PIL import Image, ImageDraw

    folder, start, stop, size = args
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        im = Image.fromarray(small).resize((size, size), Image.BILINEAR)
        x, y, r = rng.integers(8, size - 8, 2).tolist() + [int(rng.integers(4, size // 3))]
        ImageDraw.Draw(im).ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.integers(0, 256, 3).tolist()))
        im.save(folder / f"{i // 1000:03d}" / f"{i:06d}.png")


def make_images(folder: Path, n: int, size: int, jobs: int) -> None:
    have = sum(1 for _ in folder.rglob("*.png")) if folder.is_dir() else 0
    if have == n:
        print(f"{folder}: {n} images already there", flush=True)
        return
    if have:
        raise SystemExit(f"{folder} holds {have} images, not {n}; remove it or choose another DIR")
    for k in range((n + 999) // 1000):
        (folder / f"{k:03d}").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    chunks = [(folder, s, min(n, s + 2000), size) for s in range(0, n, 2000)]
    with Pool(jobs) as pool:
        pool.map(_make, chunks)
    du = subprocess.run(["du", "-sh", str(folder)], capture_output=True, text=True).stdout.split()[0]
    print(f"{folder}: {n} images made in {time.time() - t0:.0f} s ({du} on disk)", flush=True)


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return pids


def _kb(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(cmd: list[str], env: dict) -> tuple[float, float, float]:
    """Wall seconds, peak summed RSS and peak summed PSS (GB) of the command and its children."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0, 0]

    def watch():
        while proc.poll() is None:
            pids = _tree(proc.pid)
            rss = sum(_kb(f"/proc/{p}/status", "VmRSS:") for p in pids)
            pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.2)

    t0 = time.time()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    wall = time.time() - t0
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return wall, peak[0] / 1e6, peak[1] / 1e6


def speed(held, streamed, images: Path, size: int, widths: int, rounds: int, round_steps: int) -> dict:
    """Seconds per step, per round, of one Step fed from memory and from the stream alternately."""
    import torch

    from gankit import config, distributed
    from gankit.data.stream import PREFETCH, Draw
    from gankit.step import Step, make_optimizers
    from gankit.setup import build_models, fixed_inputs, resolve

    cfg = config.load(None, {"data": f"folder:{images}", "img_size": size, "g_width": widths, "d_width": widths})
    cfg = resolve(cfg, held)
    ctx, device = distributed.Context(), torch.device("cpu")
    torch.manual_seed(0)
    G, D, G_ema = build_models(cfg, held, device)
    opt_g, opt_d = make_optimizers(cfg, G, D)
    fixed_inputs(cfg, held, G, D, device)
    step = Step(cfg, G, D, G_ema, opt_g, opt_d, device, ctx)
    draws = {"memory": Draw(held, cfg.batch_size, cfg.seed, ctx, device),
             "streamed": Draw(streamed, cfg.batch_size, cfg.seed, ctx, device)}
    drawn = {mode: 0 for mode in draws}
    times = {mode: [] for mode in draws}

    def batch(mode):
        x, _ = draws[mode](drawn[mode])
        drawn[mode] += 1
        return x.contiguous(memory_format=torch.channels_last), None

    for r in range(rounds + 1):                         # round 0 warms up both and is not kept
        for mode in draws:
            for k in range(round_steps):
                if k == PREFETCH:
                    t0 = time.perf_counter()
                step(lambda: batch(mode), 0)
                step.tally.read()                       # the loop reads the tally every log_every steps
            if r:
                times[mode].append((time.perf_counter() - t0) / (round_steps - PREFETCH))
        if r:
            print(f"  widths {widths}, round {r}: " + ", ".join(f"{m} {cfg.batch_size / times[m][-1]:.1f} img/s"
                                                            for m in draws), flush=True)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--round-steps", type=int, default=14)
    ap.add_argument("--widths", default="64,16", help="model widths to time, comma-separated [64,16]")
    ap.add_argument("--memory-steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of training (on a shared 2-core machine "
                                                           "two threads spin-wait for each other) [1]")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes that make the images")
    args = ap.parse_args()
    images = args.dir / "images"
    make_images(images, args.n, args.size, args.jobs)
    out = {"args": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count(), "speed": {}, "memory": []}

    import statistics

    import torch

    from gankit import data as datasets

    torch.set_num_threads(args.threads)
    t0 = time.time()
    held = datasets.load(f"folder:{images}", img_size=args.size, stream="off")
    out["load_in_memory_sec"] = time.time() - t0
    streamed = datasets.load(f"folder:{images}", img_size=args.size, stream="on")
    print(f"loaded in memory in {out['load_in_memory_sec']:.0f} s ({held.x.numel() / 1e9:.2f} GB uint8)", flush=True)
    for widths in map(int, args.widths.split(",")):
        times = speed(held, streamed, images, args.size, widths, args.rounds, args.round_steps)
        ratios = [m / s for m, s in zip(times["memory"], times["streamed"])]
        out["speed"][widths] = {**times, "ratio_median": statistics.median(ratios)}
        print(f"widths {widths}: streamed at {statistics.median(ratios):.1%} of the in-memory speed (median of "
              f"{len(ratios)} rounds: {', '.join(f'{x:.1%}' for x in ratios)}); in memory "
              f"{64 / statistics.median(times['memory']):.1f} img/s", flush=True)

    del held, streamed
    runs = args.dir / "runs"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": str(args.threads)}
    for mode in ("on", "off"):
        name = f"{mode}-{int(time.time())}"
        cmd = [sys.executable, "-m", "gankit", "train", "--data", f"folder:{images}", "--img_size", str(args.size),
               "--stream", mode, "--steps", str(args.memory_steps), "--log_every", "5", "--sample_every",
               str(args.memory_steps), "--ckpt_every", "0", "--no-progress", "--out", str(runs), "--name", name]
        wall, rss, pss = run(cmd, env)
        rows = [json.loads(line) for line in (runs / name / "metrics.jsonl").read_text().splitlines()]
        loop = [row for row in rows if "loss_d" in row][-1]["sec"]
        out["memory"].append({"stream": mode, "startup_sec": wall - loop, "peak_rss_gb": rss, "peak_pss_gb": pss})
        print(f"gankit train --stream {mode}: peak RSS {rss:.2f} GB, PSS {pss:.2f} GB (process and workers), "
              f"start-up {wall - loop:.0f} s", flush=True)
    (args.dir / "stream-bench.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
