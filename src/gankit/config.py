"""The training config: one frozen dataclass, presets as YAML files, validated once.

Every field is also a `gankit train --field value` flag, so a config file, a preset and the command line speak the
same names. `load()` merges defaults < preset or file < flags; `checked()` is the one way in for every entry (a file,
the command line, the Python API's fields, a Config built by hand): each value is coerced to its field's type
(`coerce`, by gankit.values), then `validate()` (gankit.validation) raises a ConfigError naming the first bad field in
Python's terms (the field's name, which is also the flag's); after that the config is frozen and saved as
`config.yaml` in the run folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from gankit import registry
from gankit.errors import QUOTE_CHARS, ConfigError, UserError, clip, quote  # noqa: F401
# the checks and the argument readers live beside this module; their names stay importable from here
from gankit.validation import (BACKGROUNDS, FIELD_MAX, FRAMES_MAX, KEEP_BEST, SEED_LIMIT,  # noqa: F401
                               VARIETY_MAX, check)
from gankit.values import argument, check_types, device_argument, path_argument, to_type  # noqa: F401

PRESET_DIR = Path(__file__).parent / "configs"

# Each kind of choice is declared once, in gankit.registry; these names are its views that other modules import.
TASKS = tuple(registry.TASKS)  # the trainer of each is gankit.tasks.TRAINERS[name]
TASK_MODELS = {name: task.models for name, task in registry.TASKS.items()}
MODELS = tuple(registry.MODELS)
DCGAN_SIZES = registry.MODELS["dcgan"].sizes
LOSSES = tuple(registry.LOSSES)
PRIORS = tuple(registry.PRIORS)
NORMS = registry.names(registry.NORMS, g=True)  # G's; D also takes spectral
D_NORMS = tuple(registry.NORMS)
DATASETS = registry.names(registry.DATASETS, prefix=False)  # plus the prefixes of FILE_DATA followed by a PATH
POINT_DATASETS = registry.names(registry.DATASETS, points=True)
FILE_DATA = registry.names(registry.DATASETS, files=True)  # data read from files: resize and stream apply
DIFFAUG_OPS = tuple(registry.DIFFAUG_OPS)


def _listing(table, sep: str = ", ") -> str:
    """'name (help), ...': a field's help built from the registry entries it chooses between."""
    return sep.join(f"{e.name} ({e.help})" for e in table.values())


def _f(default: Any, help: str, choices: tuple | None = None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Config:
    # --- what is trained ---
    task: str = _f("gan", "; ".join(f"{t.name}: {t.help}" for t in registry.TASKS.values()), TASKS)

    # --- data ---
    data: str = _f("digits", "data set: " + registry.either(  # the prefixes say what their PATH is
        f"{d.usage()} ({d.help})" if d.prefix else d.name for d in registry.DATASETS.values()))
    data_dir: str = _f("data", "where torchvision data sets live (downloaded there when online and missing)")
    img_size: int = _f(32, "square image size in pixels; " + "; ".join(
        f"{m.name}: {registry.either(m.sizes)}" for m in registry.MODELS.values() if m.sizes))
    channels: int = _f(0, "image channels: 0 keeps the data set's own, 1 = grayscale, 3 = RGB", (0, 1, 3))
    n_points: int = _f(50_000, "examples drawn for a generated data set (" + ", ".join(
        registry.names(registry.DATASETS, generated=True)) + ")")
    background: str = _f("white", "folder images with transparency are composited onto this colour: white, black, "
                                  "gray or #RRGGBB")
    resize: str = _f("crop", "folder/shards images that are not square: crop (shorter side to img_size, centre "
                             "square), pad (longer side, black borders) or stretch", ("crop", "pad", "stretch"))
    xflip: bool = _f(False, "also show D every image mirrored left-right (stylegan2-ada's --mirror): doubles the "
                            "data set; the flip follows from the index drawn, so it is seeded and exact on resume")
    stream: str = _f("auto", "folder/shards: decode batches in DataLoader workers instead of holding the set in "
                             "memory; auto = when the set as uint8 exceeds memory_budget_gb", ("auto", "on", "off"))
    memory_budget_gb: float = _f(4.0, "stream auto: the largest data set (uint8 bytes per process) held in memory")
    data_workers: int = _f(0, "streaming: DataLoader worker processes per training process; 0 = the cores per "
                              "process less one (at least 1, at most 8)")
    holdout: int = _f(0, "examples kept out of training, to measure inpainting, upscaling or the ssl classifier on "
                         "images no model saw (the first of the metrics classifier's held-out part); 0 = none")
    labels_per_class: int = _f(0, "ssl: labelled training examples kept per class (chosen by seed), the rest "
                                  "unlabelled; 0 = every label (task gan ignores it)")
    sample_rate: int = _f(16_000, "audio data: recordings are resampled to this rate in Hz")
    audio_length: int = _f(16_384, "audio data: samples per clip (longer clips keep their loudest window, shorter "
                                   "ones are padded with silence); wavegan: a multiple of "
                                   f"{registry.WAVEFORM_MULTIPLE}, specgan: a multiple of img_size, at most "
                                   "img_size squared")

    # --- model ---
    model: str = _f("dcgan", "architecture: " + _listing(registry.MODELS, "; "), MODELS)
    z_dim: int = _f(100, "latent dimension")
    prior: str = _f("normal", "latent prior: " + _listing(registry.PRIORS), PRIORS)
    g_width: int = _f(64, "generator width: channels of its last hidden layer (dcgan) or hidden units (mlp)")
    d_width: int = _f(64, "discriminator width: channels of its first layer (dcgan) or hidden units (mlp)")
    g_layers: int = _f(3, "hidden layers in G (mlp), or residual blocks per resolution (r3gan)")
    d_layers: int = _f(3, "hidden layers in D (mlp), or residual blocks per resolution (r3gan)")
    g_init: str = _f("default", "G's initial weights: default (each model's own: dcgan N(0, 0.02) as Radford et al., "
                                "mlp PyTorch's, r3gan its fix-up) or he (mlp: He et al. 2015's normal for G's "
                                "activation, so that a deep G varies with z from the first step instead of "
                                "collapsing to one image)", ("default", "he"))
    g_norm: str = _f("batch", "normalisation in G (r3gan has none: it ignores g_norm and d_norm)", NORMS)
    d_norm: str = _f("batch", "normalisation in D", D_NORMS)
    vbn_ref_size: int = _f(64, "virtual batch norm: size of the fixed reference batch")
    g_act: str = _f("relu", "activation in G (r3gan: always leaky ReLU, g_act and d_act do not apply)",
                    ("relu", "leaky_relu"))
    d_act: str = _f("leaky_relu", "activation in D", ("relu", "leaky_relu"))
    slope: float = _f(0.2, "negative slope of leaky_relu")
    g_up: str = _f("deconv", "dcgan G upsampling: transposed conv, nearest+conv, or zero-insertion unpooling+conv",
                   ("deconv", "nearest", "unpool"))
    d_down: str = _f("strided", "dcgan D downsampling: strided conv, conv+avgpool, or conv+maxpool",
                     ("strided", "avgpool", "maxpool"))
    cond: str = _f("none", "conditioning on labels: none, concat (Mirza & Osindero), projection (Miyato & Koyama), "
                           "or auto = projection when the data has classes (a folder's default: one sub-folder per "
                           "class), else none", ("none", "concat", "projection", "auto"))
    c_dim: int = _f(0, "number of classes; 0 = taken from the data set when cond is not none")
    c_embed_dim: int = _f(16, "size of the learned label embedding")
    mbstd: bool = _f(False, "minibatch standard deviation feature in D (Karras et al. 2018)")
    mbdisc: int = _f(0, "minibatch discrimination kernels in D (Salimans et al. 2016); 0 = off")
    pack: int = _f(1, "PacGAN packing: D judges this many samples jointly (Lin et al. 2018); 1 = off")

    # --- objective ---
    loss: str = _f("ns", "adversarial loss (ns = non-saturating)", LOSSES)
    gp_weight: float = _f(10.0, "gradient-penalty weight of a critic's loss: " + " or ".join(
        registry.names(registry.LOSSES, critic=True)))
    r1_gamma: float = _f(0.0, "R1 penalty weight gamma on real data (Mescheder et al. 2018); 0 = off")
    guide: str = _f("none", "D-guided sampling that `gankit sample` and the sampler use for this run unless told "
                            "otherwise: " + _listing(registry.GUIDES), tuple(registry.GUIDES))
    r2_gamma: float = _f(0.0, "R2 penalty weight gamma on generated data (R3GAN, Huang et al. 2024, with loss "
                              "rpgan and r1_gamma); 0 = off")
    r1_every: int = _f(1, "lazy R1 (Karras et al. 2020): the penalty on every r1_every-th step only, weighted "
                          "r1_every x gamma")
    label_smooth: float = _f(1.0, "one-sided label smoothing: D's target for real examples (1.0 = off)")
    inst_noise: float = _f(0.0, "instance noise: initial std of Gaussian noise on D's inputs; 0 = off")
    inst_noise_steps: int = _f(0, "steps over which instance noise anneals linearly to 0; 0 = the whole run")
    feature_matching: bool = _f(False, "G matches the mean of D's last features on real data (Salimans et al.)")
    diffaug: str = _f("", "DiffAugment policy on D's inputs, comma-separated: " + _listing(registry.DIFFAUG_OPS))
    ema_decay: float = _f(0.0, "exponential moving average of G's weights (e.g. 0.999; task ssl: of D's, the "
                               "classifier's); 0 = off")
    ema_rampup: float = _f(0.0, "EMA warm-up (stylegan2-ada): the averaging horizon 1 / (1 - decay) is at most "
                                "ema_rampup x the steps done, so early weights fade fast; 0 = off")
    unlabeled_weight: float = _f(1.0, "ssl: weight of D's real-vs-generated loss on unlabelled data beside its "
                                      "supervised loss")
    ssl_entropy: float = _f(0.0, "ssl: weight of the entropy of D's class prediction on unlabelled data (Dai et al. "
                                  "2017's conditional entropy term); 0 = off")
    ssl_consistency: float = _f(0.0, "ssl: weight of the consistency of D's class prediction on unlabelled data "
                                      "with its weight average's on another distortion of the same images "
                                      "(mean teacher, Tarvainen & Valpola 2017; needs ema_decay); 0 = off")
    sr_scale: int = _f(4, "sr: upscaling factor: G maps img_size / sr_scale pixels to img_size", (2, 4, 8))
    adv_weight: float = _f(1e-3, "sr, predict: weight of the adversarial loss beside the pixel loss (0 = the "
                                 "regression baseline with the same G: SRResNet for sr)")
    digits: int = _f(2, "moving-mnist, smoving-mnist: digits moving in each sequence", (1, 2))
    frames: int = _f(20, "predict: frames per sequence (moving-mnist's length; video:PATH clips are cut into windows "
                         "of this many)")
    context: int = _f(5, "predict: frames given to G (the past)")
    horizon: int = _f(10, "predict: frames G predicts after the context (the future)")
    l1_weight: float = _f(10.0, "predict: weight of the L1 distance to the true future beside adv_weight times the "
                                "adversarial loss (pix2pix, SAVP)")
    variety_k: int = _f(1, "predict: the variety loss (best of many; Gupta et al. 2018, Bhattacharyya et al. 2018): "
                           "k futures of each context are drawn and only the closest one's L1 term counts, so G "
                           "covers the possible futures instead of their blurred mean; 1 = off")
    ms_weight: float = _f(0.0, "predict: weight of the mode-seeking term (MSGAN, Mao et al. 2019): two futures of "
                               "one context are pushed apart, 1 / (|G(c, z1) - G(c, z2)| / |z1 - z2| + 1e-5); 0 = off")

    # --- optimisation ---
    steps: int = _f(2000, "generator updates to train for")
    batch_size: int = _f(64, "examples per minibatch (real and generated alike)")
    g_lr: float = _f(2e-4, "Adam learning rate of G")
    d_lr: float = _f(2e-4, "Adam learning rate of D")
    beta1: float = _f(0.5, "Adam beta1 (DCGAN's 0.5 damps oscillation)")
    beta2: float = _f(0.999, "Adam beta2")
    lr_decay_start: float = _f(1.0, "fraction of the run after which both learning rates decay linearly to 0 at "
                                    "the end (1.0 = constant)")
    d_steps: int = _f(1, "D updates per G update")
    g_steps: int = _f(1, "G updates per training step")
    d_batching: str = _f("separate", "real and fake reach D as separate batches (survey) or one mixed batch",
                         ("separate", "mixed"))
    max_rollbacks: int = _f(3, "divergence guard: non-finite losses or gradients roll training back to the last good "
                               "state; after this many rollbacks the run stops")
    rollback_lr_factor: float = _f(0.5, "divergence guard: each rollback multiplies both learning rates by this")
    collapse_steps: int = _f(200, "D-collapse alarm: warn when D(x) >= 0.95 and D(G(z)) <= 0.05 for this many steps; "
                                  "0 = off")

    # --- run ---
    seed: int = _f(0, "random seed (rank is added under torchrun)")
    device: str = _f("auto", "auto, cpu, cuda or cuda:N")
    precision: str = _f("auto", "arithmetic of the training step: fp32, bf16 (autocast), or auto = bf16 where the "
                                "hardware runs it fast (CUDA; CPUs with AMX or AVX512-BF16), else fp32",
                        ("auto", "fp32", "bf16"))
    compile: str = _f("off", "torch.compile G and D with this mode (compile time is reported; on CPU it did not pay "
                             "back in our measurements)", ("off", "default", "reduce-overhead", "max-autotune"))
    channels_last: bool = _f(True, "dcgan: NHWC memory layout, faster convolutions on CPU and GPU")
    reuse_fake: bool = _f(True, "G's update reuses the batch G generated for the last D update, as pytorch/examples' "
                                "dcgan does (one G forward per step instead of two)")
    log_every: int = _f(50, "steps between metric records")
    sample_every: int = _f(500, "steps between sample grids from the fixed noise")
    ckpt_every: int = _f(1000, "steps between checkpoints (one is always written at the end)")
    eval_every: int = _f(0, "steps between evaluations; 0 = only at the end when eval_metrics is set")
    eval_metrics: str = _f("", "metrics to compute during training, comma-separated (see `gankit eval --help`)")
    eval_n: int = _f(2500, "generated samples per evaluation")
    keep_best: str = _f("", "keep checkpoints/best.pt, the checkpoint of the best evaluation so far by this result of "
                            "eval_metrics (fid, kid, precision, recognisable, ...; lower wins for fid, kid, class_kl "
                            "and reverse_kl); empty = off")
    grid_n: int = _f(64, "images in a sample grid")
    out: str = _f("runs", "folder that holds run folders")
    name: str = _f("", "run folder name; empty = <model>-<data>, numbered when taken")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def is_points(self) -> bool:
        return self.data in POINT_DATASETS


FIELDS = {f.name: f for f in fields(Config)}
# Fields that may change when a run is resumed: how long and how it is watched, not what is trained; and the
# recovery fields of a run that diverged (learning rates and the divergence guard), which change no shape.
RESUMABLE_FIELDS = ("steps", "log_every", "sample_every", "ckpt_every", "eval_every", "eval_metrics", "eval_n",
                    "device", "precision", "compile", "channels_last", "g_lr", "d_lr", "max_rollbacks",
                    "rollback_lr_factor", "collapse_steps", "stream", "memory_budget_gb", "data_workers", "keep_best")


def background_rgb(name: str) -> tuple[int, int, int]:
    """The RGB triple of a `background` value (validated)."""
    if name in BACKGROUNDS:
        return BACKGROUNDS[name]
    return tuple(int(name[i: i + 2], 16) for i in (1, 3, 5))
# Fields of older versions, translated when a saved config is read: amp (bf16 autocast, applied on CUDA only).
LEGACY_FIELDS = {"amp": lambda v: {"precision": "bf16" if str(v).lower() in ("1", "true", "yes", "on") else "fp32"}}


CONFIG_FILE_BYTES = 1 << 20  # a config file holds a few dozen fields: a few kB


def _unknown(name: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(name, FIELDS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(clip(name), f"unknown field in {clip(where)}{hint}")


def coerce(name: str, value: Any) -> Any:
    """Convert a YAML, command-line or Python value to the field's type; errors name the field."""
    if name not in FIELDS:
        raise _unknown(str(name), "config")
    return to_type(name, value, type(FIELDS[name].default))


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


# Keys of a config file that are no field: `description`, one line on what the file is for (`gankit presets`)
NOT_FIELDS = ("description",)


def preset_description(name: str) -> str:
    """The `description:` line of a preset (or config file); without one, the file's first comment line."""
    text = read_yaml(name, keep=NOT_FIELDS).get("description")
    if text is None:
        path = Path(name) if Path(name).is_file() else PRESET_DIR / f"{name}.yaml"
        text = next((line.lstrip("# ") for line in path.read_text(encoding="utf-8").splitlines()
                     if line.startswith("#")), "")
    return " ".join(str(text).split())


class _Refused(Exception):
    """What _Loader refuses in a config file (the file's name is added by read_yaml)."""


class _Loader(yaml.SafeLoader):
    """yaml.safe_load's loader, but a key given twice is refused (YAML keeps the last one silently), and so are
    anchors and aliases (&a, *a): a few hundred bytes of nested aliases expand to gigabytes before any value is
    checked, and a config file has no use for them."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(f"line {event.start_mark.line + 1}: anchors and aliases (&name, *name) are not accepted "
                           "in a config file; write each value out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(f"line {line}: merge keys (<<) are not accepted in a config file; write each field out")
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise _Refused(f"{quote(key)} is given twice (lines {seen[key]} and {line}); keep one")
            except TypeError:  # a list or mapping as a key
                raise _Refused(f"line {line}: a key must be a field name, got {quote(key)}") from None
            seen[key] = line
        return super().construct_mapping(node, deep)


def read_yaml(source: str, keep: tuple[str, ...] = ()) -> dict:
    """A config file path, or the name of a preset shipped with gankit: its fields (and of NOT_FIELDS, those in
    `keep`)."""
    path = Path(source)
    if not path.is_file():
        preset = PRESET_DIR / f"{source}.yaml"
        if not preset.is_file():
            raise UserError(f"config: no file or preset named {quote(source)}; presets: {', '.join(presets())}")
        path = preset
    try:
        if path.stat().st_size > CONFIG_FILE_BYTES:
            raise UserError(f"config: {path} holds {path.stat().st_size} bytes; a config file is a few kB of "
                            f"field: value lines (at most {CONFIG_FILE_BYTES})")
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
    except UnicodeDecodeError as e:
        raise UserError(f"config: {path} is not UTF-8 text (byte {e.start} cannot be decoded)") from None
    except _Refused as e:
        raise UserError(f"config: {path}: {e}") from None
    except (OSError, yaml.YAMLError, ValueError, RecursionError) as e:
        raise UserError(f"config: cannot read {path}: {e}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise UserError(f"config: {path} must hold a mapping of field: value")
    for key in raw:
        if key not in FIELDS and key not in LEGACY_FIELDS and key not in NOT_FIELDS:
            raise _unknown(str(key), str(path))
    raw = {k: v for k, v in raw.items() if k not in NOT_FIELDS or k in keep}
    return _translate_legacy(raw, str(path))


def _translate_legacy(values: Mapping[str, Any], where: str) -> dict:
    """Fields of older versions in their present form; an old name beside its new one is refused (which wins?)."""
    out = dict(values)
    for key in [k for k in out if k in LEGACY_FIELDS]:
        new = LEGACY_FIELDS[key](out.pop(key))
        both = [k for k in new if k in out]
        if both:
            raise ConfigError(key, f"is the old name of {both[0]} and {where} gives both; keep {both[0]}")
        out.update(new)
    return out


def load(source: str | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults < preset or YAML file < overrides, then checked (coerced and validated). A folder of images not
    otherwise configured follows its data (folder_defaults)."""
    values: dict = dict(read_yaml(source)) if source else {}
    values.update(_translate_legacy(overrides or {}, "the overrides"))
    return checked(folder_defaults(values))


# What a folder of the user's images trains with unless the fields are given: the averaged G with its warm-up that
# the presets keep (a short run's average is then G itself, a long run's the horizon of ema_decay), the image size
# of the images (img_size 0: setup.load_parts picks a size the model builds) and its class sub-folders as classes.
FOLDER_DEFAULTS = {"ema_decay": 0.999, "ema_rampup": 0.05}


def folder_defaults(values: Mapping[str, Any]) -> dict:
    """`values` with FOLDER_DEFAULTS, img_size 0 (a model with fixed sizes) and cond auto (a conditional task,
    without packing) filled in where a folder of images is the data and they are not given."""
    out = dict(values)
    data = registry.dataset(str(out.get("data", Config.data)))
    if data is None or data.name != "folder:":
        return out
    for key, value in FOLDER_DEFAULTS.items():
        out.setdefault(key, value)
    model, task = registry.MODELS.get(str(out.get("model", Config.model))), registry.TASKS.get(str(out.get(
        "task", Config.task)))
    if model is not None and model.sizes:
        out.setdefault("img_size", 0)
    if task is not None and task.conditional and str(out.get("pack", 1)) == "1":
        out.setdefault("cond", "auto")
    return out


def ema_initial_share(ema_decay: float, ema_rampup: float, steps: int) -> float:
    """The share of G's initial weights still in its average after `steps` updates: the product of the decays of
    step.ema_decay (decay^steps without warm-up). Above one half, the averaged G looks like an untrained one."""
    if not ema_decay:
        return 0.0
    log_share, k = 0.0, 0
    while k < steps:  # the warm-up's decays, until they reach ema_decay (at most 1 / (1 - ema_decay) steps)
        decay = min(ema_decay, 1.0 - 1.0 / max(1.0, ema_rampup * (k + 1))) if ema_rampup else ema_decay
        if decay <= 0:
            return 0.0
        if decay == ema_decay:
            break
        log_share, k = log_share + math.log(decay), k + 1
    return math.exp(log_share + (steps - k) * math.log(ema_decay))


@dataclass(frozen=True)
class GuideOptions:
    """The settings of D-guided sampling (gankit.guided), each checked here: a ConfigError names the one at fault."""
    drs_percentile: float = 80.0   # gamma at this percentile of F: higher keeps fewer samples, closer to the data
    mh_steps: int = 20             # proposals per chain (Turner et al. use up to 640)
    ddls_steps: int = 20           # Langevin steps per sample
    ddls_step_size: float = 0.01   # eps, the Langevin step size
    calibration_n: int = 1000      # real images (and as many G samples) for the calibration
    max_proposals: int = 200       # drs: proposals per kept sample before it gives up

    def __post_init__(self):
        checks = [("drs_percentile", 0 <= self.drs_percentile < 100, "in [0, 100)"),
                  ("mh_steps", 1 <= self.mh_steps <= 10_000, "in 1..10000"),
                  ("ddls_steps", 1 <= self.ddls_steps <= 10_000, "in 1..10000"),
                  ("ddls_step_size", 0 < self.ddls_step_size <= 1, "in (0, 1]"),
                  ("calibration_n", 16 <= self.calibration_n <= 100_000, "in 16..100000"),
                  ("max_proposals", 2 <= self.max_proposals <= 100_000, "in 2..100000")]
        for name, ok, what in checks:
            if not ok:
                raise ConfigError(name, f"must be {what}, got {getattr(self, name)}")


def from_saved(saved: Mapping[str, Any], command: str) -> Config:
    """The config a checkpoint holds, checked as a config file would be (a crafted one must not reach the loaders);
    fields of later versions are dropped, those of earlier ones translated."""
    try:
        return load(None, {k: v for k, v in saved.items() if k in FIELDS or k in LEGACY_FIELDS})
    except UserError as e:
        raise UserError(f"{command}: the checkpoint's config is not valid ({e})") from None


def validate(cfg: Config) -> None:
    """Raise a ConfigError naming the first bad field: each field's type (values.check_types), then each value on its
    own, how the values fit the task, the model and the data set, and the remaining combinations (validation.check)."""
    check_types(cfg)
    check(cfg)


def checked(values: Config | Mapping[str, Any] | None = None, **changes) -> Config:
    """The one way a Config is made: `values` (a Config, or a mapping of fields) changed by `changes`, each value
    coerced to its field's type (coerce: "100" and 100.0 are 100, 2.5 for an int is refused), then validated. A
    ConfigError names the first bad field."""
    if values is None:
        values = {}
    elif isinstance(values, Config):
        values = {f.name: getattr(values, f.name) for f in fields(Config)}
    elif not isinstance(values, Mapping):
        raise UserError(f"config: expected a Config or a mapping of field: value, got {quote(values)}")
    merged = _translate_legacy({**values, **changes}, "the fields")
    cfg = Config(**{str(k): coerce(str(k), v) for k, v in merged.items()})
    validate(cfg)
    return cfg


def dump(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)

