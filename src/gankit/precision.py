"""The arithmetic a forward pass runs in: bf16 autocast where the hardware runs it fast, fp32 elsewhere. Shared by the
training step and by inference that runs G and D many times (inpainting's latent search)."""

from __future__ import annotations

import torch


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16 units: where oneDNN runs bf16 convolutions faster than fp32. Without them bf16 is
    emulated and about 2x slower than fp32 (measured on an AVX-512 CPU without bf16 units)."""
    try:
        caps = torch._C._cpu._get_cpu_capability()
        return bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))
    except (AttributeError, RuntimeError):
        try:
            flags = open("/proc/cpuinfo").read()
        except OSError:
            return False
        return " amx_bf16" in flags or " avx512_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for autocast, or None for plain fp32."""
    if precision == "fp32" or device.type not in ("cpu", "cuda"):
        return None
    if precision == "auto":
        fast = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_fast_bf16()
        return torch.bfloat16 if fast else None
    return torch.bfloat16
