"""Next-frame prediction in use: K sampled futures per sequence with the G of a predict run (task predict,
gankit/tasks/predict/trainer.py), scored on held-out sequences beside copying the last frame.

    gankit predict runs/unet-smoving-mnist --context heldout --futures 8 --out futures/
    gankit predict runs/unet-smoving-mnist --context clips.npz --futures 4 --out futures/

The scores, per predicted frame and over the horizon, as SVG (Denton & Fergus 2018) reports them: PSNR and SSIM
averaged over the K samples, and of the best of the K samples (the one with the best mean over the frames, for each
sequence); sharpness, the mean gradient magnitude of the predicted frames beside the real future's (a regression to
the mean of the futures blurs, so it loses sharpness); diversity, the mean L1 distance between two of the K futures
of one context (0 for a predictor that ignores z).
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from gankit import checkpoint, config as config_mod, outputs
from gankit.tasks.use import check_new_folder, run_arguments, staged_folder
from gankit.config import argument, clip, path_argument
from gankit.data.moving import frames_to_stored, sequence_parts

log = logging.getLogger("gankit")
from gankit.errors import UserError
from gankit.models.base import eval_mode
from gankit.models.predict import stack, unstack
from gankit.setup import held_out

EVAL_FUTURES = 8      # K of the scores written at the end of training: best of 8, as the presets' goals say
FUTURES_MAX = 1000
SHEET_FUTURES = 3     # G's futures shown per sequence in the pictures of a run


@torch.no_grad()
def sample_futures(G: nn.Module, context: torch.Tensor, k: int, seed: int = 0, batch_size: int = 256):
    """K futures of each context (N, c, C, H, W) in [-1, 1] -> (N, K, h, C, H, W) on the CPU, clamped; the z of
    sample j of sequence i is the same for any batch size (drawn from `seed`)."""
    device, C = next(G.parameters()).device, context.shape[2]
    z = torch.randn(len(context), k, G.z_dim, generator=torch.Generator().manual_seed(seed))
    out = []
    with eval_mode(G):
        for chunk, zc in zip(context.split(batch_size), z.split(batch_size)):
            c = stack(chunk).to(device).repeat_interleave(k, 0)                    # (n*K, c*C, H, W)
            f = G(c, zc.flatten(0, 1).to(device)).float().clamp(-1, 1).cpu()
            out.append(unstack(f, C).unflatten(0, (len(chunk), k)))
    return torch.cat(out)


# ---- the scores ----------------------------------------------------------------------------------------------------

def psnr_frames(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each frame (..., C, H, W) in [-1, 1] read as [0, 1] -> (...)."""
    mse = (((a - b) / 2) ** 2).flatten(-3).mean(-1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def ssim_frames(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of each frame (..., C, H, W) in [-1, 1] -> (...), torchmetrics' Gaussian window (11 px, or the largest
    odd size the frames hold)."""
    from torchmetrics.functional.image import structural_similarity_index_measure  # torchmetrics loads slowly

    side = min(a.shape[-2:])
    kernel = max(3, min(11, side if side % 2 else side - 1))
    flat = lambda x: (x.reshape(-1, *x.shape[-3:]) + 1) / 2  # noqa: E731
    s = structural_similarity_index_measure(flat(a), flat(b), data_range=1.0, kernel_size=kernel, reduction="none")
    return s.reshape(a.shape[:-3])


def sharpness(x: torch.Tensor) -> float:
    """Mean gradient magnitude of frames (..., H, W) in [-1, 1] read as [0, 1] (finite differences)."""
    x = (x + 1) / 2
    gx, gy = x[..., :-1, 1:] - x[..., :-1, :-1], x[..., 1:, :-1] - x[..., :-1, :-1]
    return (gx ** 2 + gy ** 2).sqrt().mean().item()


def diversity(futures: torch.Tensor) -> float:
    """Mean L1 distance ([0, 1] pixels) between two of the K futures of one sequence, futures (N, K, ...)."""
    pairs = list(itertools.combinations(range(futures.shape[1]), 2))
    if not pairs:
        return 0.0
    return float(np.mean([((futures[:, i] - futures[:, j]).abs() / 2).mean().item() for i, j in pairs]))


def score(futures: torch.Tensor, truth: torch.Tensor) -> dict:
    """The scores of K futures (N, K, h, C, H, W) against the true future (N, h, C, H, W): per frame (lists of h)
    and over the horizon."""
    row = {}
    for name, fn in (("psnr", psnr_frames), ("ssim", ssim_frames)):
        per = torch.stack([fn(futures[:, j], truth) for j in range(futures.shape[1])], 1)     # (N, K, h)
        best = per.gather(1, per.mean(2).argmax(1)[:, None, None].expand(-1, 1, per.shape[2]))[:, 0]   # (N, h)
        row[f"{name}_frames"], row[f"{name}_best_frames"] = per.mean((0, 1)).tolist(), best.mean(0).tolist()
        row[name], row[f"{name}_best"] = per.mean().item(), best.mean().item()
    row["sharpness"], row["diversity"] = sharpness(futures), diversity(futures)
    row["sharpness_ratio"] = row["sharpness"] / max(sharpness(truth), 1e-12)
    return row


def evaluate(G: nn.Module, sequences: torch.Tensor, context: int, horizon: int, k: int = EVAL_FUTURES,
             seed: int = 0) -> tuple[dict, torch.Tensor]:
    """G's K futures of held-out sequences (N, T, C, H, W) in [-1, 1], scored beside copying the last context frame;
    (rows by predictor, G's futures)."""
    past, truth = sequences[:, :context], sequences[:, context: context + horizon]
    futures = sample_futures(G, past, k, seed)
    last = past[:, -1:, None].expand(-1, 1, horizon, *past.shape[2:])                  # (N, 1, h, C, H, W)
    rows = {"G": score(futures, truth), "last frame": score(last, truth),
            "real": {"sharpness": sharpness(truth), "sharpness_ratio": 1.0}}
    return rows, futures


def table(rows: dict[str, dict], title: str) -> str:
    lines = [f"{title}\n", "| frames | PSNR (dB) | best-of-K PSNR | SSIM | best-of-K SSIM | sharpness (x real) | "
             "diversity |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        cells = [f"{r[k]:.2f}" if k in r else "" for k in ("psnr", "psnr_best")]
        cells += [f"{r[k]:.4f}" if k in r else "" for k in ("ssim", "ssim_best")]
        cells += [f"{r['sharpness']:.4f} ({r['sharpness_ratio']:.2f})", f"{r['diversity']:.4f}" if "diversity" in r
                  else ""]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(G: nn.Module, held: torch.Tensor, context: int, horizon: int, folder: Path,
                  extra: dict | None = None, k: int = EVAL_FUTURES, seed: int = 0) -> dict:
    """Score G on held-out sequences (N, T, C, H, W) and write results.json and results.md into folder."""
    rows, futures = evaluate(G, held, context, horizon, k, seed)
    record = {"rows": rows, "n": len(held), "futures": k, "context": context, "horizon": horizon, **(extra or {})}
    md = table(rows, f"{len(held)} held-out sequences, {context} frames given, {horizon} predicted, K = {k}")
    outputs.write_atomic(folder / "results.json", lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    outputs.write_atomic(folder / "results.md", lambda tmp: tmp.write_text(md))
    return rows


# ---- pictures ------------------------------------------------------------------------------------------------------

def _panel(frame: torch.Tensor, colour: tuple[int, int, int], scale: int) -> np.ndarray:
    """One frame (C, H, W) in [-1, 1] as RGB uint8 (scale*H + 4, scale*W + 4, 3) in a 2 px border of `colour`."""
    x = ((frame.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).expand(3, -1, -1).permute(1, 2, 0).numpy()
    x = x.repeat(scale, 0).repeat(scale, 1)
    out = np.empty((x.shape[0] + 4, x.shape[1] + 4, 3), np.uint8)
    out[:] = colour
    out[2:-2, 2:-2] = x
    return out


def sequence_frames(past: torch.Tensor, futures: torch.Tensor, truth: torch.Tensor | None = None) -> list:
    """The frames of one sequence's GIF: the truth (when known) and the K futures side by side, each showing the
    context (grey border) and then its future (red; the truth's green). past (c, C, H, W), futures (K, h, C, H, W),
    truth (h, C, H, W)."""
    scale = max(1, 64 // past.shape[-1])
    grey, red, green = (128, 128, 128), (220, 40, 40), (40, 170, 40)
    frames = []
    for t in range(len(past) + futures.shape[1]):
        cells = []
        for j in range(futures.shape[0] + (truth is not None)):
            real = truth is not None and j == 0
            if t < len(past):
                cells.append(_panel(past[t], grey, scale))
            else:
                f = truth[t - len(past)] if real else futures[j - (truth is not None), t - len(past)]
                cells.append(_panel(f, green if real else red, scale))
        frames.append(Image.fromarray(np.concatenate(cells, 1)))
    return frames


def save_gif(frames: list, path: Path, duration_ms: int = 200) -> Path:
    """Frames (PIL images) as a looping GIF; the last frame is held a little longer. path: a file name or a binary
    file object."""
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:],
                   duration=[duration_ms] * (len(frames) - 1) + [4 * duration_ms], loop=0)
    return path


def gif_bytes(frames: list, duration_ms: int = 200) -> bytes:
    """The bytes of the GIF `save_gif` writes (what a page shows)."""
    buf = io.BytesIO()
    save_gif(frames, buf, duration_ms)
    return buf.getvalue()


def sheet(sequences: torch.Tensor, futures: torch.Tensor, context: int, path: Path) -> Path:
    """Rows of frames: for each sequence (N, T, C, H, W), the real one, then each of its futures (N, K, h, ...)
    after the same context. A PNG."""
    rows = []
    for seq, fut in zip(sequences, futures):
        h = fut.shape[1]
        rows.append(seq[: context + h])
        rows += [torch.cat([seq[:context], f]) for f in fut]
    cells = [np.concatenate([_panel(f, (255, 255, 255), 1) for f in row], 1) for row in rows]
    Image.fromarray(np.concatenate(cells, 0)).save(path)
    return path


# ---- the command ---------------------------------------------------------------------------------------------------

def read_context(path: str, channels: int, img_size: int, context: int) -> tuple[torch.Tensor, bool]:
    """`frames` of FILE.npz, uint8 (N, T, H, W) or (N, T, H, W, C) with T >= context: the last `context` frames of
    each, as float (N, context, C, img_size, img_size) in [-1, 1], and whether the file had a channel axis."""
    p = Path(path)
    if p.suffix != ".npz" or not p.is_file():
        raise UserError(f"context: {p} is not a .npz file (give FILE.npz holding `frames`, or heldout)")
    return context_of(p, p, channels, img_size, context)


def context_of(file, p, channels: int, img_size: int, context: int) -> tuple[torch.Tensor, bool]:
    """read_context of an open .npz (a path or a binary file object, never unpickled) that `p` names in messages."""
    try:
        with np.load(file, allow_pickle=False) as f:
            if "frames" not in f.files:
                raise UserError(f"context: {p} holds no `frames` array (it has {clip(', '.join(f.files))})")
            arr = f["frames"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"context: cannot read {p} ({type(e).__name__}: {e})".splitlines()[0]) from None
    had_c = arr.ndim == 5
    arr = arr if had_c else arr[..., None]
    if arr.dtype != np.uint8 or arr.ndim != 5 or min(arr.shape) == 0:
        raise UserError(f"context: {p}: `frames` must be uint8 (N, T, H, W) or (N, T, H, W, C), got {arr.dtype} "
                        f"{arr.shape}")
    if arr.shape[1] < context or arr.shape[-1] != channels:
        raise UserError(f"context: {p}: `frames` {arr.shape} must hold at least the run's context of {context} "
                        f"frames, with {channels} channel(s)")
    if arr.shape[2:4] != (img_size, img_size):
        log.warning("context: %s: frames of %d x %d resized to the run's %d x %d%s (the futures are that size)", p,
                    arr.shape[3], arr.shape[2], img_size, img_size,
                    "" if arr.shape[2] == arr.shape[3] else ", which changes their aspect ratio")
    x = frames_to_stored(torch.from_numpy(arr[:, -context:]).permute(0, 1, 4, 2, 3), img_size)
    return x.float().div(127.5).sub(1.0), had_c


def _to_uint8(x: torch.Tensor, channel_axis: bool) -> np.ndarray:
    """(..., C, H, W) in [-1, 1] -> uint8 (..., H, W, C), or (..., H, W) without the channel axis."""
    u = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1).numpy()
    return u if channel_axis else u[..., 0]


def load_predictor(source: str | Path, device: str = "cpu", step: int | None = None):
    """G of a predict run (its averaged weights when kept) and the run's config (a Config)."""
    saved = checkpoint.read(source, step).require("predict", " (trained with --config smmnist-predict "
                                                                        "or --task predict)")
    return saved.generator().to(device), config_mod.load(None, saved.config)


def predict(source: str | Path, context: str, futures: int, out: str | Path, n: int | None = None, seed: int = 0,
            device: str = "cpu", step: int | None = None) -> list[str]:
    """`gankit predict`: K futures of each sequence of FILE.npz (its last `context` frames) or of the run's held-out
    sequences (heldout: scored too), into the new folder out: futures.npz (`futures` uint8 (N, K, horizon, H, W[,
    C])), a GIF per sequence, and for heldout results.json and results.md. Returns the files written; every input is
    read and checked before `out` is made."""
    seed, step, device = run_arguments(seed, step, device)
    k = argument("futures", futures, int, 1, FUTURES_MAX)
    n = argument("n", n, int, 1, 10**9, optional=True)
    context = path_argument("context", context)
    out = check_new_folder(out, "predict")
    G, cfg = load_predictor(source, device, step)
    truth = None
    if context == "heldout":
        held = held_out(sequence_parts(cfg)[1]).floats()[:n]
        past, truth, channel_axis = held[:, :cfg.context], held[:, cfg.context: cfg.context + cfg.horizon], \
            cfg.channels == 3
    else:
        past, channel_axis = read_context(context, G.channels, cfg.img_size, cfg.context)
        past = past[:n]
    fut = sample_futures(G, past, k, seed)
    if not torch.isfinite(fut).all():
        raise UserError("predict: the run's G gave non-finite pixels; nothing is written")
    with staged_folder(out, "predict") as stage:
        np.savez_compressed(stage / "futures.npz", futures=_to_uint8(fut, channel_axis))
        for i in range(len(past)):
            save_gif(sequence_frames(past[i], fut[i], None if truth is None else truth[i]), stage / f"seq-{i:04d}.gif")
        if truth is not None:
            write_results(G, torch.cat([past, truth], 1), cfg.context, cfg.horizon, stage, {"seed": seed}, k, seed)
    files = [str(out / "futures.npz")] + [str(out / f"seq-{i:04d}.gif") for i in range(len(past))]
    return files + ([str(out / "results.json"), str(out / "results.md")] if truth is not None else [])
