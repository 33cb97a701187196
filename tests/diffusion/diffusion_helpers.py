"""Helpers for the diffusion tests: one torch thread, and a micro training config (their data comes from the
`dataset` fixture, kind "discs", or tiny_folder in conftest)."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

# Micro models are all per-op overhead: one thread avoids fork/join stalls on a shared, busy CPU.
torch.set_num_threads(1)


def micro_config(data, **over):
    from diffusion.config import TrainConfig
    base = dict(data=str(data), image_size=8, preset="micro", epochs=2, batch_size=8, lr=2e-3, warmup_steps=5,
                sample_every=1, sample_steps=2, samples_per_class=2, eval=False, log_every=2,
                preview_at_start=False)
    base.update(over)
    return TrainConfig(**base)
