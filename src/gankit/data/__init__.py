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

from gankit.config import background_rgb
from gankit.data import images, shards, toy
from gankit.data.dataset import Dataset, holdout_indices, split_indices  # noqa: F401  (gankit.data's own names)
from gankit.errors import UserError


def load(name: str, data_dir: str = "data", img_size: int = 32, channels: int = 0, n_points: int = 50_000,
         resize: str = "crop", stream: str = "off", memory_budget_gb: float = 4.0, workers: int = 0,
         background: tuple[int, int, int] = (255, 255, 255)):
    """Load a data set by name: digits, mnist, fashion-mnist, cifar10, stacked-mnist, ring, grid, fake, folder:PATH
    or shards:PATH.
    resize, stream, memory_budget_gb and workers concern folders and shards (data/folder.py, data/stream.py);
    `background` is the colour that transparent pixels of their images are composited onto."""
    if name in toy.MIXTURES:
        return toy.load(name, n_points)
    if name.startswith("folder:"):
        return images.load_folder(name[len("folder:"):], img_size, channels, resize=resize, stream=stream,
                                  memory_budget_gb=memory_budget_gb, workers=workers, background=background)
    if name.startswith("shards:"):
        return shards.load(name[len("shards:"):], img_size, channels, resize=resize, stream=stream,
                           memory_budget_gb=memory_budget_gb, workers=workers, background=background)
    if name == "digits":
        return images.load_digits(img_size, channels)
    if name == "stacked-mnist":
        return images.load_stacked_mnist(data_dir, img_size, n_points)
    if name == "fake":
        return images.load_fake(img_size, channels, n_points)
    if name in images.TORCHVISION_SETS:
        return images.load_torchvision(name, data_dir, img_size, channels)
    raise UserError(f"data: unknown data set {name!r}; use digits, mnist, fashion-mnist, cifar10, stacked-mnist, "
                    "ring, grid, fake, folder:PATH or shards:PATH")


def from_config(cfg) -> Dataset:
    """The data set a config names (a Config, or a saved config dict of any gankit version), read as it says."""
    get = (lambda k, d: cfg.get(k, d)) if isinstance(cfg, dict) else (lambda k, d: getattr(cfg, k, d))
    return load(get("data", "digits"), get("data_dir", "data"), get("img_size", 32), get("channels", 0),
                get("n_points", 50_000), resize=get("resize", "crop"), stream=get("stream", "auto"),
                memory_budget_gb=get("memory_budget_gb", 4.0), workers=get("data_workers", 0),
                background=background_rgb(get("background", "white")))
