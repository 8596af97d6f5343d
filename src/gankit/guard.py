"""Watching a run for the two ways GAN training commonly fails: divergence and a discriminator that wins.

Divergence. `Step.update` already refuses every optimizer step whose loss or gradients are not finite (the update
is skipped and counted in `Tally.nonfinite`), so NaN never reaches a weight through Adam. But a poisoned forward
pass still leaves its mark: batch norm's running statistics are updated in the forward pass, before any check can
run, and an update skipped on one side leaves G and D out of step. So `Divergence` keeps the last good state (a CPU
snapshot taken at each clean record), and when the loop finds skipped updates or a non-finite weight it rolls back:
the models, optimizers and counters return to that state, both learning rates are multiplied by
`rollback_lr_factor` (0.5 by default; the product is saved in every checkpoint as `lr_factor`, so a resumed run goes
on at the rate the original had reached), and training goes on with fresh noise. After `max_rollbacks` rollbacks the
run stops with one line. Nothing non-finite is ever written to a checkpoint: the check comes first.

D-collapse. When D(x) stays near 1 and D(G(z)) near 0, D separates real from generated data perfectly and G's
gradient vanishes (the survey's first failure mode). `CollapseAlarm` reports it once per episode, with the tricks
that usually help.
"""

from __future__ import annotations

import logging

from gankit import checkpoint, registry
from gankit.config import Config
from gankit.errors import UserError

log = logging.getLogger("gankit")

D_REAL_HIGH, D_FAKE_LOW = 0.95, 0.05   # D's mean sigmoid output on real and on generated data
COLLAPSE_TRICKS = ("label_smooth 0.9 (one-sided label smoothing), inst_noise 0.1 (instance noise), r1_gamma 1 (R1), "
                   "diffaug color,translation,cutout, a lower d_lr than g_lr (TTUR), or loss hinge")


class Divergence:
    """The last good state of a run and the rollback to it."""

    def __init__(self, cfg: Config, state: checkpoint.TrainState):
        self.cfg, self.state = cfg, state
        self.good: dict | None = None     # a TrainState.capture(): CPU tensors
        self.good_step = -1

    def keep(self, snapshot: dict, step: int) -> None:
        """`snapshot` (a capture taken after a clean check, at `step`) is the state to return to."""
        self.good, self.good_step = snapshot, step

    def is_clean(self, nonfinite_updates: int) -> bool:
        """No skipped update since the last check, and every weight, statistic and optimizer moment finite."""
        s = self.state
        return nonfinite_updates == 0 and checkpoint.all_finite(*s.modules())

    def rollback(self, nonfinite_updates: int, last_checkpoint: str | None) -> str:
        """Return to the last good state with lower learning rates; returns the line to log. Raises a UserError
        once max_rollbacks rollbacks have not helped."""
        s, cfg = self.state, self.cfg
        at = s.step
        what = (f"{nonfinite_updates} update(s) with a non-finite loss or gradient were skipped" if nonfinite_updates
                else "a weight or batch-norm statistic became non-finite")
        if self.good is None or s.rollbacks >= cfg.max_rollbacks:
            where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written"
            raise UserError(f"training diverged before step {at} ({what}) after {s.rollbacks} rollback(s) "
                            f"(max_rollbacks {cfg.max_rollbacks}, learning rates now x{s.lr_factor:g}); {where}; "
                            "try lower g_lr/d_lr, r1_gamma 1 or d_norm spectral")
        rollbacks, factor = s.rollbacks + 1, s.lr_factor * cfg.rollback_lr_factor
        s.restore(self.good, rng=False)  # fresh noise: the draws that led here are not replayed
        s.rollbacks, s.lr_factor = rollbacks, factor
        return (f"divergence before step {at}: {what}; rolled back to step {s.step} and multiplied the learning "
                f"rates by {cfg.rollback_lr_factor:g} (now g_lr {cfg.g_lr * factor:.3g}, d_lr {cfg.d_lr * factor:.3g}); "
                f"rollback {rollbacks} of at most {cfg.max_rollbacks}")


class CollapseAlarm:
    """D(x) >= D_REAL_HIGH and D(G(z)) <= D_FAKE_LOW in every record of the last `steps` steps.

    `update(step, row, window)` takes each record (the means over the `window` steps before `step`) and returns
    the warning once per episode, when the condition has held for `steps` steps; `active` says whether it holds.
    Off for a critic's loss (registry: wgan-gp), whose outputs are scores, not probabilities, and for steps == 0.
    """

    def __init__(self, steps: int, loss: str):
        self.steps = steps if not registry.is_critic(loss) else 0
        self.since: int | None = None   # first step of the current episode
        self.reported = False

    @property
    def active(self) -> bool:
        return self.reported

    def update(self, step: int, row: dict, window: int) -> str | None:
        if not self.steps:
            return None
        if not (row["D(x)"] >= D_REAL_HIGH and row["D(G(z))"] <= D_FAKE_LOW):
            self.since, self.reported = None, False
            return None
        if self.since is None:
            self.since = step - window
        if self.reported or step - self.since < self.steps:
            return None
        self.reported = True
        return (f"D-collapse at step {step}: D(x) {row['D(x)']:.3f} and D(G(z)) {row['D(G(z))']:.3f} for the last "
                f"{step - self.since} steps; D wins and G learns little. Tricks that usually help: {COLLAPSE_TRICKS}")
