"""Samplers over the continuous cosine schedule: DDPM (ancestral), DDIM and DPM-Solver++ 2M.

All share one model wrapper that runs the conditional and unconditional passes of classifier-free guidance
as a single batch, and predicts x0 (clipped to [-1, 1]: images live there, and clipping keeps guided
samples from saturating). Time steps are spaced uniformly in t from 1 to 0.
"""
from __future__ import annotations

import torch

from .config import DEFAULT_SAMPLER, SAMPLERS
from .schedule import CosineSchedule


def bf16_is_fast(device: torch.device) -> bool:
    """Whether the device multiplies bfloat16 natively (CPUs with AVX512-BF16 or AMX, Ampere+ GPUs), so the
    network can run in bf16 while the sampler's arithmetic stays in float32 (about 2x faster sampling here)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def guided_at(schedule: CosineSchedule, t: float, interval) -> bool:
    """Whether guidance applies at time t: always without an interval, else when sigma = s/a (EDM's noise level)
    lies in (lo, hi] (limited-interval guidance, Kynkäänniemi et al. 2024: guiding at high noise collapses variety,
    at low noise it does little)."""
    if interval is None:
        return True
    a, s = schedule.alpha_sigma(torch.tensor([t], dtype=torch.float64))
    sigma = float(s) / max(float(a), 1e-12)
    return float(interval[0]) < sigma <= float(interval[1])


class GuidedDenoiser:
    """x0 prediction with classifier-free guidance: uncond + w * (cond - uncond), both in one forward pass;
    with a guidance `interval` ([lo, hi] in sigma), outside it the conditional prediction alone (one pass)."""

    def __init__(self, model, schedule: CosineSchedule, labels: torch.Tensor, guidance: float, prediction: str,
                 clip: bool = True, bf16: bool = False, interval=None):
        self.model = model
        self.interval = interval
        self.bf16 = bf16
        self.schedule = schedule
        self.labels = labels
        self.guidance = float(guidance)
        self.prediction = prediction
        self.clip = clip
        self.null = torch.full_like(labels, model_null_class(model))

    def _net(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(x, t, labels).float()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        n = x.shape[0]
        if self.guidance == 1.0 or not guided_at(self.schedule, t, self.interval):
            tt = torch.full((n,), t, device=x.device)
            out = self._net(x, tt, self.labels)
        else:
            tt = torch.full((2 * n,), t, device=x.device)
            both = self._net(torch.cat([x, x]), tt, torch.cat([self.labels, self.null]))
            cond, uncond = both[:n], both[n:]
            out = uncond + self.guidance * (cond - uncond)
        x0, _ = self.schedule.to_x0_eps(x.float(), out, torch.full((n,), t, device=x.device), self.prediction)
        return x0.clamp(-1, 1) if self.clip else x0


def model_null_class(model) -> int:
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    return inner.null_class


def _alpha_sigma(schedule: CosineSchedule, t: float, device):
    a, s = schedule.alpha_sigma(torch.tensor([t], dtype=torch.float64))
    return float(a), float(s)


@torch.no_grad()
def sample(model, schedule: CosineSchedule, labels: torch.Tensor, *, steps: int, sampler: str = DEFAULT_SAMPLER,
           guidance: float = 3.0, generator: torch.Generator, device=None, prediction: str = "v",
           image_shape: tuple | None = None, return_trajectory: bool = False, clip: bool = True,
           noise: torch.Tensor | None = None, bf16: bool | None = None, interval=None):
    """Draw one image per label; returns a [N,C,S,S] tensor in [-1, 1] on the CPU.

    With `return_trajectory=True` returns (images, frames) where frames is a list of the x0 predictions
    after each step (what the denoising animation shows). `generator` is a CPU generator, so a seed gives
    the same images on every device. `noise` optionally fixes the starting noise (e.g. one seed per sample).
    `bf16` runs the network in bfloat16 (None: where the device does it natively, see `bf16_is_fast`).
    `interval` ([lo, hi] in sigma, or None for everywhere) limits guidance to those noise levels.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if steps < 1:
        raise ValueError("steps must be at least 1")
    inner = getattr(getattr(model, "module", model), "_orig_mod", getattr(model, "module", model))
    if device is None:
        device = next(inner.parameters()).device
    if image_shape is None:
        image_shape = (inner.cfg.in_channels, inner.image_size, inner.image_size)
    labels = labels.to(device)
    n = labels.shape[0]
    was_training = model.training
    model.eval()
    if bf16 is None:
        bf16 = bf16_is_fast(torch.device(device))
    denoise = GuidedDenoiser(model, schedule, labels, guidance, prediction, clip, bf16, interval)
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()

    if noise is None:
        noise = torch.randn((n, *image_shape), generator=generator)
    x = noise.to(device=device, dtype=torch.float32)
    frames = []
    prev_x0, prev_h = None, None
    for i in range(steps):
        t, s = ts[i], ts[i + 1]
        a_t, s_t = _alpha_sigma(schedule, t, device)
        a_s, s_s = _alpha_sigma(schedule, s, device)
        x0 = denoise(x, t)
        if sampler == "ddim" or (sampler == "ddpm" and i == steps - 1):
            eps = (x - a_t * x0) / s_t
            x = a_s * x0 + s_s * eps
        elif sampler == "ddpm":
            # Posterior q(x_s | x_t, x0) of the variance-preserving process.
            a_ts = a_t / a_s
            var_ts = s_t ** 2 - a_ts ** 2 * s_s ** 2
            mean = (a_ts * s_s ** 2 / s_t ** 2) * x + (a_s * var_ts / s_t ** 2) * x0
            std = (var_ts * s_s ** 2 / s_t ** 2) ** 0.5
            noise = torch.randn(x.shape, generator=generator).to(device)
            x = mean + std * noise
        else:  # DPM-Solver++ 2M (Lu et al. 2022), data prediction, multistep
            lam_t = float(schedule.logsnr(torch.tensor(t, dtype=torch.float64))) / 2
            lam_s = float(schedule.logsnr(torch.tensor(s, dtype=torch.float64))) / 2
            h = lam_s - lam_t
            if prev_x0 is None or i == steps - 1:
                d = x0
            else:
                r = prev_h / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev_x0
            x = (s_s / s_t) * x - a_s * torch.expm1(torch.tensor(-h)).item() * d
            prev_x0, prev_h = x0, h
        if return_trajectory:
            frames.append(x0.detach().cpu())
    model.train(was_training)
    out = x.clamp(-1, 1).cpu()
    return (out, frames) if return_trajectory else out


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 [0, 255] (rounded)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
