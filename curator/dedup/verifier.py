"""A small convolutional network, run with numpy, that gives a second opinion on pairs the confirm score cannot
settle: another hand-tuned rendition of one icon (lines a pixel apart) against a sibling of its family (one badge
changed) or the same person in another skin tone.

The network is trained by bench/dedup_verifier.py on sources the duplicate benchmark never uses (the Oxygen,
Papirus, Breeze and elementary-xfce icon themes from Debian, EmojiOne and Noto v1 emoji) and stored beside this
module as ``verifier.npz``. The web process never imports torch, so the forward pass is written here with numpy;
a test checks it against torch's. Its inputs are made by ``curator.dedup.matching.verifier_inputs``.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("verifier.npz")
STRIDES = (1, 2, 2, 2)  # the four 3x3 convolutions; then mean and max pooling, two dense layers
CHUNK = 32  # pairs per pass: the first layer's patches take about 330 KB a pair, 10 MB for 32 (256 took 1.4-1.7x as
# long: the patches no longer stayed in the cache)


def _conv_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """3x3 convolution (padding 1) of channels-last (N, H, W, C) by (O, C, 3, 3) weights, then ReLU: the nine
    shifted views side by side, one matrix product."""
    n, h, wd, c = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    oh, ow = (h - 1) // stride + 1, (wd - 1) // stride + 1
    cols = np.empty((n, oh, ow, 3, 3, c), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            cols[:, :, :, dy, dx] = padded[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride]
    out = cols.reshape(n * oh * ow, 9 * c) @ w.transpose(2, 3, 1, 0).reshape(9 * c, -1) + b
    return np.maximum(out, 0.0).reshape(n, oh, ow, -1)


class Verifier:
    """The trained network: ``probabilities(images, scalars)`` that each pair is one picture."""

    def __init__(self, weights: dict):
        self.w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}

    def probabilities(self, images: np.ndarray, scalars: np.ndarray) -> np.ndarray:
        """(N,) from images (N, 9, 32, 32) and scalars (N, 4) (``verifier_inputs``)."""
        out = np.empty(len(images), dtype=np.float32)
        for lo in range(0, len(images), CHUNK):
            h = np.ascontiguousarray(images[lo:lo + CHUNK].transpose(0, 2, 3, 1))
            for k, stride in enumerate(STRIDES):
                h = _conv_relu(h, self.w[f"conv.{2 * k}.weight"], self.w[f"conv.{2 * k}.bias"], stride)
            f = np.concatenate([h.mean(axis=(1, 2)), h.max(axis=(1, 2)), scalars[lo:lo + CHUNK]], axis=1)
            f = np.maximum(f @ self.w["head.0.weight"].T + self.w["head.0.bias"], 0.0)
            z = (f @ self.w["head.2.weight"].T + self.w["head.2.bias"])[:, 0]
            out[lo:lo + CHUNK] = 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))
        return out


@lru_cache(maxsize=1)
def default_verifier() -> Verifier | None:
    """The network shipped with the package (None if its weights are missing: the confirm score decides alone)."""
    if not WEIGHTS.exists():
        return None
    with np.load(WEIGHTS) as data:
        return Verifier(dict(data))
