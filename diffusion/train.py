"""Train a class-conditional diffusion model into a run directory (see diffusion/rundir.py for the layout).

    python -m diffusion.train RUN_DIR [--resume]      # reads RUN_DIR/config.json
    torchrun --nproc_per_node=2 -m diffusion.train RUN_DIR   # data-parallel; rank 0 writes

The same `train()` runs from the CLI, the web trainer's subprocess and the benchmarks. A run can be
cancelled (RUN_DIR/cancel or SIGTERM: checkpoint, state "cancelled", exit 0) and resumed exactly: the
checkpoint holds every RNG state and the data order is a pure function of (seed, epoch).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting OpenMP threads starve shared CPUs

import argparse
import contextlib
import json
import logging
import math
import shutil
import signal
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from core.files import write_with

from . import checkpoint as ckpt
from . import distributed as ddp
from . import rundir
from .config import RESUMABLE_CHANGES, TrainConfig, config_changes
from .data import epoch_permutation, load_images, make_batch
from .ema import EMA
from .generate import resolve_device, safe_dir_name, save_grid, save_png
from .samplers import sample, to_uint8
from .schedule import CosineSchedule, stratified_times
from .unet import UNet, count_params, preset_config

HEARTBEAT_S = 3.0


class TrainingError(RuntimeError):
    """A problem the user can fix (bad data, changed config on resume, out of memory...)."""


class _Stop(Exception):
    pass


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        m in msg for m in ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory"))


def oom_message(device, batch_size: int) -> str:
    smaller = max(1, batch_size // 2)
    return (f"out of memory on {device} with batch size {batch_size}: try a smaller batch size "
            f"(e.g. --batch-size {smaller}), a smaller --preset or a smaller --image-size")


class StatusWriter:
    """status.json owned by this process: one lock for the training thread and the heartbeat thread."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.run_dir = run_dir
        self.enabled = enabled
        self.lock = threading.Lock()
        self.status = rundir.read_status(run_dir) if enabled else {}
        self._stop = threading.Event()
        self._thread = None

    def update(self, **fields) -> dict:
        with self.lock:
            self.status.update(fields)
            self.status["heartbeat"] = time.time()
            self.status["updated"] = self.status["heartbeat"]
            if self.enabled:
                rundir.write_json_atomic(rundir.status_path(self.run_dir), self.status)
            return dict(self.status)

    def start_heartbeat(self) -> None:
        if not self.enabled:
            return

        def beat():
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    self.update()
                except OSError:
                    pass

        self._thread = threading.Thread(target=beat, name="status-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _TqdmHandler(logging.Handler):
    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _make_logger(run_dir: Path, is_main: bool, console: bool) -> logging.Logger:
    logger = logging.getLogger(f"diffusion.train.{run_dir.resolve()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    if is_main:
        fh = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(fh)
        if console:
            th = _TqdmHandler()
            th.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(th)
    return logger


def _close_logger(logger: logging.Logger) -> None:
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


def write_run_config(run_dir: Path, config: TrainConfig, class_names: list[str] | None = None) -> dict:
    """config.json = settings + class names (+ snapshot_id / created kept from an existing file)."""
    path = Path(run_dir) / "config.json"
    old = rundir.read_json(path, default={}) or {}
    d = config.to_dict()
    for k in ("snapshot_id", "created"):
        if k in old:
            d[k] = old[k]
    d.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if class_names is not None:
        d["class_names"] = list(class_names)
    elif "class_names" in old:
        d["class_names"] = old["class_names"]
    rundir.write_json_atomic(path, d)
    return d


def read_run_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    d = rundir.read_json(path)
    if d is None:
        raise TrainingError(f"{path} does not exist: a run directory needs a config.json")
    try:
        return TrainConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise TrainingError(f"{path}: {e}") from None


def _load_evaluator(config: TrainConfig, run_dir: Path, images, labels, class_names, device, log, dist_info):
    """Fit (or reload) the evaluator that picks best.pt; None when evaluation is off (best.pt by lowest loss)."""
    if not config.eval or not dist_info.is_main:
        return None
    from . import evaluate
    path = run_dir / "evaluator.pt"
    with torch.random.fork_rng(devices=[]):
        if path.exists():
            try:
                return evaluate.Evaluator.load(path)
            except Exception as e:  # refit rather than fail: the evaluator is derived data
                log.warning("could not load %s (%s); fitting the evaluator again", path, e)
        t0 = time.time()
        ev = evaluate.Evaluator.fit(images, labels, class_names, seed=config.seed, device=device,
                                    budget_s=eval_budget(config.eval_budget_s, images))
        ev.save(path)
    log.info("evaluator fitted in %.1fs and saved to %s", time.time() - t0, path.name)
    return ev


def eval_budget(cap_s: float, images: torch.Tensor) -> float:
    """Seconds for fitting the evaluator: the cap for a few hundred 32 px images, less for small data
    (about 0.1 s per 32x32-pixel-equivalent image, at least 2 s), so tiny runs do not wait on it."""
    n, _, h, w = images.shape
    return float(min(cap_s, max(2.0, 0.1 * n * h * w / 1024)))


def _better(score: dict, best: dict | None) -> bool:
    """Evaluator figures: higher class accuracy first, then a lower Fréchet distance (KID if no FID)."""
    if best is None:
        return True
    acc, bacc = float(score.get("accuracy", 0.0)), float(best.get("accuracy", 0.0))
    if abs(acc - bacc) > 1e-9:
        return acc > bacc
    dist_key = "fid" if "fid" in score else "kid"
    return float(score.get(dist_key, math.inf)) < float(best.get(dist_key, math.inf))


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: Path, *, resume: bool, progress: bool):
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.stop_reason = None  # "cancel" | "budget" | None
        self.grid_seconds = 0.0  # how long the last sample grid + evaluation took

    # ----- entry point -----
    def run(self) -> dict:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        kind = "cpu"
        if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
            kind = "cuda"
        self.dist = ddp.setup(kind)
        main = self.dist.is_main
        self.log = _make_logger(self.run_dir, main, self.progress)
        self.status = StatusWriter(self.run_dir, main)
        old_handler = None
        if threading.current_thread() is threading.main_thread():
            old_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            if main:
                rundir.clear_cancel(self.run_dir)
                self.status.update(state="running", pid=os.getpid(), error=None, started=time.time(),
                                   epochs=cfg.epochs, minutes=cfg.minutes)
                self.status.start_heartbeat()
            return self._run()
        except Exception as e:
            if is_oom(e):
                msg = oom_message(getattr(self, "device", cfg.device), cfg.batch_size)
            elif isinstance(e, (TrainingError, ckpt.CheckpointError, ValueError)):
                msg = str(e)
            else:
                msg = f"{type(e).__name__}: {e}"
            self.log.error("training failed: %s\n%s", msg, traceback.format_exc())
            if main:
                self.status.stop_heartbeat()
                self.status.update(state="failed", error=msg)
            if is_oom(e):
                raise TrainingError(msg) from e
            raise
        finally:
            self.status.stop_heartbeat()
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
            _close_logger(self.log)
            ddp.teardown(self.dist)

    def _on_sigterm(self, signum, frame):
        self.stop_reason = "cancel"

    # ----- set-up -----
    def _setup(self):
        cfg, main = self.config, self.dist.is_main
        if self.dist.enabled and resolve_device(cfg.device).type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        else:
            self.device = resolve_device(cfg.device)
        self.on_cuda = self.device.type == "cuda"
        if self.on_cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True

        cache_dir = None if cfg.data.endswith(".json") else self.run_dir / "cache"
        images, labels, class_names = load_images(cfg.data, cfg.image_size, cfg.fit, cfg.background,
                                                  cache_dir=cache_dir if main else None)
        if self.on_cuda:
            images = images.pin_memory()
        self.images, self.labels, self.class_names = images, labels, class_names
        self.log.info("data: %d images, %d classes (%s) at %d px, %d channels", len(images), len(class_names),
                      ", ".join(class_names), cfg.image_size, images.shape[1])

        last = rundir.checkpoint_path(self.run_dir, "last")
        state = None
        if self.resume:
            state = ckpt.load(last)  # clear error if missing/corrupt
            changed = config_changes(state["config"], cfg.to_dict())
            if changed:
                details = "; ".join(f"{k}: {state['config'].get(k)!r} -> {cfg.to_dict().get(k)!r}" for k in changed)
                raise TrainingError(f"cannot resume with a changed config ({details}); only "
                                    f"{' and '.join(RESUMABLE_CHANGES)} may change. Start a new run instead.")
            if list(state["class_names"]) != list(class_names):
                raise TrainingError(f"cannot resume: the data's classes {class_names} differ from the run's "
                                    f"{list(state['class_names'])}")
            if state.get("world_size", 1) != self.dist.world_size:
                raise TrainingError(f"cannot resume a run trained on {state.get('world_size', 1)} process(es) "
                                    f"with {self.dist.world_size}: the data order would differ")
        elif last.exists():
            raise TrainingError(f"{self.run_dir} already has a checkpoint; resume it (--resume) or use a new run")
        if main:
            write_run_config(self.run_dir, cfg, class_names)

        torch.manual_seed(cfg.seed)
        mcfg = preset_config(cfg.preset, in_channels=images.shape[1], num_classes=len(class_names),
                             image_size=cfg.image_size)
        model = UNet(mcfg)
        self.model_config = mcfg
        self.schedule = CosineSchedule()
        model.to(self.device)
        if self.on_cuda:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99),
                                     weight_decay=cfg.weight_decay, eps=1e-8)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed * 7919 + self.dist.rank)
        torch.manual_seed(cfg.seed + self.dist.rank)

        self.step, self.epoch, self.batch_in_epoch, self.elapsed_before = 0, 0, 0, 0.0
        self.best, self.best_epoch, self.latest_grid_epoch = None, None, None
        if state is not None:
            self._restore(state)
        self.net = model
        if self.dist.enabled:
            ids = [self.device.index] if self.on_cuda else None
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if cfg.compile and self.on_cuda:
            self.net = torch.compile(self.net)
        self.log.info("model: preset %s, %.2fM parameters, device %s, world size %d", cfg.preset,
                      count_params(model) / 1e6, self.device, self.dist.world_size)
        self.evaluator = _load_evaluator(cfg, self.run_dir, images, labels, class_names, self.device, self.log,
                                         self.dist)

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.elapsed_before = state["elapsed_s"]
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self.latest_grid_epoch = state.get("latest_grid_epoch")
        rng = state["rng"]
        r = self.dist.rank
        self.noise_gen.set_state(rng["noise"][r])
        torch.set_rng_state(rng["torch"][r])
        if self.on_cuda and rng.get("cuda") and rng["cuda"][r] is not None:
            torch.cuda.set_rng_state(rng["cuda"][r], self.device)
        self.log.info("resumed from step %d (epoch %d, batch %d)", self.step, self.epoch, self.batch_in_epoch)

    # ----- checkpoints -----
    def _save_checkpoint(self, elapsed: float) -> None:
        rng = {"noise": self.noise_gen.get_state(), "torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(self.device) if self.on_cuda else None}
        gathered = ddp.gather_objects(self.dist, rng)
        if not self.dist.is_main:
            return
        state = {
            "format": "menagerie-diffusion-1",
            "model": self.model.state_dict(), "ema": self.ema.state_dict(), "optimizer": self.opt.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "elapsed_s": elapsed,
            "rng": {k: [g[k] for g in gathered] for k in ("noise", "torch", "cuda")},
            "config": self.config.to_dict(), "class_names": self.class_names,
            "model_config": self.model_config.to_dict(), "schedule": self.schedule.to_dict(),
            "best": self.best, "best_epoch": self.best_epoch, "latest_grid_epoch": self.latest_grid_epoch,
            "world_size": self.dist.world_size, "saved": time.time(),
        }
        ckpt.save_atomic(state, rundir.checkpoint_path(self.run_dir, "last"))

    def _copy_to_best(self) -> None:
        last = rundir.checkpoint_path(self.run_dir, "last")
        best = rundir.checkpoint_path(self.run_dir, "best")
        with open(last, "rb") as source:
            write_with(best, lambda f: shutil.copyfileobj(source, f))

    # ----- samples and evaluation -----
    def _grid_epoch(self) -> int:
        """Label for a grid: the epoch in progress counts if any of it has been trained."""
        return self.epoch + (1 if self.batch_in_epoch > 0 else 0)

    def _samples_and_eval(self, recent_loss: float | None, elapsed: float) -> None:
        """Sample grid + per-class PNGs from the EMA model, evaluation, last.pt and maybe best.pt."""
        cfg = self.config
        epoch = self._grid_epoch()
        if self.dist.is_main:
            t0 = time.time()
            k = cfg.samples_per_class
            labels = torch.arange(len(self.class_names)).repeat_interleave(k)
            with torch.random.fork_rng(devices=[]):
                gen = torch.Generator().manual_seed(cfg.seed + 12345)  # fixed noise: epochs compare
                imgs = sample(self.ema.model, self.schedule, labels, steps=cfg.sample_steps, sampler=cfg.sampler,
                              guidance=cfg.guidance, generator=gen, device=self.device, prediction=cfg.prediction)
            u8 = to_uint8(imgs)
            save_grid(u8, len(self.class_names), rundir.grid_path(self.run_dir, epoch))
            edir = rundir.epoch_samples_dir(self.run_dir, epoch)
            for i in range(len(u8)):
                name = self.class_names[int(labels[i])]
                save_png(u8[i], edir / safe_dir_name(name) / f"{i % k}.png")
            self.latest_grid_epoch = epoch
            figures = None
            if self.evaluator is not None:
                with torch.random.fork_rng(devices=[]):
                    figures = self.evaluator.score(u8, labels)
                rundir.append_jsonl(self.run_dir / "metrics.jsonl",
                                    {"kind": "eval", "epoch": epoch, "step": self.step, **_jsonable(figures)})
                self.log.info("epoch %d eval: %s", epoch, _short(figures))
                improved = _better(figures, self.best)
                if improved:
                    self.best = {k2: v for k2, v in _jsonable(figures).items() if isinstance(v, (int, float))}
            elif recent_loss is not None:
                improved = self.best is None or recent_loss < self.best.get("loss", math.inf)
                if improved:
                    self.best = {"loss": recent_loss}
            else:
                improved = self.best is None
            if improved:
                self.best_epoch = epoch
            self.log.info("samples for epoch %d written in %.1fs", epoch, time.time() - t0)
        else:
            improved = False
        self._save_checkpoint(elapsed)
        if self.dist.is_main:
            if improved:
                self._copy_to_best()
            self.status.update(latest_grid_epoch=self.latest_grid_epoch, best_epoch=self.best_epoch)
        ddp.barrier(self.dist)

    # ----- the loop -----
    def _run(self) -> dict:
        self._setup()
        cfg, main = self.config, self.dist.is_main
        world, rank = self.dist.world_size, self.dist.rank
        n_total = len(self.images)
        per_rank_n = n_total // world
        if per_rank_n < 1:
            raise TrainingError(f"{n_total} images are too few for {world} processes")
        b = max(1, min(cfg.batch_size // world, per_rank_n))
        steps_per_epoch = math.ceil(per_rank_n / b)
        total_steps = cfg.epochs * steps_per_epoch if cfg.epochs else None
        budget_s = cfg.minutes * 60 if cfg.minutes else None
        null = len(self.class_names)
        if main:
            self.status.update(state="running", device=str(self.device), step=self.step, epoch=self.epoch,
                               total_steps=total_steps, steps_per_epoch=steps_per_epoch, world_size=world,
                               latest_grid_epoch=self.latest_grid_epoch, best_epoch=self.best_epoch)
        self.log.info("training: batch %d x %d process(es), %d steps/epoch, epochs=%s, minutes=%s", b, world,
                      steps_per_epoch, cfg.epochs, cfg.minutes)

        loop_start = time.time()
        elapsed = lambda: self.elapsed_before + (time.time() - loop_start)  # noqa: E731
        last_grid_t, last_ckpt_t = elapsed(), elapsed()
        interval_loss, interval_n, interval_t0, interval_imgs = 0.0, 0, time.time(), 0
        epoch_loss, epoch_n = 0.0, 0
        ips = None
        bar = tqdm(total=total_steps, initial=self.step, disable=not (self.progress and main), unit="step",
                   dynamic_ncols=True, file=sys.stderr, desc="train")
        done = lambda: cfg.epochs is not None and self.epoch >= cfg.epochs  # noqa: E731
        final_state = "completed"
        recent = None
        try:
            while not done():
                perm = epoch_permutation(n_total, cfg.seed, self.epoch)[: per_rank_n * world][rank::world]
                while self.batch_in_epoch < steps_per_epoch:
                    idx = perm[self.batch_in_epoch * b:(self.batch_in_epoch + 1) * b]
                    try:
                        loss = self._train_step(idx, null)
                    except Exception as e:
                        if is_oom(e):
                            raise TrainingError(oom_message(self.device, cfg.batch_size)) from e
                        raise
                    self.batch_in_epoch += 1
                    self.step += 1
                    interval_loss += loss
                    interval_n += 1
                    interval_imgs += len(idx) * world
                    epoch_loss += loss
                    epoch_n += 1
                    bar.update(1)
                    if self.step % cfg.log_every == 0:
                        dt = max(1e-9, time.time() - interval_t0)
                        ips = interval_imgs / dt
                        lr = self.opt.param_groups[0]["lr"]
                        if main:
                            rundir.append_jsonl(self.run_dir / "metrics.jsonl", {
                                "kind": "train", "epoch": self.epoch, "step": self.step,
                                "loss": interval_loss / interval_n, "lr": lr, "images_per_sec": ips})
                            eta, total_est = self._eta(ips, b * world, total_steps, budget_s, elapsed())
                            self.status.update(step=self.step, epoch=self.epoch, images_per_sec=round(ips, 2),
                                               eta_seconds=eta, total_steps=total_est, elapsed_s=elapsed())
                        bar.set_postfix(loss=f"{interval_loss / interval_n:.4f}", img_s=f"{ips:.0f}")
                        interval_loss, interval_n, interval_t0, interval_imgs = 0.0, 0, time.time(), 0
                    cancel = main and (self.stop_reason == "cancel" or rundir.cancel_requested(self.run_dir))
                    over = budget_s is not None and elapsed() >= budget_s
                    cancel, over = ddp.any_flag(self.dist, [cancel, over], self.device)
                    if cancel or over:
                        raise _Stop("cancel" if cancel else "budget")
                    if elapsed() - last_ckpt_t >= cfg.checkpoint_minutes * 60:
                        self._save_checkpoint(elapsed())
                        last_ckpt_t = elapsed()
                self.epoch += 1
                self.batch_in_epoch = 0
                recent = epoch_loss / max(1, epoch_n)
                epoch_loss, epoch_n = 0.0, 0
                if main:
                    self.status.update(epoch=self.epoch, step=self.step)
                if cfg.sample_every is not None:
                    want_grid = self.epoch % cfg.sample_every == 0
                else:  # by time, and never more than ~1/6 of the time on grids (slow when the CPU is shared)
                    want_grid = elapsed() - last_grid_t >= max(cfg.sample_minutes * 60, 6 * self.grid_seconds)
                want_grid = ddp.broadcast_object(self.dist, want_grid)
                if want_grid and not done():
                    t_grid = time.time()
                    self._samples_and_eval(recent, elapsed())
                    self.grid_seconds = time.time() - t_grid
                    last_grid_t = last_ckpt_t = elapsed()
        except _Stop as s:
            final_state = "cancelled" if str(s) == "cancel" else "completed"
            self.log.info("stopping: %s after %d steps (%.1f min)", "cancel requested" if final_state == "cancelled"
                          else "time budget reached", self.step, elapsed() / 60)
            recent = epoch_loss / epoch_n if epoch_n else None
        except KeyboardInterrupt:  # Ctrl-C on the command line: keep the work, like a cancel
            final_state = "cancelled"
            self.log.info("interrupted: saving a checkpoint at step %d", self.step)
        finally:
            bar.close()
        # Final checkpoint and samples (a cancelled run keeps its state; grids are only for finished work).
        if final_state == "completed" and self.latest_grid_epoch != self._grid_epoch():
            self._samples_and_eval(recent, elapsed())
        else:
            self._save_checkpoint(elapsed())
            if main and self.best_epoch is None and final_state == "completed":
                self._copy_to_best()
        result = {"state": final_state, "step": self.step, "epoch": self.epoch}
        if main:
            self.status.stop_heartbeat()
            result = self.status.update(state=final_state, step=self.step, epoch=self.epoch, eta_seconds=0,
                                        elapsed_s=elapsed(), images_per_sec=round(ips, 2) if ips else None,
                                        total_steps=self.step if final_state == "completed" else total_steps)
            self.log.info("run %s: %d steps, %d epochs, best epoch %s", final_state, self.step, self.epoch,
                          self.best_epoch)
        ddp.barrier(self.dist)
        return result

    def _eta(self, ips, batch, total_steps, budget_s, elapsed):
        """(seconds left, estimated total steps) from the epoch target and/or the time budget."""
        steps_per_s = ips / batch
        etas, totals = [], []
        if total_steps is not None:
            etas.append((total_steps - self.step) / max(steps_per_s, 1e-9))
            totals.append(total_steps)
        if budget_s is not None:
            left = max(0.0, budget_s - elapsed)
            etas.append(left)
            totals.append(self.step + int(left * steps_per_s))
        return round(min(etas), 1), min(totals)

    def _train_step(self, idx: torch.Tensor, null_class: int) -> float:
        cfg, dev = self.config, self.device
        gen = self.noise_gen
        x0 = make_batch(self.images, idx, flip=cfg.flip, generator=gen, device=dev)
        y = self.labels[idx]
        drop = torch.rand(len(idx), generator=gen) < cfg.label_dropout
        y = torch.where(drop, torch.full_like(y, null_class), y).to(dev)
        t = stratified_times(len(idx), gen, dev)
        eps = torch.randn(x0.shape, generator=gen).to(dev)
        xt = self.schedule.add_noise(x0, eps, t)
        if self.on_cuda:
            xt = xt.contiguous(memory_format=torch.channels_last)
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.on_cuda else contextlib.nullcontext()
        with amp:
            out = self.net(xt, t, y)
        target = self.schedule.target(x0, eps, t, cfg.prediction)
        per_sample = (out.float() - target).pow(2).mean(dim=(1, 2, 3))
        weight = self.schedule.loss_weight(t, cfg.prediction, cfg.min_snr_gamma)
        loss = (weight * per_sample).mean()
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {loss.item()} at step {self.step}; lower the learning rate "
                                f"(now {cfg.lr})")
        lr = cfg.lr * min(1.0, (self.step + 1) / max(1, cfg.warmup_steps))
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.ema.update(self.model)
        return loss.item()


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, torch.Tensor):
            v = v.tolist()
        if isinstance(v, dict):
            v = _jsonable(v)
        elif hasattr(v, "item") and not isinstance(v, (list, str)):
            v = v.item()
        out[k] = v
    return out


def _short(d: dict) -> str:
    keys = [k for k in ("accuracy", "fid", "kid", "memorised_share") if k in d]
    return ", ".join(f"{k}={float(d[k]):.3f}" for k in keys)


def train(config: TrainConfig, run_dir: Path, *, resume: bool = False, progress: bool = True) -> dict:
    """Train into `run_dir` (created if needed); returns the final status dict.

    Raises ValueError/TrainingError/CheckpointError with a clear message on bad input (also written to
    status.json as state "failed" and to train.log with the traceback).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        config.validate()
    except ValueError as e:
        rundir.write_status(run_dir, state="failed", error=str(e))
        raise
    return Trainer(config, run_dir, resume=resume, progress=progress).run()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Train a Menagerie diffusion run from RUN_DIR/config.json")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar / console log")
    a = p.parse_args(argv)
    try:
        config = read_run_config(a.run_dir)
        status = train(config, a.run_dir, resume=a.resume, progress=not a.no_progress)
    except Exception as e:  # already recorded in status.json / train.log by train()
        if not (a.run_dir / "status.json").exists() or rundir.read_status(a.run_dir).get("state") != "failed":
            rundir.write_status(a.run_dir, state="failed", error=str(e))
        print(f"training failed: {e}", file=sys.stderr)
        return 1
    print(json.dumps({k: status.get(k) for k in ("state", "step", "epoch", "best_epoch")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
