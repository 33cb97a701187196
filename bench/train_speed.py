"""Training throughput at 32 px: Menagerie's `small` UNet vs diffusers' UNet2DModel, in the same run.

    python bench/train_speed.py [--batch 64] [--seconds 20] [--rounds 3]

Both models train on the same random batches with the same optimiser (AdamW); the baseline is class-conditional
through `num_class_embeds` and sized to a similar parameter count. Measurements alternate A/B/A/B so a CPU shared
with other work slows both alike; the figure that matters is the ratio. Also prints the machine's matmul FLOP/s
(a large float32 torch.matmul) and the share of it that training reaches (model FLOPs counted by
torch.utils.flop_counter for one forward + backward).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import common  # sets OMP_WAIT_POLICY=PASSIVE: import it before torch, whose OpenMP reads it on loading
import torch
from torch.utils.flop_counter import FlopCounterMode

from core.cli import emit
from diffusion.schedule import CosineSchedule, stratified_times
from diffusion.unet import build_model, count_params

NUM_CLASSES = 8


def matmul_flops(n: int = 2048, seconds: float = 3.0) -> float:
    """Sustained float32 matmul FLOP/s of this machine (best of repeated n x n products)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
    return best


class OursStep:
    """One training step exactly as diffusion.train does it (v-prediction, min-SNR weights, AdamW, clipping)."""

    name = "menagerie small"

    def __init__(self, batch: int):
        torch.manual_seed(0)
        self.model = build_model("small", in_channels=3, num_classes=NUM_CLASSES, image_size=32)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.99))
        self.schedule = CosineSchedule()
        self.gen = torch.Generator().manual_seed(0)
        self.batch = batch

    def __call__(self, x0, labels):
        t = stratified_times(self.batch, self.gen, "cpu")
        eps = torch.randn(x0.shape, generator=self.gen)
        out = self.model(self.schedule.add_noise(x0, eps, t), t, labels)
        w = self.schedule.loss_weight(t, "v", 5.0)
        loss = (w * (out - self.schedule.target(x0, eps, t, "v")).pow(2).mean(dim=(1, 2, 3))).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()


class DiffusersStep:
    """diffusers' UNet2DModel, class-conditional, epsilon-prediction on DDPM's discrete timesteps.

    (48, 96, 96) with one layer per block: 2.5 M parameters, the closest standard shape to `small` (2.8 M)."""

    name = "diffusers UNet2DModel"

    def __init__(self, batch: int, block_out_channels=(48, 96, 96), layers_per_block=1):
        torch.manual_seed(0)
        self.model = common.diffusers_unet(sample_size=32, channels=3, layers_per_block=layers_per_block,
                                           block_out_channels=block_out_channels,
                                           num_class_embeds=NUM_CLASSES + 1, norm_num_groups=16)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.99))
        self.gen = torch.Generator().manual_seed(0)
        betas = torch.linspace(1e-4, 0.02, 1000)
        self.alpha_bar = torch.cumprod(1 - betas, 0)
        self.batch = batch

    def __call__(self, x0, labels):
        t = torch.randint(0, 1000, (self.batch,), generator=self.gen)
        eps = torch.randn(x0.shape, generator=self.gen)
        ab = self.alpha_bar[t][:, None, None, None]
        out = self.model(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t, class_labels=labels).sample
        loss = (out - eps).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()


def images_per_sec(step, x0, labels, seconds: float) -> float:
    step(x0, labels)  # warm-up (allocator, kernels)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(x0, labels)
        n += 1
    return n * len(x0) / (time.perf_counter() - t0)


def flops_per_image(step, x0, labels) -> float:
    with FlopCounterMode(display=False) as counter:
        step(x0, labels)
    return counter.get_total_flops() / len(x0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=15.0, help="per measurement")
    p.add_argument("--rounds", type=int, default=3, help="alternating A/B rounds (median reported)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(a.batch, 3, 32, 32, generator=g) * 2 - 1
    labels = torch.randint(0, NUM_CLASSES, (a.batch,), generator=g)
    ours, base = OursStep(a.batch), DiffusersStep(a.batch)
    peaks = [matmul_flops(seconds=2.0)]
    fl_ours, fl_base = flops_per_image(ours, x0, labels), flops_per_image(base, x0, labels)
    rates = {"ours": [], "base": []}
    for r in range(a.rounds):
        rates["ours"].append(images_per_sec(ours, x0, labels, a.seconds))
        rates["base"].append(images_per_sec(base, x0, labels, a.seconds))
        peaks.append(matmul_flops(seconds=2.0))  # re-measured each round: the best sample is the least disturbed
        print(f"round {r + 1}: ours {rates['ours'][-1]:.1f} img/s, diffusers {rates['base'][-1]:.1f} img/s",
              file=sys.stderr, flush=True)
    o, b = statistics.median(rates["ours"]), statistics.median(rates["base"])
    peak = max(peaks)
    result = {
        "batch": a.batch, "threads": torch.get_num_threads(),
        "ours_params": count_params(ours.model), "diffusers_params": count_params(base.model),
        "ours_images_per_sec": round(o, 2), "diffusers_images_per_sec": round(b, 2), "ratio": round(o / b, 2),
        "matmul_gflops": round(peak / 1e9, 1),
        "ours_gflops_per_image": round(fl_ours / 1e9, 3), "diffusers_gflops_per_image": round(fl_base / 1e9, 3),
        "ours_share_of_matmul_peak": round(o * fl_ours / peak, 3),
        "diffusers_share_of_matmul_peak": round(b * fl_base / peak, 3),
        "load_average": os.getloadavg()[0],
    }
    emit(result, a.json,
         f"menagerie small ({result['ours_params'] / 1e6:.2f} M params): {o:.1f} img/s, "
         f"{result['ours_gflops_per_image']} GFLOP/img (fwd+bwd), "
         f"{100 * result['ours_share_of_matmul_peak']:.0f}% of matmul peak\n"
         f"diffusers UNet2DModel ({result['diffusers_params'] / 1e6:.2f} M params): {b:.1f} img/s, "
         f"{result['diffusers_gflops_per_image']} GFLOP/img, "
         f"{100 * result['diffusers_share_of_matmul_peak']:.0f}% of matmul peak\n"
         f"ratio: {o / b:.2f}x (target >= 2x); matmul peak {result['matmul_gflops']} GFLOP/s; "
         f"load average {result['load_average']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
