"""The choices of an inpainting search (gankit/apps/inpaint.py), apart from it: plain data that the command line reads
for its flags and defaults without loading torch."""

from __future__ import annotations

from dataclasses import dataclass

MASKS = ("center", "random", "half")


@dataclass
class Search:
    """How hard to look: candidate draws in the shared bank, restarts optimised per image, Adam steps and rate, the
    prior's weight."""
    candidates: int = 8192    # draws of z in the bank of candidates that every image shares
    restarts: int = 4
    steps: int = 300
    lr: float = 0.03
    prior_weight: float = 0.003
    window: int = 0            # 0: every known pixel alike; 7: Yeh et al.'s weighting (README's inpainting tables)
    batch_size: int = 256      # images per batch of the search (each with `restarts` latents)
    precision: str = "auto"    # as training's field: bf16 autocast where the hardware runs it fast, else fp32
