"""The metric registry. A metric is a function of an EvalContext returning named numbers; `@register` adds it,
so `gankit eval --metrics a,b` and `eval_metrics` during training reach every metric by name, and old
checkpoints can be scored later with metrics written after them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from gankit.errors import UserError


@dataclass
class Metric:
    name: str
    fn: Callable[["EvalContext"], dict]
    data_kinds: tuple[str, ...]      # "points", "image", "audio"
    conditional: bool = False        # needs a conditional generator
    help: str = ""
    only_data: tuple[str, ...] = ()  # on images, only these data sets (empty: any)

    def applies(self, kind: str | None, conditional: bool | None, data_name: str | None) -> bool:
        return ((kind is None or kind in self.data_kinds) and (conditional is None or conditional or not self.conditional)
                and (not self.only_data or kind != "image" or data_name is None or data_name in self.only_data))


REGISTRY: dict[str, Metric] = {}


def register(name: str, data_kinds: tuple[str, ...] = ("image",), conditional: bool = False, help: str = "",
             only_data: tuple[str, ...] = ()):
    def deco(fn):
        REGISTRY[name] = Metric(name, fn, data_kinds, conditional, help, only_data)
        return fn
    return deco


@dataclass
class EvalContext:
    """What a metric may use: the sampler, the real data, the sample count, a seed; and a cache so that the
    generated set and the feature extractor are made once per evaluation, not once per metric."""
    sampler: object                  # gankit.sample.Sampler
    data: object                     # gankit.data.Dataset
    n: int = 2500
    seed: int = 0
    device: str = "cpu"
    features: str = "auto"           # image features: auto, classifier, inception or random (features.py)
    guide: str = "none"              # D-guided sampling of the generated set (gankit.guided)
    truncation: float = 1.0          # the truncation trick's psi for the generated set (1: none)
    cache: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return data_kind(self.data)

    def fake(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n generated samples (CPU) and their labels, the same for every metric of this evaluation."""
        if "fake" not in self.cache:
            gen = torch.Generator().manual_seed(self.seed)
            # the options only when set: any sampler callable as sampler(n, generator=...) can be scored
            options = {k: v for k, v in (("guide", self.guide), ("truncation", self.truncation))
                       if v != {"guide": "none", "truncation": 1.0}[k]}
            self.cache["fake"] = self.sampler(self.n, generator=gen, **options)
            cost = getattr(self.sampler, "last_cost", None)
            if cost is not None:
                self.cache["guide_cost"] = cost.summary()
        return self.cache["fake"]


def data_kind(data) -> str:
    """The kind of data a metric applies to: points, image or audio (a data/audio.py AudioDataset)."""
    return "points" if data.is_points else "audio" if getattr(data, "is_audio", False) else "image"


def _load_all() -> None:
    from gankit.metrics import audio, classes, fid, modes, prdc  # noqa: F401  (each registers its metrics on import)


def available(kind: str | None = None, conditional: bool | None = None, data_name: str | None = None) -> list[str]:
    _load_all()
    return sorted(n for n, m in REGISTRY.items() if m.applies(kind, conditional, data_name))


def check_names(names: list[str], kind: str, conditional: bool, field_name: str = "metrics",
                data_name: str | None = None) -> None:
    _load_all()
    ok = available(kind, conditional, data_name)
    for name in names:
        if name not in ok:
            raise UserError(f"{field_name}: {name!r} does not apply here ({kind} data"
                            f"{', conditional' if conditional else ''}"
                            f"{f', {data_name}' if data_name else ''}); choose from {', '.join(ok)}")


def evaluate(names: list[str], ctx: EvalContext) -> dict[str, float]:
    check_names(names, ctx.kind, bool(ctx.sampler.c_dim), data_name=ctx.data.name)
    results: dict[str, float] = {}
    for name in names:
        results.update(REGISTRY[name].fn(ctx))
    return results
