"""gankit from Python (a notebook, a script): the same steps as the command line, as functions.

    import gankit
    cfg = gankit.load_config("digits", steps=300)    # a preset or YAML file, then fields: gankit.Config
    run = gankit.train(cfg)                           # the run folder, a Path
    sampler = gankit.load(run)                        # a gankit.sample.Sampler: sampler(16) -> (images, labels)
    record = gankit.evaluate(run, ["fid", "pr"])      # record["results"]: each metric and its real-vs-real floor

Runs are given as a folder or as the name of one under `runs` ("runs", train's `out`), as on the command line.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from gankit import config as config_mod
from gankit.config import Config, argument, device_argument, load as _load, path_argument, quote
from gankit.errors import ConfigError, UserError

SEED_MAX = config_mod.SEED_LIMIT - 1
STEP_MAX = 10**12
# The command line's flags that messages of shared code name, as a Python caller writes them (in_python_terms)
_PYTHON_NAMES = {"class": "cls", "force": "force=True", "checkpoint": "step", "resume": "resume="}
_FLAG = re.compile(r"(?<![\w-])--([a-z][\w-]*)( ?)")


def in_python_terms(text: str) -> str:
    """A message of code shared with the command line, with its flags (--class, --force) as the arguments of the
    Python call (cls, force=True)."""
    def name(m: re.Match) -> str:
        said = _PYTHON_NAMES.get(m.group(1), m.group(1).replace("-", "_"))
        return said if said.endswith("=") else said + m.group(2)   # resume=RUN: the value follows at once
    return _FLAG.sub(name, text)


def _python_terms(fn):
    """The API function `fn`, whose UserErrors speak in Python's terms (in_python_terms), not in flags. The command
    line calls `fn` itself (the wrapper's __wrapped__), so that its messages keep naming the flags."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            e.args = (in_python_terms(str(e)),)
            raise
    return call


def _step(step) -> int | str | None:
    """A checkpoint's step: None (the latest), a step number, or "best" (the one keep_best kept)."""
    if isinstance(step, str) and step.strip() == "best":
        return "best"
    return argument("step", step, int, 0, STEP_MAX, optional=True)


def class_index(sampler, cls) -> int | None:
    """`cls` as a class index of `sampler`'s G: an index (3, or "3"), or a class name ("flower"), or None. An
    unconditional G says whether its data had classes (then training with them would give a class to ask for)."""
    if cls is None:
        return None
    names = list(getattr(sampler, "class_names", []))
    if not sampler.c_dim:
        raise ConfigError("cls", f"this G is not conditional: it was trained without classes, though its data has "
                                 f"{len(names)} "
                                 f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): train with cond "
                                 "projection to ask for one" if names else
                                 "this G is not conditional: it was trained without classes, and its data has none")
    if type(cls).__module__ == "numpy" and getattr(cls, "shape", None) == ():  # np.int64(3)
        cls = cls.item()
    if isinstance(cls, str) and cls in names:
        return names.index(cls)
    if isinstance(cls, str) and re.fullmatch(r"\s*\d+\s*", cls):
        cls = int(cls)
    known = ", ".join(f"{i} {n!r}" for i, n in enumerate(names[:10])) + (", ..." if len(names) > 10 else "")
    if isinstance(cls, bool) or not isinstance(cls, (int, str)):
        raise ConfigError("cls", f"expected a class index (int) or a class name (str), got {quote(cls)}"
                                 + (f"; the classes: {known}" if names else ""))
    if isinstance(cls, str) or not 0 <= cls < sampler.c_dim:
        raise ConfigError("cls", f"{quote(cls)} is not a class of this G; give an index in 0..{sampler.c_dim - 1}"
                                 + (f" or a name: {known}" if names else ""))
    return int(cls)


def _by_name(sampler):
    """The sampler, with `labels` (which sampler(n, cls=...) and the applications call) taking a class by index or
    by name (class_index). Set on the instance, so the Sampler keeps every field and method it has."""
    plain = sampler.labels

    def labels(n, cls=None, generator=None):
        return plain(n, class_index(sampler, cls), generator)
    sampler.labels = labels
    return sampler


@_python_terms
def show(images, *, nrow: int | None = None, n: int = 64, seed: int = 0, runs: str | Path = "runs"):
    """A picture to look at, as a PIL.Image (a notebook shows it as a cell's value): a grid of `images`, which are
    a tensor (N, C, H, W) in [-1, 1] as a sampler gives (or its (images, labels) pair), or uint8 (N, H, W, C) as
    FILE.npz of `gankit sample` holds; or of `n` samples (seed `seed`) of a run (a folder, a name under `runs`, a
    checkpoint or an export). 2-D points become a scatter plot. nrow: images per row [a square-ish grid]."""
    import io

    import numpy as np
    import torch
    from PIL import Image

    from gankit import viz

    nrow = argument("nrow", nrow, int, 1, 4096, optional=True)
    if isinstance(images, (str, os.PathLike)):
        sampler = load(images, runs=runs)
        images = sampler(argument("n", n, int, 1, 4096), generator=torch.Generator().manual_seed(
            argument("seed", seed, int, 0, SEED_MAX)))
    if isinstance(images, tuple) and images and isinstance(images[0], torch.Tensor):
        images = images[0]                                            # a sampler's (images, labels)
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:
        images = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1   # (N, H, W, C) -> [-1, 1]
    if not isinstance(images, torch.Tensor) or images.ndim not in (2, 4) or not len(images):
        raise ConfigError("images", "expected images (N, C, H, W) in [-1, 1], uint8 images (N, H, W, C), 2-D points "
                                    f"(N, 2) or a run, got {quote(images)}")
    if images.ndim == 2:
        buf = io.BytesIO()
        viz.save_scatter(images, buf)
        return Image.open(buf)
    return viz.grid_image(images, nrow or max(1, int(np.ceil(np.sqrt(len(images))))))


@_python_terms
def load_config(source: str | None = None, **fields) -> Config:
    """Defaults < a preset name (`gankit presets`) or YAML file < `fields`; validated. Raises ConfigError."""
    return _load(None if source is None else path_argument("source", source), fields)


@_python_terms
def train(config: Config | str | None = None, *, resume: str | Path | None = None, progress: bool = True,
          force: bool = False, **fields) -> Path:
    """Train as `config` says (a Config, a preset name or a YAML file; `fields` change it) and return the run folder.

    resume: a run folder or the name of one under `out`; it continues exactly where its last checkpoint stopped,
    with only the fields that may change on resume (steps, log_every, ...) taken from `fields`.
    progress: a progress bar; False prints one line every log_every steps.
    force: replace the run folder of an existing `name` (only a folder holding nothing but gankit's own files).
    """
    from gankit.tasks import table as tasks

    _check_flag("progress", progress)
    cfg, run_dir = train_config.__wrapped__(config, resume=resume, force=force, **fields)
    _log_to_stderr()
    return tasks.train(cfg, resume=run_dir, progress=progress, force=force)


@_python_terms
def train_config(config: Config | str | None = None, *, resume: str | Path | None = None, force: bool = False,
                 **fields) -> tuple[Config, Path | None]:
    """What train() with the same arguments would run, without running it (the command line's --dry-run): the
    validated Config, and the run folder it resumes (None for a new run)."""
    from gankit import run

    if _check_flag("force", force) and resume is not None:
        raise ConfigError("force", "replaces a run folder; it cannot go with resume")
    if resume is not None:
        if config is not None:
            raise ConfigError("resume", "continues a run with its own config; drop config and give only the fields "
                                        "that may change on resume (steps, ...)")
        fields = {k: config_mod.coerce(k, v) for k, v in fields.items()}  # each named and typed, as a file's
        run_dir = run.find_run(path_argument("resume", resume), fields.pop("out", Config.out))
        if not run_dir.is_dir():
            raise ConfigError("resume", f"{run_dir} is not a folder")
        return run.resume_config(run_dir, fields), run_dir
    if isinstance(config, Config):
        return config_mod.checked(config, **fields), None  # a Config built by hand has not been checked yet
    if config is None or isinstance(config, (str, os.PathLike)):
        return _load(None if config is None else path_argument("config", config), fields), None
    raise ConfigError("config", f"expected a gankit.Config, a preset name or a YAML file, got {quote(config)}")


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(name, f"expected True or False, got {quote(value)}")
    return value


def _log_to_stderr() -> None:
    """Outside the CLI nobody may have configured logging: show gankit's INFO lines (the data summary, ...)."""
    import logging

    logger = logging.getLogger("gankit")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("gankit: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@_python_terms
def load(run: str | Path, *, runs: str | Path = "runs", device: str = "cpu", step: int | None = None,
         weights: str = "ema"):
    """The generator of a run (its averaged G when it kept one; weights="raw": G as trained), a checkpoint file or
    an export folder, as a Sampler: `x, y = sampler(n, generator=torch.Generator().manual_seed(0))` gives x
    (n, C, H, W) in [-1, 1]; `sampler(n, guide="drs")` draws with D's help (gankit.guided: drs, mh, ddls), and
    `sampler.last_cost` says what that cost. A class is asked for by index or by name: `sampler(n, cls="3")`.
    step: a step number, or "best" (the checkpoint keep_best kept)."""
    from gankit.run import find_run
    from gankit.sample import load_sampler

    run, runs = path_argument("run", run), path_argument("runs", runs)
    device, step = device_argument("device", device), _step(step)
    return _by_name(load_sampler(find_run(run, runs), device, step, config_mod.to_type("weights", weights, str)))


@_python_terms
def write_samples(run: str | Path, out: str | Path, n: int = 64, *, seed: int = 0, cls=None,
                  truncation: float = 1.0, class_grid: bool = False, sheet: bool = False, guide: str | None = None,
                  guide_options=None, weights: str = "ema", step: int | None = None, device: str = "cpu",
                  runs: str | Path = "runs", force: bool = False) -> str:
    """Draw `n` samples of a run (a folder, a name under `runs`, a checkpoint or an export) into `out`, as `gankit
    sample` does: FILE.npz, FILE.png (a grid) or a folder (gankit.sample.save_samples); with class_grid, a FILE.png
    with one row per class and the same z down each column; with sheet, a numbered FILE.png to pick samples by index
    for arithmetic. guide: D-guided sampling (drs, mh, ddls; None: the run's own guide). Returns what was written, in
    words."""
    import torch

    from gankit.explore import save_sheet
    from gankit.run import find_run
    from gankit.sample import load_sampler, save_samples

    n, seed, truncation = argument("n", n, int, 1, 1_000_000), argument("seed", seed, int, 0, SEED_MAX), \
        _truncation(truncation)
    class_grid, sheet = _check_flag("class_grid", class_grid), _check_flag("sheet", sheet)
    force = _check_flag("force", force)
    sampler = load_sampler(find_run(path_argument("run", run), path_argument("runs", runs)), device, _step(step),
                           config_mod.to_type("weights", weights, str))  # load_sampler checks the device
    cls = class_index(sampler, cls)
    if guide_options is not None:
        sampler.options = guide_options
    per_sample = sampler.decode(sampler.z(1), sampler.labels(1, 0 if sampler.c_dim else None)).numel()
    rows = n * (sampler.c_dim if class_grid else 1)
    if rows * per_sample > 2**31:  # the samples are held as float32 on the CPU before they are written
        raise ConfigError("n", f"{rows} samples of {per_sample} values each need more than 8 GB; ask for fewer and "
                               "draw the rest with other seeds")
    gen, out = torch.Generator().manual_seed(seed), Path(path_argument("out", out))
    if class_grid:
        return _class_grid(sampler, n, gen, truncation, out, force)
    if sheet:
        save_sheet(sampler, n, seed, out, truncation, cls, force=force)
        return f"sheet of {n} numbered samples (seed {seed}) -> {out}"
    x, labels = sampler(n, generator=gen, truncation=truncation, cls=cls, guide=guide)
    save_samples(sampler, x, labels, out, force=force)
    cost = sampler.last_cost
    return f"{n} samples -> {out}" + (f"\nsampled with {cost.line()}" if cost is not None else "")


def _class_grid(sampler, n: int, generator, truncation: float, out: Path, force: bool) -> str:
    """write_samples' class grid: FILE.png, one row per class, the same z down each column."""
    from gankit import outputs, viz

    if out.suffix != ".png":
        raise ConfigError("class_grid", f"writes a FILE.png; got {out}")
    outputs.check_new("sample", out, force=force)
    outputs.out_folder("sample", out.parent)
    grid = sampler.class_grid(n, generator, truncation)
    outputs.write_atomic(out, lambda tmp: viz.save_grid(grid, tmp, nrow=n))
    return f"{sampler.c_dim} classes x {n} samples -> {out}"


@_python_terms
def interpolate(run: str | Path, out: str | Path, *, paths: int = 8, steps: int = 10, seed: int = 0, cls=None,
                truncation: float = 1.0, step: int | None = None, device: str = "cpu", runs: str | Path = "runs",
                force: bool = False) -> list[str]:
    """`paths` walks of `steps` points between pairs of latent draws (seed `seed`), as `gankit interpolate`:
    out/interpolation.png, .gif and .npz (an audio run's walks as clips). Returns the files written."""
    from gankit import explore

    sampler = _sampler(run, runs, device, step)
    paths, steps = argument("paths", paths, int, 1, 1_000_000), argument("steps", steps, int, 1, 1_000_000)
    interp = explore.interpolation(sampler, paths, steps, argument("seed", seed, int, 0, SEED_MAX),
                                   class_index(sampler, cls), _truncation(truncation))
    return [str(p) for p in explore.save_interpolation(interp, Path(path_argument("out", out)), force=force)]


@_python_terms
def arithmetic(run: str | Path, out: str | Path, a: str, b: str, c: str, *, seed: int = 0, sheet_n: int = 64,
               cls=None, class_n: int = 4, neighbours: int = 4, noise: float = 0.25, truncation: float = 1.0,
               step: int | None = None, device: str = "cpu", runs: str | Path = "runs",
               force: bool = False) -> list[str]:
    """DCGAN's latent arithmetic, as `gankit arithmetic`: mean(A) - mean(B) + mean(C), each group three or more
    indices of a numbered sheet ("4,9,17": `gankit sample --sheet` with the same seed, sheet_n, truncation and cls) or a
    class of a conditional G ("class:3", "class:cat"). Writes out (FILE.png) and FILE.npz; returns them."""
    from gankit import explore

    sampler = _sampler(run, runs, device, step)
    groups = [_class_group(sampler, name, spec) for name, spec in (("a", a), ("b", b), ("c", c))]
    seed, sheet_n = argument("seed", seed, int, 0, SEED_MAX), argument("sheet_n", sheet_n, int, 1, 1_000_000)
    neighbours, class_n = argument("neighbours", neighbours, int, 0, 10_000), argument("class_n", class_n, int, 1,
                                                                                       1_000_000)
    res = explore.arithmetic(sampler, *groups, seed, sheet_n, neighbours, noise,  # explore checks the noise
                             _truncation(truncation), class_index(sampler, cls), class_n)
    return [str(p) for p in explore.save_arithmetic(res, Path(path_argument("out", out)), force=force)]


def _sampler(run, runs, device, step):
    from gankit.run import find_run
    from gankit.sample import load_sampler

    return load_sampler(find_run(path_argument("run", run), path_argument("runs", runs)), device, _step(step))


def _truncation(truncation) -> float:
    truncation = config_mod.to_type("truncation", truncation, float)
    if not 0 < truncation <= 1:
        raise ConfigError("truncation", f"must be in (0, 1], got {quote(truncation)}")
    return truncation


def _class_group(sampler, name: str, spec: str) -> str:
    """arithmetic's group `name` (a, b or c): a class by name (class:cat) becomes class:K; class:K itself and sheet
    indices are explore.parse_group's to read."""
    text = config_mod.to_type(name, spec, str).strip()
    cls = text[len("class:"):].strip()
    if not text.startswith("class:") or not sampler.c_dim or cls.lstrip("-").isdigit():
        return spec
    try:
        return f"class:{class_index(sampler, cls)}"
    except ConfigError as e:
        raise ConfigError(name, f"{text}: {str(e).removeprefix('cls: ')}") from None


@_python_terms
def evaluate(run: str | Path, metrics: list[str] | str | None = None, *, n: int | None = None,
             step: int | None = None, features: str = "auto", seed: int = 0, device: str = "cpu",
             runs: str | Path = "runs", force: bool = False, show=None, guide: str = "none",
             weights: str = "ema", guide_options=None, truncation: float = 1.0) -> dict:
    """Score a run's checkpoint (the latest, that of `step`, or step="best": keep_best's) as `gankit eval` does;
    returns the record that is also written to RUN/eval/step-NNNNNNN.json and joins metrics.jsonl and TensorBoard.
    record["results"] holds each metric and, beside it, `<metric>_floor`: the same metric on real data against
    real data. guide: how the samples are drawn (none, drs, mh, ddls; its cost is record["guide_cost"]; guide_options a
    gankit.config.GuideOptions); weights: ema or raw; truncation: the truncation trick's psi in (0, 1]."""
    from gankit.metrics.evaluation import evaluate_run
    from gankit.run import find_run, record_evaluation

    metrics = _metric_names(metrics)
    n = argument("n", n, int, 1, config_mod.FIELD_MAX["eval_n"], optional=True)
    step = _step(step)
    seed, device = argument("seed", seed, int, 0, SEED_MAX), device_argument("device", device)
    features, force = _features(features), _check_flag("force", force)
    if show is not None and not callable(show):
        raise ConfigError("show", f"expected a function of the table's text, or None, got {quote(show)}")
    run_dir = find_run(path_argument("run", run), path_argument("runs", runs))
    _log_to_stderr()
    guide, weights = config_mod.to_type("guide", guide, str), config_mod.to_type("weights", weights, str)
    truncation = _truncation(truncation)
    record, json_path, md_path, table = evaluate_run(run_dir, metrics, n, step, features, seed, device,
                                                     force=force, show=show, guide=guide, weights=weights,
                                                     guide_options=guide_options, truncation=truncation)
    record_evaluation(run_dir, record)
    return {**record, "json": str(json_path), "markdown": str(md_path), "table": table}


@_python_terms
def evaluate_guides(run: str | Path, metrics: list[str] | str | None = None, *, guide: str | None = None,
                    step: int | None = None, runs: str | Path = "runs", **kwargs) -> list[dict]:
    """evaluate() as `gankit eval` runs it: with `guide` when given; else without a guide and, for a run whose config
    sets one, then with it too. Returns the records, in that order; kwargs are evaluate()'s."""
    from gankit import checkpoint
    from gankit.run import find_run

    guides = [guide or "none"]
    if guide is None:  # a run whose config sets a guide: scored without it, then with it
        try:
            own = checkpoint.read(find_run(path_argument("run", run), path_argument("runs", runs)),
                                  _step(step)).config.get("guide", "none")
        except UserError:  # not a run, or no such checkpoint: evaluate() below says so in its own words
            own = "none"
        guides += [own] if own != "none" else []
    return [evaluate.__wrapped__(run, metrics, step=step, runs=runs, guide=g, **kwargs) for g in guides]


def _metric_names(metrics) -> list[str] | None:
    """evaluate's metrics: None (the defaults), "fid,pr" or ["fid", "pr"]; every name a registered metric."""
    from gankit import metrics as registry

    if metrics is None:
        return None
    if isinstance(metrics, str):
        names = [s.strip() for s in metrics.split(",") if s.strip()]
    elif isinstance(metrics, (list, tuple)) and all(isinstance(m, str) for m in metrics):
        names = [m.strip() for m in metrics]
    else:
        raise ConfigError("metrics", f"expected a list of metric names or a comma-separated str, got {quote(metrics)}")
    known = registry.available()
    unknown = [m for m in names if m not in known]
    if not names or unknown:
        what = (f"{quote(unknown[0])} does not apply here (no metric has that name)" if unknown
                else "names no metric (None: the defaults)")
        raise ConfigError("metrics", f"{what}; choose from {', '.join(known)}")
    return names


def _features(features) -> str:
    from gankit.metrics.features import FEATURES

    features = config_mod.to_type("features", features, str)
    if features not in FEATURES:
        raise ConfigError("features", f"{quote(features)} is not one of {', '.join(FEATURES)}")
    return features


# ------------------------------------------------------------------------------------------------------------------
# the tasks' uses after training (gankit/tasks/<task>/): a run in, images or labels out, as `gankit inpaint |
# upscale | predict | classify`


@_python_terms
def inpaint(run: str | Path, images: str | Path, mask: str = "center", out: str | Path = "inpainted", *,
            cls: int | None = None, n: int | None = None, runs: str | Path = "runs", device: str = "cpu",
            seed: int = 0, **search) -> dict:
    """Fill the holes of `images` (FILE.npz, a folder, or "heldout": the images the run held out of training) from
    the G(z) whose known pixels match, with the run's G and D (Yeh et al. 2017). mask: center, random, half, or a
    file. `search` sets gankit.tasks.gan.inpaint.Search's fields (candidates, restarts, steps, prior_weight, window).
    Writes out/inpainted.npz and out/sheet.png (and results.json when the images have labels); returns the scores
    (class accuracy, PSNR on the hole, beside a mean fill and a nearest-neighbour fill)."""
    from gankit.tasks.gan.inpaint import inpaint as _inpaint
    from gankit.tasks.gan.search import make_search
    from gankit.run import find_run

    search = make_search(search)   # before the run is read: an unknown or bad field is named first
    run_dir = find_run(path_argument("run", run), path_argument("runs", runs))
    _log_to_stderr()
    return _inpaint(run_dir, images, mask, out, cls=cls, search=search, seed=seed, device=device, n=n,
                    progress=False)


@_python_terms
def upscale(run: str | Path, images: str | Path, out: str | Path = "upscaled", *, from_high_res: bool = False,
            runs: str | Path = "runs", device: str = "cpu") -> list[str]:
    """Upscale `images` (FILE.npz, a folder, or "heldout") with a `task: sr` run's G into the new folder `out`;
    originals (heldout, or from_high_res=True) are downscaled first and scored against bicubic. Returns the files
    written."""
    from gankit.tasks.sr.upscale import upscale_images
    from gankit.run import find_run

    run_dir = find_run(path_argument("run", run), path_argument("runs", runs))
    _log_to_stderr()
    return upscale_images(run_dir, images, out, from_high_res=from_high_res, device=device)


@_python_terms
def predict(run: str | Path, context: str | Path, futures: int = 8, out: str | Path = "predicted", *,
            n: int | None = None, seed: int = 0, runs: str | Path = "runs", device: str = "cpu") -> list[str]:
    """Sample `futures` (K) futures of each sequence of `context` (FILE.npz holding `frames` uint8 (N, T, H, W[, C]),
    or "heldout": the run's held-out sequences, then also scored) with a `task: predict` run's G into the new folder
    `out`: futures.npz (`futures` uint8 (N, K, horizon, H, W[, C])) and a GIF per sequence. Returns the files
    written."""
    from gankit.tasks.predict.futures import predict as _predict
    from gankit.run import find_run

    run_dir = find_run(path_argument("run", run), path_argument("runs", runs))
    _log_to_stderr()
    return _predict(run_dir, context, futures, out, n=n, seed=seed, device=device)


@_python_terms
def classify(run: str | Path, images: str | Path, out: str | Path | None = None, *,
             runs: str | Path = "runs") -> str:
    """Label `images` (FILE.npz, a folder, or "heldout") with a `task: ssl` run's classifier; with labels, its
    error too. Writes index,class,probability rows to `out` (a new CSV file) when given; returns a summary."""
    from gankit.tasks.ssl.classify import classify as _classify
    from gankit.run import find_run

    run_dir = find_run(path_argument("run", run), path_argument("runs", runs))
    _log_to_stderr()
    return _classify(run_dir, images, out)
