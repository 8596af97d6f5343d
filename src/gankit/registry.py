"""Every choice gankit offers by name, declared once, with the properties other modules ask about.

The config takes its allowed values and its error messages from these tables; the modules that implement a choice
(losses.py, latent.py, models/, data/, augment.py, the tasks) implement exactly the names listed here, and a test
(tests/test_registry.py) checks that each one of them does. A module that needs to know something about a choice
asks its entry's properties (`is_critic(cfg.loss)`, `MODELS[cfg.model].points`), never compares with a name.
Plain data only: config.py reads this without importing torch, so that `gankit --help` stays fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, TypeVar

MIN_IMG_SIZE = 4  # the smallest image any model builds
# the devices a run or a command may name: auto, cpu, cuda or cuda:N (config field `device`, --device)
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# the sizes models/r3gan.py builds: s0 * 2^k, s0 from 4 to 7 (its first feature map), k >= 1, up to 128 px
R3GAN_SIZES = tuple(sorted({s0 * 2**k for s0 in range(4, 8) for k in range(1, 6) if s0 * 2**k <= 128}))
WAVEFORM_MULTIPLE = 4**5  # a waveform model's G upsamples 4x five times (WaveGAN), from audio_length / 1024 samples


@dataclass(frozen=True)
class Task:
    """What a run trains (config field `task`). The trainer itself is gankit.tasks.TRAINERS[name]."""
    name: str
    help: str
    models: tuple[str, ...]          # the values `model` may take: the one declaration of which model serves which task
    conditional: bool = False        # `cond` may be set (labels as a second input)
    eval_metrics: bool = False       # `eval_metrics` applies (else the task scores itself on held-out examples)
    points: bool = False             # 2-D point data sets apply
    packing: bool = False            # PacGAN's `pack` applies
    processes: bool = False          # runs under torchrun with several processes
    needs_holdout: bool = False      # scores itself on held-out examples, so `holdout` must be > 0
    adversarial_loss: bool = True    # the `loss` field applies (ssl's D is a classifier with its own loss)
    fields: tuple[str, ...] = ()     # config fields only this task reads (their checks apply to it alone)
    sequences: bool = False          # trains on sequences of frames (Dataset.sequences), and only on them
    # what a trained run of the task offers: the CLI, the explorer, bench and sampling ask these, never the name
    samples: bool = True             # G draws samples from z alone: the explorer's grid, sliders and arithmetic
    guided: bool = False             # D scores single samples as real or fake: D-guided sampling (`guide`) applies
    named_by_model: bool = False     # runs are named and listed by their model (dcgan-mnist), else by task (ssl-mnist)
    bench_reference: bool = False    # bench times gankit's GAN step, and --reference pytorch/examples' DCGAN beside it
    use: str = ""                    # the command that puts a trained run to the task's own use (checkpoint.require)
    tools: tuple[str, ...] = ()      # the explorer's tools for that use, beside sampling


TASKS = {t.name: t for t in (
    Task("gan", "G against D", ("dcgan", "r3gan", "mlp", "wavegan", "specgan"), conditional=True, eval_metrics=True,
         points=True, packing=True, processes=True,
         guided=True, named_by_model=True, bench_reference=True, use="inpaint", tools=("inpaint",)),
    Task("ssl", "D as a (K+1)-way classifier learning from few labels (Salimans et al. 2016)", ("mlp",),
         needs_holdout=True, adversarial_loss=False,
         fields=("labels_per_class", "unlabeled_weight", "ssl_entropy", "ssl_consistency"),
         use="classify", tools=("classify",)),
    Task("sr", "G upscales low-resolution images (SRGAN, Ledig et al. 2017)", ("srresnet",),
         fields=("sr_scale", "adv_weight"),
         samples=False, use="upscale", tools=("upscale",)),
    Task("predict", "G predicts the next frames of a sequence from the past ones and z, several futures (SAVP, Lee "
         "et al. 2018)", ("unet",), needs_holdout=True, sequences=True,
         fields=("digits", "frames", "context", "horizon", "l1_weight", "adv_weight", "variety_k", "ms_weight"),
         samples=False, use="predict", tools=("futures",)),
)}


@dataclass(frozen=True)
class Loss:
    """An adversarial loss (config field `loss`), implemented by losses.d_loss and losses.g_loss."""
    name: str
    help: str
    # D is a critic: its outputs are unbounded scores, not probabilities, so the D-collapse alarm (which reads them
    # as D(x) and D(G(z))) does not apply, a gradient penalty of gp_weight is added to D's loss, and torch.compile
    # keeps D eager (the penalty is a double backward).
    critic: bool = False
    # relativistic: D scores a real and a generated example as a pair, d_real - d_fake, and G's loss needs D's logits
    # on real data too (losses.g_loss's d_real)
    relativistic: bool = False
    tasks: tuple[str, ...] = ("gan", "sr", "predict")  # the tasks whose `loss` may be this one


LOSSES = {x.name: x for x in (
    Loss("minimax", "Goodfellow et al. 2014's min-max log-likelihood; G's loss saturates when D wins early"),
    Loss("ns", "non-saturating: G maximises log D(G(z)) instead (Goodfellow et al. 2014)"),
    Loss("ls", "least squares (Mao et al. 2017)"),
    Loss("hinge", "hinge (Lim & Ye 2017; Miyato et al. 2018)"),
    Loss("wgan-gp", "Wasserstein critic with a gradient penalty (Gulrajani et al. 2017)", critic=True,
         tasks=("gan",)),  # sr's D judges image quality beside a content loss; no critic was tried there
    Loss("rpgan", "relativistic pairing (Jolicoeur-Martineau 2019), R3GAN's loss with r1_gamma and r2_gamma "
         "(Huang et al. 2024)", relativistic=True, tasks=("gan",)),
)}


@dataclass(frozen=True)
class Guide:
    """A way of sampling with D's help (gankit.guided), chosen by `guide` at sampling time."""
    name: str
    help: str
    uses_d: bool = True


GUIDES = {g.name: g for g in (
    Guide("none", "G's samples as they come", uses_d=False),
    Guide("drs", "discriminator rejection sampling (Azadi et al. 2019): keep a sample with D's calibrated odds"),
    Guide("mh", "Metropolis-Hastings with D as the density ratio (Turner et al. 2019, MH-GAN)"),
    Guide("ddls", "Langevin steps in latent space with D as an energy (Che et al. 2020, DDLS)"),
)}


@dataclass(frozen=True)
class Prior:
    """A latent prior (config field `prior`), drawn by latent.sample_z."""
    name: str
    help: str
    formula: str        # how z is drawn, written into exports for other runtimes
    # where draws lie: "space" (all of R^z_dim), "cube" ([-1, 1]^z_dim: straight paths stay inside, edits clamp), or
    # "sphere" (radius sqrt(z_dim): truncation, means and edits project back onto it)
    support: str


PRIORS = {p.name: p for p in (
    Prior("normal", "N(0, I)", "z ~ N(0, I)", "space"),
    Prior("uniform", "on [-1,1]^z_dim", "z ~ U[-1, 1]^z_dim", "cube"),
    Prior("sphere", "on the sphere of radius sqrt(z_dim), the survey's advice",
          "z uniform on the sphere of radius sqrt(z_dim): a normal draw scaled to norm sqrt(z_dim)", "sphere"),
)}


@dataclass(frozen=True)
class Model:
    """An architecture (config field `model`), built by models.build; its tasks are declared in TASKS."""
    name: str
    help: str
    sizes: tuple[int, ...] | None = None  # the img_size values it builds; None = any img_size >= MIN_IMG_SIZE
    feature_maps: bool = True             # convolutional: instance norm (per-channel spatial statistics) applies
    points: bool = False                  # models 2-D point data sets too
    # models recordings (audio data sets), and only them: "waveform" (G makes samples, audio_length a multiple of
    # WAVEFORM_MULTIPLE) or "spectrogram" (G makes img_size x img_size spectrograms of audio_length samples)
    audio: str = ""
    inits: tuple[str, ...] = ("default",)  # the values `g_init` may take with it

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(t.name for t in TASKS.values() if self.name in t.models)


MODELS = {m.name: m for m in (
    Model("dcgan", "Radford et al. 2016: strided convolutions both ways", sizes=(16, 32, 64, 128)),
    Model("r3gan", "Huang et al. 2024: residual G and D without normalisation layers (R3GAN), for any size s0 "
          "* 2^k, s0 from 4 to 7", sizes=R3GAN_SIZES),
    Model("mlp", "fully connected, for 2-D points and small images", feature_maps=False, points=True,
          inits=("default", "he")),
    Model("srresnet", "SRGAN's residual G and strided-conv D, for task sr"),
    Model("wavegan", "Donahue et al. 2019: 1-D transposed convolutions to a waveform, D with phase shuffle",
          audio="waveform"),
    Model("specgan", "Donahue et al. 2019: a DCGAN on img_size x img_size log-magnitude spectrograms, heard "
          "through Griffin-Lim", sizes=(16, 32, 64, 128), audio="spectrogram"),
    Model("unet", "task predict: an encoder-decoder over frames stacked as channels, z at the bottleneck; D judges "
          "(context, future)"),
)}


@dataclass(frozen=True)
class Dataset:
    """A data set (config field `data`), loaded by gankit.data.load. A `prefix` entry is followed by a PATH."""
    name: str
    help: str
    points: bool = False      # 2-D points (N, 2), not images: image-only options (xflip, DiffAugment) do not apply
    files: bool = False       # read from the user's files: resize and stream apply
    generated: bool = False   # drawn on the fly: n_points examples
    channels: int = 0         # > 0: the set's own channel count, which `channels` cannot convert
    prefix: bool = False      # the name is "NAME:" followed by a path
    audio: bool = False       # recordings (N, 1, audio_length) at sample_rate: only the audio models apply
    sequences: bool = False   # sequences of frames (N, T, C, H, W): for task predict, and only for it

    def usage(self) -> str:
        """How a user writes it: the name, or the prefix followed by PATH."""
        return f"{self.name}PATH" if self.prefix else self.name


DATASETS = {d.name: d for d in (
    Dataset("digits", "scikit-learn's 1,797 8x8 digits, embedded: no download"),
    Dataset("mnist", "MNIST through torchvision, or its IDX files under data_dir"),
    Dataset("fashion-mnist", "Fashion-MNIST through torchvision"),
    Dataset("cifar10", "CIFAR-10 through torchvision"),
    Dataset("stacked-mnist", "three MNIST digits as the channels of one RGB image, 1,000 modes; Metz et al. 2017",
            generated=True, channels=3),
    Dataset("ring", "PacGAN's 2-D mixture of 8 Gaussians on the unit circle", points=True, generated=True),
    Dataset("grid", "PacGAN's 2-D mixture of 25 Gaussians on a 5x5 grid", points=True, generated=True),
    Dataset("fake", "random images that need no file, for smoke runs and benchmarks", generated=True),
    Dataset("folder:", "a folder of images", files=True, prefix=True),
    Dataset("shards:", "tar shards in WebDataset's layout: a folder of .tar, a .tar, or a {000..099} pattern",
            files=True, prefix=True),
    Dataset("fsdd", "the Free Spoken Digit Dataset's recordings under data_dir; its test split held out",
            audio=True),
    Dataset("audio:", "a folder of .wav (or .flac, .ogg) recordings; sub-folders are classes", prefix=True,
            audio=True),
    Dataset("moving-mnist", "MNIST digits moving and bouncing in the frame (Srivastava et al. 2015), n_points "
            "sequences from the IDX files under data_dir", generated=True, channels=1, sequences=True),
    Dataset("smoving-mnist", "stochastic moving MNIST: a new random direction and speed at each bounce (Denton & "
            "Fergus 2018)", generated=True, channels=1, sequences=True),
    Dataset("video:", "a folder of sequences: sub-folders of numbered frames (PNG/JPEG) or .npy/.npz arrays "
            "(T, H, W[, C]) uint8", prefix=True, sequences=True),
)}


@dataclass(frozen=True)
class DiffAugOp:
    """A DiffAugment op (a name in the comma-separated config field `diffaug`), implemented in augment.OPS."""
    name: str
    help: str


DIFFAUG_OPS = {o.name: o for o in (
    DiffAugOp("color", "random brightness, saturation and contrast per image"),
    DiffAugOp("translation", "shift by up to 1/8 of the size, zero fill"),
    DiffAugOp("cutout", "zero a random square of half the size"),
)}


@dataclass(frozen=True)
class Norm:
    """A normalisation layer (config fields `g_norm`, `d_norm`), made by models.blocks.make_norm."""
    name: str
    help: str
    g: bool = True              # G may use it (spectral norm constrains D's Lipschitz constant only)
    feature_maps: bool = False  # needs feature maps (per-channel spatial statistics)


NORMS = {n.name: n for n in (
    Norm("batch", "batch norm (Ioffe & Szegedy 2015)"),
    Norm("virtual_batch", "virtual batch norm: statistics of a fixed reference batch (Salimans et al. 2016)"),
    Norm("instance", "instance norm (Ulyanov et al. 2016)", feature_maps=True),
    Norm("layer", "layer norm (Ba et al. 2016)"),
    Norm("none", "no normalisation"),
    Norm("spectral", "spectral normalisation of D's weights (Miyato et al. 2018)", g=False),
)}


_Entry = TypeVar("_Entry")


def entry(table: Mapping[str, _Entry], kind: str, name: str) -> _Entry:
    """table[name], or a ValueError that lists the known names (for callers that did not go through the config)."""
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(table)}")
    return table[name]


def is_critic(loss: str) -> bool:
    """Whether D under this loss is a critic (unbounded scores: gradient penalty, no collapse alarm, D eager)."""
    return entry(LOSSES, "loss", loss).critic


def task(name: str) -> Task | None:
    """The entry of a run's `task` (None for a name this version does not know: a run of a later version)."""
    return TASKS.get(name)


def tasks_with(**properties) -> str:
    """The tasks whose entries have these properties, as a message lists them: 'gan', 'gan or ssl'."""
    return either(names(TASKS, **properties))


def is_relativistic(loss: str) -> bool:
    """Whether G's loss under this loss needs D's logits on real data as well (a relativistic pairing)."""
    return entry(LOSSES, "loss", loss).relativistic


def dataset(name: str) -> Dataset | None:
    """The entry of a `data` value: a name, or a prefix entry followed by a non-empty path; None if unknown."""
    if name in DATASETS and not DATASETS[name].prefix:
        return DATASETS[name]
    return next((d for d in DATASETS.values() if d.prefix and name.startswith(d.name) and len(name) > len(d.name)),
                None)


def names(table: Mapping[str, object], **properties) -> tuple[str, ...]:
    """The names of the entries whose attributes equal `properties`, in declaration order."""
    return tuple(n for n, e in table.items() if all(getattr(e, k) == v for k, v in properties.items()))


def either(words) -> str:
    """'a', 'a or b', 'a, b or c': how a message lists what is allowed."""
    words = [str(w) for w in words]
    return " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"
