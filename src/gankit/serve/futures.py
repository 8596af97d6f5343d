"""The futures page of a predict run (task predict): K futures of one sequence, a held-out one of the run or one of
an uploaded FILE.npz, drawn and pictured by `gankit predict`'s own functions (gankit.tasks.predict.futures:
sample_futures, sequence_frames, the GIF writer, and read_context's checks for an upload).

An upload is base64 text in the JSON body: a .npz file of at most MAX_NPZ_BYTES whose arrays hold at most
MAX_FRAMES_BYTES once decompressed (read from the zip's directory before anything is decompressed), loaded with
allow_pickle=False.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile

import torch

from gankit.tasks.predict import futures as predict
from gankit.config import SEED_LIMIT, argument
from gankit.errors import UserError
from gankit.serve.runs import Run

MAX_FUTURES = 16                 # K of one request
MAX_NPZ_BYTES = 2 << 20          # an uploaded .npz file
MAX_FRAMES_BYTES = 16 << 20      # its arrays, decompressed (a zip bomb is refused unread)
GIF_TYPE = "data:image/gif;base64,"


def info(run: Run) -> dict:
    """What the page needs to ask for futures; held_out 0 (and why) when the run's held-out sequences cannot be
    made here (its data set is missing), so that an upload still works."""
    G, cfg = run.predictor()
    out = {"context": cfg.context, "horizon": cfg.horizon, "img_size": cfg.img_size, "channels": G.channels,
           "z_dim": G.z_dim, "max_futures": MAX_FUTURES, "max_upload": MAX_NPZ_BYTES, "held_out": 0}
    try:
        out["held_out"] = len(run.held_out())
    except UserError as e:
        out["held_out_error"] = str(e).splitlines()[0]
    return out


def _gif(frames: list) -> str:
    return GIF_TYPE + base64.b64encode(predict.gif_bytes(frames)).decode("ascii")


def read_upload(text, channels: int, img_size: int, context: int) -> torch.Tensor:
    """An uploaded FILE.npz (base64, a data: URL or bare) as `gankit predict --context FILE.npz` reads it: the last
    `context` frames of each sequence of `frames`, (N, context, C, H, W) in [-1, 1]."""
    if not isinstance(text, str) or not text:
        raise UserError("context: expected the .npz file as base64 text (a data: URL)")
    text = text.partition(",")[2] if text.startswith("data:") else text
    if len(text) > (MAX_NPZ_BYTES * 4) // 3 + 4:
        raise UserError(f"context: the upload is over {MAX_NPZ_BYTES >> 20} MiB; send fewer or shorter sequences")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UserError("context: the upload is not valid base64") from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            size = sum(member.file_size for member in zf.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise UserError("context: the upload is not a .npz file (numpy.savez of a `frames` array)") from None
    if size > MAX_FRAMES_BYTES:
        raise UserError(f"context: the upload's arrays are {size:,} bytes decompressed, over {MAX_FRAMES_BYTES:,}; "
                        "send fewer or shorter sequences")
    past, _ = predict.context_of(io.BytesIO(data), "the upload", channels, img_size, context)
    return past


def futures(run: Run, body: dict) -> dict:
    """K futures of sequence `index`: of the run's held-out sequences, or of an uploaded `context` .npz. Returns the
    GIFs: `gif`, the one `gankit predict` writes for the sequence (the truth, when known, then the K futures);
    `context`, the given frames alone; `truth`; and `futures`, one GIF per future."""
    G, cfg = run.predictor()
    k = argument("k", body.get("k", 4), int, 1, MAX_FUTURES)
    seed = argument("seed", body.get("seed", 0), int, 0, SEED_LIMIT - 1)
    truth = None
    if body.get("context") is not None:
        sequences = read_upload(body["context"], G.channels, cfg.img_size, cfg.context)
        index = argument("index", body.get("index", 0), int, 0, len(sequences) - 1)
        past = sequences[index]
    else:
        held = run.held_out()
        index = argument("index", body.get("index", 0), int, 0, len(held) - 1)
        seq = held.subset(torch.tensor([index])).floats()[0]                      # (T, C, H, W) in [-1, 1]
        past, truth = seq[: cfg.context], seq[cfg.context: cfg.context + cfg.horizon]
    # z drawn from `seed` for a context of this one sequence: `gankit predict` with --n 1 on it draws the same
    fut = predict.sample_futures(G, past[None], k, seed)[0]                       # (K, horizon, C, H, W)
    if not torch.isfinite(fut).all():
        raise UserError("futures: the run's G gave non-finite pixels")
    return {"index": index, "seed": seed, "k": k, "source": "upload" if truth is None else "heldout",
            "shape": list(fut.shape), "gif": _gif(predict.sequence_frames(past, fut, truth)),
            "context": _gif(predict.sequence_frames(past, fut[:1, :0])),          # no future frames: the context
            "truth": None if truth is None else _gif(predict.sequence_frames(past, fut[:0], truth)),
            "futures": [_gif(predict.sequence_frames(past, fut[j: j + 1])) for j in range(k)]}
