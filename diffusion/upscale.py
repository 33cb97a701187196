"""A learned ×4/×8 upscaler trained on the run's own originals, so stickers get detail the user's art really has.

    python -m diffusion.upscale RUN_DIR [--minutes M | --max-steps N]   # trains into RUN_DIR/upscaler/
    python -m diffusion.upscale RUN_DIR --apply IN.png --out OUT.png --scale 4

Why a small residual CNN and not a diffusion model: on a CPU it trains in minutes, runs in milliseconds, and never
invents texture: it predicts a correction on top of bicubic from pairs the user's own images give. Pairs are cut
from the snapshot's originals: each original is brought to the high resolution (×4 or ×8 the training size, or
less when the originals are smaller, e.g. 16 → 128 px for ×8 of 128 px originals) and area-downscaled by the
factor. By a hash of the file name (stable, no state) one image in ten is held back and never trained on (the
evaluation and bench/stickers.py score those), and another one in ten is the validation set, which picks the
checkpoint. ×4 and ×8 have a network each, trained in the same steps (L1 plus a little gradient L1, which rewards
edges in the right place); ×8 learns from whole pictures (16 px in, 128 px out), as it is used. Training stops
after a time budget or a fixed number of steps (the bench uses steps, so a busy machine measures the same model).

The directory `RUN_DIR/upscaler/` is like a run's: config.json, status.json (state, progress, heartbeat; written
atomically), metrics.jsonl, train.log, model.pt, split.json; SIGTERM or an `upscaler/cancel` file saves the model
and ends in state "cancelled".
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting OpenMP threads starve shared CPUs

import argparse
import hashlib
import json
import math
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from core.files import write_with

from . import rundir
from .data import DataError, list_image_folder, preprocess_image, read_manifest

SCALES = (4, 8)
SUBDIR = "upscaler"
MODEL_FILE = "model.pt"
HELD_BACK_EVERY = 10  # one image in ten is held back for evaluation
HEARTBEAT_S = 3.0
DEFAULT_MINUTES = 5.0
MIN_VALIDATION = 4
CROPS = {4: 64, 8: 128}  # high-resolution crop per scale: ×8 learns from whole 16 px pictures, as it is used
MAX_IMAGES = 3000  # more than this adds little to these small networks and costs memory


class UpscaleError(RuntimeError):
    """The upscaler cannot be trained or used as asked; the message says why."""


# --- the network --------------------------------------------------------------------------------------------

class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class _ScaleNet(nn.Module):
    """Residual features at the low resolution, then a convolution predicting scale² sub-pixels per input pixel,
    pixel-shuffled into place and added to bicubic. All the work is at the low resolution, which is what makes it
    trainable in minutes on a CPU."""

    def __init__(self, channels: int, blocks: int, scale: int):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*[_Block(channels) for _ in range(blocks)])
        self.tail = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        nn.init.zeros_(self.tail[2].weight)  # start as plain bicubic: early steps can only improve on it
        nn.init.zeros_(self.tail[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x - 0.5)
        f = f + self.body(f)
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.tail(f)


class Upscaler(nn.Module):
    """One network per scale (×4 from 32 px and ×8 from 16 px see different things; separate networks cost no
    more compute per step than a shared body run twice, and let each scale keep its own best checkpoint).
    Inputs and outputs are RGB in [0, 1]."""

    def __init__(self, channels: int = 32, blocks: int = 6):
        super().__init__()
        self.config = {"channels": channels, "blocks": blocks}
        self.nets = nn.ModuleDict({str(s): _ScaleNet(channels, blocks, s) for s in SCALES})

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        if scale not in SCALES:
            raise UpscaleError(f"scale {scale} must be one of {SCALES}")
        return self.nets[str(scale)](x)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- data ---------------------------------------------------------------------------------------------------

def _bucket(name: str) -> int:
    digest = hashlib.sha1(Path(name).name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % HELD_BACK_EVERY


def is_held_back(name: str) -> bool:
    """Stable split by file name (not path: moving the instance keeps it): one image in HELD_BACK_EVERY."""
    return _bucket(name) == 0


def list_originals(data: str | Path) -> list[tuple[Path, str]]:
    """(path, class) of a snapshot manifest.json or an ImageFolder directory."""
    data = Path(data)
    if data.is_file() or data.suffix == ".json":
        items, _, _ = read_manifest(data)
    else:
        items, _ = list_image_folder(data)
    return items


def split(items: list[tuple[Path, str]]) -> tuple[list, list]:
    """(training items, held-back items)."""
    train = [it for it in items if not is_held_back(it[0].name)]
    held = [it for it in items if is_held_back(it[0].name)]
    return train, held


def validation_split(train: list[tuple[Path, str]]) -> tuple[list, list]:
    """(items to learn from, validation items) of the training items: another one in HELD_BACK_EVERY (the
    validation images pick the checkpoint, so the held-back ones stay an honest test). Sets under MIN_VALIDATION
    validation images have none: the last step is kept."""
    val = [it for it in train if _bucket(it[0].name) == 1]
    if len(val) < MIN_VALIDATION:
        return train, []
    return [it for it in train if _bucket(it[0].name) != 1], val


def pair_sizes(image_size: int, original_side: int, scale: int) -> tuple[int, int]:
    """(low, high) resolution of a training pair: ×scale of the training size, or less when the originals are
    smaller (the high side never exceeds the originals: upscaled originals would teach blur)."""
    high = min(scale * image_size, original_side // scale * scale)
    if high < scale * 4:
        raise UpscaleError(f"the originals ({original_side} px) are too small to learn ×{scale} from: they need at "
                           f"least {scale * 4} px")
    return high // scale, high


def load_high(items, size: int, fit: str, background: str) -> torch.Tensor:
    """uint8 [N, 3, size, size]: the originals cropped/padded like the run's data, at the high resolution."""
    bg = "white" if background == "alpha" else background
    arrays = []
    for path, label in items:
        try:
            with Image.open(path) as img:
                img.load()
                arrays.append(preprocess_image(img, size, fit, bg)[..., :3])
        except (OSError, SyntaxError) as e:
            raise UpscaleError(f"cannot read image {path} (class {label}): {e}") from None
    if not arrays:
        raise UpscaleError("no images to learn from")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def median_side(items, limit: int = 64) -> int:
    sides = []
    for path, _ in items[:limit]:
        try:
            with Image.open(path) as img:
                sides.append(min(img.size))
        except OSError:
            continue
    if not sides:
        raise UpscaleError("none of the snapshot's images can be read")
    return int(np.median(sides))


def downscale(high: torch.Tensor, scale: int) -> torch.Tensor:
    """Area (box) downscale of float images: what a camera or a renderer at the lower resolution would see."""
    return F.avg_pool2d(high, scale)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    k = int(torch.randint(0, 4, (1,), generator=g))
    x = torch.rot90(x, k, (2, 3))
    if torch.rand(1, generator=g).item() < 0.5:
        x = x.flip(3)
    return x


def _crops(high_u8: torch.Tensor, batch: int, crop: int, g: torch.Generator, scale: int) -> torch.Tensor:
    n, _, s, _ = high_u8.shape
    idx = torch.randint(0, n, (batch,), generator=g)
    crop = min(crop, s) // scale * scale
    out = []
    for i in idx.tolist():
        y = int(torch.randint(0, (s - crop) // scale + 1, (1,), generator=g)) * scale
        x = int(torch.randint(0, (s - crop) // scale + 1, (1,), generator=g)) * scale
        out.append(high_u8[i, :, y:y + crop, x:x + crop])
    return _augment(torch.stack(out).float().div_(255.0), g)


def gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical finite differences: rewards edges in the right place and contrast."""
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


# --- measuring ----------------------------------------------------------------------------------------------

def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def edge_sharpness(img: np.ndarray, ref: np.ndarray) -> float:
    """Mean gradient magnitude of `img` where the reference has its strongest 10 % of edges, relative to the
    reference's own (1.0 = as sharp as the original; bicubic/Lanczos are well below)."""
    def grad(a):
        g = a.astype(np.float64).mean(axis=2)
        gx = np.zeros_like(g)
        gy = np.zeros_like(g)
        gx[:, 1:-1] = (g[:, 2:] - g[:, :-2]) / 2
        gy[1:-1] = (g[2:] - g[:-2]) / 2
        return np.hypot(gx, gy)
    gr = grad(ref)
    mask = gr >= np.quantile(gr, 0.9)
    denom = gr[mask].mean()
    return float(grad(img)[mask].mean() / denom) if denom > 0 else 1.0


def classic(low: np.ndarray, scale: int, method: str) -> np.ndarray:
    """Lanczos or bicubic enlargement with PIL (the baselines)."""
    resample = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
                "bilinear": Image.BILINEAR}[method]
    img = Image.fromarray(low)
    return np.asarray(img.resize((img.width * scale, img.height * scale), resample))


@torch.no_grad()
def upscale_array(model: Upscaler, low: np.ndarray, scale: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [H*scale, W*scale, 3]."""
    x = torch.from_numpy(np.array(low[..., :3])).permute(2, 0, 1)[None].float().div(255.0)
    dev = next(model.parameters()).device
    y = model(x.to(dev), scale).clamp(0, 1).mul(255).round().byte()
    return y[0].permute(1, 2, 0).cpu().numpy()


def upscale_image(model: Upscaler, img: Image.Image, scale: int, background: str = "white") -> Image.Image:
    return Image.fromarray(upscale_array(model, np.asarray(img.convert("RGB")), scale))


def evaluate(model: Upscaler | None, high_u8: torch.Tensor, scale: int) -> dict:
    """PSNR (dB) and edge sharpness of learned, Lanczos and bicubic ×scale on held-back high-resolution images."""
    rows = {"learned": [], "lanczos": [], "bicubic": []}
    sharp = {k: [] for k in rows}
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    for i in range(len(high_u8)):
        hi = high_u8[i].permute(1, 2, 0).numpy()
        low = downscale(high_u8[i:i + 1].float(), scale)[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        outs = {"lanczos": classic(low, scale, "lanczos"), "bicubic": classic(low, scale, "bicubic")}
        if model is not None:
            outs["learned"] = upscale_array(model, low, scale)
        for k, v in outs.items():
            rows[k].append(psnr(v, hi))
            sharp[k].append(edge_sharpness(v, hi))
    if model is not None and was_training:
        model.train()
    out = {}
    for k in rows:
        if rows[k]:
            out[f"psnr_{k}"] = round(float(np.mean(rows[k])), 3)
            out[f"sharpness_{k}"] = round(float(np.mean(sharp[k])), 4)
    out["images"] = len(high_u8)
    return out


# --- files --------------------------------------------------------------------------------------------------

def upscaler_dir(run_dir: Path) -> Path:
    return Path(run_dir) / SUBDIR


def save_model(model: Upscaler, path: Path, extra: dict) -> None:
    state = {"model": model.state_dict(), "model_config": model.config, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, lambda f: torch.save(state, f))


def load_model(path: Path, device="cpu") -> tuple[Upscaler, dict]:
    """The trained upscaler (eval mode) and its saved facts; UpscaleError naming the file if it cannot be used."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise UpscaleError(f"no trained upscaler at {path}: train one first (`python manage.py upscaler train RUN`)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if any(k.startswith("tails.") for k in state.get("model", {})):
            raise UpscaleError(f"upscaler {path} was trained by an earlier version (one body shared by both "
                               "scales); train it again")
        model = Upscaler(**state["model_config"])
        model.load_state_dict(state["model"])
    except UpscaleError:
        raise
    except Exception as e:
        raise UpscaleError(f"upscaler {path} is corrupt or not an upscaler ({type(e).__name__}: {e}); "
                           "train it again") from None
    return model.to(device).eval(), {k: v for k, v in state.items() if k not in ("model",)}


class _Status:
    """status.json owned by the training process, with a heartbeat thread (a killed process is noticed)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.lock = threading.Lock()
        self.status = rundir.read_status(folder)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="upscaler-heartbeat")

    def update(self, **fields) -> None:
        with self.lock:
            self.status.update(fields)
            self.status["heartbeat"] = self.status["updated"] = time.time()
            rundir.write_json_atomic(rundir.status_path(self.folder), self.status)

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.update()
            except OSError:
                pass

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


# --- training -----------------------------------------------------------------------------------------------

def _validation_pairs(high_u8: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) float batches of whole validation pictures, the low side rounded to 8 bits as at use."""
    high = high_u8.float()
    return downscale(high, scale).round().div(255.0), high


@torch.no_grad()
def _psnr_batch(net: nn.Module, low: torch.Tensor, high: torch.Tensor, chunk: int = 32) -> float:
    """Mean PSNR (dB) over the pictures of 8-bit rounded predictions, as `evaluate` scores them."""
    net.eval()
    values = []
    for i in range(0, len(low), chunk):
        pred = net(low[i:i + chunk]).clamp(0, 1).mul(255).round()
        mse = (pred - high[i:i + chunk]).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
        values += (10 * torch.log10(255.0 ** 2 / mse)).tolist()
    net.train()
    return float(np.mean(values))


def train_upscaler(out_dir: Path, data: str | Path, *, image_size: int = 32, fit: str = "crop",
                   background: str = "white", minutes: float | None = DEFAULT_MINUTES, max_steps: int | None = None,
                   seed: int = 0, batch: int = 12, channels: int = 32, blocks: int = 6, lr: float = 2e-3,
                   validate_every: int = 200, eval_every_s: float = 60.0, log=None) -> dict:
    """Train into `out_dir`; returns the final status. Stops at `minutes` or `max_steps`, whichever comes first
    (either may be None: a fixed number of steps gives the same model on a busy machine as on a quiet one, only
    later), on SIGTERM or when `out_dir/cancel` appears (the model is saved either way). Every `validate_every`
    steps each scale is scored on the validation images and its best weights are kept: that is the model saved."""
    if not minutes and not max_steps:
        raise UpscaleError("give a time budget (minutes) or a number of steps")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    status = _Status(out_dir)
    stop = {"cancel": False}

    def on_term(signum, frame):
        stop["cancel"] = True

    old = signal.signal(signal.SIGTERM, on_term) if threading.current_thread() is threading.main_thread() else None
    rundir.clear_cancel(out_dir)
    started = time.time()
    status.update(state="running", pid=os.getpid(), started=started, ended=None, error=None, progress=0.0,
                  step=0, minutes=minutes, max_steps=max_steps)
    status.start()
    say = log or (lambda msg: None)
    try:
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        items = list_originals(data)[:MAX_IMAGES * 2]
        train_items, held = split(items)
        if not held:  # tiny sets: hold back the last image rather than nothing
            train_items, held = train_items[:-1], train_items[-1:]
        if not train_items:
            raise UpscaleError("the snapshot has too few images to train an upscaler (needs at least 2)")
        fit_items, val_items = validation_split(train_items[:MAX_IMAGES])
        rundir.write_json_atomic(out_dir / "split.json", {
            "held_back": [str(p) for p, _ in held], "validation": [str(p) for p, _ in val_items],
            "trained_on": len(fit_items), "rule": f"sha1(file name) % {HELD_BACK_EVERY}: 0 held back, "
            "1 validation (picks the checkpoint)"})
        side = median_side(items)
        sizes = {s: pair_sizes(image_size, side, s) for s in SCALES}
        config = {"data": str(data), "image_size": image_size, "fit": fit, "background": background,
                  "minutes": minutes, "max_steps": max_steps, "seed": seed, "batch": batch, "lr": lr,
                  "pairs": {str(s): list(v) for s, v in sizes.items()}, "original_side": side,
                  "trained_on": len(fit_items), "validation": len(val_items), "held_back": len(held)}
        rundir.write_json_atomic(out_dir / "config.json", config)
        highs = {}
        for s, (_, high) in sizes.items():
            if high not in highs:
                highs[high] = {"fit": load_high(fit_items, high, fit, background),
                               "held": load_high(held, high, fit, background),
                               "val": load_high(val_items, high, fit, background) if val_items else None}
        val = {s: _validation_pairs(highs[high]["val"], s) for s, (_, high) in sizes.items() if val_items}
        say(f"upscaler: {len(fit_items)} training images, {len(val_items)} validation, {len(held)} held back; "
            "pairs " + ", ".join(f"x{s}: {lo}->{hi} px" for s, (lo, hi) in sizes.items()))
        model = Upscaler(channels=channels, blocks=blocks)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        best = {s: {"psnr": -math.inf, "step": 0, "state": None} for s in SCALES}

        def validate():
            for s in val:
                net = model.nets[str(s)]
                score = _psnr_batch(net, *val[s])
                if score > best[s]["psnr"]:
                    best[s].update(psnr=score, step=step, state={k: v.clone() for k, v in net.state_dict().items()})

        def best_model():
            if val:
                for s in SCALES:
                    model.nets[str(s)].load_state_dict(best[s]["state"])
            return model

        def picked():
            return {f"x{s}": {"step": best[s]["step"], "psnr": round(best[s]["psnr"], 3)} for s in val}

        budget = (minutes or 0) * 60.0
        step, last_save, loss_avg = 0, time.time(), None
        metrics_path = out_dir / "metrics.jsonl"
        while True:
            elapsed = time.time() - started
            frac = max(elapsed / budget if budget else 0.0, step / max_steps if max_steps else 0.0)
            if frac >= 1.0:
                break
            if stop["cancel"] or rundir.cancel_requested(out_dir):
                stop["cancel"] = True
                break
            for group in opt.param_groups:  # warm-up, then cosine to 2 % of the peak over the budget
                group["lr"] = lr * min(1.0, (step + 1) / 50) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            loss = torch.zeros(())
            for s, (_, high) in sizes.items():
                hi = _crops(highs[high]["fit"], batch, CROPS[s], g, s)
                pred = model(downscale(hi, s), s)
                loss = loss + F.l1_loss(pred, hi) + 0.1 * gradient_l1(pred, hi)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            value = loss.item()
            loss_avg = value if loss_avg is None else 0.95 * loss_avg + 0.05 * value
            if step % 10 == 0:
                rundir.append_jsonl(metrics_path, {"step": step, "loss": round(value, 5), "t": round(elapsed, 1)})
                status.update(step=step, loss=round(loss_avg, 5), progress=round(min(frac, 1.0), 4),
                              elapsed=round(elapsed, 1))
            if val and step % validate_every == 0:
                validate()
                rundir.append_jsonl(metrics_path, {"step": step, "validation": picked(), "t": round(elapsed, 1)})
            if time.time() - last_save > eval_every_s:  # a usable model while it trains
                save_model(model, out_dir / MODEL_FILE, {"step": step, "config": config})
                last_save = time.time()
        if val:
            validate()
        model = best_model()
        save_model(model, out_dir / MODEL_FILE, {"step": step, "picked": picked(), "config": config})
        scores = {}
        for s, (_, high) in sizes.items():
            scores[f"x{s}"] = evaluate(model, highs[high]["held"], s)
        rundir.append_jsonl(metrics_path, {"step": step, "eval": scores, "t": round(time.time() - started, 1)})
        state = "cancelled" if stop["cancel"] else "completed"
        say(f"upscaler {state} after {step} steps ({time.time() - started:.0f} s; checkpoints picked on the "
            f"validation images: {json.dumps(picked())}): " + json.dumps(scores))
        status.update(state=state, step=step, progress=1.0 if state == "completed" else status.status["progress"],
                      eval=scores, picked=picked(), ended=time.time(), elapsed=round(time.time() - started, 1),
                      params=count_params(model))
        return dict(status.status)
    except (UpscaleError, DataError, ValueError, OSError) as e:
        status.update(state="failed", error=str(e), ended=time.time())
        raise UpscaleError(str(e)) from None
    except Exception as e:
        status.update(state="failed", error=f"{type(e).__name__}: {e}", ended=time.time())
        raise
    finally:
        status.stop()
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def run_settings(run_dir: Path) -> dict:
    """The data settings of a diffusion run (config.json), which the upscaler copies."""
    config = rundir.read_json(Path(run_dir) / "config.json", default=None)
    if not config or not config.get("data"):
        raise UpscaleError(f"{run_dir} is not a training run (no config.json with its data)")
    return {"data": config["data"], "image_size": int(config.get("image_size", 32)),
            "fit": config.get("fit", "crop"), "background": config.get("background", "white"),
            "seed": int(config.get("seed", 0))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Train (or apply) a run's learned ×4/×8 upscaler")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--minutes", type=float, default=DEFAULT_MINUTES)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--apply", type=Path, help="upscale this PNG with the trained model instead of training")
    p.add_argument("--out", type=Path, help="with --apply: where to write the result")
    p.add_argument("--scale", type=int, default=4, choices=SCALES)
    a = p.parse_args(argv)
    folder = upscaler_dir(a.run_dir)
    if a.apply:
        try:
            model, _ = load_model(folder)
            with Image.open(a.apply) as img:
                result = upscale_image(model, img, a.scale)
        except (UpscaleError, OSError) as e:
            print(f"upscaling failed: {e}", file=sys.stderr)
            return 1
        out = a.out or a.apply.with_name(f"{a.apply.stem}-x{a.scale}.png")
        write_with(out, lambda f: result.save(f, "PNG"), durable=False)
        print(json.dumps({"out": str(out)}))
        return 0
    if a.minutes <= 0:
        print("--minutes must be positive", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    logf = open(folder / "train.log", "a", encoding="utf-8")

    def log(msg):
        logf.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
        logf.flush()
    try:
        settings = run_settings(a.run_dir)
        status = train_upscaler(folder, minutes=a.minutes, max_steps=a.max_steps, log=log, **settings)
    except Exception as e:
        log(traceback.format_exc())
        if rundir.read_status(folder).get("state") != "failed":
            rundir.write_status(folder, state="failed", error=str(e), ended=time.time())
        print(f"upscaler training failed: {e}", file=sys.stderr)
        return 1
    finally:
        logf.close()
    print(json.dumps({k: status.get(k) for k in ("state", "step", "eval")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
