"""One run's life, the same for every task: the run folder (made, locked, taken over after a failed start, removed
when a run fails before its first checkpoint), resume through the checkpoint with the config checked against it,
the records (metrics.jsonl, TensorBoard), the progress bar, what is due at each step (records, pictures,
evaluations, checkpoints), the divergence guard's rollback, and a last checkpoint on Ctrl-C or SIGTERM.

A task gives a `Trainer`: the state a checkpoint holds, its step, and what it draws and evaluates. The Session runs
it (stylegan2-ada's one training loop with the task's arithmetic in an object):

    for k in range(start, steps):
        trainer.train_step(k)                        # the task's step: the survey's recipe for the GAN
        if something is due at k + 1:
            check (roll back on divergence), record, draw, evaluate, snapshot / checkpoint
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gankit import checkpoint, distributed, outputs, registry, run
from gankit.config import KEEP_BEST, RESUMABLE_FIELDS, Config, dump
from gankit.errors import ConfigError, Terminated, UserError
from gankit.guard import CollapseAlarm, Divergence
from gankit.setup import memory_errors

log = logging.getLogger("gankit")
ETA_STEPS = 5  # steps timed after the first (which includes warm-up) for the up-front estimate of the run's time


class Trainer:
    """What a task gives the Session for one run. A task's trainer (gankit/tasks/) does its set-up in __init__ and
    sets `cfg` (resolved from the data), `state` (a checkpoint.TrainState), `step` (a step.Step: step.tally and
    step.lr_factor are read and set by the Session), `device`, `ctx` and `data` (the training data, whose
    fingerprint every checkpoint keeps); the hooks below are its watching."""

    cfg: Config
    state: checkpoint.TrainState
    data = None                # a Dataset or StreamedDataset: what train_step draws from
    device = None
    ctx = distributed.Context()
    evaluates = False          # whether `evaluate` has anything to compute when an evaluation is due

    def train_step(self, k: int) -> None:
        raise NotImplementedError

    def begin(self, run_dir: Path, writer: run.BackgroundWriter, rec: run.Recorder, resumed: bool) -> None:
        """Before the first step, once cfg holds the run folder's name (the GAN writes reals.png)."""

    def pictures(self, run_dir: Path, k: int, writer: run.BackgroundWriter, rec: run.Recorder) -> None:
        """Pictures of step k (on the main process): handed to `writer` so that training goes on meanwhile."""

    def evaluate(self, run_dir: Path, k: int, writer: run.BackgroundWriter) -> dict:
        """Evaluation of step k on the main process: {"eval/NAME": value}."""
        return {}

    def postfix(self, row: dict) -> str:
        """The progress bar's text for the last record `row`."""
        return ""

    def finish(self, run_dir: Path, last: dict) -> None:
        """After the last step, on the main process: the run's result (results.json, the summary lines)."""
        run.print_summary(run_dir, last)


@dataclass
class Due:
    log: bool
    pictures: bool
    eval: bool
    ckpt: bool

    def __bool__(self) -> bool:
        return self.log or self.pictures or self.eval or self.ckpt


def due(cfg: Config, k: int, evaluates: bool) -> Due:
    """What is due after k steps: each every-N field, and everything at the last step (a checkpoint always)."""
    done = k == cfg.steps

    def every(n: int) -> bool:
        return done or (n > 0 and k % n == 0)

    return Due(every(cfg.log_every), every(cfg.sample_every), evaluates and every(cfg.eval_every),
               every(cfg.ckpt_every))


class Session:
    """Runs a Trainer in its run folder; `run()` returns the folder."""

    def __init__(self, trainer: Trainer, resume: Path | None = None, progress: bool = True, force: bool = False):
        self.t, self.resume, self.progress, self.force = trainer, (Path(resume) if resume else None), progress, force
        self.ctx = trainer.ctx
        self.last: dict = {}

    def run(self) -> Path:
        folder = self._hold()
        try:
            self._train()
            distributed.shutdown(self.ctx)
            if self.ctx.is_main:
                self.t.finish(self.dir, self.last)
                warning = checkpoint.ema_warning(self.t.cfg.to_dict(), self.t.state.step)
                if warning:
                    log.warning(warning)
            return self.dir
        except BaseException:
            if folder is not None:
                folder.abandon()  # a run made here that never wrote a checkpoint leaves no folder behind
            raise
        finally:
            if folder is not None:
                folder.close()

    # ---- the folder, and the state in it -------------------------------------------------------------------------

    def _hold(self) -> run.RunFolder | None:
        """The run folder, locked once the trainer's set-up has worked; a resume is checked before any write."""
        ctx, state = self.ctx, self.t.state
        if self.t.data is not None:  # checkpoints keep it; a resume on data that changed since is refused (restore)
            state.data = self.t.data.fingerprint()
        if self.resume:
            folder = run.RunFolder.existing(self.resume) if ctx.is_main else None
            try:
                self._restore()
            except BaseException:
                if folder is not None:
                    folder.close()
                raise
        else:
            _same_start(state, ctx)
            folder = run.RunFolder.create(self.t.cfg, self.force) if ctx.is_main else None
        self.dir = Path(distributed.broadcast_object(str(folder.path) if folder else None, ctx))
        return folder

    def _restore(self) -> None:
        """The run's latest checkpoint into the state, checking that the run can go on as cfg says, on the data it
        was trained on. A run with no checkpoint (a failed start) starts again from step 0."""
        cfg, state, run_dir = self.t.cfg, self.t.state, self.resume
        if not run.has_checkpoint(run_dir):
            log.info(f"resume: {run_dir} has no checkpoint yet (its first start ended early); training from step 0")
            _same_start(state, self.ctx)
            return
        saved = checkpoint.read(run_dir, map_location=self.t.device)
        now = cfg.to_dict()
        changed = [k for k, v in saved.config.items() if k in now and k not in RESUMABLE_FIELDS and now[k] != v]
        if changed:
            k = changed[0]
            raise UserError(f"resume: config.yaml of {run_dir} differs from its checkpoint in {', '.join(changed)} "
                            f"({k}: {now[k]!r} in config.yaml, {saved.config[k]!r} in {saved.path.name}); only "
                            f"{', '.join(RESUMABLE_FIELDS)} may change on resume")
        state.restore(saved.state, self.ctx.rank)
        if state.step >= cfg.steps:
            raise ConfigError("steps", f"the run is already at step {state.step}; a larger number of steps "
                                       "continues it")
        if state.lr_factor != 1.0 and (saved.config.get("g_lr"), saved.config.get("d_lr")) != (cfg.g_lr, cfg.d_lr):
            log.info(f"resume: new learning rates g_lr {cfg.g_lr:g}, d_lr {cfg.d_lr:g} replace the ones the "
                     f"divergence guard had lowered (x{state.lr_factor:g})")
            state.lr_factor = 1.0

    # ---- the loop --------------------------------------------------------------------------------------------------

    def _train(self) -> None:
        t, ctx, state = self.t, self.ctx, self.t.state
        resumed = self.resume is not None
        t.cfg = cfg = dataclasses.replace(t.cfg, name=self.dir.name)  # the folder's real name, also when numbered
        state.config = cfg.to_dict()
        if ctx.is_main:
            if resumed and state.step == 0:
                run.RunFolder(self.dir, None, False).restart()
            outputs.write_atomic(self.dir / "config.yaml", lambda tmp: tmp.write_text(dump(cfg), encoding="utf-8"))
        self.rec = run.Recorder(self.dir, ctx, state.step)
        if resumed:
            self.rec.write({"step": state.step, "nimg": state.nimg, "event": "resume"})
        self.writer = run.BackgroundWriter()
        self.bar = run.progress_bar(cfg, ctx, state.step, self.progress)
        try:
            t.begin(self.dir, self.writer, self.rec, resumed)
            # the D-collapse alarm watches an adversarial game; ssl's D is meant to tell real from generated (its G
            # learns by feature matching), so a winning D is no alarm there
            watched = cfg.collapse_steps if registry.TASKS[cfg.task].adversarial_loss else 0
            self.guard, self.alarm = Divergence(cfg, state), CollapseAlarm(watched, cfg.loss)
            self.guard.keep(state.capture(self._rng()), state.step)  # the first good state: where this process began
            self.last_ckpt = self.dir / "checkpoints" / f"step-{state.step:07d}.pt" if resumed and state.step else None
            t.step.lr_factor = state.lr_factor
            self.t_start, self.first, self.last_record = time.time(), state.step, state.step
            self.best = checkpoint.best_so_far(self.dir, cfg.keep_best) if resumed and cfg.keep_best else None
            self.best_due = self.t_eta = None
            self.eta_said = False
            with _sigterm_stops() as stop:
                self._steps(stop)
        finally:
            try:
                self.writer.close()
            finally:
                if self.bar is not None:
                    self.bar.close()
                self.rec.close()

    def _steps(self, stop: threading.Event) -> None:
        t, cfg, state = self.t, self.t.cfg, self.t.state
        try:
            while state.step < cfg.steps:
                with memory_errors(f"training step {state.step + 1}"):
                    t.train_step(state.step)
                state.step += 1
                state.nimg += cfg.batch_size * self.ctx.world_size
                if self.bar is not None:
                    self.bar.update(1)
                self._eta()
                compiled = getattr(t.step, "compile_seconds", None)
                if state.step == self.first + 1 and compiled is not None and self.ctx.is_main:
                    log.info(f"compile: the first step took {compiled:.1f} s, compilation included")
                now = due(cfg, state.step, t.evaluates)
                if now:
                    self._watch(now)
                if stop.is_set():
                    self._stop_here()
        except (KeyboardInterrupt, Terminated):
            self._save_on_interrupt()
            raise

    def _watch(self, now: Due) -> None:
        """What is due after a step, off the step's hot path; first the guard, before anything is recorded, drawn
        or saved (one host synchronisation of a watched step)."""
        t, ctx, state = self.t, self.ctx, self.t.state
        clean, skipped = self._check()
        if not clean:
            return self._rollback(skipped)
        if now.log:
            self._record()
        if now.pictures and ctx.is_main:
            t.pictures(self.dir, state.step, self.writer, self.rec)
        if now.eval and ctx.is_main:
            self._evaluate()
        if self.bar is not None and (now.log or now.eval) and "sec" in self.last:  # after a record: the task's text
            self.bar.set_postfix_str(("D WINS (see log) · " if self.alarm.active else "") + t.postfix(self.last))
        if now.log or now.ckpt or (now.eval and t.cfg.keep_best):
            snapshot = state.capture(self._rng())  # CPU copies: training goes on while a file is written
            self.guard.keep(snapshot, state.step)  # ... and the state a rollback returns to
            if now.ckpt:
                self._checkpoint(snapshot)
            if self.best_due is not None and ctx.is_main:
                self.writer.submit(checkpoint.save_best, snapshot, self.dir / "checkpoints", t.cfg.keep_best,
                                   self.best_due, state.step)
                self.best, self.best_due = self.best_due, None

    def _check(self) -> tuple[bool, int]:
        """(whether the state is clean on every rank, the updates skipped since the last check over all ranks)."""
        t, ctx = self.t, self.ctx
        skipped = int(distributed.mean(float(t.step.tally.nonfinite_updates()), ctx, t.device) * ctx.world_size)
        return distributed.all_true(self.guard.is_clean(skipped), ctx, t.device), skipped

    def _rollback(self, skipped: int) -> None:
        t, state = self.t, self.t.state
        log.warning(self.guard.rollback(skipped, str(self.last_ckpt) if self.last_ckpt else None))
        t.step.tally.reset()
        t.step.lr_factor = state.lr_factor
        self.rec.write({"step": state.step, "nimg": state.nimg, "event": "rollback", "rollbacks": state.rollbacks,
                        "lr_factor": state.lr_factor})
        if self.bar is not None:
            self.bar.n = state.step
            self.bar.refresh()
        self.last_record = state.step

    def _record(self) -> None:
        t, ctx, state = self.t, self.ctx, self.t.state
        row = {k: distributed.mean(v, ctx, t.device) for k, v in t.step.tally.read().items()}
        self.last = {**row, "sec": round(time.time() - self.t_start, 2)}
        self.rec.write({"step": state.step, "nimg": state.nimg, **self.last})
        warning = self.alarm.update(state.step, row, state.step - self.last_record)
        self.last_record = state.step
        if warning and ctx.is_main:
            log.warning(warning)
            self.rec.write({"step": state.step, "nimg": state.nimg, "event": "d_collapse"})

    def _evaluate(self) -> None:
        state = self.t.state
        try:
            evals = self.t.evaluate(self.dir, state.step, self.writer)
        except Exception as e:  # noqa: BLE001: a broken metric must not cost the run: training and checkpoints go on
            log.error(f"evaluation at step {state.step} failed ({type(e).__name__}: {e}); training goes on; "
                      f"score the checkpoint later with `gankit eval {self.dir}`")
            return
        if evals:
            self.rec.write({"step": state.step, "nimg": state.nimg, **evals})
            self.last.update(evals)
        key = self.t.cfg.keep_best
        value = evals.get(f"eval/{key}") if key else None
        if isinstance(value, (int, float)) and math.isfinite(value) and (
                self.best is None or (value < self.best if KEEP_BEST[key][1] else value > self.best)):
            self.best_due = float(value)  # saved as checkpoints/best.pt with the snapshot of this step (_watch)

    def _checkpoint(self, snapshot: dict) -> None:
        self.writer.wait()  # one checkpoint write at a time, in order
        if self.ctx.is_main:
            folder, k = self.dir / "checkpoints", self.t.state.step
            self.writer.submit(checkpoint.save_step, snapshot, folder, k)
            self.last_ckpt = folder / f"step-{k:07d}.pt"
        distributed.barrier(self.ctx)

    def _eta(self) -> None:
        """Once, ETA_STEPS steps after the first of this process: the time the rest of the run will take, from the
        time those steps took (the progress line's ETA comes only with the first record, log_every steps in)."""
        state, cfg = self.t.state, self.t.cfg
        if self.eta_said or not self.ctx.is_main:
            return
        if state.step == self.first + 1:
            self.t_eta = time.time()
        elif state.step == self.first + 1 + ETA_STEPS and self.t_eta is not None and cfg.steps > state.step:
            self.eta_said = True
            per_step = (time.time() - self.t_eta) / ETA_STEPS
            left = round(per_step * (cfg.steps - state.step))
            log.info(f"train: about {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d} for the remaining "
                     f"{cfg.steps - state.step:,} steps ({per_step:.3g} s/step over steps {self.first + 2}-"
                     f"{state.step}; evaluations and checkpoints come on top)")

    def _rng(self):
        """Every rank's RNG states, so that a resumed multi-process run draws the same noise on every rank."""
        return distributed.gather_object(checkpoint.rng_state(), self.ctx)

    def _stop_here(self) -> None:
        """SIGTERM, at the end of a step: this step's state becomes the last clean one when the guard finds it clean
        (then no step is lost), and is saved; then the run ends as Ctrl-C ends it."""
        state = self.t.state
        if self._check()[0]:
            self.guard.keep(state.capture(self._rng()), state.step)
        raise Terminated("terminated (SIGTERM)")

    def _save_on_interrupt(self) -> None:
        """Ctrl-C or SIGTERM: the last good state (taken at the last clean record, consistent, with its RNG states)
        becomes a checkpoint when it is newer than the last one, so that --resume goes on exactly from there."""
        guard, ctx = self.guard, self.ctx
        if ctx.world_size > 1 or not ctx.is_main or guard.good is None or guard.good_step <= 0:
            return
        last_step = int(self.last_ckpt.stem.split("-")[-1]) if self.last_ckpt else -1   # step-NNNNNNN.pt
        if guard.good_step <= last_step:
            return
        try:
            self.writer.wait()
            path = checkpoint.save_step(guard.good, self.dir / "checkpoints", guard.good_step)
            log.warning(f"interrupted: saved the last clean state (step {guard.good_step}) to {path}; continue "
                        f"with --resume {self.dir}")
        except Exception as e:  # noqa: BLE001: the interrupt is what the user asked for; report and go on with it
            log.error(f"interrupted: could not save the last clean state ({type(e).__name__}: {e})")


def _same_start(state: checkpoint.TrainState, ctx: distributed.Context) -> None:
    """A fresh start: every rank begins from rank 0's weights, and each averaged copy from its live model."""
    distributed.broadcast_module(state.G, ctx), distributed.broadcast_module(state.D, ctx)
    if state.G_ema is not None:
        state.G_ema.load_state_dict(state.G.state_dict())
    if state.D_ema is not None:
        state.D_ema.load_state_dict(state.D.state_dict())


# Set by SIGTERM while a run trains (the loop reads it after each step); module-level so that a supervisor in the same
# process can see that a stop was asked for.
STOP = threading.Event()


@contextlib.contextmanager
def _sigterm_stops():
    """While training, SIGTERM asks the loop to stop at the end of the step in progress (STOP, which the loop reads
    after each step), so that the state saved is that step's whole; handlers can only be set in the main thread."""
    STOP.clear()
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: STOP.set())
    try:
        yield STOP
    finally:
        signal.signal(signal.SIGTERM, previous)
