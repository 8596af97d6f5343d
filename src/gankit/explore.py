"""What has G learned? Paths through latent space, and DCGAN's latent vector arithmetic.

Both work on a Sampler (gankit.sample), so they run from a run folder, a checkpoint or an export alike.

    sampler = load_sampler("runs/dcgan-digits")
    path = interpolation(sampler, paths=8, steps=10, seed=0)           # path.images: (10, 8, C, H, W)
    res = arithmetic(sampler, "3,7,12", "5,9,40", "1,2,30", seed=0)   # res.result_z: (z_dim,)
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gankit import audio, outputs, registry, viz
from gankit.errors import UserError
from gankit.latent import interpolate, lerp, project_to_sphere, slerp
from gankit.sample import Sampler


def _image_model(sampler: Sampler, command: str, recordings: bool = False) -> None:
    """Refuse a run whose G makes 2-D points, or recordings unless the command can make them heard."""
    if sampler.is_points:
        raise UserError(f"{command}: needs an image model; this run generates 2-D points")
    if not recordings and audio.is_audio(sampler.G):
        raise UserError(f"{command}: needs an image model; this run makes recordings (gankit sample RUN --out "
                        "FILE.png draws their spectrograms, --out DIR/ writes .wav files)")


# ------------------------------------------------------------------------------------------------------------------
# the numbered sample sheet


def sheet(sampler: Sampler, n: int, seed: int, truncation: float = 1.0, cls: int | None = None):
    """The z (n, z_dim) and labels (n,) (None when unconditional) of the sheet that `gankit sample --sheet` draws.

    The draw order is `Sampler.__call__`'s (z first, then labels, from one generator seeded with `seed`), so a sheet,
    `gankit sample --seed S --n N` and `gankit arithmetic --seed S --sheet-n N` all see the same z for index i.
    Returns the generator too: arithmetic keeps drawing from it, after the sheet, for class groups and noise.
    """
    gen = torch.Generator().manual_seed(seed)
    z = sampler.z(n, gen, truncation)
    return z, sampler.labels(n, cls, gen), gen


def save_sheet(sampler: Sampler, n: int, seed: int, out: Path, truncation: float = 1.0,
               cls: int | None = None, force: bool = False) -> Path:
    _image_model(sampler, "sample --sheet")
    out = Path(out)
    if out.suffix != ".png":
        raise UserError(f"sample: --sheet writes a FILE.png, got {out}")
    outputs.check_new("sample", out, force=force)
    z, labels, _ = sheet(sampler, n, seed, truncation, cls)
    outputs.out_folder("sample", out.parent)
    images = sampler.decode(z, labels)
    return outputs.write_atomic(out, lambda tmp: viz.save_sheet(images, tmp))


# ------------------------------------------------------------------------------------------------------------------
# interpolation


@dataclass
class Interpolation:
    z: torch.Tensor               # (steps, paths, z_dim); z[0] and z[-1] are the endpoints
    labels: torch.Tensor | None   # (paths,): one class per path, fixed along it
    images: torch.Tensor          # (steps, paths, C, H, W), or G's raw output for an audio G
    waves: torch.Tensor | None = None   # (steps, paths, T) in [-1, 1]: an audio G's clips along each path
    sample_rate: int | None = None


def interpolation(sampler: Sampler, paths: int = 8, steps: int = 10, seed: int = 0, cls: int | None = None,
                  truncation: float = 1.0) -> Interpolation:
    """`paths` paths of `steps` points each between pairs of prior draws: slerp for the normal and sphere priors,
    lerp inside the uniform cube (latent.interpolate). A conditional G keeps the label fixed along a path: `cls`,
    or classes 0, 1, 2, ... in turn, one per path."""
    _image_model(sampler, "interpolate", recordings=True)
    if steps < 2:
        raise UserError(f"interpolate: --steps must be at least 2 (the two endpoints), got {steps}")
    if paths * steps > 100_000:
        raise UserError(f"interpolate: {paths} paths x {steps} steps is more than 100,000 images; ask for fewer")
    gen = torch.Generator().manual_seed(seed)
    a, b = sampler.z(paths, gen, truncation), sampler.z(paths, gen, truncation)        # (paths, z_dim) each
    z = interpolate(a, b, steps, sampler.prior)                                         # (steps, paths, z_dim)
    labels = None
    if cls is not None and not 0 <= cls < sampler.c_dim:
        raise UserError("interpolate: --class needs a conditional model" if not sampler.c_dim else
                        f"interpolate: --class must be in 0..{sampler.c_dim - 1}, got {cls}")
    if sampler.c_dim:
        labels = torch.full((paths,), cls) if cls is not None else torch.arange(paths) % sampler.c_dim
    flat_y = None if labels is None else labels.repeat(steps)                           # (steps * paths,)
    images = sampler.decode(z.reshape(-1, z.shape[-1]), flat_y)
    interp = Interpolation(z, labels, images.view(steps, paths, *images.shape[1:]))
    if audio.is_audio(sampler.G):
        interp.waves = audio.waveforms(sampler.G, images).view(steps, paths, -1)
        interp.sample_rate = int(sampler.G.sample_rate)
    return interp


def save_interpolation(interp: Interpolation, out_dir: Path, force: bool = False) -> tuple[Path, Path, Path]:
    """out_dir/interpolation.png (one row per path, the endpoints in the first and last column),
    interpolation.gif (all paths at once, moving along them and back) and interpolation.npz (z, labels).
    An audio G's paths are heard instead (save_interpolation_clips)."""
    if interp.waves is not None:
        return save_interpolation_clips(interp, out_dir, force)
    out_dir = Path(out_dir)
    png, gif, npz = (out_dir / f"interpolation.{ext}" for ext in ("png", "gif", "npz"))
    outputs.check_new("interpolate", png, gif, npz, force=force)
    outputs.out_folder("interpolate", out_dir)
    steps, paths = interp.z.shape[:2]
    rows = interp.images.transpose(0, 1).reshape(steps * paths, *interp.images.shape[2:])  # path-major
    outputs.write_atomic(png, lambda tmp: viz.grid_image(rows, steps, max(1, 64 // rows.shape[-1])).save(tmp))
    outputs.write_atomic(gif, lambda tmp: viz.save_gif(interp.images, tmp, nrow=max(1, math.ceil(math.sqrt(paths)))))
    arrays = {"z": interp.z.numpy()}
    if interp.labels is not None:
        arrays["labels"] = interp.labels.numpy()
    outputs.write_atomic(npz, lambda tmp: np.savez_compressed(tmp, **arrays))
    return png, gif, npz


def save_interpolation_clips(interp: Interpolation, out_dir: Path, force: bool = False) -> tuple[Path, ...]:
    """An audio G's paths: out_dir/path-PP/SS.wav, the clip at each step; out_dir/path-PP.wav, the steps one after
    another with short silences between them (a walk to listen to); interpolation.png, a spectrogram sheet with a
    row per path; interpolation.npz (z, labels, audio (steps, paths, T) float32, sample_rate)."""
    out_dir, rate = Path(out_dir), int(interp.sample_rate)
    steps, paths = interp.waves.shape[:2]
    clips = [out_dir / f"path-{p:02d}" / f"{s:02d}.wav" for p in range(paths) for s in range(steps)]
    walks = [out_dir / f"path-{p:02d}.wav" for p in range(paths)]
    png, npz = out_dir / "interpolation.png", out_dir / "interpolation.npz"
    outputs.check_new("interpolate", png, npz, *walks, *clips, force=force)
    for folder in {c.parent for c in clips}:
        outputs.out_folder("interpolate", folder)
    gap = torch.zeros(steps, int(audio.GAP_S * rate))
    for p in range(paths):
        outputs.write_atomic(walks[p], lambda tmp: audio.write_wav(
            tmp, torch.cat([interp.waves[:, p], gap], 1).flatten().numpy(), rate))
        for s in range(steps):
            wave = interp.waves[s, p].numpy()
            outputs.write_atomic(clips[p * steps + s], lambda tmp: audio.write_wav(tmp, wave, rate))
    rows = interp.waves.transpose(0, 1).reshape(steps * paths, -1)                        # path-major
    names = [f"path {p} step {s}" for p in range(paths) for s in range(steps)]
    outputs.write_atomic(png, lambda tmp: audio.save_sheet(rows, rate, tmp, names, "interpolation", columns=steps))
    arrays = {"z": interp.z.numpy(), "audio": interp.waves.numpy().astype(np.float32), "sample_rate": np.int64(rate)}
    if interp.labels is not None:
        arrays["labels"] = interp.labels.numpy()
    outputs.write_atomic(npz, lambda tmp: np.savez_compressed(tmp, **arrays))
    return png, npz, *walks


# ------------------------------------------------------------------------------------------------------------------
# vector arithmetic


@dataclass
class Group:
    name: str                     # "A", "B" or "C"
    spec: str                     # as given: "3,7,12" or "class:4"
    z: torch.Tensor               # (k, z_dim)
    labels: torch.Tensor | None   # (k,)


@dataclass
class Arithmetic:
    groups: list[Group]
    means: torch.Tensor               # (3, z_dim): the decoded mean z of A, B, C (on the sphere for that prior)
    result_z: torch.Tensor            # (z_dim,): mean(A) - mean(B) + mean(C) (likewise)
    neighbours_z: torch.Tensor        # (m, z_dim): result_z plus uniform noise in [-noise, noise]
    mean_embeds: torch.Tensor | None  # (3, c_embed_dim): conditional G only, the mean label embedding of each group
    result_embed: torch.Tensor | None  # (c_embed_dim,): the same sum on the embeddings
    member_images: list[torch.Tensor]  # per group (k, C, H, W)
    mean_images: torch.Tensor          # (3, C, H, W)
    result_images: torch.Tensor        # (1 + m, C, H, W): the result, then its neighbours


def parse_group(text: str, name: str, sheet_n: int, c_dim: int) -> list[int] | int:
    """'i,j,k' -> the sheet indices in the order given (three or more, distinct, in 0..sheet_n-1);
    'class:K' -> K (conditional models only)."""
    flag = f"--{name.lower()}"
    text = text.strip()
    if text.startswith("class:"):
        if not c_dim:
            raise UserError(f"arithmetic: {flag} {text}: groups by class need a conditional model")
        try:
            k = int(text[6:])
        except ValueError:
            raise UserError(f"arithmetic: {flag} {text}: expected class:K with an integer K") from None
        if not 0 <= k < c_dim:
            raise UserError(f"arithmetic: {flag} {text}: class must be in 0..{c_dim - 1}")
        return k
    try:
        idx = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"arithmetic: {flag} {text!r}: expected sheet indices like 3,7,12"
                        + (" or class:K" if c_dim else "")) from None
    if len(idx) < 3:
        raise UserError(f"arithmetic: {flag} needs three or more sheet indices (averaging is what makes the "
                        f"arithmetic stable), got {len(idx)}")
    if len(set(idx)) != len(idx):
        raise UserError(f"arithmetic: {flag} {text}: an index is repeated")
    bad = [i for i in idx if not 0 <= i < sheet_n]
    if bad:
        raise UserError(f"arithmetic: {flag}: index {bad[0]} is outside the sheet (0..{sheet_n - 1}); "
                        f"use the --seed and --sheet-n the sheet was made with")
    return idx


def _on_prior(z: torch.Tensor, prior: str) -> torch.Tensor:
    """Means shrink towards the centre; a sphere-prior G has only seen norm sqrt(z_dim), so project back onto it."""
    return project_to_sphere(z) if registry.PRIORS[prior].support == "sphere" else z


def _label_table(G: torch.nn.Module) -> torch.nn.Embedding:
    table = getattr(G, "embed", None)
    if not isinstance(table, torch.nn.Embedding):
        raise UserError("arithmetic: this conditional generator has no label embedding to average")
    return table


@contextlib.contextmanager
def _embedding_rows(G: torch.nn.Module, rows: torch.Tensor):
    """Decode from label embeddings that no class has: rows (m, c_embed_dim) are appended to a copy of G's label
    table for the duration, and the labels to pass are yielded (c_dim .. c_dim + m - 1). The VBN reference batch
    keeps using the real classes."""
    old = _label_table(G)
    table = torch.cat([old.weight.detach(), rows.to(old.weight)])          # (c_dim + m, c_embed_dim)
    G.embed = torch.nn.Embedding.from_pretrained(table, freeze=True)
    try:
        yield torch.arange(old.num_embeddings, table.shape[0])
    finally:
        G.embed = old


def _decode(sampler: Sampler, z: torch.Tensor, embeds: torch.Tensor | None) -> torch.Tensor:
    """G(z) for z (m, z_dim); a conditional G gets embeds (m, c_embed_dim) in place of looked-up labels."""
    if embeds is None:
        return sampler.decode(z)
    with _embedding_rows(sampler.G, embeds) as labels:
        return sampler.decode(z, labels)


def arithmetic(sampler: Sampler, a: str, b: str, c: str, seed: int = 0, sheet_n: int = 64, neighbours: int = 4,
               noise: float = 0.25, truncation: float = 1.0, cls: int | None = None,
               class_n: int = 4) -> Arithmetic:
    """Radford et al. 2015, section 6.3: decode mean(A) - mean(B) + mean(C) and `neighbours` points around it.

    Index groups take z (and labels) from the sheet of (seed, sheet_n, truncation, cls); 'class:K' groups are
    `class_n` fresh draws of class K. For a conditional G the same sum is taken over the label embeddings, since
    its input is [z, embed(y)]: a group of one class decodes with that class, a mixed group with the mean.
    For the sphere prior every decoded vector (means, result, neighbours) is projected back onto the sphere.
    """
    _image_model(sampler, "arithmetic")
    if neighbours < 0 or not (math.isfinite(noise) and noise >= 0):
        raise UserError(f"arithmetic: --neighbours and --noise must not be negative (nor non-finite), got {neighbours} "
                        f"and {noise}")
    specs = [parse_group(t, name, sheet_n, sampler.c_dim) for t, name in ((a, "A"), (b, "B"), (c, "C"))]
    sheet_z, sheet_y, gen = sheet(sampler, sheet_n, seed, truncation, cls)
    groups = []
    for name, text, spec in zip("ABC", (a, b, c), specs):
        if isinstance(spec, int):   # a class: fresh draws from the generator, after the sheet's
            groups.append(Group(name, text, sampler.z(class_n, gen, truncation), sampler.labels(class_n, spec)))
        else:
            groups.append(Group(name, text, sheet_z[spec], None if sheet_y is None else sheet_y[spec]))
    return combine(sampler, groups, neighbours, noise, gen)


def combine(sampler: Sampler, groups: list[Group], neighbours: int = 4, noise: float = 0.25,
            gen: torch.Generator | None = None) -> Arithmetic:
    """The arithmetic on three given groups A, B, C (each one or more z, with labels for a conditional G): decode
    mean(A) - mean(B) + mean(C) and `neighbours` points of uniform noise around it, drawn from `gen`. `arithmetic`
    builds the groups from a sheet; `gankit serve` from the samples a user kept."""
    _image_model(sampler, "arithmetic")
    if len(groups) != 3 or any(g.z.dim() != 2 or g.z.shape[0] < 1 for g in groups):
        raise UserError("arithmetic: needs three groups A, B and C of one or more samples each")
    if sampler.c_dim and any(g.labels is None for g in groups):
        raise UserError("arithmetic: a conditional model needs the class of every sample in A, B and C")
    raw = torch.stack([g.z.mean(0) for g in groups])                      # (3, z_dim)
    result = raw[0] - raw[1] + raw[2]                                       # (z_dim,)
    noise_z = (torch.rand(neighbours, result.shape[0], generator=gen) * 2 - 1) * noise  # U(-noise, noise), as DCGAN
    means, result_z = _on_prior(raw, sampler.prior), _on_prior(result[None], sampler.prior)[0]
    neighbours_z = _on_prior(result[None] + noise_z, sampler.prior)         # (m, z_dim)

    mean_e = result_e = None
    if sampler.c_dim:
        with torch.no_grad():
            emb = _label_table(sampler.G).weight.detach().cpu()             # (c_dim, c_embed_dim)
            mean_e = torch.stack([emb[g.labels].mean(0) for g in groups])  # (3, c_embed_dim)
        result_e = mean_e[0] - mean_e[1] + mean_e[2]
    members = [sampler.decode(g.z, g.labels) for g in groups]
    mean_images = _decode(sampler, means, mean_e)
    out_z = torch.cat([result_z[None], neighbours_z])                       # (1 + m, z_dim)
    result_images = _decode(sampler, out_z, None if result_e is None else result_e.expand(out_z.shape[0], -1))
    return Arithmetic(groups, means, result_z, neighbours_z, mean_e, result_e, members, mean_images, result_images)


def save_arithmetic(res: Arithmetic, out: Path, force: bool = False) -> tuple[Path, Path]:
    """FILE.png: one row per group (its members, a gap, its decoded mean), then a row with the neighbours, a gap
    and the result, so the means and the result share the last column. FILE.npz: the vectors behind it."""
    out = Path(out)
    if out.suffix != ".png":
        raise UserError(f"arithmetic: --out must be a FILE.png (the vectors go beside it as FILE.npz), got {out}")
    npz = out.with_suffix(".npz")
    outputs.check_new("arithmetic", out, npz, force=force)
    outputs.out_folder("arithmetic", out.parent)
    gap = torch.ones_like(res.mean_images[:1])                              # a white cell, (1, C, H, W)
    k = max([m.shape[0] for m in res.member_images] + [res.result_images.shape[0] - 1])

    def row(left: torch.Tensor, last: torch.Tensor) -> torch.Tensor:      # (k + 2, C, H, W)
        return torch.cat([left, gap.expand(k + 1 - left.shape[0], -1, -1, -1), last])

    rows = [row(m, res.mean_images[i: i + 1]) for i, m in enumerate(res.member_images)]
    rows.append(row(res.result_images[1:], res.result_images[:1]))
    outputs.write_atomic(out, lambda tmp: viz.save_rows(rows, tmp, [f"{g.name}: {g.spec}" for g in res.groups]
                                                        + ["A - B + C"]))
    arrays = {f"{g.name.lower()}_z": g.z.numpy() for g in res.groups}
    arrays.update({f"{g.name.lower()}_labels": g.labels.numpy() for g in res.groups if g.labels is not None})
    arrays.update(means=res.means.numpy(), result=res.result_z.numpy(), neighbours=res.neighbours_z.numpy(),
                  groups=np.array([g.spec for g in res.groups]))
    if res.result_embed is not None:
        arrays.update(mean_embeds=res.mean_embeds.numpy(), result_embed=res.result_embed.numpy())
    outputs.write_atomic(npz, lambda tmp: np.savez_compressed(tmp, **arrays))
    return out, npz


# ------------------------------------------------------------------------------------------------------------------
# one point at a time: the main directions of G's latent space, a point between two samples (`gankit serve`'s sliders)


@dataclass
class Directions:
    vectors: torch.Tensor     # (k, z_dim): unit vectors in z, the first the direction of most change
    std: torch.Tensor         # (k,): the spread of the prior's draws along each vector (one unit of a slider)
    explained: torch.Tensor   # (k,): each component's share of the variance of G's first-layer features


class _Features(Exception):
    """Raised by the hook once G's first layer has run: the rest of G is not needed for its features."""

    def __init__(self, out: torch.Tensor):
        self.out = out


def _first_layer_features(sampler: Sampler, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """G's first-layer output (n, F) for z, flattened; G's images when G has no `net` of layers."""
    net = getattr(sampler.G, "net", None)
    if not isinstance(net, torch.nn.Sequential) or not len(net):
        return sampler.decode(z, labels).flatten(1)

    def stop(module, inputs, out):
        raise _Features(out)

    handle, out = net[0].register_forward_hook(stop), []
    try:
        for i in range(0, z.shape[0], 500):                                     # one batch of G at a time
            try:
                sampler.decode(z[i: i + 500], None if labels is None else labels[i: i + 500])
            except _Features as f:
                out.append(f.out.detach().float().flatten(1).cpu())
            else:
                raise RuntimeError("G's first layer did not run")
    finally:
        handle.remove()
    return torch.cat(out)


@torch.no_grad()
def principal_directions(sampler: Sampler, k: int = 8, n: int = 2000, seed: int = 0) -> Directions:
    """GANSpace (Harkonen et al. 2020), as they find them for BigGAN: PCA of G's first-layer features over n draws
    of the prior (torch.pca_lowrank), and each component carried back into z by least squares: the z displacement
    that moves the features along it. A PCA of z itself finds nothing, as the prior's draws spread alike in every
    direction. A conditional G's features are taken over draws of every class. Deterministic in `seed`."""
    if not 1 <= n <= 100_000 or k < 1:
        raise UserError(f"directions: need 1 <= n <= 100,000 draws and k >= 1 components, got n={n}, k={k}")
    gen = torch.Generator().manual_seed(seed)
    z = sampler.z(n, gen)                                                       # (n, z_dim)
    feats = _first_layer_features(sampler, z, sampler.labels(n, None, gen))    # (n, F)
    k = max(1, min(k, sampler.z_dim, feats.shape[1], n - 1))
    with torch.random.fork_rng(devices=[]):                                     # pca_lowrank draws from torch's RNG
        torch.manual_seed(seed)
        _, s, v = torch.pca_lowrank(feats, q=k, center=True)                    # v: (F, k)
    coords = (feats - feats.mean(0)) @ v                                        # (n, k)
    back = torch.linalg.lstsq(coords, z - z.mean(0)).solution                   # (k, z_dim): z ~ coords @ back
    vectors = back / back.norm(dim=1, keepdim=True).clamp_min(1e-12)
    total = (feats - feats.mean(0)).pow(2).sum().clamp_min(1e-12)
    return Directions(vectors, (z @ vectors.T).std(0), s.pow(2) / total)


def keep_on_prior(z: torch.Tensor, prior: str) -> torch.Tensor:
    """z moved back to where the prior's draws lie: onto the sphere, into the cube [-1, 1], or as it is."""
    support = registry.PRIORS[prior].support
    return project_to_sphere(z) if support == "sphere" else z.clamp(-1, 1) if support == "cube" else z


def move(sampler: Sampler, z: torch.Tensor, directions: Directions, amounts: torch.Tensor) -> torch.Tensor:
    """z (m, z_dim) moved by amounts (k,) along the directions, in units of the prior's spread along each."""
    amounts = torch.as_tensor(amounts, dtype=z.dtype)
    if amounts.shape != directions.std.shape:
        raise UserError(f"directions: {amounts.numel()} amounts given for {directions.std.numel()} directions")
    return keep_on_prior(z + (amounts * directions.std) @ directions.vectors, sampler.prior)


def between(sampler: Sampler, a: torch.Tensor, b: torch.Tensor, t: float, ya: int | None = None,
            yb: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The point at fraction t in [0, 1] of the path from a to b (z_dim,): slerp for the normal and sphere priors, lerp
    in the cube, as latent.interpolate chooses. A conditional G gets the classes' label embeddings mixed by t. Returns
    (z (1, z_dim), the image (1, C, H, W))."""
    _image_model(sampler, "interpolate", recordings=True)
    if not 0 <= t <= 1:
        raise UserError(f"interpolate: t must be in [0, 1], got {t}")
    tt = torch.tensor([float(t)])
    path = lerp if registry.PRIORS[sampler.prior].support == "cube" else slerp
    z = path(a[None], b[None], tt)[0]                                          # (1, z_dim)
    if not sampler.c_dim:
        return z, sampler.decode(z)
    if ya is None or yb is None:
        raise UserError("interpolate: a conditional model needs the class of both ends")
    with torch.no_grad():
        emb = _label_table(sampler.G).weight.detach().cpu()                     # (c_dim, c_embed_dim)
    return z, _decode(sampler, z, ((1 - t) * emb[ya] + t * emb[yb])[None])
