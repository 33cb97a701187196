"""A small convolutional network, run with numpy, that gives a second opinion on pairs the confirm score cannot
settle: another hand-tuned rendition of one icon (lines a pixel apart) against a sibling of its family (one badge
changed) or the same person in another skin tone.

The network is trained by bench/dedup_verifier.py on sources the duplicate benchmark never uses (the Oxygen,
Papirus, Breeze and elementary-xfce icon themes from Debian, EmojiOne and Noto v1 emoji, the Blueprint and Heroicons
glyph sets) and stored beside this module as ``verifier.npz``; its layers' widths are read from the weights. The web
process never imports torch, so the forward pass is written here with numpy; a test checks it against torch's. Its
inputs are made by ``curator.dedup.matching.verifier_inputs``.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("verifier.npz")
STRIDES = (1, 2, 2, 2)  # the four 3x3 convolutions; then mean and max pooling, two dense layers
CHUNK = 16  # pairs per pass: their patches (16 x 330 KB for the first layer) stay in the cache


def _conv_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """3x3 convolution (padding 1) of (N, C, H, W) by (O, C, 3, 3) weights, then ReLU, as one matrix product per
    picture over the nine shifted views. With stride 1 each view is one contiguous slice of the padded picture laid
    out flat (rows W + 2 long; the two columns that wrap round are dropped afterwards), so building the patches is
    nine block copies, not nine strided gathers of C floats each."""
    n, c, h, wd = x.shape
    if stride == 1:
        row = wd + 2
        padded = np.zeros((n, c, (h + 2) * row + 2), dtype=np.float32)  # +2: the last view's wrapped tail
        padded[:, :, :(h + 2) * row].reshape(n, c, h + 2, row)[:, :, 1:-1, 1:-1] = x
        length = h * row
        cols = np.empty((n, 3, 3, c, length), dtype=np.float32)
        for dy in range(3):
            for dx in range(3):
                cols[:, dy, dx] = padded[:, :, dy * row + dx:dy * row + dx + length]
        out = _product(cols, w, b, n, c, length)
        return out.reshape(n, -1, h, row)[:, :, :, :wd]
    padded = np.zeros((n, c, h + 2, wd + 2), dtype=np.float32)
    padded[:, :, 1:-1, 1:-1] = x
    oh, ow = (h - 1) // stride + 1, (wd - 1) // stride + 1
    cols = np.empty((n, 3, 3, c, oh, ow), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            cols[:, dy, dx] = padded[:, :, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride]
    return _product(cols, w, b, n, c, oh * ow).reshape(n, -1, oh, ow)


def _product(cols: np.ndarray, w: np.ndarray, b: np.ndarray, n: int, c: int, length: int) -> np.ndarray:
    out = np.matmul(w.transpose(0, 2, 3, 1).reshape(len(w), 9 * c), cols.reshape(n, 9 * c, length))
    out += b[:, None]
    return np.maximum(out, 0.0, out=out)


def fold_difference(w: np.ndarray) -> np.ndarray:
    """First-layer weights (O, 9, 3, 3) over (aligned smaller picture, larger picture, their difference) as weights
    (O, 6, 3, 3) over the two pictures alone: a convolution is linear, so w_diff * (a - b) = w_diff * a - w_diff * b
    and the difference costs nothing (a third less work in the largest layer)."""
    return np.concatenate([w[:, 0:3] + w[:, 6:9], w[:, 3:6] - w[:, 6:9]], axis=1)


class Verifier:
    """The trained network: ``probabilities(images, scalars)`` that each pair is one picture."""

    def __init__(self, weights: dict):
        self.w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self.w["conv.0.weight"] = fold_difference(self.w["conv.0.weight"])

    def probabilities(self, images: np.ndarray, scalars: np.ndarray) -> np.ndarray:
        """(N,) from images (N, 6, 32, 32) and scalars (N, 4) (``verifier_inputs``)."""
        out = np.empty(len(images), dtype=np.float32)
        for lo in range(0, len(images), CHUNK):
            h = images[lo:lo + CHUNK]
            for k, stride in enumerate(STRIDES):
                h = _conv_relu(h, self.w[f"conv.{2 * k}.weight"], self.w[f"conv.{2 * k}.bias"], stride)
            f = np.concatenate([h.mean(axis=(2, 3)), h.max(axis=(2, 3)), scalars[lo:lo + CHUNK]], axis=1)
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
