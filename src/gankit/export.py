"""Export a trained generator for sampling without the training code.

    DIR/generator.safetensors   G's weights and buffers (batch-norm statistics, VBN's reference batch)
    DIR/generator.json          what G is, so that it can be rebuilt from this file alone: the architecture (its class
                                in gankit.models) and its constructor arguments; its inputs (z: shape, prior; y: class
                                index and names) and its output (shape, layout, range, how to make uint8 pixels); the
                                weights' SHA-256; the run and step it came from. Written last, so its presence marks a
                                whole export. `load_generator(DIR)` (gankit.sample) rebuilds G from it.
    DIR/generator.onnx          (--onnx) inputs z (B, z_dim) float32 [and y (B,) int64], output images (B, C, H, W)
                                or points (B, 2) for a 2-D run; B is dynamic

The export is G_ema when the run kept one. `gankit.sample.load_sampler(DIR)` reads it back (gankit.models rebuilds G
from the spec; nothing from train.py is needed); the ONNX file needs only onnxruntime.

ONNX goes through torch.export (`torch.onnx.export(..., dynamo=True)`, the default exporter since torch 2.9) with a
dynamic batch dimension; should that fail for a model, the TorchScript exporter is tried. The file is then run in
onnxruntime at two batch sizes against G itself; json records the exporter and the largest difference seen.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path

import torch
from safetensors.torch import save

from gankit import outputs, registry
from gankit.errors import UserError
from gankit.outputs import sha256_file
from gankit.version import __version__
# Reading an export back is sample.py's (sampling must not need the writer); load_generator stays importable here.
from gankit.sample import EXPORT_META, EXPORT_WEIGHTS, load_generator, load_sampler  # noqa: F401

FORMAT_VERSION = 2  # 1: spec, prior and shape only; 2: architecture, arguments, inputs, output, weights' checksum
PRIORS = {name: prior.formula for name, prior in registry.PRIORS.items()}  # how z is drawn, for other runtimes

EXPORT_ONNX = "generator.onnx"
ONNX_TOLERANCE = 1e-4  # images live in [-1, 1]; float32 kernels of two runtimes differ by ~1e-7
log = logging.getLogger("gankit")


class _OnnxG(torch.nn.Module):
    """G with positional inputs: (z) for an unconditional model, (z, y) for a conditional one."""

    def __init__(self, G: torch.nn.Module):
        super().__init__()
        self.G = G

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.G(z, y)


def _example(G: torch.nn.Module, n: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=gen)
    return (z, torch.arange(n) % G.c_dim) if G.c_dim else (z,)


@contextlib.contextmanager
def _quiet(names: tuple[str, ...]):
    """The exporters' optimiser passes log every rewrite at INFO; keep the user's terminal to warnings."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(G: torch.nn.Module, path: Path, output: str = "images") -> dict:
    """Write G (on the CPU, in eval mode) to `path`; returns what generator.json records about the file."""
    G = G.cpu().eval()
    # the wrapper in eval mode too: the TorchScript exporter restores the wrapper's mode, recursively, on exit
    model, names = _OnnxG(G).eval(), ["z", "y"] if G.c_dim else ["z"]
    args = _example(G, 2, 0)
    with warnings.catch_warnings(), _quiet(("onnxscript", "onnx_ir", "torch.onnx", "torch.export")):
        warnings.simplefilter("ignore")  # the exporters' notes on axis names and deprecations are not the user's
        try:
            batch = torch.export.Dim("batch")
            # external_data=False keeps the weights inside the one .onnx file (a tiny G is far below protobuf's 2 GB)
            torch.onnx.export(model, args, str(path), input_names=names, output_names=[output], dynamo=True,
                              dynamic_shapes={n: {0: batch} for n in names}, external_data=False, verbose=False)
            exporter = "dynamo"
        except Exception as e:  # noqa: BLE001: any failure of the new exporter: try the old one
            log.warning("torch.export could not export G (%s); using the TorchScript ONNX exporter",
                        f"{type(e).__name__}: {e}".splitlines()[0])
            torch.onnx.export(model, args, str(path), input_names=names, output_names=[output], dynamo=False,
                              dynamic_axes={n: {0: "batch"} for n in names + [output]})
            exporter = "torchscript"
    G.eval()
    return {"file": EXPORT_ONNX, "inputs": names, "output": output, "exporter": exporter,
            "max_abs_diff": check_onnx(G, path)}


def check_onnx(G: torch.nn.Module, path: Path) -> float:
    """Run the ONNX file in onnxruntime at batch sizes 1 and 5 (neither is the traced 2) and compare with G."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for n in (1, 5):
        args = _example(G, n, n)
        with torch.no_grad():
            want = G(*args).numpy()
        got = sess.run(None, {k: v.numpy() for k, v in zip(("z", "y"), args)})[0]
        if got.shape != want.shape:
            raise RuntimeError(f"ONNX export: shape {got.shape} from onnxruntime, {want.shape} from G")
        worst = max(worst, float(abs(got - want).max()))
    if worst > ONNX_TOLERANCE:
        raise RuntimeError(f"ONNX export: onnxruntime differs from G by {worst:.2e} (> {ONNX_TOLERANCE})")
    return worst


ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the `gankit[onnx]` extra


def check_onnx_installed() -> None:
    """--onnx needs the optional packages; say how to get them before any work is done."""
    import importlib.util

    missing = [m for m in ONNX_PACKAGES if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"export: --onnx needs {', '.join(missing)}, which gankit installs only as an extra: "
                        f"pip install 'gankit[onnx]' (or pip install {' '.join(ONNX_PACKAGES)})")


def describe(G: torch.nn.Module, prior: str, class_names: list[str], shape: list[int]) -> dict:
    """generator.json's description of G: enough to rebuild it and to use its inputs and output correctly."""
    spec = dict(G.spec)
    arch = spec.pop("arch")
    images = len(shape) == 3
    inputs = {"z": {"shape": [G.z_dim], "dtype": "float32", "prior": prior, "draw": PRIORS[prior]}}
    if G.c_dim:
        inputs["y"] = {"shape": [], "dtype": "int64", "range": [0, G.c_dim - 1], "class_names": class_names}
    output = ({"kind": "images", "shape": shape, "layout": "NCHW", "dtype": "float32", "range": [-1.0, 1.0],
               "to_uint8": "round((x + 1) * 127.5), clipped to 0..255"} if images else
              {"kind": "points", "shape": shape, "dtype": "float32", "range": None})
    return {
        "format": "gankit-generator", "format_version": FORMAT_VERSION, "gankit_version": __version__,
        "architecture": arch, "class": f"{type(G).__module__}.{type(G).__qualname__}", "arguments": spec,
        "call": "G(z) or, with classes, G(z, y); batch first", "inputs": inputs, "output": output,
        # the fields of format 1, which older readers use
        "spec": dict(G.spec), "prior": prior, "z_dim": G.z_dim, "c_dim": G.c_dim,
        "class_names": class_names if G.c_dim else [],  # an unconditional G takes no class
        "img_shape": shape, "is_points": not images,
    }


def export(source: str | Path, out: str | Path, step: int | None = None, onnx: bool = False,
           force: bool = False) -> dict:
    """Export the generator of a run folder or checkpoint (the latest, or the checkpoint of `step`) to `out`.
    Returns the metadata written to generator.json."""
    src, out = Path(source), Path(out)
    if onnx:
        check_onnx_installed()
    if src.is_dir() and (src / EXPORT_META).is_file():
        raise UserError(f"export: {src} is already an export; copy the folder instead")
    if out.exists() and not out.is_dir():
        raise UserError(f"export: {out} is a file; --out names a folder")
    files = [out / EXPORT_WEIGHTS, out / EXPORT_META] + ([out / EXPORT_ONNX] if onnx else [])
    taken = [f.name for f in files if f.exists()]
    if taken and not force:
        raise UserError(f"export: {out} already holds {', '.join(taken)}; pass --force to replace them "
                        f"(nothing is overwritten without it)")
    outputs.check_new("export", *files, force=force)
    sampler = load_sampler(src, "cpu", step)
    G = sampler.G
    with torch.no_grad():  # the output shape, from one sample rather than per-architecture rules
        shape = list(G(*_example(G, 1, 0)).shape[1:])
    outputs.out_folder("export", out)
    if force:  # the marker of a whole export goes first, so a failure below leaves no export that looks whole
        (out / EXPORT_META).unlink(missing_ok=True)
    # safetensors wants contiguous tensors that share no memory; a state_dict of G satisfies that once contiguous
    weights = {k: v.detach().contiguous() for k, v in G.state_dict().items()}
    # written by Python's own open(), so the file gets the usual mode (0644 under umask 022) as generator.json does;
    # safetensors' save_file creates its file 0600
    blob = save(weights, metadata={"format": "pt"})
    outputs.write_atomic(out / EXPORT_WEIGHTS, lambda tmp: tmp.write_bytes(blob))
    cfg = sampler.meta.get("config", {})
    meta = describe(G, sampler.prior, list(sampler.class_names), shape)
    meta.update({
        "weights": {"file": EXPORT_WEIGHTS, "sha256": sha256_file(out / EXPORT_WEIGHTS)},
        "source": str(src), "step": sampler.meta.get("step"), "ema": bool(sampler.meta.get("ema")),
        "data": sampler.meta.get("data"), "config": cfg,
    })
    if onnx:
        meta["onnx"] = {}
        outputs.write_atomic(out / EXPORT_ONNX, lambda tmp: meta["onnx"].update(
            export_onnx(G, tmp, "points" if meta["is_points"] else "images")))
    outputs.write_atomic(out / EXPORT_META, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
    return meta
