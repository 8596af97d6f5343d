"""Missing data: semantic inpainting with a trained G (Yeh et al. 2017, "Semantic image inpainting with deep
generative models").

For an image x with known pixels M (1 = known, 0 = missing), search the latent space for the z whose G(z) best
matches the known pixels, then fill the hole from G(z):
    loss(z) = || W * (G(z) - x) ||_1  +  prior_weight * (-log D(G(z)))
the context loss weighing every known pixel alike (window 0, the default), or each by how many of its neighbours
(window x window) are missing (Yeh et al.'s W; on MNIST with the lower half missing it read 9 points worse, 81.6
against 90.1 %, as it ignores the known strokes away from the hole, and level with the centre mask: README), the
prior loss keeping G(z) where D finds it real (in D's logits, softplus(-D(G(z))), the non-saturating form of their
log(1 - D(G(z)))). Restarts: one bank of `candidates` draws of z, shared by all the images, is scored for each image
by the weighted squared error on its known pixels (one forward of G per draw, one matrix product; the bank's images
take candidates x pixels x 4 bytes), the best `restarts` per image are optimised with Adam for `steps`, and the one
with the lowest final loss fills the hole. A conditional G gets the asked class, or, when none is asked, the
candidates are spread over every class, the best of each class are optimised (restarts / classes of each, at least
one), and the lowest final loss picks the class as well.

    gankit inpaint RUN --images FILE.npz|DIR|heldout --mask center|random|half|FILE --out DIR [--class K]
"""

from __future__ import annotations

import contextlib
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from gankit import checkpoint, config as config_mod, outputs, registry, viz
from gankit.tasks.use import (check_new_folder, model_channels, read_images, run_arguments, save_npz,
                                staged_folder)
from gankit.tasks.gan.search import MASKS, Search, checked_search  # noqa: F401  (inpaint.Search: the API's)
from gankit.config import POINT_DATASETS, argument, clip, path_argument, quote
from gankit.data import decode
from gankit.errors import UserError
from gankit.latent import project_to_sphere, sample_z
from gankit.metrics import classifier as clf
from gankit.precision import autocast_dtype
from gankit.setup import held_out, load_parts

RANDOM_MISSING = 0.8   # the random mask removes 80 % of the pixels, as Yeh et al.'s


def make_mask(kind: str, n: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Masks (n, 1, H, W) of 1 = known, 0 = missing. center: the centre square of half the side (14 x 14 of 28,
    16 x 16 of 32); random: 80 % of the pixels missing, drawn per image by `seed`; half: the lower half missing."""
    _, h, w = shape
    m = torch.ones(n, 1, h, w)
    if kind == "center":
        m[:, :, h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2] = 0
    elif kind == "half":
        m[:, :, h // 2:, :] = 0
    elif kind == "random":
        gen = torch.Generator().manual_seed(seed)
        m = (torch.rand(n, 1, h, w, generator=gen) >= RANDOM_MISSING).float()
    else:
        raise UserError(f"inpaint: unknown mask {kind!r}; use {', '.join(MASKS)} or a mask file")
    return m


def context_weights(mask: torch.Tensor, window: int) -> torch.Tensor:
    """Yeh et al.'s W (N, 1, H, W): a known pixel counts by the share of missing pixels in the window around it; a
    missing pixel not at all. window 0: every known pixel counts 1. Normalised to mean 1 over the known pixels, so
    that prior_weight means the same whatever the mask."""
    if window == 0:
        w = mask.clone()
    else:
        missing = F.avg_pool2d(1 - mask, window, stride=1, padding=window // 2, count_include_pad=True)
        w = mask * missing
    known = mask.flatten(1).sum(1).clamp_min(1)
    return w / (w.flatten(1).sum(1) / known).clamp_min(1e-8)[:, None, None, None]


def _losses(G, D, z, y, x, w, prior_weight):
    """Per-latent (context, prior) losses, each (B,), of G(z, y) against images x with weights w."""
    out = G(z, y).float()
    context = (w * (out - x)).abs().flatten(1).sum(1) / w[0].numel()
    prior = F.softplus(-D(out, y).float()) if (D is not None and prior_weight) else torch.zeros_like(context)
    return context, prior, out


def _keep_in_prior(z: torch.Tensor, prior: str) -> torch.Tensor:
    support = registry.PRIORS[prior].support
    if support == "sphere":
        return project_to_sphere(z)
    if support == "cube":
        return z.clamp(-1, 1)
    return z


def complete(G, D, x: torch.Tensor, mask: torch.Tensor, prior: str, search: Search = Search(),
             labels: torch.Tensor | None = None, seed: int = 0, progress: bool = False):
    """Fill the holes of x (N, C, H, W) in [-1, 1], where mask (N or 1, 1, H, W) is 0. Returns (completed (N, C, H,
    W): the known pixels of x and G's pixels in the holes, fills (N, C, H, W): G(z) itself, found labels (N,) for a
    conditional G or None). G and D are used in eval mode on their own device."""
    device = next(G.parameters()).device
    n = x.shape[0]
    mask = mask.expand(n, -1, -1, -1)
    c_dim = getattr(G, "c_dim", 0)
    if labels is not None and not c_dim:
        raise UserError("inpaint: a class needs a conditional run; this generator has no classes")
    bank = _Bank(G, prior, search, searched=bool(c_dim) and labels is None, seed=seed)
    fills, found = [], []
    chunks = list(range(0, n, search.batch_size))
    for start in tqdm(chunks, desc="inpaint", unit="batch", disable=not progress):
        sl = slice(start, start + search.batch_size)
        yb = None if labels is None else labels[sl].to(device)
        fill, y = _search(G, D, bank, x[sl].to(device), mask[sl].to(device), yb, prior, search)
        fills.append(fill)
        if y is not None:
            found.append(y)
    fill = torch.cat(fills)
    completed = mask * x + (1 - mask) * fill
    return completed, fill, (torch.cat(found) if found else None)


class _Bank:
    """One bank of `candidates` latents for every image: the latents, their classes when the class is searched
    (spread over the classes), and G's images of them, made once per asked class (None: unconditional or searched).
    G and D run under training's precision policy; the losses themselves in fp32."""

    def __init__(self, G, prior: str, search: Search, searched: bool, seed: int):
        self.G, self.search, self.searched = G, search, searched
        self.device = next(G.parameters()).device
        self.dtype = autocast_dtype(search.precision, self.device)
        self.c_dim, k = getattr(G, "c_dim", 0), search.candidates
        if searched and k < self.c_dim:
            raise UserError(f"inpaint: candidates {k} cannot search {self.c_dim} classes; draw at least {self.c_dim}")
        self.z = sample_z(k, G.z_dim, prior, torch.Generator().manual_seed(seed)).to(self.device)   # (k, z_dim)
        self.y = (torch.arange(k) % self.c_dim).to(self.device) if searched else None
        self.images = {}

    def autocast(self):
        return torch.autocast(self.device.type, self.dtype or torch.float32, enabled=self.dtype is not None)

    def candidates(self, cls: int | None) -> torch.Tensor:
        """G's images of the bank (k, D) for class cls (None: the bank's own classes, or none)."""
        if cls not in self.images:
            k = self.z.shape[0]
            ys = self.y if cls is None else torch.full((k,), cls, device=self.device)
            with torch.no_grad(), self.autocast():
                parts = _split(self.z, ys, 4 * self.search.batch_size)
                self.images[cls] = torch.cat([self.G(zc, yc).float() for zc, yc in parts]).flatten(1)
        return self.images[cls]

    def best(self, xb: torch.Tensor, wb: torch.Tensor, yb: torch.Tensor | None) -> torch.Tensor:
        """Indices (b, r) of the candidates each image optimises: the lowest weighted squared error on its known
        pixels (with a searched class, the best of every class: the best overall are often of one)."""
        wf, xf = wb.flatten(1), xb.flatten(1)                                                   # (b, D)
        ctx_loss = torch.empty(xb.shape[0], self.z.shape[0], device=self.device)
        for cls in ([None] if yb is None else yb.unique().tolist()):
            rows = slice(None) if cls is None else (yb == cls)
            g, w_, x_ = self.candidates(cls), wf[rows], xf[rows]
            # sum_d w (g - x)^2 = sum w x^2 - 2 (w x) . g + w . g^2, for every image and candidate at once
            ctx_loss[rows] = (w_ * x_ ** 2).sum(1, keepdim=True) - 2 * (w_ * x_) @ g.T + w_ @ (g ** 2).T
        restarts = self.search.restarts
        if not self.searched:
            return ctx_loss.topk(min(restarts, self.z.shape[0]), dim=1, largest=False).indices   # (b, r)
        per = max(1, -(-restarts // self.c_dim))                                                 # ceil(restarts / K)
        return torch.cat([of_k[ctx_loss[:, of_k].topk(min(per, len(of_k)), dim=1, largest=False).indices]
                          for of_k in (torch.nonzero(self.y == c)[:, 0] for c in range(self.c_dim))], 1)


def _search(G, D, bank: _Bank, xb, mb, yb, prior: str, search: Search):
    """One batch of images: the best candidates, each optimised with Adam on the context loss plus the prior loss;
    the one with the lowest final loss fills the hole. Returns (fills (b, C, H, W) on the CPU, classes or None)."""
    wb = context_weights(mb, search.window)
    b = xb.shape[0]
    best = bank.best(xb, wb, yb)
    r = best.shape[1]
    z = bank.z[best.flatten()].clone().requires_grad_(True)                                     # (b*r, z_dim)
    y = bank.y[best.flatten()] if bank.searched else (None if yb is None else yb.repeat_interleave(r))
    xr, wr = xb.repeat_interleave(r, 0), wb.repeat_interleave(r, 0)

    def losses():
        with bank.autocast():
            return _losses(G, D, z, y, xr, wr, search.prior_weight)

    opt = torch.optim.Adam([z], lr=search.lr)
    for _ in range(search.steps):
        context, prior_loss, _ = losses()
        opt.zero_grad(set_to_none=True)
        (context + search.prior_weight * prior_loss).sum().backward()
        opt.step()
        with torch.no_grad():
            z.copy_(_keep_in_prior(z, prior))
    with torch.no_grad():
        context, prior_loss, out = losses()
        total = (context + search.prior_weight * prior_loss).view(b, r)
        winner = total.argmin(1) + torch.arange(b, device=xb.device) * r                          # (b,)
        return out[winner].float().cpu(), (y[winner].cpu() if y is not None else None)


def _split(z: torch.Tensor, y: torch.Tensor | None, size: int):
    """(z, y) in chunks of `size` rows; y None stays None."""
    for i in range(0, z.shape[0], size):
        yield z[i: i + size], (None if y is None else y[i: i + size])


def psnr_on_hole(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (N,) in dB over the missing pixels only, images in [-1, 1] read as [0, 1]."""
    hole = (1 - mask).expand_as(a)
    mse = (((a - b) / 2) ** 2 * hole).flatten(1).sum(1) / hole.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def mean_fill(x: torch.Tensor, mask: torch.Tensor, mean_image: torch.Tensor) -> torch.Tensor:
    """The hole filled with the training images' mean, pixel by pixel (mean_image (C, H, W))."""
    return mask * x + (1 - mask) * mean_image


def nearest_fill(x: torch.Tensor, mask: torch.Tensor, train: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The hole filled from the training image closest to x on the known pixels (L2): a non-generative baseline."""
    ref = train.flatten(1)                                                        # (R, D)
    out = []
    for xs, ms in zip(x.split(chunk), mask.expand(x.shape[0], *x.shape[1:]).split(chunk)):
        m = ms.flatten(1)                                                         # (b, D)
        # ||m*(x - r)||^2 = sum m x^2 - 2 (m x) . r + m . r^2, for every reference r at once
        d = (m * xs.flatten(1) ** 2).sum(1, keepdim=True) - 2 * (m * xs.flatten(1)) @ ref.T + m @ (ref**2).T
        out.append(ref[d.argmin(1)].view_as(xs))
    near = torch.cat(out)
    return mask * x + (1 - mask) * near


# ------------------------------------------------------------------------------------------------------------------
# a run's generator and discriminator, masks from files, scores, the before/after sheet


def load_models(source: str | Path, device: str = "cpu", step: int | None = None):
    """(G, D, config) of a GAN run: G its averaged weights when kept, D for the prior loss (None when D judges packs
    of samples, pack > 1, and cannot score one image)."""
    G, D, saved = _load_models(source, device, step)
    return G, D, saved.config


def _load_models(source: str | Path, device: str, step: int | None):
    saved = checkpoint.read(source, step).require("inpaint")
    cfg = saved.config
    if cfg["data"] in POINT_DATASETS:
        raise UserError("inpaint: needs an image model; this run generates 2-D points")
    G = saved.generator().to(device).requires_grad_(False)
    D = saved.discriminator().to(device) if cfg.get("pack", 1) == 1 else None
    return G, D, saved


def read_mask(source: str, n: int, shape: tuple[int, ...], seed: int = 0, total: int | None = None) -> torch.Tensor:
    """A mask kind (center, random, half) or a file: a PNG (black = missing) or .npy/.npz array (0 = missing), one
    H x W mask for every image or one per image (N, H, W; of `total` images when only the first n are completed);
    resized to the images' size by nearest neighbour."""
    source = path_argument("mask", source)
    if source in MASKS:
        return make_mask(source, n, shape, seed)
    path = Path(source)
    if not path.is_file():
        raise UserError(f"inpaint: the mask {quote(source)} is neither {', '.join(MASKS)} nor a file")
    m = (_mask_values(path) > 0.5).float()
    m = m[None, None] if m.dim() == 2 else m[:, None] if m.dim() == 3 else None
    counts = sorted({n, total or n})
    if m is None or m.shape[0] not in (1, *counts) or 0 in m.shape:
        got = "" if m is None else f"; got {' x '.join(map(str, m.shape[:1] + m.shape[2:]))}"
        raise UserError(f"inpaint: the mask {path} must be H x W or N x H x W with N = "
                        f"{' or '.join(map(str, counts))} images{got}")
    if m.min() == 1:
        raise UserError(f"inpaint: the mask {path} has no missing (black, 0) pixels")
    if m.max() == 0:
        raise UserError(f"inpaint: the mask {path} has no known (white, 1) pixels: there is nothing to match")
    return F.interpolate(m[:n], size=shape[1:], mode="nearest").expand(n, -1, -1, -1)


def _mask_values(path: Path) -> torch.Tensor:
    """A mask file's values as float32 (H, W) or (N, H, W), before the threshold; refused when unreadable or not
    finite."""
    try:
        if path.suffix in (".npy", ".npz"):
            with contextlib.ExitStack() as stack:
                arr = np.load(path)
                if isinstance(arr, np.lib.npyio.NpzFile):
                    stack.enter_context(arr)
                    if not arr.files:
                        raise UserError(f"inpaint: the mask {path} holds no array")
                    arr = arr[arr.files[0]]
            if arr.dtype.kind not in "biuf":
                raise UserError(f"inpaint: the mask {path} must hold numbers (0 = missing), got {arr.dtype}")
            arr = np.asarray(arr, dtype=np.float32)
            if not np.isfinite(arr).all():
                raise UserError(f"inpaint: the mask {path} holds NaN or inf values; use 0 (missing) and 1 (known)")
            return torch.from_numpy(arr)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.size[0] * im.size[1] > decode.MAX_PIXELS:
                    raise UserError(f"inpaint: the mask {path} is {im.size[0]}x{im.size[1]} pixels, over "
                                    f"{decode.MAX_PIXELS:,}")
                return torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as e:
        raise UserError(f"inpaint: cannot read the mask {path} ({type(e).__name__}: {e})".splitlines()[0]) from None


def score(sets: dict[str, torch.Tensor], x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor | None,
          classifier) -> dict[str, dict]:
    """For each completed set (N, C, H, W): PSNR on the hole against the originals x, and the share the data set's
    classifier assigns to the true labels y (when given). The originals get a row with their accuracy."""
    rows = {}
    for name, im in {**sets, "originals": x}.items():
        rows[name] = {} if name == "originals" else {"psnr_hole": psnr_on_hole(im, x, mask).mean().item()}
        if y is not None and classifier is not None:
            rows[name]["class_acc"] = (clf.predict(classifier.model, im)[1].argmax(1) == y.cpu()).double().mean().item()
    return rows


def table(rows: dict[str, dict], title: str) -> str:
    lines = [f"{title}\n", "| hole filled by | class accuracy | PSNR on the hole (dB) |", "|---|---|---|"]
    for name, r in rows.items():
        acc = f"{r['class_acc']:.2%}" if "class_acc" in r else ""
        p = f"{r['psnr_hole']:.2f}" if "psnr_hole" in r else ""
        lines.append(f"| {name} | {acc} | {p} |")
    return "\n".join(lines) + "\n"


def sheet(rows: dict[str, torch.Tensor], path: Path, n: int = 10) -> Path:
    """One row per named set of images (the first n of each): before, G's fill, after, ..."""
    return viz.save_rows([im[:n] for im in rows.values()], path, list(rows))


def masked_input(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What the search sees: the known pixels, the hole mid-grey (0 in [-1, 1])."""
    return x * mask


def inpaint(source: str | Path, images: str, mask: str, out: str | Path, cls: int | None = None,
            search: Search = Search(), seed: int = 0, device: str = "cpu", step: int | None = None,
            n: int | None = None, progress: bool = True) -> dict:
    """Fill the holes of `images` (FILE.npz, DIR, or heldout: the run's held-out images) with the run's G and write
    out/inpainted.npz, out/sheet.png and, when the images have labels, out/results.md and .json (class accuracy
    and PSNR on the hole, beside the masked input, a mean fill and a nearest-neighbour fill). Returns the scores.
    Every argument and input is checked before the folder `out` is made; a failure leaves no folder behind."""
    search = checked_search(search)
    seed, step, device = run_arguments(seed, step, device)
    n = argument("n", n, int, 1, None, optional=True)
    images = path_argument("images", images)
    out = check_new_folder(out, "inpaint")   # refused before any work is done
    G, D, saved = _load_models(source, device, step)
    cfg = config_mod.load(None, saved.config)
    x, y, parts, total = _read_inputs(images, cfg, model_channels(G), saved.class_names, n)
    m = read_mask(mask, len(x), tuple(x.shape[1:]), seed, total)
    labels = _asked_class(G, cls, len(x), search)
    with staged_folder(out, "inpaint") as stage:
        completed, fill, found = complete(G, D, masked_input(x, m), m, cfg.prior, search, labels, seed, progress)
        if not torch.isfinite(fill).all():
            raise UserError("inpaint: the search gave non-finite images (the run's G or D is not finite here); "
                            "nothing is written")
        save_npz(stage / "inpainted.npz", completed, fills=viz.to_uint8(fill), masks=m[:, 0].bool().numpy(),
                 labels=y, classes_found=found)
        result = {"n": len(x), "mask": str(mask), "search": search.__dict__, "files": [str(out / "inpainted.npz")]}
        shown = {"original": x, "masked": masked_input(x, m), "G(z)": fill, "completed": completed}
        if y is not None:
            shown = _score_and_write(stage, out, result, cfg, parts, x, y, m, fill, completed, cls) or shown
        sheet(shown, stage / "sheet.png")
        result["files"].append(str(out / "sheet.png"))
    return result


def _read_inputs(images: str, cfg, channels: int, class_names: list[str], n: int | None):
    """(x, y, the run's data parts or None, how many images the source held) of FILE.npz, DIR or heldout."""
    parts = None   # the run's data set, read once: (all, training part, held-out part)
    if images == "heldout":
        parts = load_parts(cfg)
        held = held_out(parts[2])
        x, y = held.floats(), held.y.cpu() if held.y is not None else None
    else:
        x, y = read_images(images, channels, cfg.img_size, class_names or None)
    total = len(x)
    if n is not None:
        x, y = x[:n], (None if y is None else y[:n])
    return x, y, parts, total


def _asked_class(G, cls, n: int, search: Search) -> torch.Tensor | None:
    """The labels (n,) of an asked class, checked against the run's classes; None when the class is searched."""
    if cls is None:
        if G.c_dim and search.candidates < G.c_dim:
            raise UserError(f"inpaint: candidates {search.candidates} cannot search {G.c_dim} classes; draw at "
                            f"least {G.c_dim}")
        return None
    cls = argument("class", cls, int)
    if not G.c_dim:
        raise UserError("inpaint: a class needs a conditional run; this one has no classes")
    if not 0 <= cls < G.c_dim:
        raise UserError(f"inpaint: class {quote(cls)} is not one of the run's classes 0..{G.c_dim - 1}")
    return torch.full((n,), cls, dtype=torch.long)


def _score_and_write(stage: Path, out: Path, result: dict, cfg, parts, x, y, m, fill, completed, cls) -> dict | None:
    """Score the completions beside the baselines and write results.md and .json into stage (the folder that becomes
    out); the sets to show, or
    None when the run's data set is not at hand (nothing scored)."""
    try:
        full, train, _ = parts or load_parts(cfg)
        classifier = clf.real_classifier(full) if full.num_classes >= 2 else None
    except UserError as e:
        print(f"gankit: the run's data set is not at hand, so the completions are not scored ({e})")
        return None
    if classifier is not None and (y.min() < 0 or y.max() >= full.num_classes):
        raise UserError(f"inpaint: the labels hold classes outside the data set's 0..{full.num_classes - 1}")
    train_x = train.floats()
    baselines = {"masked input": masked_input(x, m), "mean fill": mean_fill(x, m, train_x.mean(0)),
                 "nearest training image": nearest_fill(x, m, train_x), "G (gankit inpaint)": completed}
    result["rows"] = score(baselines, x, m, y, classifier)
    result["classifier_acc"] = classifier.accuracy if classifier is not None else None
    title = f"{len(x)} images, mask {clip(str(result['mask']))}" + (f", class {cls}" if cls is not None else "")
    md, record = table(result["rows"], title), json.dumps(result, indent=1)
    outputs.write_atomic(stage / "results.md", lambda tmp: tmp.write_text(md))
    outputs.write_atomic(stage / "results.json", lambda tmp: tmp.write_text(record))
    result["files"] += [str(out / "results.md"), str(out / "results.json")]
    return {"original": x, "masked": baselines["masked input"], "mean fill": baselines["mean fill"],
            "nearest": baselines["nearest training image"], "G(z)": fill, "completed": completed}
