"""gankit: train, sample, evaluate and explore generative adversarial networks.

From Python: gankit.load_config, gankit.train, gankit.load, gankit.evaluate, gankit.show, gankit.Config and the
applications gankit.inpaint, gankit.upscale, gankit.predict and gankit.classify (see gankit/api.py).
Importing gankit loads neither torch nor the models; each function imports what it needs when called.
"""

from gankit.version import __version__

__all__ = ["Config", "load_config", "train", "load", "evaluate", "show", "inpaint", "upscale", "predict",
           "classify", "__version__"]


def __getattr__(name):  # PEP 562: the API on first use, so that `gankit --version` and `import gankit` stay light
    if name == "Config":
        from gankit.config import Config

        return Config
    if name in ("load_config", "train", "load", "evaluate", "show", "inpaint", "upscale", "predict", "classify"):
        from gankit import api

        return getattr(api, name)
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")
