"""Sampling speed: 200 samples at 32 px with 25 DPM-Solver++ 2M steps (target <= 20 s on this CPU), and the
ratio against 250 DDPM steps (the reference sampler) measured in the same run.

    python bench/sample_speed.py [--run RUN_DIR] [--n 200] [--steps 25] [--ddpm-steps 250]

Uses a trained run's EMA model when --run is given, else a freshly built `small` UNet (speed does not depend
on the weights). Guidance is on (conditional + unconditional in one batch), as in the trainer and the UI.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import common  # noqa: F401  (sets OMP_WAIT_POLICY=PASSIVE; before torch, whose OpenMP reads it on loading)
import torch

from core.cli import emit
from diffusion.checkpoint import load_for_sampling
from diffusion.samplers import bf16_is_fast, sample
from diffusion.schedule import CosineSchedule
from diffusion.unet import build_model


def timed(model, schedule, labels, steps, sampler, guidance, prediction, bf16=None) -> float:
    t0 = time.perf_counter()
    with torch.inference_mode():
        sample(model, schedule, labels, steps=steps, sampler=sampler, guidance=guidance,
               generator=torch.Generator().manual_seed(0), prediction=prediction, bf16=bf16)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--ddpm-steps", type=int, default=250)
    p.add_argument("--ddpm-n", type=int, default=50, help="samples for the DDPM reference (time scaled to --n: "
                   "cost is linear in the batch, and 250 steps for 200 samples takes many minutes on a CPU)")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--preset", default="small", help="model preset when no --run is given")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.run:
        model, schedule, config, names = load_for_sampling(a.run, "best", "cpu")
        prediction, classes = config.prediction, len(names)
    else:
        torch.manual_seed(0)
        model, schedule, prediction, classes = build_model(a.preset, in_channels=3, num_classes=8).eval(), \
            CosineSchedule(), "v", 8
    labels = torch.arange(a.n) % classes
    timed(model, schedule, labels[:8], 1, "dpm++2m", a.guidance, prediction)  # warm-up
    fast = timed(model, schedule, labels, a.steps, "dpm++2m", a.guidance, prediction)
    print(f"{a.n} samples, {a.steps} DPM-Solver++ 2M steps: {fast:.1f} s (target <= 20 s)", file=sys.stderr,
          flush=True)
    fp32 = timed(model, schedule, labels, a.steps, "dpm++2m", a.guidance, prediction, bf16=False)
    print(f"  the same in float32 throughout: {fp32:.1f} s (bf16 network where the CPU does it natively: "
          f"{'on' if bf16_is_fast(torch.device('cpu')) else 'off'})", file=sys.stderr, flush=True)
    ddpm_n = min(a.ddpm_n, a.n)
    slow_subset = timed(model, schedule, labels[:ddpm_n], a.ddpm_steps, "ddpm", a.guidance, prediction)
    slow = slow_subset * a.n / ddpm_n
    result = {"model": str(a.run) if a.run else a.preset, "n": a.n, "size": model.image_size, "fast_steps": a.steps, "fast_seconds": round(fast, 2), "fast_fp32_seconds": round(fp32, 2),
              "ddpm_steps": a.ddpm_steps, "ddpm_seconds": round(slow, 2), "ddpm_measured_on": ddpm_n, "speedup": round(slow / fast, 2),
              "samples_per_sec": round(a.n / fast, 1), "load_average": os.getloadavg()[0]}
    emit(result, a.json, f"{a.n} samples at {model.image_size} px: {a.steps} DPM-Solver++ 2M steps {fast:.1f} s "
         f"({a.n / fast:.1f} samples/s), {a.ddpm_steps} DDPM steps {slow:.1f} s (measured on {ddpm_n}, scaled) -> "
         f"{slow / fast:.1f}x faster; "
         f"load average {result['load_average']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
