"""One loader interface for every data set: `load(...)` returns a `Dataset` held as one tensor, or, for a folder or
tar shards larger than the memory budget (or with stream: on), a `stream.StreamedDataset` that decodes batches in
DataLoader workers.

Images are stored as uint8 (N, C, H, W), as image files hold them (4x less memory than float32), and each batch is
scaled to [-1, 1] (G ends in tanh) when it is drawn; 2-D mixtures are (N, 2) float points. A data set that fits in
memory is moved to the training device once and indexed there, with no DataLoader. `stream.Draw` draws the batches
of either kind.

The modules stack one way: dataset.py (Dataset, the fixed split) and decode.py (one image file) at the bottom, then
folder.py (listing a folder, resizing), stream.py (ImageSource, holding or streaming a set, drawing batches), then
the loaders images.py, shards.py and toy.py, and this file, which picks one by name and re-exports Dataset.
"""

from __future__ import annotations

from gankit import registry
from gankit.config import background_rgb
from gankit.data import audio, images, moving, shards, toy, video
from gankit.data.dataset import Dataset, holdout_indices, split_indices  # noqa: F401  (gankit.data's own names)
from gankit.errors import UserError


def load(name: str, data_dir: str = "data", img_size: int = 32, channels: int = 0, n_points: int = 50_000,
         resize: str = "crop", stream: str = "off", memory_budget_gb: float = 4.0, workers: int = 0,
         background: tuple[int, int, int] = (255, 255, 255), sample_rate: int = 16_000, audio_length: int = 16_384,
         frames: int = 20, digits: int = 2):
    """Load a data set by name (registry.DATASETS: digits, mnist, ..., folder:PATH, shards:PATH).
    resize, stream, memory_budget_gb and workers concern folders and shards (data/folder.py, data/stream.py);
    `background` is the colour that transparent pixels of their images are composited onto; recordings (fsdd,
    audio:PATH) are read at sample_rate, audio_length samples each (data/audio.py); sequences (moving-mnist,
    video:PATH) have `frames` frames, of `digits` moving digits (data/moving.py, data/video.py)."""
    entry = registry.dataset(name)
    if entry is None:
        raise UserError(f"data: unknown data set {name!r}; use "
                        f"{registry.either(d.usage() for d in registry.DATASETS.values())}")
    path = name[len(entry.name):]
    files = dict(resize=resize, stream=stream, memory_budget_gb=memory_budget_gb, workers=workers,
                 background=background)
    loaders = {  # one loader for each entry of registry.DATASETS (tests/test_registry.py checks that)
        "digits": lambda: images.load_digits(img_size, channels),
        "stacked-mnist": lambda: images.load_stacked_mnist(data_dir, img_size, n_points),
        "fake": lambda: images.load_fake(img_size, channels, n_points),
        "folder:": lambda: images.load_folder(path, img_size, channels, **files),
        "shards:": lambda: shards.load(path, img_size, channels, **files),
        "fsdd": lambda: audio.load_fsdd(data_dir, sample_rate, audio_length),
        "audio:": lambda: audio.load_folder(path, sample_rate, audio_length),
        **{m: (lambda m=m: moving.load(m, data_dir, img_size, n_points, frames, digits, memory_budget_gb))
           for m in moving.MOVING},
        "video:": lambda: video.load(path, img_size, channels, frames, resize),
        **{m: (lambda m=m: toy.load(m, n_points)) for m in toy.MIXTURES},
        **{t: (lambda t=t: images.load_torchvision(t, data_dir, img_size, channels)) for t in images.TORCHVISION_SETS},
    }
    if set(loaders) != set(registry.DATASETS):
        raise AssertionError(f"data: loaders for {sorted(loaders)}, registry.DATASETS {sorted(registry.DATASETS)}")
    return loaders[entry.name]()


def from_config(cfg) -> Dataset:
    """The data set a config names (a Config, or a saved config dict of any gankit version), read as it says."""
    get = (lambda k, d: cfg.get(k, d)) if isinstance(cfg, dict) else (lambda k, d: getattr(cfg, k, d))
    return load(get("data", "digits"), get("data_dir", "data"), get("img_size", 32), get("channels", 0),
                get("n_points", 50_000), resize=get("resize", "crop"), stream=get("stream", "auto"),
                memory_budget_gb=get("memory_budget_gb", 4.0), workers=get("data_workers", 0),
                background=background_rgb(get("background", "white")), sample_rate=get("sample_rate", 16_000),
                audio_length=get("audio_length", 16_384))
