"""ADM-style class-conditional UNet (Dhariwal & Nichol 2021), sized for 16-64 px images on a CPU.

Residual blocks whose second GroupNorm is modulated (scale and shift) by an embedding of time + class;
self-attention only at the lowest resolution(s), where it is cheap; zero-initialised output convolutions so
every block starts as the identity. Class index `num_classes` is the null class for classifier-free guidance.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import patch_scale


@dataclass
class UNetConfig:
    in_channels: int = 3
    num_classes: int = 2
    image_size: int = 32  # the network is size-agnostic; samplers read this to know what to draw
    channels: int = 64
    channel_mults: tuple = (1, 2, 2)
    num_res_blocks: int = 1
    attn_levels: tuple = (2,)  # indices into channel_mults that get self-attention (plus the middle block)
    head_channels: int = 32
    emb_channels: int | None = None  # default 4 x channels
    dropout: float = 0.0
    patch_size: int = 1  # >1: pixel-unshuffle the input (and shuffle the output), so the UNet runs at S/patch
    augment_dim: int = 0  # >0: the augmentation applied to a training image is an input (EDM's non-leaky aug)
    pixel_head: int = 0  # >0: width of a small full-resolution head that refines the patch output (see PixelHead)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        d["attn_levels"] = list(self.attn_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        d["channel_mults"] = tuple(d["channel_mults"])
        d["attn_levels"] = tuple(d["attn_levels"])
        return cls(**d)


# Sized for throughput on a few CPU cores at 32 px. `tiny` and `small` first fold 2x2 pixel patches into
# channels (pixel-unshuffle), so every convolution runs at 16x16 and below: ~4x fewer FLOPs than a UNet of
# the same width at full resolution, spent instead on width (capacity for class semantics). Attention only
# at the two lowest levels. `base` works at full resolution and is meant for a GPU. Above 32 px the patches
# grow with the image (config.patch_scale): 4x4 for tiny/small at 64 px.
PIXEL_HEAD_WIDTH = 16  # measured: +7 % per step at 64 px; width 32 doubled the step's time on this CPU
PRESETS = {
    "micro": dict(channels=8, channel_mults=(1, 2), num_res_blocks=1, attn_levels=(1,), head_channels=16,
                  emb_channels=16),
    "tiny": dict(channels=32, channel_mults=(1, 2, 2), num_res_blocks=1, attn_levels=(1, 2), head_channels=32,
                 patch_size=2),
    "small": dict(channels=48, channel_mults=(1, 2, 2), num_res_blocks=1, attn_levels=(1, 2), head_channels=16,
                  patch_size=2),
    "base": dict(channels=96, channel_mults=(1, 2, 2, 2), num_res_blocks=2, attn_levels=(2, 3), head_channels=32,
                 dropout=0.1),
}


def preset_config(preset: str, *, in_channels: int, num_classes: int, image_size: int = 32) -> UNetConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    kw = dict(PRESETS[preset])
    kw["patch_size"] = kw.get("patch_size", 1) * patch_scale(image_size)  # same inner resolution as at 32 px
    if kw["patch_size"] >= 4:  # 4x4 patches and up: too many values per patch for the first level to denoise
        kw.setdefault("pixel_head", PIXEL_HEAD_WIDTH)
    cfg = UNetConfig(in_channels=in_channels, num_classes=num_classes, image_size=image_size, **kw)
    factor = cfg.patch_size * 2 ** (len(cfg.channel_mults) - 1)
    if image_size % factor:
        raise ValueError(f"image size {image_size} must be divisible by {factor} for the {preset!r} preset")
    return cfg


def _groups(channels: int) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if channels % g == 0 and channels // g >= 2:
            return g
    return 1


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of continuous time t in [0, 1] (scaled by 1000 like the discrete ADM steps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout, affine=False)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class PixelHead(nn.Module):
    """A small full-resolution stage after the patched UNet: it sees the noisy image and the UNet's output pixel by
    pixel and adds a correction. With 4x4 patches (64 px) the UNet's first level carries 48 values per patch in 48
    channels, too few to also carry the per-pixel noise it must predict, and 10-minute 64 px samples kept visible
    pixel noise (a trained model left 35 % of the noise in its prediction at sigma 0.2, against 16 % at 32 px).
    Denoising white noise is local work, so a few full-resolution convolutions do it for ~10 % of the step's cost."""

    def __init__(self, channels: int, width: int, emb: int):
        super().__init__()
        self.conv_in = nn.Conv2d(2 * channels, width, 3, padding=1)
        self.block = ResBlock(width, width, emb, 0.0)
        self.norm = nn.GroupNorm(_groups(width), width)
        self.conv_out = _zero(nn.Conv2d(width, channels, 3, padding=1))

    def forward(self, x, coarse, emb):
        h = self.block(self.conv_in(torch.cat([x, coarse], dim=1)), emb)
        return coarse + self.conv_out(F.silu(self.norm(h)))


class Attention(nn.Module):
    def __init__(self, channels: int, head_channels: int):
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x, emb=None):
        b, c, hgt, wid = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, hgt * wid)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # b, heads, hw, ch
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, hgt, wid)
        return x + self.proj(out)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x, emb=None):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, emb=None):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        emb = cfg.emb_channels or 4 * ch
        self.null_class = cfg.num_classes
        self.image_size = cfg.image_size
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.class_emb = nn.Embedding(cfg.num_classes + 1, emb)
        self.aug_emb = nn.Linear(cfg.augment_dim, emb, bias=False) if cfg.augment_dim else None
        p = cfg.patch_size
        self.unshuffle = nn.PixelUnshuffle(p) if p > 1 else nn.Identity()
        self.shuffle = nn.PixelShuffle(p) if p > 1 else nn.Identity()
        self.conv_in = nn.Conv2d(cfg.in_channels * p * p, ch, 3, padding=1)

        self.down = nn.ModuleList()
        skips = [ch]
        cur = ch
        n_levels = len(cfg.channel_mults)
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                layers = [ResBlock(cur, ch * mult, emb, cfg.dropout)]
                cur = ch * mult
                if level in cfg.attn_levels:
                    layers.append(Attention(cur, cfg.head_channels))
                self.down.append(nn.ModuleList(layers))
                skips.append(cur)
            if level != n_levels - 1:
                self.down.append(nn.ModuleList([Downsample(cur)]))
                skips.append(cur)

        self.mid = nn.ModuleList([ResBlock(cur, cur, emb, cfg.dropout), Attention(cur, cfg.head_channels),
                                  ResBlock(cur, cur, emb, cfg.dropout)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(cur + skips.pop(), ch * mult, emb, cfg.dropout)]
                cur = ch * mult
                if level in cfg.attn_levels:
                    layers.append(Attention(cur, cfg.head_channels))
                if level != 0 and i == cfg.num_res_blocks:
                    layers.append(Upsample(cur))
                self.up.append(nn.ModuleList(layers))

        self.norm_out = nn.GroupNorm(_groups(cur), cur)
        self.conv_out = _zero(nn.Conv2d(cur, cfg.in_channels * p * p, 3, padding=1))
        self.pixel_head = PixelHead(cfg.in_channels, cfg.pixel_head, emb) if cfg.pixel_head else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                augment: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B,C,S,S] noisy images; t: [B] times in [0,1]; labels: [B] class ids (num_classes = null);
        augment: [B, augment_dim] what was done to each training image (None, as when sampling: nothing)."""
        emb = self.time_mlp(timestep_embedding(t, self.cfg.channels).to(x.dtype)) + self.class_emb(labels)
        if self.aug_emb is not None and augment is not None:
            emb = emb + self.aug_emb(augment.to(emb.dtype))
        emb = F.silu(emb)
        h = self.conv_in(self.unshuffle(x))
        hs = [h]
        for layers in self.down:
            for layer in layers:
                h = layer(h, emb)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layers in self.up:
            h = torch.cat([h, hs.pop()], dim=1)
            for layer in layers:
                h = layer(h, emb)
        out = self.shuffle(self.conv_out(F.silu(self.norm_out(h))))
        return out if self.pixel_head is None else self.pixel_head(x, out, emb)


def build_model(preset: str, *, in_channels: int, num_classes: int, image_size: int = 32) -> UNet:
    return UNet(preset_config(preset, in_channels=in_channels, num_classes=num_classes, image_size=image_size))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
