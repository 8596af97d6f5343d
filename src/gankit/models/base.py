"""What every generator and discriminator shares: the reference batch of virtual batch norm, and a `spec` of the
constructor arguments, so a model can be rebuilt from a checkpoint or an export without the training code."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from gankit.models.blocks import VirtualBatchNorm, run_with_reference


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """`module` in eval mode (batch norm's running statistics, no noise layers) for the block, then as it was."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class _Base(nn.Module):
    def __init__(self, spec: dict, ref_shape: tuple[int, ...], ref_dtype: torch.dtype, vbn_ref_size: int,
                 c_dim: int):
        super().__init__()
        self.spec = spec
        self.c_dim = c_dim
        self._ref_shape, self._ref_dtype, self._vbn_ref_size = ref_shape, ref_dtype, vbn_ref_size

    def _register_reference(self) -> None:
        """Called after the layers exist: the fixed reference batch is a buffer, saved with the weights."""
        self.uses_vbn = any(isinstance(m, VirtualBatchNorm) for m in self.modules())
        if self.uses_vbn:
            self.register_buffer("ref_in", torch.zeros(self._vbn_ref_size, *self._ref_shape, dtype=self._ref_dtype))
            self.register_buffer("ref_y", torch.zeros(self._vbn_ref_size, dtype=torch.long))

    def set_reference(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Fix virtual batch norm's reference batch R (inputs, and labels for a conditional model)."""
        if self.uses_vbn:
            self.ref_in.copy_(x[: self.ref_in.shape[0]])
            if y is not None:
                self.ref_y.copy_(y[: self.ref_y.shape[0]])

    def _call(self, x: torch.Tensor, y: torch.Tensor | None):
        if self.c_dim and y is None:
            raise ValueError(f"{type(self).__name__} is conditional (c_dim={self.c_dim}): pass class labels y")
        ref = (self.ref_in, self.ref_y if self.c_dim else None) if self.uses_vbn else ()
        return run_with_reference(self, self._forward, ref, (x, y))


class GeneratorBase(_Base):
    """G(z, y=None) -> images (B, C, H, W) in [-1, 1], or points (B, 2)."""

    def __init__(self, spec, z_dim, vbn_ref_size, c_dim):
        super().__init__(spec, (z_dim,), torch.float32, vbn_ref_size, c_dim)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._call(z, y)


class DiscriminatorBase(_Base):
    """D(x, y=None) -> logits (B / pack,); D(x, y, with_features=True) -> (logits, features for matching)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, with_features: bool = False):
        logit, phi = self._call(x, y)
        return (logit, phi) if with_features else logit
