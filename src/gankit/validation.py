"""The config's checks: validate(cfg) raises a ConfigError naming the first bad field. Each value on its own first, then
how the values fit the task, the model and the data set (their registry entries' properties), then the remaining
combinations. config.checked() calls it; it reads the config through its fields and never builds one."""

from __future__ import annotations

import math
import re
from dataclasses import fields

from gankit import registry
from gankit.errors import ConfigError, clip, quote

SEED_LIMIT = 2**32  # NumPy's seeds are 32-bit
FRAMES_MAX = 1000  # frames, context and horizon of task predict
VARIETY_MAX = 64  # futures per context of predict's variety loss: each one is a G forward of the whole batch
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
FIELD_MAX = {"z_dim": 1 << 14, "g_width": 1 << 13, "d_width": 1 << 13, "g_layers": 64, "d_layers": 64,
             "batch_size": 1 << 20, "d_steps": 1000, "g_steps": 1000, "vbn_ref_size": 1 << 16, "c_dim": 1 << 16,
             "c_embed_dim": 1 << 14, "mbdisc": 1 << 12, "pack": 64, "grid_n": 4096, "eval_n": 10**7, "n_points": 10**8,
             "steps": 10**12, "img_size": 4096, "sample_rate": 192_000, "audio_length": 1 << 22}
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128)}
# keep_best's results: the metric of eval_metrics that gives each, and whether a lower value is better
KEEP_BEST = {"fid": ("fid", True), "kid": ("kid", True), "precision": ("pr", False), "recall": ("pr", False),
             "density": ("dc", False), "coverage": ("dc", False), "recognisable": ("recognisable", False),
             "class_kl": ("recognisable", True), "class_acc": ("class_acc", False), "is": ("is", False),
             "cas": ("cas", False), "modes": ("modes", False), "hq_pct": ("modes", False),
             "reverse_kl": ("modes", True)}
_DATA_USAGE = registry.either([d.usage() for d in registry.DATASETS.values()])  # "digits, ..., folder:PATH or ..."
_FILE_USAGE = registry.either([registry.DATASETS[p].usage() for p in registry.names(registry.DATASETS, files=True)])


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(name, message)


def check(cfg) -> None:
    """Raise a ConfigError naming the first bad field of a config whose fields hold their types (values.check_types):
    each value on its own first, then how the values fit the task, the model and the data set, then the remaining
    combinations."""
    _check_names(cfg)
    _check_ranges(cfg)
    _check_task(cfg)
    _check_model(cfg)
    _check_combinations(cfg)


def _check_names(cfg) -> None:
    """Every field with choices holds one of them (the registry's names for the kinds it declares), and `data` names
    a data set."""
    for f in fields(cfg):
        choices = f.metadata.get("choices")
        value = getattr(cfg, f.name)
        _check(choices is None or value in choices, f.name,
               f"{quote(value)} is not one of {', '.join(map(str, choices or ()))}")
    data = registry.dataset(cfg.data)
    _check(data is not None, "data", f"unknown data set {quote(cfg.data)}; use one of {_DATA_USAGE}")
    _check(cfg.stream != "on" or data.files, "stream", f"on streams {_FILE_USAGE} data; {cfg.data} is held in memory")
    _check(cfg.memory_budget_gb > 0, "memory_budget_gb", f"must be > 0, got {quote(cfg.memory_budget_gb)}")
    _check(cfg.data_workers >= 0, "data_workers", f"must be >= 0, got {quote(cfg.data_workers)}")
    _check(not (cfg.xflip and data.points), "xflip", "mirrors images, not 2-D points")


def _check_ranges(cfg) -> None:
    """Numbers within their ranges, and the fields with a syntax of their own (background, diffaug, device)."""
    for name in ("z_dim", "g_width", "d_width", "g_layers", "d_layers", "steps", "batch_size", "d_steps", "g_steps",
                 "r1_every", "vbn_ref_size", "c_embed_dim", "pack", "grid_n", "eval_n", "n_points", "log_every",
                 "sample_every"):
        _check(getattr(cfg, name) >= 1, name, f"must be a positive integer, got {quote(getattr(cfg, name))}")
    for name, top in FIELD_MAX.items():  # far above any real use; past them a run would only exhaust memory or time
        _check(getattr(cfg, name) <= top, name, f"must be at most {top}, got {quote(getattr(cfg, name))}")
    for name in ("c_dim", "mbdisc", "ckpt_every", "eval_every", "inst_noise_steps", "seed", "max_rollbacks",
                 "collapse_steps", "holdout", "labels_per_class"):
        _check(getattr(cfg, name) >= 0, name, f"must be >= 0, got {quote(getattr(cfg, name))}")
    _check(cfg.seed < SEED_LIMIT, "seed", f"must be below 2**32 = {SEED_LIMIT}, got {quote(cfg.seed)}")
    _check(0 < cfg.rollback_lr_factor < 1, "rollback_lr_factor", f"must be in (0, 1), got {cfg.rollback_lr_factor}")
    _check(cfg.background in BACKGROUNDS or bool(_COLOUR.match(cfg.background)), "background",
           f"{quote(cfg.background)} is not one of {', '.join(BACKGROUNDS)} or #RRGGBB")
    for name in ("g_lr", "d_lr"):
        _check(getattr(cfg, name) > 0, name, f"must be > 0, got {quote(getattr(cfg, name))}")
    for name in ("beta1", "beta2"):
        _check(0 <= getattr(cfg, name) < 1, name, f"must be in [0, 1), got {quote(getattr(cfg, name))}")
    for name in ("gp_weight", "r1_gamma", "r2_gamma", "inst_noise", "slope", "ema_rampup", "unlabeled_weight",
                 "adv_weight", "ssl_entropy", "ssl_consistency", "l1_weight"):
        _check(getattr(cfg, name) >= 0, name, f"must be >= 0, got {quote(getattr(cfg, name))}")
    _check(0 <= cfg.lr_decay_start <= 1, "lr_decay_start", f"must be in [0, 1], got {quote(cfg.lr_decay_start)}")
    _check(0 < cfg.label_smooth <= 1, "label_smooth", f"real target must be in (0, 1], got {quote(cfg.label_smooth)}")
    _check(0 <= cfg.ema_decay < 1, "ema_decay", f"must be in [0, 1), got {quote(cfg.ema_decay)}")
    bad_aug = [op for op in cfg.diffaug.split(",") if op and op not in registry.DIFFAUG_OPS]
    _check(not bad_aug, "diffaug",
           f"unknown op {clip(','.join(bad_aug))}; use a comma list of {', '.join(registry.DIFFAUG_OPS)}")
    _check(bool(registry.DEVICE.match(cfg.device)), "device",
           f"{quote(cfg.device)} is not one of auto, cpu, cuda, cuda:N")


def _check_task(cfg) -> None:
    """The fields a task does not offer keep their defaults; a task's own fields fit it (registry.TASKS)."""
    task = registry.TASKS[cfg.task]
    _check(cfg.model in task.models, "model",
           f"task {cfg.task} uses model {registry.either(task.models)}, got {cfg.model}")
    _check(task.conditional or cfg.cond == "none", "cond", f"task {cfg.task} has no conditional models")
    _check(task.packing or cfg.pack == 1, "pack", f"task {cfg.task} has no packing")
    _check(task.eval_metrics or not cfg.eval_metrics, "eval_metrics",
           f"task {cfg.task} scores itself on the held-out examples (holdout); leave eval_metrics empty")
    _check(task.points or not cfg.is_points, "data", f"task {cfg.task} works on images, not on 2-D points")
    _check(not task.needs_holdout or cfg.holdout > 0, "holdout",
           f"task {cfg.task} scores its classifier on held-out examples: set holdout to how many to keep "
           "out of training (e.g. 100)")
    if "ssl_consistency" in task.fields:  # other tasks ignore the field, whatever ema_decay is
        _check(not cfg.ssl_consistency or cfg.ema_decay > 0, "ssl_consistency",
               "compares D with its weight average, which needs ema_decay > 0")
    if task.adversarial_loss:
        allowed = [name for name, loss in registry.LOSSES.items() if cfg.task in loss.tasks]
        _check(cfg.loss in allowed, "loss", f"task {cfg.task} uses {registry.either(allowed)}")
    if "sr_scale" in task.fields:
        _check(cfg.img_size % cfg.sr_scale == 0 and cfg.img_size // cfg.sr_scale >= 2, "sr_scale",
               f"img_size {cfg.img_size} must be a multiple of sr_scale {cfg.sr_scale}, with at least 2 "
               "low-resolution pixels a side")
    _check_sequences(cfg, task)


def _check_sequences(cfg, task: registry.Task) -> None:
    """Sequence data for the task of sequences and for no other; its frames fit the context and the horizon."""
    data = registry.dataset(cfg.data)
    _check(data.sequences == task.sequences, "data",
           f"task {cfg.task} trains on sequences of frames: use " + registry.either(
               d.usage() for d in registry.DATASETS.values() if d.sequences) if task.sequences else
           f"{cfg.data} holds sequences of frames, for task predict; task {cfg.task} needs images")
    if not task.sequences:
        return
    for name in ("frames", "context", "horizon"):
        _check(1 <= getattr(cfg, name) <= FRAMES_MAX, name, f"must be an integer from 1 to {FRAMES_MAX}, got "
                                                            f"{quote(getattr(cfg, name))}")
    _check(cfg.context + cfg.horizon <= cfg.frames, "frames", f"{cfg.frames} frames cannot hold context "
                                                              f"{cfg.context} + horizon {cfg.horizon}")
    _check(cfg.l1_weight > 0 or cfg.adv_weight > 0, "l1_weight", "and adv_weight are both 0: G would learn nothing")
    _check(isinstance(cfg.variety_k, int) and 1 <= cfg.variety_k <= VARIETY_MAX, "variety_k",
           f"must be an integer from 1 (off) to {VARIETY_MAX} futures per context, got {quote(cfg.variety_k)}")
    _check(cfg.variety_k == 1 or cfg.l1_weight > 0, "variety_k",
           "picks the closest future by its L1 term, which l1_weight 0 turns off: set l1_weight > 0 or variety_k 1")
    _check(math.isfinite(cfg.ms_weight) and cfg.ms_weight >= 0, "ms_weight",
           f"must be a number >= 0 (0 = off), got {quote(cfg.ms_weight)}")
    for name in ("g_norm", "d_norm"):
        _check(getattr(cfg, name) != "virtual_batch", name, f"task {cfg.task} has no virtual batch norm")
    _check(not cfg.xflip and not cfg.diffaug, "xflip" if cfg.xflip else "diffaug",
           f"task {cfg.task} does not augment its sequences; leave it off")


def _check_model(cfg) -> None:
    """The model builds the image size and norms asked for, and models the data set (registry.MODELS, DATASETS)."""
    model, data = registry.MODELS[cfg.model], registry.dataset(cfg.data)
    if model.sizes:
        _check(cfg.img_size in model.sizes or (cfg.img_size == 0 and cfg.data.startswith("folder:")), "img_size",
               f"{cfg.model} supports {', '.join(map(str, model.sizes))}, got {quote(cfg.img_size)}")
    else:
        _check(cfg.img_size >= registry.MIN_IMG_SIZE, "img_size",
               f"must be >= {registry.MIN_IMG_SIZE}, got {quote(cfg.img_size)}")
    he = registry.either(n for n, m in registry.MODELS.items() if "he" in m.inits)
    _check(cfg.g_init in model.inits, "g_init", f"{cfg.model} has only its own initialisation (default); he is for "
                                                f"{he}")
    conv = [m for m in registry.TASKS[cfg.task].models if registry.MODELS[m].feature_maps]
    hint = f"use it with {' or '.join(conv)}" if conv else f"task {cfg.task} has no model with feature maps"
    for name in ("g_norm", "d_norm"):
        norm = registry.NORMS[getattr(cfg, name)]
        _check(model.feature_maps or not norm.feature_maps, name, f"{norm.name} norm needs feature maps: {hint}")
    _check(not data.channels or cfg.channels in (0, data.channels), "channels",
           f"{cfg.data} has {data.channels} channels of its own: use channels 0 or {data.channels}")
    if data.points:
        point_models = registry.names(registry.MODELS, points=True)
        _check(model.points, "model", f"2-D data set {cfg.data} needs model {' or '.join(point_models)}")
        _check(not cfg.diffaug, "diffaug", "DiffAugment works on images, not on 2-D points")
    _check_audio(cfg, model, data)


def _check_audio(cfg, model: registry.Model, data: registry.Dataset) -> None:
    """Audio models on recordings only, and a clip length the model builds."""
    audio_models = registry.either(n for n, m in registry.MODELS.items() if m.audio)
    _check(bool(model.audio) or not data.audio, "model", f"{cfg.data} holds recordings: use model {audio_models}")
    _check(not model.audio or data.audio, "model", f"{cfg.model} models recordings (data fsdd or audio:PATH), not "
                                                   f"{cfg.data}")
    _check(cfg.sample_rate >= 1000, "sample_rate", f"must be >= 1000 Hz, got {quote(cfg.sample_rate)}")
    _check(cfg.audio_length >= 1, "audio_length", f"must be a positive integer, got {quote(cfg.audio_length)}")
    if not data.audio:
        return
    _check(not cfg.diffaug, "diffaug", "DiffAugment works on images, not on recordings")
    _check(not cfg.xflip, "xflip", "would play recordings backwards; leave it off for audio")
    if model.audio == "waveform":
        m = registry.WAVEFORM_MULTIPLE
        _check(cfg.audio_length % m == 0, "audio_length", f"{cfg.model} makes multiples of {m} samples (e.g. 4096, "
                                                          f"8192, 16384), got {quote(cfg.audio_length)}")
    if model.audio == "spectrogram":
        _check(cfg.audio_length % cfg.img_size == 0 and cfg.audio_length <= cfg.img_size ** 2, "audio_length",
               f"{cfg.model} cuts a clip into img_size {cfg.img_size} frames that overlap: a multiple of "
               f"{cfg.img_size} up to {cfg.img_size ** 2}, got {quote(cfg.audio_length)}")


def _check_combinations(cfg) -> None:
    """Packing, labels and the run's folder name."""
    _check(cfg.batch_size % cfg.pack == 0, "pack", f"batch_size {cfg.batch_size} must be a multiple of {cfg.pack}")
    _check(cfg.pack == 1 or cfg.cond == "none", "pack", "packing is for unconditional models (cond: none)")
    _check(cfg.d_norm != "virtual_batch" or cfg.vbn_ref_size % cfg.pack == 0, "vbn_ref_size",
           f"must be a multiple of pack ({cfg.pack})")
    _check(cfg.cond != "none" or cfg.c_dim == 0, "c_dim", "a class count needs cond: concat or projection")
    _check(cfg.c_dim != 1, "c_dim", "a conditional model needs at least 2 classes")
    _check(cfg.guide == "none" or (registry.TASKS[cfg.task].guided and cfg.d_norm != "virtual_batch"), "guide",
           f"D-guided sampling needs a run of task {registry.tasks_with(guided=True)} whose D scores single samples "
           "(d_norm other than virtual_batch)")
    if cfg.keep_best:
        metric = KEEP_BEST.get(cfg.keep_best, (None,))[0]
        _check(metric is not None, "keep_best", f"{quote(cfg.keep_best)} is not a result it can keep; use one of "
                                                f"{', '.join(KEEP_BEST)}")
        _check(metric in [m.strip() for m in cfg.eval_metrics.split(",")], "keep_best",
               f"{cfg.keep_best} comes from metric {metric}: add it to eval_metrics")
    if cfg.name:
        _check("/" not in cfg.name and "\\" not in cfg.name and cfg.name not in (".", "..") and len(cfg.name) <= 200,
               "name", f"{quote(cfg.name)} is not a folder name")
