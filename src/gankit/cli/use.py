"""A trained run in use: gankit sample | interpolate | arithmetic | export | report | eval | serve."""

from __future__ import annotations


from gankit.cli.common import (CHECKPOINT_HELP, add_force, add_guide_flags, add_runs_flag, add_source_flags,
                               checkpoint_arg, class_arg, guide_options, int_in, positive_int, psi, run_of, seed_arg)
from gankit.errors import UserError


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="generate samples from a run, a checkpoint or an exported generator")
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run folder or name, a checkpoint or an export")
    add_runs_flag(p)
    p.add_argument("--n", type=positive_int, default=64, help="number of samples [64]")
    p.add_argument("--out", required=True, help="FILE.npz (images uint8 N x H x W x C), FILE.png (a grid) or a folder")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the latent draws [0]")
    p.add_argument("--class", dest="cls", type=class_arg, default=None, metavar="K|NAME",
                   help="conditional models: generate this class, by index or by name (a folder's sub-folder)")
    p.add_argument("--truncation", type=psi, default=1.0, help="pull z towards the prior's centre, psi in (0, 1]")
    p.add_argument("--class-grid", action="store_true",
                   help="conditional models: a PNG with one row per class, the same z down each column (--n columns)")
    p.add_argument("--sheet", action="store_true",
                   help="a numbered PNG sheet to pick samples by index for `gankit arithmetic` (same --seed and --n)")
    p.add_argument("--checkpoint", type=checkpoint_arg, default=None, metavar="STEP|best", help=CHECKPOINT_HELP)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    add_guide_flags(p, "[the run's guide, none unless its config sets one]")
    add_force(p)
    p.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    from gankit import api

    print(api.write_samples.__wrapped__(args.source, args.out, args.n, seed=args.seed, cls=args.cls,
                                 truncation=args.truncation, class_grid=args.class_grid, sheet=args.sheet,
                                 guide=args.guide, guide_options=guide_options(args, "sample"), weights=args.weights,
                                 step=args.checkpoint, device=args.device, runs=args.runs, force=args.force))
    return 0


def _add_interpolate(sub) -> None:
    p = sub.add_parser("interpolate", help="walk between latent points: a grid PNG and an animated GIF", description=(
        "Paths between pairs of latent draws, slerp for the normal and sphere priors, lerp in the uniform cube. "
        "Writes DIR/interpolation.png (one row per path, endpoints in the first and last column), "
        "DIR/interpolation.gif and DIR/interpolation.npz (z: steps x paths x z_dim)."))
    add_source_flags(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG, GIF and NPZ")
    p.add_argument("--paths", type=positive_int, default=8, help="number of paths [8]")
    p.add_argument("--steps", type=positive_int, default=10, help="points per path, endpoints included [10]")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the endpoints [0]")
    p.add_argument("--class", dest="cls", type=class_arg, default=None, metavar="K|NAME",
                   help="conditional models: the class of every path, by index or name [one class per path: 0, 1, "
                        "2, ...]")
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(args) -> int:
    from gankit import api

    print("\n".join(api.interpolate.__wrapped__(args.source, args.out, paths=args.paths, steps=args.steps,
                                                seed=args.seed, cls=args.cls, truncation=args.truncation,
                                                step=args.checkpoint, device=args.device, runs=args.runs,
                                                force=args.force)))
    return 0


def _add_arithmetic(sub) -> None:
    p = sub.add_parser("arithmetic", help="DCGAN's latent vector arithmetic: mean(A) - mean(B) + mean(C)",
                       description=(
        "Pick three or more samples per group by their index on a numbered sheet (`gankit sample RUN --sheet "
        "--seed S --n N --out sheet.png`; give the same --seed, --sheet-n, --truncation and --class here), or, for "
        "a conditional model, a class (class:K). Writes FILE.png (each group, its decoded mean; then the result "
        "and its neighbours) and FILE.npz (the vectors)."))
    add_source_flags(p)
    for g in ("a", "b", "c"):
        p.add_argument(f"--{g}", required=True, metavar="I,J,K|class:K", help=f"group {g.upper()} (class:NAME too)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the figure; the vectors go to FILE.npz")
    p.add_argument("--seed", type=seed_arg, default=0, help="the seed the sheet was drawn with [0]")
    p.add_argument("--sheet-n", type=positive_int, default=64, help="the --n the sheet was drawn with [64]")
    p.add_argument("--class", dest="cls", type=class_arg, default=None, metavar="K|NAME",
                   help="the --class the sheet was drawn with")
    p.add_argument("--class-n", type=positive_int, default=4, help="samples in a class:K group [4]")
    p.add_argument("--neighbours", type=int_in(0, 10_000, "a count"), default=4,
                   help="samples from noise around the result [4]")
    p.add_argument("--noise", type=float, default=0.25, help="neighbours: uniform noise in [-noise, noise] [0.25]")
    p.set_defaults(func=cmd_arithmetic)


def cmd_arithmetic(args) -> int:
    from gankit import api

    print("\n".join(api.arithmetic.__wrapped__(args.source, args.out, args.a, args.b, args.c, seed=args.seed,
                                               sheet_n=args.sheet_n, cls=args.cls, class_n=args.class_n,
                                               neighbours=args.neighbours, noise=args.noise,
                                               truncation=args.truncation, step=args.checkpoint, device=args.device,
                                               runs=args.runs, force=args.force)))
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write the generator as safetensors + JSON (and ONNX) for sampling elsewhere",
                       description="Writes DIR/generator.safetensors and DIR/generator.json (G_ema when the run "
                                   "kept one); `gankit sample DIR ...` and gankit.sample.load_sampler(DIR) read it.")
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run folder or name, or a checkpoint")
    add_runs_flag(p)
    p.add_argument("--out", required=True, metavar="DIR", help="the export folder")
    p.add_argument("--checkpoint", type=checkpoint_arg, default=None, metavar="STEP|best", help=CHECKPOINT_HELP)
    p.add_argument("--onnx", action="store_true",
                   help="also DIR/generator.onnx: inputs z (and y), dynamic batch; checked with onnxruntime")
    add_force(p)
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from gankit.export import export

    meta = export(run_of(args), args.out, args.checkpoint, args.onnx, force=args.force)
    onnx = f", ONNX by the {meta['onnx']['exporter']} exporter" if "onnx" in meta else ""
    print(f"generator of step {meta['step']}{' (EMA)' if meta['ema'] else ''} -> {args.out}{onnx}")
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page: curves, metrics, samples over time, config")
    p.add_argument("run", metavar="RUN", help="a run folder, or the name of one under --runs")
    add_runs_flag(p)
    p.add_argument("--out", default=None, metavar="FILE.html",
                   help="[RUN_DIR/report.html]; an existing file is refused unless --force")
    add_force(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from gankit.report import write_report

    print(write_report(run_of(args, "run"), args.out, force=args.force))
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="score a run with metrics and their real-vs-real floors", description=(
        "Score a run's checkpoint; writes RUN/eval/step-NNNNNNN.json and .md (never overwritten) and prints the "
        "table. Defaults: modes for 2-D points; fid,kid,pr,dc for images, plus class_acc when conditional."))
    p.add_argument("run", metavar="RUN", nargs="?", help="a run folder made by `gankit train`, or its name")
    add_runs_flag(p)
    p.add_argument("--metrics", default=None, help="comma-separated metric names (`gankit eval --list` shows them)")
    p.add_argument("--n", type=positive_int, default=None, help="generated samples [the run's eval_n]")
    p.add_argument("--checkpoint", type=checkpoint_arg, default=None, metavar="STEP|best", help=CHECKPOINT_HELP)
    p.add_argument("--features", default="auto",
                   help="image features: classifier (the data set's own CNN), inception, random (a fixed random CNN: "
                        "no download, no labels), or auto (the classifier where one ships or 1-channel data has "
                        "classes; else inception if its weights are on disk; else random) [auto]")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the latent draws and the real halves [0]")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    p.add_argument("--list", action="store_true", help="list the metrics and exit")
    p.add_argument("--force", action="store_true",
                   help="replace RUN/eval/step-NNNNNNN.json and .md [a second evaluation is numbered: step-N-2]")
    add_guide_flags(p, "[none; for a run whose config sets a guide, without it and then with it]")
    p.add_argument("--truncation", type=psi, default=1.0,
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
    from gankit import api

    api.evaluate_guides.__wrapped__(args.run, args.metrics, guide=args.guide, step=args.checkpoint, runs=args.runs,
                                    n=args.n, features=args.features, seed=args.seed, device=args.device,
                                    force=args.force, weights=args.weights, guide_options=guide_options(args, "eval"),
                                    show=lambda text: print(text, end="", flush=True), truncation=args.truncation)
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="a local web page per run: explore G's latent space, watch a run train",
                       description=(
        "Serve a page per run at http://HOST:PORT/: a grid of samples to keep, sliders along G's principal latent "
        "directions and between two kept samples, A - B + C, inpainting, upscaling or classifying an upload "
        "(for runs of those tasks), the run's curves, evaluation and sample grids (refreshed while it trains), and "
        "a comparison of the runs. Needs pip install 'gankit[serve]'."))
    p.add_argument("runs_to_serve", nargs="+", metavar="RUN", help="run folders (or names under --runs), exports")
    add_runs_flag(p)
    p.add_argument("--port", type=int_in(0, 65535, "a port"), default=8765, help="port; 0: any free one [8765]")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but 127.0.0.1/localhost lets other machines in [127.0.0.1]")
    p.add_argument("--threads", type=int_in(1, 1024, "a thread count"), default=None,
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


# the commands of this group, by name: each adds its parser
COMMANDS = {"sample": _add_sample, "interpolate": _add_interpolate, "arithmetic": _add_arithmetic,
            "export": _add_export, "report": _add_report, "eval": _add_eval, "serve": _add_serve}
