"""The tasks' own uses of a trained run (gankit/tasks/<task>/): gankit inpaint | upscale | predict | classify."""

from __future__ import annotations

from pathlib import Path

from gankit.cli.common import positive_int, seed_arg, step_arg


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
    p.add_argument("--n", type=positive_int, default=None, help="only the first N images")
    p.add_argument("--candidates", type=positive_int, default=d.candidates,
                   help=f"z drawn into the bank of candidates that every image shares [{d.candidates}]")
    p.add_argument("--restarts", type=positive_int, default=d.restarts,
                   help=f"best candidates optimised per image [{d.restarts}]")
    p.add_argument("--steps", type=int, default=d.steps, help=f"Adam steps per restart [{d.steps}]")
    p.add_argument("--prior-weight", type=float, default=d.prior_weight,
                   help=f"weight of the prior loss through D, lambda [{d.prior_weight}]")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=d.precision,
                   help="the search's arithmetic, as training's field: auto = bf16 where the hardware runs it fast "
                        f"[{d.precision}]")
    p.add_argument("--window", type=int, default=d.window,
                   help=f"context weights: neighbourhood size; 0 = every known pixel alike [{d.window}]")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the latent draws and of random masks [0]")
    p.add_argument("--checkpoint", type=step_arg, default=None, metavar="STEP", help="use the checkpoint of this step")
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
    p.add_argument("--checkpoint", type=step_arg, default=None, metavar="STEP", help="use the checkpoint of this step")
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
    p.add_argument("--futures", type=positive_int, default=8, help="futures sampled per sequence, K [8]")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    p.add_argument("--n", type=positive_int, default=None, help="only the first N sequences")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the noise vectors [0]")
    p.add_argument("--checkpoint", type=step_arg, default=None, metavar="STEP", help="use the checkpoint of this step")
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
    p.add_argument("--checkpoint", type=step_arg, default=None, metavar="STEP", help="use the checkpoint of this step")
    p.set_defaults(func=cmd_classify)


def cmd_classify(args) -> int:
    from gankit.tasks.ssl.classify import classify

    summary = classify(args.source, args.images, args.out, args.checkpoint)
    print(summary)
    return 0


# the commands of this group, by name: each adds its parser
COMMANDS = {"inpaint": _add_inpaint, "upscale": _add_upscale, "predict": _add_predict, "classify": _add_classify}
