"""Tools around training: gankit bench | ablate | runs."""

from __future__ import annotations

import sys
from pathlib import Path

from gankit.cli.common import add_config_flags, add_force, overrides, positive_int


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="how fast the training step runs, beside pytorch/examples' DCGAN loop",
                       description=(
        "Steady-state images/s, ms per step, GFLOP per step and per second (torch.utils.flop_counter), the share of "
        "the machine's measured matmul peak, and peak memory, for any config (the same flags as train). "
        "--reference runs pytorch/examples' DCGAN step in the same process, alternating rounds with gankit's, and "
        "prints the ratio. The issue's setup: gankit bench --data fake --img_size 64 --reference"))
    p.add_argument("--reference", action="store_true", help="also time pytorch/examples' DCGAN loop")
    p.add_argument("--rounds", type=positive_int, default=3, help="alternating timed rounds [3]")
    p.add_argument("--timed-steps", type=positive_int, default=20, help="steps per timed round [20]")
    p.add_argument("--warmup", type=positive_int, default=5, help="untimed steps first [5]")
    p.add_argument("--json", metavar="FILE.json", help="also write the results here (refused if it exists)")
    add_force(p)
    add_config_flags(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from gankit import config as config_mod
    from gankit.bench import bench_to

    cfg = config_mod.load(args.config, overrides(args))
    print(bench_to(cfg, args.timed_steps, args.rounds, args.warmup, args.reference, args.json, args.force,
                   progress=lambda line: print(line, file=sys.stderr, flush=True)), end="")
    return 0


def _add_ablate(sub) -> None:
    p = sub.add_parser("ablate", help="train a grid of settings over seeds and tabulate the metrics", description=(
        "Train every combination of --vary (and --variant) settings for each seed, in parallel processes, and "
        "write table.md, summary.csv and runs.csv with the mean and standard error over seeds. --out is the "
        "parent folder and --name the ablation's folder; the other config flags set the base of every run."))
    p.add_argument("--vary", action="append", default=[], metavar="FIELD=V1,V2",
                   help="one axis of the grid (repeatable); norm=, act=, lr= set the G and D fields together")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL:FIELD=V;FIELD=V",
                   help="one named setting of several fields; all --variant settings form one axis")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds 0..N-1 per setting [3]")
    p.add_argument("--jobs", type=positive_int, default=None, help="parallel runs [number of CPU cores]")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="intra-op threads per run [the CPU cores shared out among the jobs]; 1 keeps runs from "
                        "waiting on each other, or on other programs, for a core")
    p.add_argument("--summarise", metavar="ABLATION_DIR",
                   help="only rebuild the tables of an existing (possibly interrupted) ablation folder")
    add_config_flags(p)
    p.set_defaults(func=cmd_ablate)


def cmd_ablate(args) -> int:
    from gankit import ablate

    if args.summarise:
        print(ablate.rebuild_tables(Path(args.summarise)))
        return 0
    done = ablate.ablate(args.config, overrides(args), args.vary, args.variant, args.seeds, args.jobs, args.threads)
    table, csv_path, runs_csv = done["files"]
    print(done["table"])
    print(f"table: {table}\nsummary: {csv_path}\nruns: {runs_csv}")
    return 0 if done["ok"] else 1


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


# the commands of this group, by name: each adds its parser
COMMANDS = {"bench": _add_bench, "ablate": _add_ablate, "runs": _add_runs}
