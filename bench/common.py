"""What several bench scripts share: the demo images, the diffusers baseline, and OMP_WAIT_POLICY=PASSIVE.

The scripts run as `python bench/<name>.py`; Python searches a script's own folder first, so `import common` finds
this file (bench/ is not a package). The project itself is imported as installed (`pip install -e '.[bench]'`).

Importing this module sets OMP_WAIT_POLICY=PASSIVE unless it is set already, so import it before torch: spin-waiting
OpenMP threads starve a shared CPU (manage.py and diffusion.train do the same).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from app import DEMO_DIR, ROOT

DEMO_IMAGES = DEMO_DIR / "images"  # the bundled demo emoji: <class>/<style>__<emoji>.png

__all__ = ["DEMO_IMAGES", "ROOT", "diffusers_unet"]


def diffusers_unet(*, block_out_channels, norm_num_groups: int, num_class_embeds: int, sample_size: int = 32,
                   channels: int = 3, layers_per_block: int = 1):
    """The public baseline: diffusers' UNet2DModel, class-conditional through `num_class_embeds`, with attention at
    the lowest level only. Each bench picks the widths that match what it compares against."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=sample_size, in_channels=channels, out_channels=channels,
                       layers_per_block=layers_per_block, block_out_channels=block_out_channels,
                       down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
                       num_class_embeds=num_class_embeds, norm_num_groups=norm_num_groups)
