"""`gankit bench`: how fast gankit's training step runs, beside the pytorch/examples DCGAN loop in the same process.

The reference is the examples' step as a tight loop: D on a real batch, G(z) once, D on that fake batch (detached),
one D update, D on the same fake batch for G's update (D's weight gradients computed, as the example does), one G
update, both losses read with `.item()` every step. Its networks are the examples' Generator and Discriminator at
the config's image size, channels, z_dim and widths; it gets the same real batches as gankit.

Rounds alternate: gankit, then the reference, then gankit again, ..., so that a machine whose speed drifts (other
processes, turbo, a shared VM) affects both alike; the ratio is the median of the per-round ratios.

A task other than the GAN (task ssl, sr) is timed by its own step, as its trainer (gankit/tasks/) builds it for a
run; the reference, a GAN's step, is for task gan only.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from gankit import distributed, outputs, registry
from gankit.config import Config
from gankit.errors import UserError
from gankit.data.stream import Batches
from gankit.setup import build_models, fixed_inputs, load_data, resolve, resolve_device
from gankit.step import Step, autocast_dtype, make_optimizers
from gankit.tasks.table import TRAINERS

# ----------------------------------------------------------------------------------------------------------------
# the reference: pytorch/examples dcgan/main.py, generalised from 64 px to 16-128 px like gankit's DCGAN


def reference_models(img_size: int, channels: int, nz: int, ngf: int, ndf: int) -> tuple[nn.Module, nn.Module]:
    k = int(round(math.log2(img_size))) - 2  # 2x resamplings between 4x4 and img_size (64 px: 4)
    g = [nn.ConvTranspose2d(nz, ngf * 2 ** (k - 1), 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2 ** (k - 1)),
         nn.ReLU(True)]
    for i in range(k - 1, 0, -1):
        g += [nn.ConvTranspose2d(ngf * 2**i, ngf * 2 ** (i - 1), 4, 2, 1, bias=False),
              nn.BatchNorm2d(ngf * 2 ** (i - 1)), nn.ReLU(True)]
    g += [nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False), nn.Tanh()]
    d = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    for i in range(k - 1):
        d += [nn.Conv2d(ndf * 2**i, ndf * 2 ** (i + 1), 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2 ** (i + 1)),
              nn.LeakyReLU(0.2, inplace=True)]
    d += [nn.Conv2d(ndf * 2 ** (k - 1), 1, 4, 1, 0, bias=False), nn.Flatten()]
    G, D = nn.Sequential(*g), nn.Sequential(*d)
    for m in list(G.modules()) + list(D.modules()):  # the examples' weights_init
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return G, D


class ReferenceStep:
    def __init__(self, cfg: Config, channels: int, device: torch.device, dtype: torch.dtype | None):
        self.G, self.D = (m.to(device) for m in reference_models(cfg.img_size, channels, cfg.z_dim, cfg.g_width,
                                                                  cfg.d_width))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.g_lr, betas=(cfg.beta1, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, 0.999))
        self.nz, self.device, self.dtype = cfg.z_dim, device, dtype

    def __call__(self, real_batch, step: int) -> tuple[float, float]:
        real, _ = real_batch()
        b = real.shape[0]
        with torch.autocast(self.device.type, self.dtype or torch.float32, enabled=self.dtype is not None):
            self.D.zero_grad()
            out = self.D(real).float().view(-1)
            err_real = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            err_real.backward()
            fake = self.G(torch.randn(b, self.nz, 1, 1, device=self.device))
            out = self.D(fake.detach()).float().view(-1)
            err_fake = F.binary_cross_entropy_with_logits(out, torch.zeros_like(out))
            err_fake.backward()
            self.opt_d.step()
            self.G.zero_grad()
            out = self.D(fake).float().view(-1)
            err_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            err_g.backward()
            self.opt_g.step()
        return (err_real + err_fake).item(), err_g.item()


# ----------------------------------------------------------------------------------------------------------------
# measuring


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, steps: int, device: torch.device) -> float:
    """Seconds per call of fn(k) over `steps` calls, the device drained before and after."""
    synchronize(device)
    t0 = time.perf_counter()
    for k in range(steps):
        fn(k)
    synchronize(device)
    return (time.perf_counter() - t0) / steps


def step_flops(fn, device: torch.device, k: int = 0) -> int:
    """Floating-point operations of call k, counted by torch.utils.flop_counter (matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(k)
    synchronize(device)
    return counter.get_total_flops()


def peak_flops(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """The machine's measured ceiling (FLOP/s) in `dtype`: a DCGAN-shaped 4x4 convolution (256 -> 256 channels at
    16x16, NHWC) in inference, the kernel's best case. A convolution rather than a matmul, because on the CPU torch
    sends fp32 matmuls to a BLAS that on some CPUs runs at half the speed of the convolution kernels."""
    batch = 256 if device.type == "cuda" else 64
    conv = nn.Conv2d(256, 256, 4, 1, 2, bias=False).to(device, dtype).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 256, 16, 16, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = conv(x)
        flops = 2 * batch * out.shape[2] * out.shape[3] * 256 * 256 * 16
        synchronize(device)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(4):
                conv(x)
            synchronize(device)
            reps += 4
    return flops * reps / (time.perf_counter() - t0)


@dataclass
class Result:
    name: str
    sec_per_step: list[float]   # one per round
    batch: int
    flops: int | None = 0   # None: the flop counter could not follow the step
    memory: int = 0             # peak bytes: CUDA allocations, or the process's resident set on the CPU

    @property
    def median(self) -> float:
        return statistics.median(self.sec_per_step)

    @property
    def img_per_sec(self) -> float:
        return self.batch / self.median


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench(cfg: Config, timed_steps: int = 20, rounds: int = 3, warmup: int = 5, reference: bool = False,
          progress=print) -> dict:
    """Measure gankit's step (and the reference's) on cfg's data and models; returns a dict of results."""
    gan_step = registry.TASKS[cfg.task].bench_reference
    if reference and not gan_step:
        raise UserError(f"bench: --reference compares with pytorch/examples' DCGAN step, a GAN's; task {cfg.task} "
                        "is timed on its own (drop --reference)")
    if reference and (cfg.model != "dcgan" or cfg.cond != "none"):
        raise UserError("bench: --reference compares with pytorch/examples' unconditional DCGAN; use model dcgan "
                        "with cond none")
    cfg, runs, step, device = _set_up(cfg, reference) if gan_step else _set_up_task(cfg)
    dtype = autocast_dtype(cfg.precision, device)
    results, notes = {name: Result(name, [], cfg.batch_size) for name in runs}, []
    first_step = None
    for name, fn in runs.items():
        seconds = _first_steps(results[name], fn, device, warmup, cfg, notes)
        first_step = seconds if name == "gankit" else first_step
    for r in range(rounds):
        for name, fn in runs.items():
            results[name].sec_per_step.append(timed(fn, timed_steps, device))
        progress(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {cfg.batch_size / results[n].sec_per_step[-1]:.1f} "
                                                          f"img/s" for n in runs))
    peak = {"fp32": peak_flops(device, torch.float32)}
    if dtype is not None:
        peak["bf16"] = peak_flops(device, torch.bfloat16)
    return {"config": cfg, "device": describe_device(device), "precision": "bf16" if dtype else "fp32",
            "results": results, "first_step_sec": first_step, "peak_flops": peak,
            "threads": torch.get_num_threads(), "timed_steps": timed_steps, "rounds": rounds, "notes": notes}


def _set_up(cfg: Config, reference: bool):
    """(resolved cfg, {name: fn(k) running step k}, gankit's Step, device): gankit's step on cfg's data and models,
    and with `reference` pytorch/examples' step beside it (fp32, and bf16 where the hardware runs it fast)."""
    ctx = distributed.Context()
    device = resolve_device(cfg.device, ctx)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = load_data(cfg)
    cfg = resolve(cfg, data)
    data.to(device)
    torch.manual_seed(cfg.seed)
    batches = Batches(len(data), cfg.batch_size, cfg.seed, ctx, device)
    layout = torch.channels_last if cfg.channels_last and not data.is_points else torch.contiguous_format
    drawn = [0]

    def real_batch():
        idx = batches(drawn[0])
        drawn[0] += 1
        return data.batch(idx).contiguous(memory_format=layout), (data.y[idx] if cfg.c_dim else None)

    def plain_batch():
        x, y = real_batch()
        return x.contiguous(), y

    G, D, G_ema = build_models(cfg, data, device)
    opt_g, opt_d = make_optimizers(cfg, G, D)
    fixed_inputs(cfg, data, G, D, device)
    step = Step(cfg, G, D, G_ema, opt_g, opt_d, device, ctx)
    runs = {"gankit": lambda k: step(real_batch, k)}
    if reference:
        dtype = autocast_dtype(cfg.precision, device)
        for name, kind in (("reference fp32", None), ("reference bf16", dtype)):
            if name.endswith("fp32") or dtype is not None:
                ref = ReferenceStep(cfg, data.shape[0], device, kind)
                runs[name] = (lambda ref: (lambda k: ref(plain_batch, k)))(ref)
    return cfg, runs, step, device


def _set_up_task(cfg: Config):
    """Another task's own step (tasks/: ssl, sr), as its trainer builds it for a run: (resolved cfg, {"gankit":
    fn(k)}, its Step, device). Its batch is cfg.batch_size images (ssl's step also draws a labelled batch)."""
    trainer = TRAINERS[cfg.task](cfg)
    if trainer.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return trainer.cfg, {"gankit": trainer.train_step}, trainer.step, trainer.device


def _first_steps(result: Result, fn, device, warmup: int, cfg: Config, notes: list) -> float:
    """The first step (timed: compilation, allocation), the warm-up, the FLOPs of a step and the peak memory;
    returns the first step's seconds."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    fn(0)
    synchronize(device)
    first = time.perf_counter() - t0
    for k in range(1, warmup):
        fn(k)
    try:
        result.flops = step_flops(fn, device, 0)
    except RuntimeError:  # the counter's hooks cannot follow a double backward (R1's gradient penalty)
        if cfg.r1_gamma > 0 and cfg.r1_every > 1 and result.name == "gankit":
            result.flops = step_flops(fn, device, 1)
            notes.append("gankit's FLOPs are those of a step without R1 (lazy R1 every "
                         f"{cfg.r1_every} steps; the flop counter cannot follow R1's double backward)")
        else:
            result.flops = None
            notes.append(f"{result.name}: FLOPs not counted (the flop counter cannot follow this step)")
    result.memory = _peak_memory(device)
    return first


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.get_num_threads()} threads"


def bench_to(cfg: Config, timed_steps: int = 20, rounds: int = 3, warmup: int = 5, reference: bool = False,
             json_path: Path | None = None, force: bool = False, progress=print) -> str:
    """bench(), as `gankit bench` runs it: the JSON file, when asked for, is claimed before the timing (an existing
    one is refused unless `force`) and written after it. Returns the report (markdown)."""
    if json_path is not None:
        json_path = Path(json_path)
        outputs.check_new("bench", json_path, force=force)
        outputs.writable("bench", outputs.out_folder("bench", json_path.parent))
    out = bench(cfg, timed_steps, rounds, warmup, reference, progress=progress)
    if json_path is not None:
        record = {**out, "config": out["config"].to_dict(),
                  "results": {k: {"sec_per_step": r.sec_per_step, "img_per_sec": r.img_per_sec, "flops": r.flops,
                                  "peak_memory": r.memory} for k, r in out["results"].items()}}
        outputs.write_atomic(json_path, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return report(out)


def report(out: dict) -> str:
    """The results as a markdown table, ratios against the fp32 reference and, under bf16, the bf16 one."""
    res = out["results"]
    cfg = out["config"]
    peak_key = out["precision"]
    gan = (f"{cfg.model} {cfg.img_size}px, z {cfg.z_dim}, widths {cfg.g_width}/{cfg.d_width}, batch "
           f"{cfg.batch_size} · gankit precision {out['precision']}, channels_last {cfg.channels_last}, reuse_fake "
           f"{cfg.reuse_fake}, compile {cfg.compile}")
    task = (f"task {cfg.task}'s own step, {cfg.img_size}px, widths {cfg.g_width}/{cfg.d_width}, batch "
            f"{cfg.batch_size} · precision {out['precision']}")
    own = gan if registry.TASKS[cfg.task].bench_reference else task
    lines = [f"device: {out['device']} · {own} · {out['rounds']} rounds of "
             f"{out['timed_steps']} steps",
             "measured peak (a 4x4 convolution): " + ", ".join(f"{k} {v / 1e9:,.0f} GFLOP/s" for k, v in out["peak_flops"].items()),
             "", "| loop | img/s | ms/step | GFLOP/step | GFLOP/s | share of peak | peak memory | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = res.get("reference fp32")
    for name, r in res.items():
        gflops = r.flops / r.median / 1e9 if r.flops is not None else None
        pk = out["peak_flops"].get("bf16" if name.endswith("bf16") or (name == "gankit" and peak_key == "bf16")
                                   else "fp32")
        ratio = ""
        if base is not None:
            ratio = f"{statistics.median(b / a for a, b in zip(r.sec_per_step, base.sec_per_step)):.2f}x"
        counted = (f"{r.flops / 1e9:.2f} | {gflops:,.0f} | {100 * gflops * 1e9 / pk:.0f} %" if gflops is not None
                   else "– | – | –")
        lines.append(f"| {name} | {r.img_per_sec:,.1f} | {1000 * r.median:.1f} | {counted} | "
                     f"{r.memory / 2**20:,.0f} MiB | {ratio} |")
    if "reference bf16" in res:
        g, rb = res["gankit"], res["reference bf16"]
        lines.append(f"\ngankit against the reference in bf16: "
                     f"{statistics.median(b / a for a, b in zip(g.sec_per_step, rb.sec_per_step)):.2f}x")
    if cfg.compile != "off":
        lines.append(f"first step (compilation included): {out['first_step_sec']:.1f} s")
    lines += [f"note: {n}" for n in out.get("notes", [])]
    return "\n".join(lines) + "\n"
