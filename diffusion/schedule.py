"""Continuous-time cosine noise schedule, prediction targets and min-SNR loss weights.

Time t runs over [0, 1]; x_t = alpha(t) x0 + sigma(t) eps with alpha^2 + sigma^2 = 1 (variance preserving).
The cosine schedule is written through its log-SNR, logsnr(t) = -2 log tan(a t + b), with a and b chosen so
logsnr runs from `logsnr_max` to `logsnr_min`: continuous time lets any sampler pick any step grid (no
re-training for 10 vs 250 steps) and a very low terminal SNR keeps the mean brightness of images free
(white backgrounds come out white).
"""
from __future__ import annotations

import math

import torch


class CosineSchedule:
    """`shift` adds a constant to the log-SNR at every t (the "shifted cosine" of Hoogeboom et al. 2023, simple
    diffusion): 2 log(base / size) keeps the noise as destructive to a picture's coarse shapes at `size` as it is at
    `base`, where averaging over more pixels would otherwise let the shapes show through the noise."""

    def __init__(self, logsnr_min: float = -15.0, logsnr_max: float = 15.0, shift: float = 0.0):
        if not logsnr_min < logsnr_max:
            raise ValueError("logsnr_min must be below logsnr_max")
        self.logsnr_min = float(logsnr_min)
        self.logsnr_max = float(logsnr_max)
        self.shift = float(shift)
        self._b = math.atan(math.exp(-0.5 * self.logsnr_max))
        self._a = math.atan(math.exp(-0.5 * self.logsnr_min)) - self._b

    def to_dict(self) -> dict:
        return {"kind": "cosine", "logsnr_min": self.logsnr_min, "logsnr_max": self.logsnr_max, "shift": self.shift}

    @classmethod
    def from_dict(cls, d: dict) -> "CosineSchedule":
        return cls(d["logsnr_min"], d["logsnr_max"], d.get("shift", 0.0))  # runs saved before the shift: none

    # --- schedule functions (t: float tensor in [0, 1]) ---
    def logsnr(self, t: torch.Tensor) -> torch.Tensor:
        return -2.0 * torch.log(torch.tan(self._a * t + self._b)) + self.shift

    def t_from_logsnr(self, logsnr: torch.Tensor) -> torch.Tensor:
        return (torch.atan(torch.exp(-0.5 * (logsnr - self.shift))) - self._b) / self._a

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam = self.logsnr(t)
        return torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.logsnr(t))

    # --- noising and conversions between parameterisations ---
    def add_noise(self, x0, eps, t):
        alpha, sigma = (_bcast(v, x0) for v in self.alpha_sigma(t))
        return alpha * x0 + sigma * eps

    def target(self, x0, eps, t, prediction: str):
        if prediction == "eps":
            return eps
        if prediction == "v":
            alpha, sigma = (_bcast(v, x0) for v in self.alpha_sigma(t))
            return alpha * eps - sigma * x0
        raise ValueError(f"unknown prediction {prediction!r}")

    def to_x0_eps(self, x_t, model_out, t, prediction: str):
        """Recover (x0, eps) from the model's output under either parameterisation."""
        alpha, sigma = (_bcast(v, x_t) for v in self.alpha_sigma(t))
        if prediction == "v":
            x0 = alpha * x_t - sigma * model_out
            eps = sigma * x_t + alpha * model_out
        elif prediction == "eps":
            eps = model_out
            x0 = (x_t - sigma * eps) / alpha
        else:
            raise ValueError(f"unknown prediction {prediction!r}")
        return x0, eps

    def loss_weight(self, t: torch.Tensor, prediction: str, min_snr_gamma: float) -> torch.Tensor:
        """Min-SNR-gamma weights (Hang et al. 2023), expressed for the chosen prediction target.

        With gamma the x0-space weight is min(snr, gamma); an eps-MSE is snr x the x0-MSE and a v-MSE is
        (snr + 1) x it, hence the divisions. gamma = 0 means plain (unweighted) MSE on the target.
        """
        if min_snr_gamma <= 0:
            return torch.ones_like(t)
        snr = self.snr(t)
        clipped = torch.clamp(snr, max=min_snr_gamma)
        if prediction == "v":
            return clipped / (snr + 1.0)
        if prediction == "eps":
            return clipped / snr
        raise ValueError(f"unknown prediction {prediction!r}")


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    v = v.to(like.dtype) if v.is_floating_point() else v
    return v.reshape(v.shape + (1,) * (like.dim() - v.dim()))


def stratified_times(batch: int, generator: torch.Generator, device) -> torch.Tensor:
    """t in [0, 1): one uniform offset plus an even grid, a cheap variance reduction over plain U(0, 1)."""
    u = torch.rand((), generator=generator)
    t = (u + torch.arange(batch, dtype=torch.float32) / batch) % 1.0
    return t.to(device)
