"""`gankit eval RUN`: score a trained run's checkpoint with registered metrics, write RUN/eval/step-NNNNNNN.json
and .md (numbered, never overwritten), and return the markdown table that the CLI prints."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from gankit import config as config_mod, data as datasets, guided, outputs
from gankit.errors import UserError
from gankit.metrics import EvalContext, check_names, classes, data_kind, evaluate, features, random_cnn
from gankit.sample import load_sampler

log = logging.getLogger("gankit")

# Keys that describe a result rather than score the model: shown below the table, not as rows.
INFO_KEYS = ("n_samples", "cas_n", "memorization_n", "classifier_acc")


def default_metrics(kind: str, conditional: bool, data_name: str = "") -> list[str]:
    if kind == "points" or data_name == "stacked-mnist":
        return ["modes"]
    if kind == "audio":  # metrics/audio.py
        return ["audio_is", "audio_fd", "audio_recognisable"] + (["audio_class_acc"] if conditional else [])
    return ["fid", "kid", "pr", "dc", "recognisable"] + (["class_acc"] if conditional else [])


def _free_paths(folder: Path, stem: str) -> tuple[Path, Path]:
    """stem.json / stem.md, or stem-2, stem-3, ... when either is taken."""
    name, i = stem, 2
    while (folder / f"{name}.json").exists() or (folder / f"{name}.md").exists():
        name, i = f"{stem}-{i}", i + 1
    return folder / f"{name}.json", folder / f"{name}.md"


def _fmt(v) -> str:
    return "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def _sampling(record: dict) -> str:
    """' · sampled with drs (cost)' for a guided evaluation, ' · raw G' when the raw weights were scored."""
    text = "" if record.get("weights", "ema") == "ema" else " · raw G (not its average)"
    if record.get("truncation", 1.0) != 1.0:
        text += f" · truncation psi {record['truncation']:g}"
    cost = record.get("guide_cost")
    if record.get("guide", "none") != "none" and cost:
        text += (f" · sampled with {record['guide']}: {cost['g_per_sample']} G and {cost['d_per_sample']} D forward "
                 f"passes per sample, {cost['seconds']} s")
    return text


def markdown(record: dict) -> str:
    """One row per scored number: the model's value beside the real-vs-real floor; then the sample counts."""
    res = record["results"]
    lines = [f"# {record['run']} at step {record['step']}", "",
             f"data: {record['data']} ({record['data_size']} examples) · features: {record['features'] or '-'} · "
             f"seed {record['seed']}" + _sampling(record), "",
             "| metric | model | floor (real vs real) |", "|---|---:|---:|"]
    for key, value in res.items():
        if key.endswith("_floor") or key in INFO_KEYS:
            continue
        lines.append(f"| {key} | {_fmt(value)} | {_fmt(res.get(key + '_floor'))} |")
    notes = {"n_samples": "samples per set (generated, and each real half)",
             "cas_n": "labelled samples CAS trains on", "memorization_n": "samples in the memorisation distances",
             "classifier_acc": "held-out accuracy of the data set's classifier"}
    lines.append("")
    lines += [f"- {notes[k]}: {_fmt(res[k])}" for k in INFO_KEYS if k in res]
    if record.get("classifier"):
        lines.append(f"- the classifier: {record['classifier']['source']}")
    if "recognisable_blob" in res:
        lines.append("- recognisable_blob: the share of blobs of real images (each one's mean colour; a heavy blur) "
                     "that the classifier calls recognisable; class_kl tells whether they fall into one class")
    if record.get("features") == "random":
        lines.append(f"- features: random ({random_cnn.NAME}): {random_cnn.CAUTION}")
    if record.get("caution"):
        lines.append(f"- **{record['caution']}**")
    lines.append("- floor: the same metric with real data in place of generated samples (for image metrics, one "
                 "real half against the other), at the same sample count")
    return "\n".join(lines) + "\n"


def evaluate_run(run: str | Path, names: list[str] | None = None, n: int | None = None, step: int | None = None,
                 feature_choice: str = "auto", seed: int = 0, device: str = "cpu", force: bool = False,
                 show=None, guide: str = "none", weights: str = "ema",
                 guide_options: config_mod.GuideOptions | None = None,
                 truncation: float = 1.0) -> tuple[dict, Path, Path, str]:
    """Score a run folder; returns (record, json path, markdown path, markdown text). `show(text)` is called with
    the table before the files are written, so a failed write never loses the results; with force, an earlier
    record of the same step is replaced instead of numbering a new one. guide: how the generated set is drawn
    (gankit.guided); weights: G's average (ema) or G as trained (raw)."""
    run = Path(run)
    if not run.is_dir() or not (run / "checkpoints").is_dir():
        raise UserError(f"eval: {run} is not a run folder (a folder with checkpoints/, made by `gankit train`)")
    folder = run / "eval"
    outputs.writable("eval", outputs.out_folder("eval", folder))  # before minutes of work, not after
    sampler = load_sampler(run, device, step, weights)
    guided.check(guide, sampler)
    sampler.options = guide_options or sampler.options
    cfg = sampler.meta["config"]
    valid = config_mod.from_saved(cfg, "eval")
    data = datasets.from_config(valid).for_metrics(n or valid.eval_n)  # read as training read it
    kind, conditional = data_kind(data), bool(sampler.c_dim)
    names = names or default_metrics(kind, conditional, data.name)
    check_names(names, kind, conditional, "metrics", data.name)
    if kind == "image":
        features.resolve(feature_choice, data)  # a bad --features fails before any sampling
    ctx = EvalContext(sampler, data, n or cfg.get("eval_n", 2500), seed=seed, device=device,
                      features=feature_choice, guide=guide, truncation=truncation)
    t0 = time.perf_counter()
    results = evaluate(names, ctx)
    record = make_record(ctx, names, results, time.perf_counter() - t0, run=str(run), step=sampler.meta.get("step"),
                         checkpoint=sampler.meta.get("source"), data_name=cfg["data"])
    record["weights"] = weights
    json_path, md_path, text = write_record(folder, record, force, show)
    return record, json_path, md_path, text


def make_record(ctx: EvalContext, names: list[str], results: dict, seconds: float, run: str, step: int | None,
                checkpoint: str | None, data_name: str) -> dict:
    """What RUN/eval/step-NNNNNNN.json holds: the results with their floors, and how they were made."""
    emb = ctx.cache.get("embedder")
    clf = ctx.cache.get("classifier") or getattr(emb, "classifier", None)
    record = {"run": run, "step": step, "checkpoint": checkpoint, "data": data_name, "data_size": len(ctx.data),
              "metrics": names, "n": ctx.n, "seed": ctx.seed, "features": emb.kind if emb else None,
              "seconds": round(seconds, 1), "results": results, "guide": ctx.guide, "truncation": ctx.truncation}
    if "guide_cost" in ctx.cache:
        record["guide_cost"] = ctx.cache["guide_cost"]
    if clf is not None:
        record["classifier"] = {"held_out_accuracy": clf.accuracy, "n_train": clf.n_train,
                                "n_held_out": clf.n_held_out, "shipped": clf.shipped, "source": clf.source}
    if clf is not None and ctx.kind == "image":  # blobs of images; the audio classifier has checks of its own
        blob = classes.blob_check(ctx)
        record["classifier"].update(blob)
        caution = classes.blob_caution(blob)
        if caution:
            record["caution"] = caution
            log.warning(f"eval: {caution}")
    return record


def write_record(folder: Path, record: dict, force: bool = False, show=None) -> tuple[Path, Path, str]:
    """folder/step-NNNNNNN.json and .md, numbered when taken (with force, an earlier record of the same step is
    replaced); written atomically. `show(text)` gets the table before the files are written, so a failed write
    never loses the results."""
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    guide, psi = record.get("guide", "none"), record.get("truncation", 1.0)
    stem = (f"step-{record['step'] or 0:07d}" + ("" if guide == "none" else f"-{guide}")
            + ("" if psi == 1.0 else f"-psi{psi:g}"))
    json_path, md_path = (folder / f"{stem}.json", folder / f"{stem}.md") if force else _free_paths(folder, stem)
    text = markdown(record)
    if show is not None:
        show(text)
    try:
        outputs.write_atomic(json_path, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
        outputs.write_atomic(md_path, lambda tmp: tmp.write_text(text))
    except OSError as e:
        raise UserError(f"eval: cannot write {json_path} ({e.strerror or type(e).__name__}); the results are "
                        "printed above") from None
    if show is not None:
        show(f"json: {json_path}\nmarkdown: {md_path}\n")
    return json_path, md_path, text
