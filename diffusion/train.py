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
import copy
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
from .augment import AUGMENT_DIM, flip_decision, nonleaky_augment
from .config import RESUMABLE_CHANGES, TrainConfig, config_changes, schedule_shift
from .data import epoch_permutation, load_images, make_batch, source_items
from .ema import EMA
from .evaluate import chance_level
from .generate import resolve_device, safe_dir_name, save_grid, save_png
from .guidance import ACCURACY_SHARE
from .nearest import write_nearest_by_class
from .samplers import sample, to_uint8
from .schedule import CosineSchedule, stratified_times
from .unet import UNet, UNetConfig, count_params, preset_config

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
    for k in ("snapshot_id", "created", "flip_decision"):
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
    """Fit (or reload) the evaluator that picks best.pt; None when evaluation is off (best.pt by lowest loss).

    Fitted without flips unless the user turned flips on: it then tests whether mirrored pictures keep their
    class (the "auto" flip decision) and does not accept mirrored samples the data never shows."""
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
                                    budget_s=eval_budget(config.eval_budget_s, images), flip=config.flip == "on")
        ev.save(path)
    log.info("evaluator fitted in %.1fs and saved to %s", time.time() - t0, path.name)
    return ev


def eval_budget(cap_s: float, images: torch.Tensor) -> float:
    """Seconds for fitting the evaluator: the cap for a few hundred 32 px images, less for small data
    (about 0.1 s per 32x32-pixel-equivalent image, at least 2 s), so tiny runs do not wait on it."""
    n, _, h, w = images.shape
    return float(min(cap_s, max(2.0, 0.1 * n * h * w / 1024)))


# Previews and evaluation during training keep to this part of preview_share; the rest is for the final evaluation
# and the guidance sweep, which gets at least MIN_SWEEP_S (enough to compare two settings).
TRAINING_PART_OF_SHARE = 0.5
MIN_SWEEP_S = 15.0
FID_TIE = 0.02  # without standard errors (older metrics), Fréchet distances within 2 % count as a tie
FID_TIE_SE = 2.0  # with them, a difference under 2 standard errors of the difference is a tie, broken by accuracy


def _better(score: dict, best: dict | None, num_classes: int) -> bool:
    """"Best" follows what users see, by the rule the guidance sweep uses: among epochs recognised nearly as often
    as each other (accuracy within ACCURACY_SHARE), the lower Fréchet distance in the evaluator's features, accuracy
    breaking ties (a difference within the distances' sampling noise is a tie: at 64 px a demo run kept epoch 238,
    blobs, over epoch 500, clear animals, for a distance 1.6 lower where one epoch's own standard error was 1.8); an
    epoch recognised clearly more often wins outright (a demo run picked an epoch at accuracy 0.70
    over one at 0.94 for a Fréchet distance 11 % lower, within what 128 samples can tell apart); an epoch whose
    accuracy is at chance level is never best (its FID means nothing yet)."""
    acc = float(score.get("accuracy", 0.0))
    if chance_level(acc, int(score.get("n_samples", 0)), num_classes):
        return False
    if best is None:
        return True
    best_acc = float(best.get("accuracy", 0.0))
    if best_acc < ACCURACY_SHARE * acc or acc < ACCURACY_SHARE * best_acc:
        return acc > best_acc
    dist_key = "fid" if "fid" in score and "fid" in best else "kid" if "kid" in score and "kid" in best else None
    if dist_key is not None:
        d, bd = float(score[dist_key]), float(best[dist_key])
        if dist_key == "fid" and score.get("fid_se") is not None and best.get("fid_se") is not None:
            tie = FID_TIE_SE * math.hypot(float(score["fid_se"]), float(best["fid_se"]))
        else:
            tie = FID_TIE * max(abs(bd), 1e-9)
        if abs(d - bd) > tie:
            return d < bd
    return acc > best_acc


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: Path, *, resume: bool, progress: bool):
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.stop_reason = None  # "cancel" | "budget" | None
        self.grid_seconds = 0.0  # how long the last sample grid + evaluation took
        self.overhead_s = 0.0  # previews + evaluation in this process (not charged to the training budget)
        self.preview_s_before = 0.0  # the same, from earlier sessions of the run (resumes)
        self.sweep_s = 0.0  # the end-of-run guidance sweep, which shares preview_share with previews and evaluation
        self.evaluator_fit_s = 0.0
        self.latest_grid_step = None

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
        # The GPU recipe (bf16 autocast, channels_last, torch.compile): each on by default on CUDA only.
        self.amp = self.on_cuda if cfg.amp is None else bool(cfg.amp) and self.device.type in ("cuda", "cpu")
        self.channels_last = self.on_cuda if cfg.channels_last is None else bool(cfg.channels_last)
        self.compile = self.on_cuda if cfg.compile is None else bool(cfg.compile)
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
            try:  # settings added since the checkpoint was written read as their defaults
                saved = TrainConfig.from_dict(state["config"]).to_dict()
            except (TypeError, ValueError):
                saved = state["config"]
            changed = config_changes(saved, cfg.to_dict())
            if changed:
                details = "; ".join(f"{k}: {saved.get(k)!r} -> {cfg.to_dict().get(k)!r}" for k in changed)
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
        if state is not None:  # the architecture the run was started with (presets may have changed since)
            mcfg = UNetConfig.from_dict(state["model_config"])
        else:
            mcfg = preset_config(cfg.preset, in_channels=images.shape[1], num_classes=len(class_names),
                                 image_size=cfg.image_size)
            mcfg.augment_dim = AUGMENT_DIM if cfg.augment > 0 else 0
        model = UNet(mcfg)
        self.model_config = mcfg
        # A resumed run keeps the noise schedule it was trained with (older runs: unshifted at every size).
        self.schedule = (CosineSchedule.from_dict(state["schedule"]) if state is not None
                         else CosineSchedule(shift=schedule_shift(cfg.image_size)))
        model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99),
                                     weight_decay=cfg.weight_decay, eps=1e-8)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed * 7919 + self.dist.rank)
        torch.manual_seed(cfg.seed + self.dist.rank)

        self.step, self.epoch, self.batch_in_epoch, self.elapsed_before = 0, 0, 0, 0.0
        self.best, self.best_epoch, self.latest_grid_epoch = None, None, None
        self.flip = None
        if state is not None:
            self._restore(state)
        self.net = model
        if self.dist.enabled:
            ids = [self.device.index] if self.on_cuda else None
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if self.compile:
            self.net = torch.compile(self.net)
        self.log.info("model: preset %s, %.2fM parameters, device %s, world size %d, bf16 autocast %s, "
                      "channels_last %s, torch.compile %s", cfg.preset, count_params(model) / 1e6, self.device,
                      self.dist.world_size, self.amp, self.channels_last, self.compile)
        t_fit = time.time()
        self.evaluator = _load_evaluator(cfg, self.run_dir, images, labels, class_names, self.device, self.log,
                                         self.dist)
        self.evaluator_fit_s = time.time() - t_fit
        self.items = None
        if main and self.evaluator is not None:
            try:
                self.items = source_items(cfg.data)
            except (OSError, ValueError) as e:
                self.log.warning("nearest.json left out: cannot list the training images (%s)", e)
        self._decide_flip()

    def _decide_flip(self) -> None:
        """Flips on, off, or decided from the data (kept from the first session on a resume), logged in train.log,
        metrics.jsonl ("augmentation"), status.json and config.json ("flip_decision")."""
        cfg = self.config
        if self.flip is None:
            mirror = self.evaluator.mirror_test() if (cfg.flip == "auto" and self.evaluator is not None) else None
            self.flip = flip_decision(cfg.flip, mirror, len(self.class_names))
            if self.dist.is_main:
                rundir.append_jsonl(self.run_dir / "metrics.jsonl", {"kind": "augmentation", "step": self.step,
                                                                     "epoch": self.epoch, **self.flip})
        self.flip = ddp.broadcast_object(self.dist, self.flip)
        self.log.info("augmentation: %s", self.flip["why"])
        if self.dist.is_main:
            self.status.update(augmentation=self.flip, evaluator_fit_s=round(self.evaluator_fit_s, 2))
            d = rundir.read_json(self.run_dir / "config.json", default={}) or {}
            d["flip_decision"] = self.flip
            rundir.write_json_atomic(self.run_dir / "config.json", d)

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.elapsed_before = state["elapsed_s"]
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self.latest_grid_epoch = state.get("latest_grid_epoch")
        self.latest_grid_step = state.get("latest_grid_step")
        self.flip = state.get("flip")
        self.preview_s_before = state.get("preview_s", 0.0)
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
            "latest_grid_step": self.latest_grid_step, "flip": self.flip, "preview_s": self.preview_s(),
            "world_size": self.dist.world_size, "saved": time.time(),
        }
        ckpt.save_atomic(state, rundir.checkpoint_path(self.run_dir, "last"))

    def _copy_to_best(self) -> None:
        last = rundir.checkpoint_path(self.run_dir, "last")
        best = rundir.checkpoint_path(self.run_dir, "best")
        with open(last, "rb") as source:
            write_with(best, lambda f: shutil.copyfileobj(source, f))

    # ----- samples and evaluation -----
    def preview_s(self) -> float:
        """Seconds spent on previews, evaluation and mid-run checkpoints over the whole run (not training)."""
        return self.preview_s_before + self.overhead_s

    def _save_epoch_weights(self, epoch: int) -> None:
        """checkpoints/epoch_NNNN.pt: the EMA weights of a sample epoch, so generation can start from any of them;
        at most `keep_checkpoints` are kept, the oldest going first (never the best, never the newest)."""
        state = {"format": "menagerie-diffusion-1", "ema": {"model": self.ema.model.state_dict()},
                 "epoch": epoch, "step": self.step, "config": self.config.to_dict(),
                 "class_names": self.class_names, "model_config": self.model_config.to_dict(),
                 "schedule": self.schedule.to_dict()}
        ckpt.save_atomic(state, rundir.epoch_checkpoint_path(self.run_dir, epoch))
        kept = rundir.list_checkpoint_epochs(self.run_dir)
        removable = [e for e in kept if e not in (self.best_epoch, epoch)]
        while len(kept) > self.config.keep_checkpoints and removable:
            gone = removable.pop(0)
            rundir.epoch_checkpoint_path(self.run_dir, gone).unlink(missing_ok=True)
            kept.remove(gone)

    def _eval_per_class(self) -> int:
        """Samples per class at an evaluation: the grid's, or more for a stable Fréchet distance (but beyond ~3x
        the held-back reals they are compared with, more add little)."""
        k = self.config.samples_per_class
        if self.evaluator is None:
            return k
        wanted = min(self.config.eval_samples, 3 * len(self.evaluator.holdout_labels))
        return max(k, math.ceil(wanted / len(self.class_names)))

    def _eval_draws(self) -> int:
        return self._eval_per_class() * len(self.class_names) * self.config.sample_steps

    def _preview_draws(self) -> int:
        return self.config.samples_per_class * len(self.class_names) * min(self.config.sample_steps, 4)

    def _samples_and_eval(self, recent_loss: float | None, elapsed: float, evaluate: bool = True) -> None:
        """Sample grid + per-class PNGs from the EMA model labelled with the epochs completed; with `evaluate`,
        the evaluator's figures, nearest.json, the epoch's weights and maybe best.pt; then last.pt."""
        cfg = self.config
        epoch = self.epoch
        improved = False
        if self.dist.is_main:
            t0 = time.time()
            k, n_classes = cfg.samples_per_class, len(self.class_names)
            scoring = evaluate and self.evaluator is not None
            per_class = self._eval_per_class() if scoring else k  # the grid shows the first k of each class
            labels = torch.arange(n_classes).repeat_interleave(per_class)
            # The preview before training only shows the pipeline works (the model draws noise yet): few steps.
            steps = cfg.sample_steps if evaluate else min(cfg.sample_steps, 4)
            with torch.random.fork_rng(devices=[]):
                gen = torch.Generator().manual_seed(cfg.seed + 12345)  # fixed noise: epochs compare
                imgs = sample(self.ema.model, self.schedule, labels, steps=steps, sampler=cfg.sampler,
                              guidance=cfg.guidance, generator=gen, device=self.device, prediction=cfg.prediction,
                              interval=cfg.guidance_interval)
            u8 = to_uint8(imgs)
            shown = torch.cat([torch.arange(c * per_class, c * per_class + k) for c in range(n_classes)])
            save_grid(u8[shown], n_classes, rundir.grid_path(self.run_dir, epoch))
            edir = rundir.epoch_samples_dir(self.run_dir, epoch)
            names = [f"{i % per_class}.png" for i in range(len(u8))]
            folders = [safe_dir_name(c) for c in self.class_names]
            for i in range(len(u8)):
                save_png(u8[i], edir / folders[int(labels[i])] / names[i])
            self.latest_grid_epoch, self.latest_grid_step = epoch, self.step
            if scoring:
                with torch.random.fork_rng(devices=[]):
                    figures = self.evaluator.score(u8, labels)
                at_chance = chance_level(figures["accuracy"], figures["n_samples"], n_classes)
                rundir.append_jsonl(self.run_dir / "metrics.jsonl",
                                    {"kind": "eval", "epoch": epoch, "step": self.step, **_jsonable(figures),
                                     "chance": 1.0 / n_classes, "at_chance": at_chance})
                self.log.info("epoch %d (step %d) eval: %s; held-back reals: accuracy %s%s", epoch, self.step,
                              _short(figures), _fmt(figures.get("real_accuracy")),
                              " (chance level: not a candidate for best)" if at_chance else "")
                improved = _better(figures, self.best, n_classes)
                if improved:
                    self.best = {k2: v for k2, v in _jsonable(figures).items() if isinstance(v, (int, float))}
                if self.items is not None:
                    write_nearest_by_class(edir, folders, labels, names, u8, self.evaluator, self.items)
            elif evaluate and recent_loss is not None:
                improved = self.best is None or recent_loss < self.best.get("loss", math.inf)
                if improved:
                    self.best = {"loss": recent_loss}
            if improved:
                self.best_epoch = epoch
            if evaluate:
                self._save_epoch_weights(epoch)
            self.log.info("samples for epoch %d (step %d) written in %.1fs", epoch, self.step, time.time() - t0)
        self._save_checkpoint(elapsed)
        if self.dist.is_main:
            if improved:
                self._copy_to_best()
            self.status.update(latest_grid_epoch=self.latest_grid_epoch, latest_grid_step=self.latest_grid_step,
                               best_epoch=self.best_epoch)
        ddp.barrier(self.dist)

    def _guidance_sweep(self, train_s: float) -> None:
        """Score a few guidance settings on the best weights; the chosen one becomes the run's default
        (config.json guidance / guidance_interval, read by generation). Bounded by preview_share of the
        training time (at least 30 s), reported in guidance.json and status.json."""
        from .guidance import run_sweep

        cfg = self.config
        model = self.ema.model
        if self.best_epoch is not None and self.best_epoch != self.latest_grid_epoch:
            path = rundir.epoch_checkpoint_path(self.run_dir, self.best_epoch)
            if path.exists():
                model = copy.deepcopy(self.ema.model)
                model.load_state_dict(ckpt.load(path)["ema"]["model"])
        # What the share has left after previews and evaluation (they keep to half of it while training), and
        # never so little that the sweep cannot compare two settings.
        budget = max(MIN_SWEEP_S, cfg.preview_share * train_s - self.preview_s())
        with torch.random.fork_rng(devices=[]):
            result = run_sweep(model, self.schedule, self.evaluator, self.class_names, self.run_dir,
                               steps=cfg.sample_steps, sampler=cfg.sampler, prediction=cfg.prediction,
                               seed=cfg.seed, device=self.device, budget_s=budget, log=self.log.info)
        chosen = result["chosen"]
        self.log.info("guidance sweep (%d settings, %.1fs, budget %.0fs): %s -> guidance %s, interval %s",
                      len(result["rows"]), result["seconds"], budget, result["why"],
                      chosen and chosen["guidance"], chosen and chosen["interval"])
        if chosen:
            self.config.guidance, self.config.guidance_interval = chosen["guidance"], chosen["interval"]
            write_run_config(self.run_dir, self.config)
        self.sweep_s = result["seconds"]
        self.status.update(guidance={"chosen": chosen, "why": result["why"], "seconds": result["seconds"]},
                           sweep_s=result["seconds"])

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
                               latest_grid_epoch=self.latest_grid_epoch, best_epoch=self.best_epoch,
                               stop_reason=None, stop_message=None)
        self.log.info("training: batch %d x %d process(es), %d steps/epoch, epochs=%s, minutes=%s (training steps "
                      "only; previews and evaluation at most %.0f%% on top)", b, world, steps_per_epoch, cfg.epochs,
                      cfg.minutes, 100 * cfg.preview_share)

        loop_start = time.time()
        # The budget counts training steps only: time spent on previews, evaluation and checkpoints is taken out.
        elapsed = lambda: self.elapsed_before + (time.time() - loop_start) - self.overhead_s  # noqa: E731

        def overhead(fn, *args, **kw):
            t = time.time()
            fn(*args, **kw)
            spent = time.time() - t
            self.overhead_s += spent
            return spent

        if self.step == 0 and cfg.preview_at_start:  # shows that data, model and sampler work, before training
            spent = overhead(self._samples_and_eval, None, 0.0, evaluate=False)
            # What an evaluation will cost, from the preview's pace, so even the first one keeps to the share.
            self.grid_seconds = spent * self._eval_draws() / max(1, self._preview_draws())
        last_grid_t, last_ckpt_t = elapsed(), elapsed()
        interval_loss, interval_n, interval_t0, interval_imgs = 0.0, 0, time.time(), 0
        epoch_loss, epoch_n = 0.0, 0
        ips = None
        bar = tqdm(total=total_steps, initial=self.step, disable=not (self.progress and main), unit="step",
                   dynamic_ncols=True, file=sys.stderr, desc="train")
        done = lambda: cfg.epochs is not None and self.epoch >= cfg.epochs  # noqa: E731
        final_state = "completed"
        stop = "epochs"
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
                                               eta_seconds=eta, total_steps=total_est, elapsed_s=elapsed(),
                                               train_s=round(elapsed(), 1), preview_s=round(self.preview_s(), 1))
                        bar.set_postfix(loss=f"{interval_loss / interval_n:.4f}", img_s=f"{ips:.0f}")
                        interval_loss, interval_n, interval_t0, interval_imgs = 0.0, 0, time.time(), 0
                    cancel = main and (self.stop_reason == "cancel" or rundir.cancel_requested(self.run_dir))
                    over = budget_s is not None and elapsed() >= budget_s
                    cancel, over = ddp.any_flag(self.dist, [cancel, over], self.device)
                    if cancel or over:
                        raise _Stop("cancel" if cancel else "budget")
                    if elapsed() - last_ckpt_t >= cfg.checkpoint_minutes * 60:
                        interval_t0 += overhead(self._save_checkpoint, elapsed())
                        last_ckpt_t = elapsed()
                self.epoch += 1
                self.batch_in_epoch = 0
                recent = epoch_loss / max(1, epoch_n)
                epoch_loss, epoch_n = 0.0, 0
                if main:
                    self.status.update(epoch=self.epoch, step=self.step)
                # Previews and evaluation while training take at most half of preview_share (the other half is
                # left for the final evaluation and the guidance sweep): after a grid that took g seconds, at least
                # g * (1 - share) / share seconds of training before the next.
                trained = elapsed() - last_grid_t
                share = cfg.preview_share * TRAINING_PART_OF_SHARE
                gap = self.grid_seconds * (1 - share) / share
                if cfg.sample_every is not None:
                    want_grid = self.epoch % cfg.sample_every == 0 and trained >= gap
                else:
                    want_grid = trained >= max(cfg.sample_minutes * 60, gap)
                if budget_s is not None and budget_s - elapsed() < gap:
                    want_grid = False  # the final evaluation comes sooner than the share would allow another
                want_grid = ddp.broadcast_object(self.dist, want_grid)
                if want_grid and not done():
                    self.grid_seconds = overhead(self._samples_and_eval, recent, elapsed())
                    interval_t0 += self.grid_seconds  # the speed in metrics is the speed of training
                    last_grid_t = last_ckpt_t = elapsed()
        except _Stop as s:
            final_state = "cancelled" if str(s) == "cancel" else "completed"
            stop = str(s)
            if self.batch_in_epoch >= steps_per_epoch:  # stopped on an epoch's last step: that epoch is done
                self.epoch += 1
                self.batch_in_epoch = 0
            self.log.info("stopping: %s after %d steps (%.1f min of training)", "cancel requested"
                          if final_state == "cancelled" else "time budget reached", self.step, elapsed() / 60)
            recent = epoch_loss / epoch_n if epoch_n else None
        except KeyboardInterrupt:  # Ctrl-C on the command line: keep the work, like a cancel
            final_state, stop = "cancelled", "cancel"
            self.log.info("interrupted: saving a checkpoint at step %d", self.step)
        finally:
            bar.close()
        train_s = elapsed()
        # Final checkpoint and samples (a cancelled run keeps its state; grids are only for finished work).
        if final_state == "completed" and self.latest_grid_step != self.step:
            overhead(self._samples_and_eval, recent, train_s)
        else:
            overhead(self._save_checkpoint, train_s)
            if main and self.best_epoch is None and final_state == "completed":
                self._copy_to_best()
        if main and final_state == "completed" and cfg.guidance_sweep and self.evaluator is not None:
            self._guidance_sweep(train_s)
        message = self._stop_message(stop, steps_per_epoch)
        result = {"state": final_state, "step": self.step, "epoch": self.epoch}
        if main:
            self.status.stop_heartbeat()
            share = (self.preview_s() + self.sweep_s) / max(1e-9, train_s)
            result = self.status.update(state=final_state, step=self.step, epoch=self.epoch, eta_seconds=0,
                                        elapsed_s=train_s, train_s=round(train_s, 1),
                                        preview_s=round(self.preview_s(), 1), preview_share=round(share, 3),
                                        images_per_sec=round(ips, 2) if ips else None, stop_reason=stop,
                                        stop_message=message,
                                        total_steps=self.step if final_state == "completed" else total_steps)
            self.log.info("run %s: %s; %d steps, %d epochs done, best epoch %s; %.1fs training, %.1fs previews and "
                          "evaluation + %.1fs guidance sweep (%.1f%% of training), evaluator fitted in %.1fs before the clock started", final_state,
                          message, self.step, self.epoch, self.best_epoch, train_s, self.preview_s(), self.sweep_s,
                          100 * share, self.evaluator_fit_s)
        ddp.barrier(self.dist)
        return result

    def _stop_message(self, stop: str, steps_per_epoch: int) -> str:
        """Why training stopped, in the same epoch and step numbers as status.json and metrics.jsonl."""
        done = f"{self.epoch} epoch{'s' if self.epoch != 1 else ''} done"
        if self.batch_in_epoch:
            done += f" and {self.batch_in_epoch} of {steps_per_epoch} steps of epoch {self.epoch + 1}"
        done += f" ({self.step} steps)"
        if stop == "budget":
            return f"stopped by the time budget ({self.config.minutes:g} min of training) after {done}"
        if stop == "cancel":
            return f"cancelled after {done}"
        return f"finished the {self.config.epochs} epochs asked for: {done}"

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
        x0 = make_batch(self.images, idx, flip=self.flip["flip"], generator=gen, device=dev)
        aug = None
        if cfg.augment > 0:
            x0, aug = nonleaky_augment(x0, cfg.augment, gen)
        y = self.labels[idx]
        drop = torch.rand(len(idx), generator=gen) < cfg.label_dropout
        y = torch.where(drop, torch.full_like(y, null_class), y).to(dev)
        t = stratified_times(len(idx), gen, dev)
        eps = torch.randn(x0.shape, generator=gen).to(dev)
        xt = self.schedule.add_noise(x0, eps, t)
        if self.channels_last:
            xt = xt.contiguous(memory_format=torch.channels_last)
        amp = torch.autocast(dev.type, dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()
        with amp:
            out = self.net(xt, t, y) if aug is None else self.net(xt, t, y, aug)
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


def _fmt(v) -> str:
    return "-" if v is None else f"{float(v):.3f}"


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
