"""gankit's command line: parse, validate, call the library. No training or metric logic lives here.

A user error prints one line naming the problem and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gankit.errors import ConfigError, Terminated, UserError

# The library's arguments that a command spells as another flag, or that are no config field: a ConfigError naming
# one of them is shown with its flag (main). Config fields are their own flags, and their errors name them as they are.
FLAGS = {"resume": "--resume", "force": "--force", "config": "--config", "cls": "--class", "step": "--checkpoint",
         "class_grid": "--class-grid", "n": "--n"}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument gives one line (no usage block) and exit code 2, and flags are never
    abbreviated (--lr must not silently mean --lr_decay_start)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401
        _say(f"{self.prog}: error: {message}")
        raise SystemExit(2)


def _add_force(p) -> None:
    p.add_argument("--force", action="store_true", help="replace output files that exist (refused without it)")


def _int_in(lo: int, hi: int, what: str):
    """An argparse type: an integer in [lo, hi] (counts are bounded so that a typo cannot ask for terabytes)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected {what} in {lo}..{hi}, got {value}")
        return value
    return parse


_positive_int = _int_in(1, 1_000_000, "a positive integer")
_seed = _int_in(0, 2**32 - 1, "a seed")
_step = _int_in(0, 10**12, "a step number")


def _class_arg(text: str) -> str:
    """--class: a class index or a class name of the run, resolved once the run is loaded (api.class_index)."""
    if not text.strip() or len(text) > 200:
        raise argparse.ArgumentTypeError(f"expected a class index or a class name, got {text[:40]!r}")
    return text.strip()


def _class_groups(args, sampler) -> None:
    """arithmetic's --a/--b/--c given as class:NAME become class:K (class:K itself is explore.parse_group's)."""
    from gankit.api import class_index

    for g in ("a", "b", "c"):
        spec = getattr(args, g).strip()
        name = spec[len("class:"):].strip()
        if not spec.startswith("class:") or not sampler.c_dim or name.lstrip("-").isdigit():
            continue
        try:
            setattr(args, g, f"class:{class_index(sampler, name)}")
        except UserError as e:
            raise UserError(f"arithmetic: --{g} {spec}: {str(e).removeprefix('cls: ')}") from None


def _checkpoint(text: str):
    """--checkpoint: a step number, or best (checkpoints/best.pt, which keep_best keeps)."""
    return "best" if text == "best" else _step(text)


_CHECKPOINT_HELP = "use the checkpoint of this step, or best (the best evaluation's, kept by keep_best)"


# ------------------------------------------------------------------------------------------------------------------
# train


def _add_config_flags(p) -> None:
    """One flag per config field, with the field's name; unset flags stay None so they override nothing."""
    from gankit.config import FIELDS

    p.add_argument("--config", help="YAML config file, or a preset name (see `gankit presets`)")
    group = p.add_argument_group("config fields")
    for name, f in FIELDS.items():
        choices = f.metadata.get("choices")
        extra = f" ({'|'.join(map(str, choices))})" if choices else ""
        kwargs = dict(nargs="?", const="true") if isinstance(f.default, bool) else {}
        group.add_argument(f"--{name}", default=None, metavar=name.upper() if not kwargs else "BOOL",
                           help=f"{f.metadata['help']}{extra} [default: {f.default!r}]", **kwargs)


def _overrides(args) -> dict:
    from gankit.config import FIELDS

    return {k: getattr(args, k) for k in FIELDS if getattr(args, k) is not None}


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a GAN; every config field is a flag", description=(
        "Train a GAN. Fields come from the defaults, then --config (a YAML file or a preset), then these flags."))
    p.add_argument("--resume", metavar="RUN", help="continue this run from its latest checkpoint: a run folder, or "
                                                   "the name of one under --out")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true",
                   help="replace the run folder of an existing --name (only a folder holding nothing but gankit's "
                        "own files)")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from gankit import api, config as config_mod

    if args.dry_run:
        cfg, _ = api.train_config.__wrapped__(args.config, resume=args.resume, force=args.force, **_overrides(args))
        print(config_mod.dump(cfg), end="")
        return 0
    api.train.__wrapped__(args.config, resume=args.resume, progress=not args.no_progress, force=args.force,
                          **_overrides(args))
    return 0


# ------------------------------------------------------------------------------------------------------------------
# bench


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="how fast the training step runs, beside pytorch/examples' DCGAN loop",
                       description=(
        "Steady-state images/s, ms per step, GFLOP per step and per second (torch.utils.flop_counter), the share of "
        "the machine's measured matmul peak, and peak memory, for any config (the same flags as train). "
        "--reference runs pytorch/examples' DCGAN step in the same process, alternating rounds with gankit's, and "
        "prints the ratio. The issue's setup: gankit bench --data fake --img_size 64 --reference"))
    p.add_argument("--reference", action="store_true", help="also time pytorch/examples' DCGAN loop")
    p.add_argument("--rounds", type=_positive_int, default=3, help="alternating timed rounds [3]")
    p.add_argument("--timed-steps", type=_positive_int, default=20, help="steps per timed round [20]")
    p.add_argument("--warmup", type=_positive_int, default=5, help="untimed steps first [5]")
    p.add_argument("--json", metavar="FILE.json", help="also write the results here (refused if it exists)")
    _add_force(p)
    _add_config_flags(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    import json

    from gankit import config as config_mod
    from gankit import outputs
    from gankit.bench import bench, report

    cfg = config_mod.load(args.config, _overrides(args))
    if args.json:
        outputs.check_new("bench", Path(args.json), force=args.force)
        outputs.writable("bench", outputs.out_folder("bench", Path(args.json).parent))
    out = bench(cfg, args.timed_steps, args.rounds, args.warmup, args.reference,
                progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(report(out), end="")
    if args.json:
        record = {**out, "config": out["config"].to_dict(),
                  "results": {k: {"sec_per_step": r.sec_per_step, "img_per_sec": r.img_per_sec, "flops": r.flops,
                                  "peak_memory": r.memory} for k, r in out["results"].items()}}
        outputs.write_atomic(Path(args.json), lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return 0


# ------------------------------------------------------------------------------------------------------------------
# sample


def _add_runs_flag(p) -> None:
    p.add_argument("--runs", default="runs", metavar="DIR",
                   help="where a run given by name is looked up (train's --out) [runs]")


def _run(args, attr: str = "source") -> Path:
    from gankit.run import find_run

    return find_run(getattr(args, attr), args.runs)


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="generate samples from a run, a checkpoint or an exported generator")
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run folder or name, a checkpoint or an export")
    _add_runs_flag(p)
    p.add_argument("--n", type=_positive_int, default=64, help="number of samples [64]")
    p.add_argument("--out", required=True, help="FILE.npz (images uint8 N x H x W x C), FILE.png (a grid) or a folder")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the latent draws [0]")
    p.add_argument("--class", dest="cls", type=_class_arg, default=None, metavar="K|NAME",
                   help="conditional models: generate this class, by index or by name (a folder's sub-folder)")
    p.add_argument("--truncation", type=_psi, default=1.0, help="pull z towards the prior's centre, psi in (0, 1]")
    p.add_argument("--class-grid", action="store_true",
                   help="conditional models: a PNG with one row per class, the same z down each column (--n columns)")
    p.add_argument("--sheet", action="store_true",
                   help="a numbered PNG sheet to pick samples by index for `gankit arithmetic` (same --seed and --n)")
    p.add_argument("--checkpoint", type=_checkpoint, default=None, metavar="STEP|best", help=_CHECKPOINT_HELP)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    _add_guide_flags(p, "[the run's guide, none unless its config sets one]")
    _add_force(p)
    p.set_defaults(func=cmd_sample)


def _add_guide_flags(p, default: str) -> None:
    """--weights, --guide and the guides' settings (config.GuideOptions), for sample and eval."""
    from gankit import config, registry

    p.add_argument("--weights", choices=("ema", "raw"), default="ema",
                   help="G's average when the run kept one (ema), or G as trained (raw) [ema]")
    p.add_argument("--guide", choices=tuple(registry.GUIDES), default=None,
                   help="D-guided sampling: " + "; ".join(f"{g.name}: {g.help}" for g in registry.GUIDES.values())
                        + f" {default}")
    opts = config.GuideOptions()
    p.add_argument("--drs-percentile", type=float, default=opts.drs_percentile,
                   help=f"drs: gamma at this percentile of F; higher keeps fewer samples [{opts.drs_percentile:g}]")
    p.add_argument("--mh-steps", type=_positive_int, default=opts.mh_steps,
                   help=f"mh: proposals per chain [{opts.mh_steps}]")
    p.add_argument("--ddls-steps", type=_positive_int, default=opts.ddls_steps,
                   help=f"ddls: Langevin steps per sample [{opts.ddls_steps}]")
    p.add_argument("--ddls-step-size", type=float, default=opts.ddls_step_size,
                   help=f"ddls: the Langevin step size [{opts.ddls_step_size:g}]")


def _guide_options(args, command: str):
    """The guides' settings; one given for a guide other than --guide's is refused rather than ignored."""
    from gankit.config import GuideOptions

    given = {"drs": args.drs_percentile != GuideOptions.drs_percentile, "mh": args.mh_steps != GuideOptions.mh_steps,
             "ddls": (args.ddls_steps, args.ddls_step_size) != (GuideOptions.ddls_steps, GuideOptions.ddls_step_size)}
    for guide, flags in (("drs", "--drs-percentile"), ("mh", "--mh-steps"), ("ddls", "--ddls-steps/--ddls-step-size")):
        if given[guide] and args.guide != guide:
            raise UserError(f"{command}: {flags} sets --guide {guide}, but the guide is {args.guide or 'none'}; add "
                            f"--guide {guide} or leave {flags} out")
    return GuideOptions(drs_percentile=args.drs_percentile, mh_steps=args.mh_steps, ddls_steps=args.ddls_steps,
                          ddls_step_size=args.ddls_step_size)


def cmd_sample(args) -> int:
    from gankit import api

    print(api.write_samples.__wrapped__(args.source, args.out, args.n, seed=args.seed, cls=args.cls,
                                 truncation=args.truncation, class_grid=args.class_grid, sheet=args.sheet,
                                 guide=args.guide, guide_options=_guide_options(args, "sample"), weights=args.weights,
                                 step=args.checkpoint, device=args.device, runs=args.runs, force=args.force))
    return 0


# ------------------------------------------------------------------------------------------------------------------
# interpolate, arithmetic, export, report


def _psi(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def _add_source_flags(p) -> None:
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run folder or name, a checkpoint or an export")
    _add_runs_flag(p)
    p.add_argument("--checkpoint", type=_checkpoint, default=None, metavar="STEP|best", help=_CHECKPOINT_HELP)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    p.add_argument("--truncation", type=_psi, default=1.0, help="pull z towards the prior's centre, psi in (0, 1]")
    _add_force(p)


def _add_interpolate(sub) -> None:
    p = sub.add_parser("interpolate", help="walk between latent points: a grid PNG and an animated GIF", description=(
        "Paths between pairs of latent draws, slerp for the normal and sphere priors, lerp in the uniform cube. "
        "Writes DIR/interpolation.png (one row per path, endpoints in the first and last column), "
        "DIR/interpolation.gif and DIR/interpolation.npz (z: steps x paths x z_dim)."))
    _add_source_flags(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG, GIF and NPZ")
    p.add_argument("--paths", type=_positive_int, default=8, help="number of paths [8]")
    p.add_argument("--steps", type=_positive_int, default=10, help="points per path, endpoints included [10]")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the endpoints [0]")
    p.add_argument("--class", dest="cls", type=_class_arg, default=None, metavar="K|NAME",
                   help="conditional models: the class of every path, by index or name [one class per path: 0, 1, "
                        "2, ...]")
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(args) -> int:
    from gankit import explore
    from gankit.api import class_index
    from gankit.sample import load_sampler

    sampler = load_sampler(_run(args), args.device, args.checkpoint)
    cls = class_index(sampler, args.cls)
    interp = explore.interpolation(sampler, args.paths, args.steps, args.seed, cls, args.truncation)
    for path in explore.save_interpolation(interp, Path(args.out), force=args.force):
        print(path)
    return 0


def _add_arithmetic(sub) -> None:
    p = sub.add_parser("arithmetic", help="DCGAN's latent vector arithmetic: mean(A) - mean(B) + mean(C)",
                       description=(
        "Pick three or more samples per group by their index on a numbered sheet (`gankit sample RUN --sheet "
        "--seed S --n N --out sheet.png`; give the same --seed, --sheet-n, --truncation and --class here), or, for "
        "a conditional model, a class (class:K). Writes FILE.png (each group, its decoded mean; then the result "
        "and its neighbours) and FILE.npz (the vectors)."))
    _add_source_flags(p)
    for g in ("a", "b", "c"):
        p.add_argument(f"--{g}", required=True, metavar="I,J,K|class:K", help=f"group {g.upper()} (class:NAME too)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the figure; the vectors go to FILE.npz")
    p.add_argument("--seed", type=_seed, default=0, help="the seed the sheet was drawn with [0]")
    p.add_argument("--sheet-n", type=_positive_int, default=64, help="the --n the sheet was drawn with [64]")
    p.add_argument("--class", dest="cls", type=_class_arg, default=None, metavar="K|NAME",
                   help="the --class the sheet was drawn with")
    p.add_argument("--class-n", type=_positive_int, default=4, help="samples in a class:K group [4]")
    p.add_argument("--neighbours", type=_int_in(0, 10_000, "a count"), default=4, help="samples from noise around the result [4]")
    p.add_argument("--noise", type=float, default=0.25, help="neighbours: uniform noise in [-noise, noise] [0.25]")
    p.set_defaults(func=cmd_arithmetic)


def cmd_arithmetic(args) -> int:
    from gankit import explore
    from gankit.api import class_index
    from gankit.sample import load_sampler

    sampler = load_sampler(_run(args), args.device, args.checkpoint)
    _class_groups(args, sampler)
    res = explore.arithmetic(sampler, args.a, args.b, args.c, args.seed, args.sheet_n, args.neighbours, args.noise,
                             args.truncation, class_index(sampler, args.cls), args.class_n)
    png, npz = explore.save_arithmetic(res, Path(args.out), force=args.force)
    print(f"{png}\n{npz}")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write the generator as safetensors + JSON (and ONNX) for sampling elsewhere",
                       description="Writes DIR/generator.safetensors and DIR/generator.json (G_ema when the run "
                                   "kept one); `gankit sample DIR ...` and gankit.sample.load_sampler(DIR) read it.")
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run folder or name, or a checkpoint")
    _add_runs_flag(p)
    p.add_argument("--out", required=True, metavar="DIR", help="the export folder")
    p.add_argument("--checkpoint", type=_checkpoint, default=None, metavar="STEP|best", help=_CHECKPOINT_HELP)
    p.add_argument("--onnx", action="store_true",
                   help="also DIR/generator.onnx: inputs z (and y), dynamic batch; checked with onnxruntime")
    _add_force(p)
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from gankit.export import export

    meta = export(_run(args), args.out, args.checkpoint, args.onnx, force=args.force)
    onnx = f", ONNX by the {meta['onnx']['exporter']} exporter" if "onnx" in meta else ""
    print(f"generator of step {meta['step']}{' (EMA)' if meta['ema'] else ''} -> {args.out}{onnx}")
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page: curves, metrics, samples over time, config")
    p.add_argument("run", metavar="RUN", help="a run folder, or the name of one under --runs")
    _add_runs_flag(p)
    p.add_argument("--out", default=None, metavar="FILE.html",
                   help="[RUN_DIR/report.html]; an existing file is refused unless --force")
    _add_force(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from gankit.report import write_report

    print(write_report(_run(args, "run"), args.out, force=args.force))
    return 0


# ------------------------------------------------------------------------------------------------------------------
# eval


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="score a run with metrics and their real-vs-real floors", description=(
        "Score a run's checkpoint; writes RUN/eval/step-NNNNNNN.json and .md (never overwritten) and prints the "
        "table. Defaults: modes for 2-D points; fid,kid,pr,dc for images, plus class_acc when conditional."))
    p.add_argument("run", metavar="RUN", nargs="?", help="a run folder made by `gankit train`, or its name")
    _add_runs_flag(p)
    p.add_argument("--metrics", default=None, help="comma-separated metric names (`gankit eval --list` shows them)")
    p.add_argument("--n", type=_positive_int, default=None, help="generated samples [the run's eval_n]")
    p.add_argument("--checkpoint", type=_checkpoint, default=None, metavar="STEP|best", help=_CHECKPOINT_HELP)
    p.add_argument("--features", default="auto",
                   help="image features: classifier (the data set's own CNN), inception, random (a fixed random CNN: "
                        "no download, no labels), or auto (the classifier where one ships or 1-channel data has "
                        "classes; else inception if its weights are on disk; else random) [auto]")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the latent draws and the real halves [0]")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    p.add_argument("--list", action="store_true", help="list the metrics and exit")
    p.add_argument("--force", action="store_true",
                   help="replace RUN/eval/step-NNNNNNN.json and .md [a second evaluation is numbered: step-N-2]")
    _add_guide_flags(p, "[none; for a run whose config sets a guide, without it and then with it]")
    p.add_argument("--truncation", type=_psi, default=1.0,
                   help="score samples drawn with the truncation trick, psi in (0, 1] [1: none]")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from gankit import metrics

    if args.list:
        metrics.available()
        print("\n".join(f"{m.name:13s} {'/'.join(m.data_kinds)}{', conditional' if m.conditional else ''}: {m.help}"
                        for m in sorted(metrics.REGISTRY.values(), key=lambda m: m.name)))
        return 0
    if args.run is None:
        raise UserError("eval: give a run folder (gankit eval RUN_DIR)")
    from gankit import checkpoint
    from gankit.api import evaluate
    from gankit.run import find_run

    guides = [args.guide or "none"]
    if args.guide is None:  # a run whose config sets a guide: scored without it, then with it
        try:
            default = checkpoint.read(find_run(args.run, args.runs), args.checkpoint).config.get("guide", "none")
        except UserError:  # not a run, or no such checkpoint: evaluate() below says so in its own words
            default = "none"
        guides += [default] if default != "none" else []
    for guide in guides:
        evaluate(args.run, args.metrics, n=args.n, step=args.checkpoint, features=args.features, seed=args.seed,
                 device=args.device, runs=args.runs, force=args.force, guide=guide, weights=args.weights,
                 show=lambda text: print(text, end="", flush=True), guide_options=_guide_options(args, "eval"),
                 truncation=args.truncation)
    return 0


# ------------------------------------------------------------------------------------------------------------------
# ablate


def _add_ablate(sub) -> None:
    p = sub.add_parser("ablate", help="train a grid of settings over seeds and tabulate the metrics", description=(
        "Train every combination of --vary (and --variant) settings for each seed, in parallel processes, and "
        "write table.md, summary.csv and runs.csv with the mean and standard error over seeds. --out is the "
        "parent folder and --name the ablation's folder; the other config flags set the base of every run."))
    p.add_argument("--vary", action="append", default=[], metavar="FIELD=V1,V2",
                   help="one axis of the grid (repeatable); norm=, act=, lr= set the G and D fields together")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL:FIELD=V;FIELD=V",
                   help="one named setting of several fields; all --variant settings form one axis")
    p.add_argument("--seeds", type=_positive_int, default=3, help="seeds 0..N-1 per setting [3]")
    p.add_argument("--jobs", type=_positive_int, default=None, help="parallel runs [number of CPU cores]")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="intra-op threads per run [the CPU cores shared out among the jobs]; 1 keeps runs from "
                        "waiting on each other, or on other programs, for a core")
    p.add_argument("--summarise", metavar="ABLATION_DIR",
                   help="only rebuild the tables of an existing (possibly interrupted) ablation folder")
    _add_config_flags(p)
    p.set_defaults(func=cmd_ablate)


def cmd_ablate(args) -> int:
    from gankit import ablate

    if args.summarise:
        print(ablate.rebuild_tables(Path(args.summarise)))
        return 0
    done = ablate.ablate(args.config, _overrides(args), args.vary, args.variant, args.seeds, args.jobs, args.threads)
    table, csv_path, runs_csv = done["files"]
    print(done["table"])
    print(f"table: {table}\nsummary: {csv_path}\nruns: {runs_csv}")
    return 0 if done["ok"] else 1


# ------------------------------------------------------------------------------------------------------------------
# the tasks' uses after training: inpaint, upscale, classify, predict (gankit/tasks/<task>/)


def _add_inpaint(sub) -> None:
    from gankit.tasks.gan.search import MASKS, Search

    d = Search()
    p = sub.add_parser("inpaint", help="fill missing regions of images with a trained G (Yeh et al. 2017)",
                       description=(
        "Search the latent space for the G(z) that matches each image's known pixels (context loss, plus a prior "
        "loss through D, several restarts), then fill the hole from it. Writes DIR/inpainted.npz (images, fills, "
        "masks), DIR/sheet.png (before and after), and, when the images have labels, DIR/results.md and .json: "
        "class accuracy by the data set's classifier and PSNR on the hole, beside a masked input, a mean fill and a "
        "nearest-neighbour fill. --images heldout takes the images the run held out of training (--holdout N)."))
    p.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT", help="a GAN run folder or checkpoint")
    p.add_argument("--images", required=True, metavar="FILE.npz|DIR|heldout",
                   help="images to complete (resized to the run's size); heldout: the run's held-out images")
    p.add_argument("--mask", default="center", metavar="|".join(MASKS) + "|FILE",
                   help="center: the centre square of half the side; random: 80%% of the pixels; half: the lower "
                        "half; FILE: a PNG (black = missing) or .npy/.npz (0 = missing) [center]")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    p.add_argument("--class", dest="cls", type=int, default=None,
                   help="conditional runs: complete as this class [the search picks the class]")
    p.add_argument("--n", type=_positive_int, default=None, help="only the first N images")
    p.add_argument("--candidates", type=_positive_int, default=d.candidates,
                   help=f"z drawn into the bank of candidates that every image shares [{d.candidates}]")
    p.add_argument("--restarts", type=_positive_int, default=d.restarts,
                   help=f"best candidates optimised per image [{d.restarts}]")
    p.add_argument("--steps", type=int, default=d.steps, help=f"Adam steps per restart [{d.steps}]")
    p.add_argument("--prior-weight", type=float, default=d.prior_weight,
                   help=f"weight of the prior loss through D, lambda [{d.prior_weight}]")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=d.precision,
                   help="the search's arithmetic, as training's field: auto = bf16 where the hardware runs it fast "
                        f"[{d.precision}]")
    p.add_argument("--window", type=int, default=d.window,
                   help=f"context weights: neighbourhood size; 0 = every known pixel alike [{d.window}]")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the latent draws and of random masks [0]")
    p.add_argument("--checkpoint", type=_step, default=None, metavar="STEP", help="use the checkpoint of this step")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    p.set_defaults(func=cmd_inpaint)


def cmd_inpaint(args) -> int:
    from gankit.tasks.gan.inpaint import Search, inpaint

    # checked by inpaint() with every other argument, as a call from Python is
    search = Search(args.candidates, args.restarts, args.steps, prior_weight=args.prior_weight, window=args.window,
                    precision=args.precision)
    result = inpaint(args.source, args.images, args.mask, args.out, args.cls, search, args.seed, args.device,
                     args.checkpoint, n=args.n)
    if "rows" in result:
        print(Path(result["files"][1]).read_text(), end="")
    print("\n".join(result["files"]))
    return 0


def _add_upscale(sub) -> None:
    p = sub.add_parser("upscale", help="upscale images with a super-resolution run (task sr)", description=(
        "Upscale low-resolution images by the run's factor. With --images heldout (the images the run held out "
        "of training) or --from-high-res, the images are originals: they are downscaled first and the result is "
        "scored against them (PSNR, SSIM, class accuracy, FID) beside bicubic upscaling. Writes DIR/upscaled.npz, "
        "DIR/sheet.png, and when scored DIR/results.md and .json."))
    p.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT", help="a run of task sr")
    p.add_argument("--images", required=True, metavar="FILE.npz|DIR|heldout", help="the images to upscale")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    p.add_argument("--from-high-res", action="store_true",
                   help="the images are high-resolution originals: downscale, upscale and score them")
    p.add_argument("--checkpoint", type=_step, default=None, metavar="STEP", help="use the checkpoint of this step")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    p.set_defaults(func=cmd_upscale)


def cmd_upscale(args) -> int:
    from gankit.tasks.sr.upscale import upscale_images

    for f in upscale_images(args.source, args.images, args.out, args.from_high_res, args.device, args.checkpoint):
        if f.endswith(".md"):
            print(Path(f).read_text(), end="")
        print(f)
    return 0


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="sample K futures of frame sequences with a prediction run (task predict)",
                       description=(
        "Sample K futures of each sequence after its last `context` frames, with the run's G and K noise vectors. "
        "Writes DIR/futures.npz (`futures` uint8 N x K x horizon x H x W [x C]) and DIR/seq-NNNN.gif per sequence "
        "(the context, then the K futures side by side; the true future first when known). --context heldout "
        "takes the run's held-out sequences and also scores them (DIR/results.md and .json: PSNR, SSIM, mean and "
        "best of K, sharpness, diversity, beside copying the last frame)."))
    p.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT", help="a run of task predict")
    p.add_argument("--context", required=True, metavar="FILE.npz|heldout",
                   help="`frames` uint8 (N, T, H, W[, C]) with T >= the run's context, or heldout")
    p.add_argument("--futures", type=_positive_int, default=8, help="futures sampled per sequence, K [8]")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    p.add_argument("--n", type=_positive_int, default=None, help="only the first N sequences")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the noise vectors [0]")
    p.add_argument("--checkpoint", type=_step, default=None, metavar="STEP", help="use the checkpoint of this step")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    from gankit.tasks.predict.futures import predict

    files = predict(args.source, args.context, args.futures, args.out, args.n, args.seed, args.device,
                    args.checkpoint)
    for f in files:
        if f.endswith(".md"):
            print(Path(f).read_text(), end="")
    gifs = [f for f in files if f.endswith(".gif")]
    shown = [f for f in files if not f.endswith(".gif")] + gifs[:2] + ([f"... and {len(gifs) - 2} more GIFs"]
                                                                       if len(gifs) > 2 else [])
    print("\n".join(shown))
    return 0


def _add_classify(sub) -> None:
    p = sub.add_parser("classify", help="label images with the classifier of a semi-supervised run (task ssl)")
    p.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT", help="a run of task ssl")
    p.add_argument("--images", required=True, metavar="FILE.npz|DIR|heldout",
                   help="images to label; heldout: the run's held-out images, scored against their labels")
    p.add_argument("--out", default=None, metavar="FILE.csv", help="also write index,class,probability here")
    p.add_argument("--checkpoint", type=_step, default=None, metavar="STEP", help="use the checkpoint of this step")
    p.set_defaults(func=cmd_classify)


def cmd_classify(args) -> int:
    from gankit.tasks.ssl.classify import classify

    summary = classify(args.source, args.images, args.out, args.checkpoint)
    print(summary)
    return 0


# ------------------------------------------------------------------------------------------------------------------


def _add_shards(sub) -> None:
    p = sub.add_parser("shards", help="pack a folder of images into tar shards for data: shards:DIR", description=(
        "Write every image under FOLDER (searched recursively; top-level sub-folders are classes) into "
        "DIR/shard-NNNNNN.tar in WebDataset's layout: each image's own bytes under a numbered key, its class index "
        "as KEY.cls, the class names in DIR/classes.txt. Then train with --data shards:DIR."))
    p.add_argument("folder", metavar="FOLDER")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder for the shards")
    p.add_argument("--per-shard", type=_positive_int, default=1000, help="images per shard [1000]")
    p.set_defaults(func=cmd_shards)


def cmd_shards(args) -> int:
    from gankit.data.shards import write_shards

    paths = write_shards(args.folder, args.out, args.per_shard)
    print(f"{len(paths)} shard(s) -> {args.out}; train with --data shards:{args.out}")
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="a local web page per run: explore G's latent space, watch a run train",
                       description=(
        "Serve a page per run at http://HOST:PORT/: a grid of samples to keep, sliders along G's principal latent "
        "directions and between two kept samples, A - B + C, inpainting, upscaling or classifying an upload "
        "(for runs of those tasks), the run's curves, evaluation and sample grids (refreshed while it trains), and "
        "a comparison of the runs. Needs pip install 'gankit[serve]'."))
    p.add_argument("runs_to_serve", nargs="+", metavar="RUN", help="run folders (or names under --runs), exports")
    _add_runs_flag(p)
    p.add_argument("--port", type=_int_in(0, 65535, "a port"), default=8765, help="port; 0: any free one [8765]")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but 127.0.0.1/localhost lets other machines in [127.0.0.1]")
    p.add_argument("--threads", type=_int_in(1, 1024, "a thread count"), default=None,
                   help="torch's CPU threads for the models [torch's default]")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"serve: needs {' and '.join(missing)}: pip install 'gankit[serve]'")
    from gankit.run import find_run
    from gankit.serve import serve

    serve([find_run(r, args.runs) for r in args.runs_to_serve], args.host, args.port, args.threads,
          say=lambda text: print(text, flush=True))
    return 0


def _add_presets(sub) -> None:
    p = sub.add_parser("presets", help="list the presets that --config accepts, each with what it is for")
    p.set_defaults(func=cmd_presets)


def cmd_presets(args) -> int:
    from gankit.config import preset_description, presets

    names = presets()
    print("\n".join(f"{name.ljust(max(map(len, names)))}  {preset_description(name)}" for name in names))
    return 0


def _add_runs(sub) -> None:
    p = sub.add_parser("runs", help="a table of the runs under a folder: data, steps, FID beside its floor, time",
                       description="One line per run folder under DIR, from its config.yaml, metrics.jsonl and "
                                   "latest eval/*.json; compare their curves with tensorboard --logdir DIR.")
    p.add_argument("folder", nargs="?", default="runs", metavar="DIR",
                   help="the folder that holds run folders (train's --out) [runs]")
    p.add_argument("--sort", default="name", metavar="KEY",
                   help="name, steps, time, or a result of the latest evaluation (fid, recognisable, precision, "
                        "...), best first [name]")
    p.set_defaults(func=cmd_runs)


def cmd_runs(args) -> int:
    from gankit.runs_list import list_runs, table

    print(table(list_runs(args.folder, args.sort), args.folder, args.sort), end="")
    return 0


_DATA_FIELDS = ("img_size", "channels", "resize", "background", "xflip", "cond", "model", "holdout", "grid_n", "seed",
                "data_dir", "n_points", "batch_size")


def _add_data(sub) -> None:
    from gankit.config import FIELDS

    p = sub.add_parser("data", help="what training would read from a data set: the summary lines and reals.png",
                       description="Read a folder of images (or any data set) as `gankit train` would, print what "
                                   "was read (sizes, classes, skipped files, conversions) and write the first grid "
                                   "of images as the model is shown them, without training.")
    p.add_argument("source", metavar="FOLDER_OR_DATA", help="a folder of images, or a data set (digits, shards:PATH, "
                                                            "...)")
    p.add_argument("--out", default="reals.png", metavar="FILE.png", help="the grid of images [reals.png]")
    p.add_argument("--config", help="YAML config file, or a preset name, whose data fields apply")
    for name in _DATA_FIELDS:
        kwargs = dict(nargs="?", const="true") if isinstance(FIELDS[name].default, bool) else {}
        p.add_argument(f"--{name}", default=None, help=FIELDS[name].metadata["help"], **kwargs)
    _add_force(p)
    p.set_defaults(func=cmd_data)


def cmd_data(args) -> int:
    from gankit import config as config_mod
    from gankit.setup import preview_data

    data = f"folder:{args.source}" if Path(args.source).is_dir() else args.source
    fields = {k: getattr(args, k) for k in _DATA_FIELDS if getattr(args, k) is not None}
    cfg = config_mod.load(args.config, {**fields, "data": data})
    print(preview_data(cfg, Path(args.out), args.force))
    return 0


class _Version(argparse.Action):
    """--version: gankit's version, and torch's and Python's, which a bug report needs (torch is imported only
    when asked, so that every other command starts as fast as before)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import platform

        import torch

        from gankit import __version__

        cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
        print(f"gankit {__version__} (torch {torch.__version__}, {cuda}; Python {platform.python_version()})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gankit", description="Train, sample, evaluate and explore GANs.")
    parser.add_argument("--version", action=_Version, help="print the versions of gankit, torch and Python")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_train, _add_bench, _add_sample, _add_interpolate, _add_arithmetic, _add_export, _add_report,
                _add_eval, _add_ablate, _add_shards, _add_inpaint, _add_upscale, _add_predict, _add_classify,
                _add_serve, _add_presets, _add_runs, _add_data):
        add(sub)
    return parser


def _error(message: str) -> None:
    _say("gankit: error: " + (message or "unknown error"))


def _say(message: str) -> None:
    """One line on stderr: line breaks and control characters (a CR in a field name) and lone surrogates (bytes of
    a path that are not UTF-8) are written as escapes."""
    line = " ".join(message.splitlines())
    print("".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in line),
          file=sys.stderr)


def in_flags(e: UserError) -> str:
    """A library error as the command line says it: an argument named by a ConfigError becomes its flag."""
    if isinstance(e, ConfigError) and e.field in FLAGS:
        return FLAGS[e.field] + str(e)[len(e.field):]
    return str(e)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="gankit: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        _error(in_flags(e))
        return 2
    except OSError as e:  # a read-only or full disk, a missing permission: the file system says what and where
        where = f": {e.filename}" if e.filename else ""
        what = e.strerror or (str(e).splitlines() or [type(e).__name__])[0]
        _error(f"{what}{where}")
        return 2
    except KeyboardInterrupt:
        print("gankit: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("gankit: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except Exception as e:  # noqa: BLE001: only a failed allocation is turned into a line; anything else is a bug
        text = f"{type(e).__name__}: {e}"
        if isinstance(e, MemoryError) or "OutOfMemoryError" in text or "can't allocate memory" in text:
            _error(f"out of memory ({text.splitlines()[0][:160]}); ask for less (--n, batch_size, model widths)")
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
