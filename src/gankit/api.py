"""gankit from Python (a notebook, a script): the same steps as the command line, as functions.

    import gankit
    cfg = gankit.load_config("digits", steps=300)    # a preset or YAML file, then fields: gankit.Config
    run = gankit.train(cfg)                           # the run folder, a Path
    sampler = gankit.load(run)                        # a gankit.sample.Sampler: sampler(16) -> (images, labels)
    record = gankit.evaluate(run, ["fid", "pr"])      # record["results"]: each metric and its real-vs-real floor

Runs are given as a folder or as the name of one under `runs` ("runs", train's `out`), as on the command line.
"""

from __future__ import annotations

import os
from pathlib import Path

from gankit import config as config_mod
from gankit.config import Config, argument, device_argument, load as _load, path_argument, quote
from gankit.errors import ConfigError, UserError

SEED_MAX = config_mod.SEED_LIMIT - 1
STEP_MAX = 10**12


def load_config(source: str | None = None, **fields) -> Config:
    """Defaults < a preset name (`gankit presets`) or YAML file < `fields`; validated. Raises ConfigError."""
    return _load(None if source is None else path_argument("source", source), fields)


def train(config: Config | str | None = None, *, resume: str | Path | None = None, progress: bool = True,
          **fields) -> Path:
    """Train as `config` says (a Config, a preset name or a YAML file; `fields` change it) and return the run folder.

    resume: a run folder or the name of one under `out`; it continues exactly where its last checkpoint stopped,
    with only the fields that may change on resume (steps, log_every, ...) taken from `fields`.
    progress: a progress bar; False prints one line every log_every steps.
    """
    from gankit import run, tasks

    _check_flag("progress", progress)
    run_dir = None
    if resume is not None:
        if config is not None:
            raise UserError("train: resume continues the run's own config; pass only fields such as steps=")
        fields = {k: config_mod.coerce(k, v) for k, v in fields.items()}  # each named and typed, as a file's
        run_dir = run.find_run(path_argument("resume", resume), fields.pop("out", Config.out))
        if not run_dir.is_dir():
            raise UserError(f"resume: {run_dir} is not a folder")
        cfg = run.resume_config(run_dir, fields)
    elif isinstance(config, Config):
        cfg = config_mod.checked(config, **fields)  # a Config built by hand has not been checked yet
    elif config is None or isinstance(config, (str, os.PathLike)):
        cfg = _load(None if config is None else path_argument("config", config), fields)
    else:
        raise ConfigError("config", f"expected a gankit.Config, a preset name or a YAML file, got {quote(config)}")
    _log_to_stderr()
    return tasks.train(cfg, resume=run_dir, progress=progress)


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


def load(run: str | Path, *, runs: str | Path = "runs", device: str = "cpu", step: int | None = None):
    """The generator of a run (its averaged G when it kept one), a checkpoint file or an export folder, as a
    Sampler: `x, y = sampler(n, generator=torch.Generator().manual_seed(0))` gives x (n, C, H, W) in [-1, 1]."""
    from gankit.run import find_run
    from gankit.sample import load_sampler

    run, runs = path_argument("run", run), path_argument("runs", runs)
    device, step = device_argument("device", device), argument("step", step, int, 0, STEP_MAX, optional=True)
    return load_sampler(find_run(run, runs), device, step)


def evaluate(run: str | Path, metrics: list[str] | str | None = None, *, n: int | None = None,
             step: int | None = None, features: str = "auto", seed: int = 0, device: str = "cpu",
             runs: str | Path = "runs", force: bool = False, show=None) -> dict:
    """Score a run's checkpoint (the latest, or that of `step`) as `gankit eval` does; returns the record that is
    also written to RUN/eval/step-NNNNNNN.json and joins metrics.jsonl and TensorBoard. record["results"] holds
    each metric and, beside it, `<metric>_floor`: the same metric on real data against real data."""
    from gankit.metrics.evaluation import evaluate_run
    from gankit.run import find_run, record_evaluation

    metrics = _metric_names(metrics)
    n = argument("n", n, int, 1, config_mod.FIELD_MAX["eval_n"], optional=True)
    step = argument("step", step, int, 0, STEP_MAX, optional=True)
    seed, device = argument("seed", seed, int, 0, SEED_MAX), device_argument("device", device)
    features, force = _features(features), _check_flag("force", force)
    if show is not None and not callable(show):
        raise ConfigError("show", f"expected a function of the table's text, or None, got {quote(show)}")
    run_dir = find_run(path_argument("run", run), path_argument("runs", runs))
    _log_to_stderr()
    record, json_path, md_path, table = evaluate_run(run_dir, metrics, n, step, features, seed, device,
                                                     force=force, show=show)
    record_evaluation(run_dir, record)
    return {**record, "json": str(json_path), "markdown": str(md_path), "table": table}


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
# the applications (gankit/apps/): a run in, images or labels out, as `gankit inpaint | upscale | classify`


def inpaint(run: str | Path, images: str | Path, mask: str = "center", out: str | Path = "inpainted", *,
            cls: int | None = None, n: int | None = None, runs: str | Path = "runs", device: str = "cpu",
            seed: int = 0, **search) -> dict:
    """Fill the holes of `images` (FILE.npz, a folder, or "heldout": the images the run held out of training) from
    the G(z) whose known pixels match, with the run's G and D (Yeh et al. 2017). mask: center, random, half, or a
    file. `search` sets gankit.apps.inpaint.Search's fields (candidates, restarts, steps, prior_weight, window).
    Writes out/inpainted.npz and out/sheet.png (and results.json when the images have labels); returns the scores
    (class accuracy, PSNR on the hole, beside a mean fill and a nearest-neighbour fill)."""
    from gankit.apps.inpaint import inpaint as _inpaint
    from gankit.apps.search import make_search
    from gankit.run import find_run

    search = make_search(search)   # before the run is read: an unknown or bad field is named first
    run_dir = find_run(path_argument("run", run), path_argument("runs", runs))
    _log_to_stderr()
    return _inpaint(run_dir, images, mask, out, cls=cls, search=search, seed=seed, device=device, n=n,
                    progress=False)


def upscale(run: str | Path, images: str | Path, out: str | Path = "upscaled", *, from_high_res: bool = False,
            runs: str | Path = "runs", device: str = "cpu") -> list[str]:
    """Upscale `images` (FILE.npz, a folder, or "heldout") with a `task: sr` run's G into the new folder `out`;
    originals (heldout, or from_high_res=True) are downscaled first and scored against bicubic. Returns the files
    written."""
    from gankit.apps.upscale import upscale_images
    from gankit.run import find_run

    run_dir = find_run(path_argument("run", run), path_argument("runs", runs))
    _log_to_stderr()
    return upscale_images(run_dir, images, out, from_high_res=from_high_res, device=device)


def classify(run: str | Path, images: str | Path, out: str | Path | None = None, *,
             runs: str | Path = "runs") -> str:
    """Label `images` (FILE.npz, a folder, or "heldout") with a `task: ssl` run's classifier; with labels, its
    error too. Writes index,class,probability rows to `out` (a new CSV file) when given; returns a summary."""
    from gankit.apps.classify import classify as _classify
    from gankit.run import find_run

    run_dir = find_run(path_argument("run", run), path_argument("runs", runs))
    _log_to_stderr()
    return _classify(run_dir, images, out)
