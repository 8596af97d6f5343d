"""Training and its data: gankit train | data | shards | presets."""

from __future__ import annotations

from pathlib import Path

from gankit.cli.common import add_config_flags, add_force, overrides, positive_int


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
    add_config_flags(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from gankit import api, config as config_mod

    if args.dry_run:
        cfg, _ = api.train_config.__wrapped__(args.config, resume=args.resume, force=args.force, **overrides(args))
        print(config_mod.dump(cfg), end="")
        return 0
    api.train.__wrapped__(args.config, resume=args.resume, progress=not args.no_progress, force=args.force,
                          **overrides(args))
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
    add_force(p)
    p.set_defaults(func=cmd_data)


def cmd_data(args) -> int:
    from gankit import config as config_mod
    from gankit.setup import preview_data

    data = f"folder:{args.source}" if Path(args.source).is_dir() else args.source
    fields = {k: getattr(args, k) for k in _DATA_FIELDS if getattr(args, k) is not None}
    cfg = config_mod.load(args.config, {**fields, "data": data})
    print(preview_data(cfg, Path(args.out), args.force))
    return 0


def _add_shards(sub) -> None:
    p = sub.add_parser("shards", help="pack a folder of images into tar shards for data: shards:DIR", description=(
        "Write every image under FOLDER (searched recursively; top-level sub-folders are classes) into "
        "DIR/shard-NNNNNN.tar in WebDataset's layout: each image's own bytes under a numbered key, its class index "
        "as KEY.cls, the class names in DIR/classes.txt. Then train with --data shards:DIR."))
    p.add_argument("folder", metavar="FOLDER")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder for the shards")
    p.add_argument("--per-shard", type=positive_int, default=1000, help="images per shard [1000]")
    p.set_defaults(func=cmd_shards)


def cmd_shards(args) -> int:
    from gankit.data.shards import write_shards

    paths = write_shards(args.folder, args.out, args.per_shard)
    print(f"{len(paths)} shard(s) -> {args.out}; train with --data shards:{args.out}")
    return 0


def _add_presets(sub) -> None:
    p = sub.add_parser("presets", help="list the presets that --config accepts, each with what it is for")
    p.set_defaults(func=cmd_presets)


def cmd_presets(args) -> int:
    from gankit.config import preset_description, presets

    names = presets()
    print("\n".join(f"{name.ljust(max(map(len, names)))}  {preset_description(name)}" for name in names))
    return 0


# the commands of this group, by name: each adds its parser
COMMANDS = {"train": _add_train, "shards": _add_shards, "presets": _add_presets, "data": _add_data}
