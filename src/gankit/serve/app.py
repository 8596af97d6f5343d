"""`gankit serve`'s web application (Starlette): the pages, and a JSON API that calls the same functions as the
command line (gankit.sample, gankit.explore, the tasks' uses, gankit.report) and holds no model logic of its own.

    GET  /                         the served runs          GET  /compare        their evaluations side by side
    GET  /runs/ID                  a run's explorer         GET  /runs/ID/progress  its curves, evaluation, grids
    GET  /api/runs                 the runs                 GET  /api/runs/ID    what a run has (classes, guides, ...)
    POST /api/runs/ID/samples      a grid of samples        POST /api/runs/ID/decode    z moved along the directions
    POST /api/runs/ID/between      a point between two      POST /api/runs/ID/arithmetic  A - B + C
    POST /api/runs/ID/inpaint      fill a drawn hole        POST /api/runs/ID/upscale | classify   an upload
    POST /api/runs/ID/scatter      2-D points' scatter plot POST /api/runs/ID/futures   K futures of a sequence
    GET  /api/runs/ID/progress     curves and evaluation    GET  /api/runs/ID/grids/STEP.png   a sample grid

Every request error is a 4xx with {"error": "one line"}; a failure of gankit itself a 500 with a line, the
traceback only in the server's log.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gankit import audio, explore, report, viz
from gankit.tasks.ssl import classify
from gankit.tasks.gan import inpaint
from gankit.tasks.sr import upscale
from gankit.config import SEED_LIMIT, argument
from gankit.errors import UserError
from gankit.models.sr import upscale_bicubic
from gankit.serve import futures, images
from gankit.serve.runs import DIRECTIONS, INPAINT_SEARCH, Run, draw, guides, inside

log = logging.getLogger("gankit")
STATIC = Path(str(resources.files("gankit.serve") / "static"))
MAX_BODY = 4 << 20          # a JSON request: an upload's base64 (MAX_UPLOAD_BYTES * 4 / 3) and change
MAX_GRID = 64               # samples in one grid
MAX_GROUP = 16              # kept samples in one arithmetic group
MAX_POINTS = 5000           # 2-D points in one scatter plot
MAX_POINTS_SENT = 1000      # of which the answer lists this many
Z_LIMIT = 1e3               # |z_i| above this is no latent a prior draws
MAX_CURVE = 2000            # points per curve sent to the page
LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' data:; "
                                      "style-src 'self' "
                                      "'unsafe-inline'; object-src 'none'; "
                                      "frame-ancestors 'none'; base-uri 'none'"}


# ------------------------------------------------------------------------------------------------------------------
# reading a request: every field checked with the config's own checks (gankit.config.argument)


async def _json(request: Request) -> dict:
    """The request's JSON object, at most MAX_BODY bytes (413 beyond), sent as application/json (415 otherwise,
    which also keeps other sites' forms out: a cross-origin JSON request needs a preflight this server never
    grants)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(415, "send the request as application/json")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise HTTPException(413, f"the request is over {MAX_BODY >> 20} MiB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"the request is over {MAX_BODY >> 20} MiB")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise UserError("the request is not JSON") from None
    if not isinstance(data, dict):
        raise UserError("the request must be a JSON object")
    return data


def _vector(value, n: int, name: str, limit: float = Z_LIMIT) -> torch.Tensor:
    """A list of n finite numbers within +-limit, as a float tensor (n,)."""
    if not (isinstance(value, list) and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise UserError(f"{name}: expected a list of {n} numbers")
    t = torch.tensor(value, dtype=torch.float64)
    if not (torch.isfinite(t).all() and t.abs().max() <= limit):
        raise UserError(f"{name}: every value must be a finite number within +-{limit:g}")
    return t.float()


def _label(value, sampler, name: str) -> int | None:
    """A class index of a conditional G (required), None for an unconditional one."""
    if not sampler.c_dim:
        return None
    return argument(name, value, int, 0, sampler.c_dim - 1)


def _sample(value, sampler, name: str) -> tuple[torch.Tensor, int | None]:
    """A kept sample {"z": [...], "label": k} as (z (z_dim,), label)."""
    if not isinstance(value, dict):
        raise UserError(f"{name}: expected a sample {{\"z\": [...], \"label\": k}}")
    return _vector(value.get("z"), sampler.z_dim, f"{name}.z"), _label(value.get("label"), sampler, f"{name}.label")


def _weights(body: dict) -> str:
    w = body.get("weights", "ema")
    if w not in ("ema", "raw"):
        raise UserError(f"weights: expected ema or raw, got {str(w)[:20]!r}")
    return w


def _finite(x):
    """JSON has no NaN or infinity: such values (a diverged loss) become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


# ------------------------------------------------------------------------------------------------------------------
# what each request does, with the run's lock held (one model call at a time per run: a Sampler keeps counters,
# and arithmetic swaps G's label table for its duration)


def info(run: Run, body: dict) -> dict:
    out = {"id": run.id, "name": run.path.name, "path": str(run.path), "task": run.task, "kind": run.kind,
           "apps": run.apps(), "data": run.config.get("data"), "makes": run.makes}
    if "futures" in run.apps():
        out.update(futures.info(run))
    if "scatter" in run.apps():
        sampler = run.sampler(_weights(body))
        out.update(guides=guides(sampler), weights=run.weights(), step=sampler.meta.get("step"))
    if "explore" in run.apps():
        sampler = run.sampler(_weights(body))
        d = run.directions(_weights(body))
        out.update(z_dim=sampler.z_dim, c_dim=sampler.c_dim, class_names=sampler.class_names, prior=sampler.prior,
                   guides=guides(sampler), weights=run.weights(), ema=bool(sampler.meta.get("ema")),
                   step=sampler.meta.get("step"), directions=d.explained.tolist(),
                   shape=list(sampler.decode(sampler.z(1), sampler.labels(1, 0 if sampler.c_dim else None)).shape[1:]))
        if run.makes == "audio":
            out.update(sample_rate=int(sampler.G.sample_rate), audio_length=int(sampler.G.audio_length), guides=[])
    if "upscale" in run.apps():
        G = run.upscaler()
        out.update(scale=run.config.get("sr_scale"), low_res=run.config["img_size"] // run.config["sr_scale"],
                   channels=inpaint.model_channels(G))
    if "classify" in run.apps():
        out.update(classes=run.classifier().num_classes)
    return out


def _media(run: Run, sampler, x: torch.Tensor) -> list[dict]:
    """What the page shows of each of G's outputs x (n, ...): {"image": PNG data URL}, and for recordings the
    spectrogram as the image and {"audio": WAV data URL} (gankit.audio: the sheets' spectrogram, `gankit sample`'s
    16-bit WAV at the run's sample rate)."""
    if run.makes != "audio":
        return [{"image": images.data_url(im)} for im in x]
    rate = int(sampler.G.sample_rate)
    return [{"image": images.png_url(audio.spectrogram_image(w, rate)),
             "audio": "data:audio/wav;base64," + base64.b64encode(audio.wav_bytes(w.numpy(), rate)).decode("ascii")}
            for w in audio.waveforms(sampler.G, x)]


def samples(run: Run, body: dict) -> dict:
    run.require("explore")
    sampler = run.sampler(_weights(body))
    n = argument("n", body.get("n", 16), int, 1, MAX_GRID)
    seed = argument("seed", body.get("seed", 0), int, 0, SEED_LIMIT - 1)
    psi = argument("truncation", body.get("truncation", 1.0), float, 1e-3, 1.0)
    cls = None if body.get("cls") is None else _label(body.get("cls"), sampler, "cls")
    if body.get("cls") is not None and not sampler.c_dim:
        raise UserError("cls: this run's model has no classes")
    guide = str(body.get("guide", "none"))[:40]
    if guide != "none" and run.makes == "audio":
        raise UserError("guide: D-guided sampling is for images and 2-D points; choose none for recordings")
    x, labels, z = draw(sampler, n, seed, psi, cls, guide)
    return {"seed": seed, "guide": guide, "samples": [
        {"index": i, "seed": seed, **m, "z": None if z is None else z[i].tolist(),
         "label": None if labels is None else int(labels[i])} for i, m in enumerate(_media(run, sampler, x))]}


def scatter(run: Run, body: dict) -> dict:
    """n points of G (a guide's when asked) over the real points, drawn by the run's own scatter plot
    (viz.save_scatter with the true modes, as samples/step-*.png)."""
    run.require("scatter")
    sampler = run.sampler(_weights(body))
    n = argument("n", body.get("n", 1000), int, 1, MAX_POINTS)
    seed = argument("seed", body.get("seed", 0), int, 0, SEED_LIMIT - 1)
    guide = str(body.get("guide", "none"))[:40]
    x, _, _ = draw(sampler, n, seed, 1.0, None, guide)
    modes, real = run.real_points()
    title = f"{run.config.get('data')}, step {sampler.meta.get('step')}, seed {seed}" + \
        ("" if guide == "none" else f", guide {guide}")
    with tempfile.TemporaryDirectory() as tmp:   # viz.save_scatter writes a file: a private one, never the run's
        picture = viz.save_scatter(x, Path(tmp) / "scatter.png", modes, real, title=title).read_bytes()
    return {"seed": seed, "guide": guide, "n": n, "image": images.png_url(picture),
            "points": x[:MAX_POINTS_SENT].tolist()}


def decode(run: Run, body: dict) -> dict:
    """A kept sample moved along the principal directions by `amounts` (in units of the prior's spread)."""
    run.require("explore")
    weights = _weights(body)
    sampler = run.sampler(weights)
    z, label = _sample(body, sampler, "sample")
    amounts = body.get("amounts")
    if amounts is not None:
        z = explore.move(sampler, z[None], run.directions(weights), _vector(amounts, DIRECTIONS, "amounts", 10))[0]
    y = None if label is None else torch.tensor([label])
    return {"z": z.tolist(), "label": label, **_media(run, sampler, sampler.decode(z[None], y))[0]}


def between(run: Run, body: dict) -> dict:
    run.require("explore")
    sampler = run.sampler(_weights(body))
    (a, ya), (b, yb) = _sample(body.get("a"), sampler, "a"), _sample(body.get("b"), sampler, "b")
    t = argument("t", body.get("t", 0.5), float, 0.0, 1.0)
    z, image = explore.between(sampler, a, b, t, ya, yb)
    return {"z": z[0].tolist(), "label": ya if t < 0.5 else yb, **_media(run, sampler, image[:1])[0]}


def arithmetic(run: Run, body: dict) -> dict:
    run.require("arithmetic")
    sampler = run.sampler(_weights(body))
    groups = []
    for name in "abc":
        members = body.get(name)
        if not (isinstance(members, list) and 1 <= len(members) <= MAX_GROUP):
            raise UserError(f"{name}: expected a list of 1 to {MAX_GROUP} kept samples")
        kept = [_sample(m, sampler, f"{name}[{i}]") for i, m in enumerate(members)]
        labels = torch.tensor([y for _, y in kept]) if sampler.c_dim else None
        groups.append(explore.Group(name.upper(), f"{len(kept)} kept", torch.stack([z for z, _ in kept]), labels))
    neighbours = argument("neighbours", body.get("neighbours", 4), int, 0, 16)
    noise = argument("noise", body.get("noise", 0.25), float, 0.0, 2.0)
    seed = argument("seed", body.get("seed", 0), int, 0, SEED_LIMIT - 1)
    res = explore.combine(sampler, groups, neighbours, noise, torch.Generator().manual_seed(seed))
    return {"groups": [{"name": g.name, "members": images.data_urls(m), "mean": images.data_url(mean)}
                       for g, m, mean in zip(res.groups, res.member_images, res.mean_images)],
            "result": images.data_url(res.result_images[0]), "result_z": res.result_z.tolist(),
            "result_label": None if res.groups[0].labels is None else int(res.groups[0].labels[0]),
            "neighbours": images.data_urls(res.result_images[1:])}


def _mask(value, shape) -> torch.Tensor:
    """The drawn mask: H * W values, 1 known and 0 missing, as (1, 1, H, W)."""
    h, w = shape[-2:]
    m = _vector(value, h * w, "mask", 1)
    if not ((m == 0) | (m == 1)).all():
        raise UserError("mask: every value must be 0 (missing) or 1 (known)")
    if m.min() == 1 or m.max() == 0:
        raise UserError("mask: draw a hole (0) and leave some of the image known (1)")
    return m.view(1, 1, h, w)


def fill(run: Run, body: dict) -> dict:
    """Inpaint a drawn hole of an upload or of a kept sample, with `gankit inpaint`'s search (tasks/gan/inpaint.py)."""
    G, D = run.inpainter()
    prior = run.config.get("prior", "normal")
    shape = (inpaint.model_channels(G), G.img_size, G.img_size)
    label = None
    if body.get("image") is not None:
        x = images.read_upload(images.from_base64(body["image"]), shape[0], shape[1])
        if G.c_dim and body.get("label") is not None:
            label = argument("label", body["label"], int, 0, G.c_dim - 1)
    else:
        sampler = run.sampler(_weights(body))
        z, label = _sample(body, sampler, "sample")
        x = sampler.decode(z[None], None if label is None else torch.tensor([label]))
    m = _mask(body.get("mask"), shape)
    labels = None if label is None else torch.tensor([label])
    with torch.enable_grad():   # the search optimises z by gradient descent; everything else runs under no_grad
        done, g_fill, _ = inpaint.complete(G, D, inpaint.masked_input(x, m), m, prior, INPAINT_SEARCH, labels)
    return {"original": images.data_url(x[0]), "masked": images.data_url(inpaint.masked_input(x, m)[0]),
            "fill": images.data_url(g_fill[0]), "completed": images.data_url(done[0])}


def enlarge(run: Run, body: dict) -> dict:
    """An upload at the run's low resolution, upscaled by its G (tasks/sr/upscale.py) beside bicubic."""
    G = run.upscaler()
    scale, size = run.config["sr_scale"], run.config["img_size"] // run.config["sr_scale"]
    x = images.read_upload(images.from_base64(body.get("image")), inpaint.model_channels(G), size)
    return {"input": images.data_url(x[0]), "bicubic": images.data_url(upscale_bicubic(x, scale)[0]),
            "G": images.data_url(upscale.upscale(G, x)[0]), "scale": scale, "size": size}


def label_upload(run: Run, body: dict) -> dict:
    """The class probabilities an ssl run's classifier gives an upload (tasks/ssl/classify.py)."""
    model = run.classifier()
    x = images.read_upload(images.from_base64(body.get("image")), inpaint.model_channels(model),
                           run.config["img_size"])
    p = torch.softmax(classify.predict(model, x), 1)[0]
    names = run.sampler().class_names or [str(k) for k in range(p.numel())]
    return {"input": images.data_url(x[0]),
            "probabilities": [{"class": k, "name": str(names[k]) if k < len(names) else str(k), "p": float(v)}
                              for k, v in enumerate(p)]}


# ------------------------------------------------------------------------------------------------------------------
# a run's records (no model: read from its folder, each file checked to lie inside it)


def progress(run: Run, body: dict | None = None) -> dict:
    """Curves from metrics.jsonl (report.read_rows/series), the latest evaluation with its floors (eval/*.json),
    the steps of the sample grids (samples/step-*.png)."""
    metrics = inside(run.path, "metrics.jsonl")
    rows, bad = report.read_rows(metrics, warn=lambda _: None) if metrics else ([], 0)
    curves = {k: _thin(*v) for k, v in report.series(rows).items()}
    ev_dir = _eval_dir(run)
    record, n_evals = report.latest_evaluation(ev_dir, warn=lambda _: None) if ev_dir else (None, 0)
    evaluation = None
    if record is not None:
        res = record["results"]
        evaluation = {"step": record.get("step"), "n": record.get("n"), "features": record.get("features"),
                      "file": record.get("file"), "count": n_evals,
                      "rows": [{"metric": k, "value": v, "floor": res.get(k + "_floor")} for k, v in res.items()
                               if not k.endswith("_floor") and isinstance(v, (int, float)) and k != "n_samples"]}
    grids = sorted(int(p.stem[5:]) for p in (run.path / "samples").glob("step-*.png")
                   if p.stem[5:].isdigit() and inside(run.path, "samples", p.name))
    return _finite({"id": run.id, "name": run.path.name, "task": run.task, "records": len(rows), "skipped": bad,
                    "last_step": max((r["step"] for r in rows), default=None), "curves": curves,
                    "resumes": report.resumes(rows), "evaluation": evaluation, "grids": grids,
                    "time": time.time()})


def _eval_dir(run: Run) -> Path | None:
    """RUN/eval when it and every record in it lie inside the run folder (a link out is not followed)."""
    folder = run.path / "eval"
    try:
        if not folder.is_dir() or not folder.resolve().is_relative_to(run.path):
            return None
        if any(inside(run.path, "eval", f.name) is None for f in folder.glob("*.json")):
            log.warning(f"serve: {folder} holds a record that links out of the run folder; it is not read")
            return None
    except OSError:
        return None
    return folder


def _thin(steps: list[int], values: list[float]) -> list[list]:
    """A curve of at most MAX_CURVE points (evenly spaced, the last kept) for the page's plot."""
    every = max(1, math.ceil(len(steps) / MAX_CURVE))
    idx = list(range(0, len(steps), every))
    if idx and idx[-1] != len(steps) - 1:
        idx.append(len(steps) - 1)
    return [[steps[i] for i in idx], [values[i] for i in idx]]


def compare(runs: dict[str, Run]) -> dict:
    out = []
    for run in runs.values():
        p = progress(run)
        out.append({"id": run.id, "name": p["name"], "task": p["task"], "last_step": p["last_step"],
                    "evaluation": p["evaluation"], "grid": p["grids"][-1] if p["grids"] else None})
    return {"runs": out}


# ------------------------------------------------------------------------------------------------------------------
# the application


WORK = {"samples": samples, "decode": decode, "between": between, "arithmetic": arithmetic, "inpaint": fill,
        "upscale": enlarge, "classify": label_upload, "scatter": scatter, "futures": futures.futures}


def _locked(run: Run, work, body: dict):
    with run.lock, torch.no_grad():
        return work(run, body)


def _run(request: Request) -> Run:
    run = request.app.state.runs.get(request.path_params["run"])
    if run is None:
        raise HTTPException(404, "no such run here; GET /api/runs lists the served runs")
    return run


async def api_runs(request: Request) -> JSONResponse:
    return JSONResponse({"runs": [{"id": r.id, "name": r.path.name, "task": r.task, "kind": r.kind,
                                   "apps": r.apps()} for r in request.app.state.runs.values()]})


async def api_info(request: Request) -> JSONResponse:
    run = _run(request)
    return JSONResponse(_finite(await run_in_threadpool(_locked, run, info, dict(request.query_params))))


async def api_work(request: Request) -> JSONResponse:
    run, work = _run(request), WORK.get(request.path_params["work"])
    if work is None:
        raise HTTPException(404, f"no such request; the runs' requests are {', '.join(WORK)}")
    body = await _json(request)
    return JSONResponse(await run_in_threadpool(_locked, run, work, body))


async def api_progress(request: Request) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(progress, _run(request)))


async def api_compare(request: Request) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(compare, request.app.state.runs))


async def grid_png(request: Request) -> Response:
    """samples/step-NNNNNNN.png of a run: the file is named from the step (an integer), never from the URL's text."""
    run = _run(request)
    path = inside(run.path, "samples", f"step-{request.path_params['step']:07d}.png")
    if path is None:
        raise HTTPException(404, "no sample grid of that step in this run")
    return FileResponse(path, media_type="image/png", headers=HEADERS)


def _page(name: str):
    async def page(request: Request) -> FileResponse:
        if "run" in request.path_params:
            _run(request)
        return FileResponse(STATIC / name, media_type="text/html", headers=HEADERS)
    return page


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None))


async def _user_error(request: Request, exc: UserError) -> JSONResponse:
    return JSONResponse({"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}, 400)


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.error(f"serve: {request.method} {request.url.path} failed", exc_info=exc)
    return JSONResponse({"error": f"gankit failed on this request ({type(exc).__name__}); the server's log has "
                                  "the details"}, 500)


class LocalHosts:
    """Refuse requests whose Host header names another site (a DNS-rebinding page reaching a server on
    127.0.0.1); hosts None accepts any."""

    def __init__(self, app, hosts: set[str] | None):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.hosts is not None:
            host = Headers(scope=scope).get("host", "")
            host = host[: host.find("]") + 1] if host.startswith("[") else host.split(":")[0]
            if host.lower() not in self.hosts:
                await JSONResponse({"error": f"host {host[:60]!r} is not served here"}, 400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def make_app(runs: dict[str, Run], hosts: set[str] | None = None) -> Starlette:
    """The application serving `runs` (gankit.serve.runs.open_runs); hosts: the Host names accepted (None: any)."""
    routes = [
        Route("/", _page("index.html")), Route("/compare", _page("compare.html")),
        Route("/runs/{run}", _page("explore.html")), Route("/runs/{run}/progress", _page("progress.html")),
        Route("/api/runs", api_runs), Route("/api/compare", api_compare),
        Route("/api/runs/{run}", api_info), Route("/api/runs/{run}/progress", api_progress),
        Route("/api/runs/{run}/grids/{step:int}.png", grid_png),
        Route("/api/runs/{run}/{work}", api_work, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, UserError: _user_error,
                                                       Exception: _bug})
    app.state.runs = runs
    app.add_middleware(LocalHosts, hosts=hosts)
    return app
