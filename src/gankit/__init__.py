"""gankit: train, sample, evaluate and explore generative adversarial networks.

From Python: gankit.load_config, gankit.train, gankit.load, gankit.evaluate, gankit.show, gankit.Config; what the
commands do with a run, gankit.write_samples, gankit.interpolate and gankit.arithmetic; and the tasks' uses
gankit.inpaint, gankit.upscale, gankit.predict and gankit.classify (see gankit/api.py).
Importing gankit loads neither torch nor the models; each function imports what it needs when called.
"""

from gankit.version import __version__

_API = ("load_config", "train", "train_config", "load", "evaluate", "evaluate_guides", "show", "write_samples",
        "interpolate", "arithmetic", "inpaint", "upscale", "predict", "classify")
__all__ = ["Config", *_API, "__version__"]


def __getattr__(name):  # PEP 562: the API on first use, so that `gankit --version` and `import gankit` stay light
    if name == "Config":
        from gankit.config import Config

        return Config
    if name in _API:
        from gankit import api

        return getattr(api, name)
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")
