"""Offline evaluation of generated samples: no downloads, a few CPU-seconds to set up.

``Evaluator.fit`` trains a small CNN (``diffusion.classifier``) on a stratified split of the training
images and keeps the held-back reals. ``Evaluator.score`` then reports, for a batch of labelled samples:

- ``accuracy`` / ``per_class_accuracy``: does the classifier see the class the sample was asked for?
  ``real_accuracy`` (the classifier on held-back reals) says how far to trust that figure.
- ``fid``: Fréchet distance between the samples' and held-back reals' penultimate features. Sample counts
  are tiny (tens), so both covariances are Ledoit-Wolf shrunk towards a scaled identity; the figure is for
  comparing epochs/settings of one dataset, not for comparing with published FIDs.
- ``kid``: unbiased MMD² with the cubic polynomial kernel; unbiased at any sample count (≈0, possibly
  negative, when samples and reals come from one distribution).
- ``memorised_share``: share of samples whose nearest training image (or its mirror image — training flips)
  is closer in pixel space than ``nn_threshold``, the 1st percentile of the training images' own
  nearest-neighbour distances (exact duplicates in the data excluded). A fresh image is rarely that close.

``python -m diffusion.evaluate RUN_DIR [--epoch N]`` scores a run's saved samples on demand.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.files import write_with

from .classifier import ClassifierSpec, SmallCNN, predict_and_features, train_classifier, work_size_for

FORMAT = "menagerie-evaluator"
VERSION = 1
MEMO_MAX_SIZE = 32  # pixel-space nearest-neighbour search runs at most at 32 px
MEMO_PERCENTILE = 1.0
MEMO_MAX_QUERIES = 2000  # calibration uses at most this many training images as queries


def classifier_steps(n_train: int, batch_size: int = 64) -> int:
    """~80 epochs (300 steps for the 237 training images of the demo set), within 100..1000 steps.

    On the demo set held-back accuracy stopped improving between 300 and 500 steps; big datasets are
    capped by the time budget rather than by this.
    """
    return int(min(1000, max(100, round(80 * n_train / batch_size))))


class EvaluatorFileError(ValueError):
    """An evaluator file that cannot be read (corrupt, truncated, or not an evaluator)."""


def chance_level(accuracy: float, n: int, num_classes: int) -> bool:
    """Is this sample accuracy indistinguishable from guessing (below 1/classes + 3 standard errors)?"""
    p = 1.0 / max(1, num_classes)
    return accuracy < p + 3.0 * math.sqrt(p * (1 - p) / max(1, n))


# ---------------------------------------------------------------- distribution distances (pure maths)

def shrunk_covariance(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, Ledoit-Wolf shrunk covariance and the shrinkage used, for rows ``x`` [n, d].

    The sample covariance of tens of points in tens of dimensions is singular and noisy; shrinking it
    towards ``mu * I`` with the Ledoit-Wolf optimal weight keeps the Fréchet distance well defined.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {n}")
    mean = x.mean(axis=0)
    xc = x - mean
    emp = xc.T @ xc / n
    mu = np.trace(emp) / d
    x2 = xc ** 2
    beta_ = np.sum(x2.T @ x2) / n
    delta_ = np.sum(emp ** 2)
    beta = (beta_ - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * np.trace(emp) + d * mu ** 2) / d
    beta = min(beta, delta)
    shrinkage = 0.0 if delta <= 0 else float(beta / delta)
    cov = (1.0 - shrinkage) * emp + shrinkage * mu * np.eye(d)
    # Unbiased scaling (n-1) so that with plenty of data this is the usual sample covariance.
    cov *= n / (n - 1)
    return mean, cov, shrinkage


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1-mu2||² + tr(C1 + C2 - 2 (C1^½ C2 C1^½)^½): the Fréchet distance of two Gaussians.

    Uses symmetric eigendecompositions only (no scipy): tr sqrt(C1 C2) = tr sqrt(C1^½ C2 C1^½).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    s1 = _sqrt_psd(cov1)
    m = s1 @ cov2 @ s1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> tuple[float, float, float]:
    """(Fréchet distance, shrinkage of set 1, shrinkage of set 2) with Ledoit-Wolf covariances."""
    m1, c1, s1 = shrunk_covariance(f1)
    m2, c2, s2 = shrunk_covariance(f2)
    return frechet_distance(m1, c1, m2, c2), s1, s2


def fid_standard_error(f_samples: np.ndarray, f_reals: np.ndarray, *, draws: int = 20, seed: int = 0) -> float:
    """How much the Fréchet distance moves when the samples are drawn again: the spread over `draws` bootstrap
    resamples of the samples (the reals are the same for every epoch a run compares). With 200 samples and ~40
    held-back reals it is about 10 % of the distance: two epochs closer than that cannot be told apart by it."""
    rng = np.random.default_rng(seed)
    n = len(f_samples)
    values = [fid_from_features(f_samples[rng.integers(0, n, n)], f_reals)[0] for _ in range(draws)]
    return float(np.std(values, ddof=1))


def kernel_inception_distance(f1: np.ndarray, f2: np.ndarray, *, max_block: int = 2000) -> float:
    """Unbiased MMD² with k(x, y) = (x·y / d + 1)³ (the KID estimator); works for any n, m >= 2.

    Large sets are split into blocks of ``max_block`` and the block estimates averaged (as in KID).
    """
    x = np.asarray(f1, np.float64)
    y = np.asarray(f2, np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"KID needs at least 2 vectors on each side, got {n} and {m}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} vs {y.shape[1]}")
    blocks = max(1, math.ceil(max(n, m) / max_block))
    xs = np.array_split(x, blocks)
    ys = np.array_split(y, blocks)
    d = x.shape[1]
    values = []
    for xb, yb in zip(xs, ys):
        kxx = (xb @ xb.T / d + 1) ** 3
        kyy = (yb @ yb.T / d + 1) ** 3
        kxy = (xb @ yb.T / d + 1) ** 3
        a, b = len(xb), len(yb)
        values.append((kxx.sum() - np.trace(kxx)) / (a * (a - 1))
                      + (kyy.sum() - np.trace(kyy)) / (b * (b - 1))
                      - 2.0 * kxy.mean())
    return float(np.mean(values))


# ---------------------------------------------------------------- pixel-space nearest neighbours

def memo_pixels(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N,C,S,S] -> float [N, D] in [0,1] at <= MEMO_MAX_SIZE, alpha premultiplied for RGBA.

    Premultiplying makes the colour of fully transparent pixels irrelevant, as it is to the eye.
    """
    x = images_u8.float() / 255.0
    if x.shape[1] == 4:
        x = torch.cat([x[:, :3] * x[:, 3:], x[:, 3:]], dim=1)
    size = min(x.shape[-1], MEMO_MAX_SIZE)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x


def nearest_neighbours(queries: torch.Tensor, refs: torch.Tensor, *, k: int = 1,
                       exclude: torch.Tensor | None = None, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances [N,k], ref indices [N,k]): RMS pixel distance from each query [N,C,S,S] to its k nearest refs,
    a ref and its mirror image counting as one (float in [0,1]), nearest first.

    ``exclude`` [N] gives, per query, a reference index to skip (itself and its mirror), for calibration.
    """
    r = refs.flatten(1)
    rf = refs.flip(-1).flatten(1)
    d = r.shape[1]
    k = min(k, r.shape[0])
    dists, idxs = [], []
    for i in range(0, queries.shape[0], chunk):
        q = queries[i:i + chunk].flatten(1)
        dist = torch.minimum(torch.cdist(q, r), torch.cdist(q, rf)) / math.sqrt(d)
        if exclude is not None:
            rows = torch.arange(dist.shape[0])
            dist[rows, exclude[i:i + chunk]] = float("inf")
        top = dist.topk(k, dim=1, largest=False)
        dists.append(top.values)
        idxs.append(top.indices)
    if not dists:
        return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
    return torch.cat(dists), torch.cat(idxs)


def nearest_distances(queries: torch.Tensor, refs: torch.Tensor, *, exclude: torch.Tensor | None = None,
                      chunk: int = 512) -> torch.Tensor:
    """RMS pixel distance from each query to its nearest ref or mirrored ref (``nearest_neighbours`` with k=1)."""
    return nearest_neighbours(queries, refs, k=1, exclude=exclude, chunk=chunk)[0][:, 0]


def calibrate_nn_threshold(refs: torch.Tensor, generator: torch.Generator,
                           percentile: float = MEMO_PERCENTILE) -> tuple[float, float, int]:
    """(threshold, median NN distance, number of exact duplicates) from real-vs-real NN distances."""
    n = refs.shape[0]
    if n < 2:
        raise ValueError("need at least 2 training images to calibrate the memorisation threshold")
    idx = torch.randperm(n, generator=generator)[:MEMO_MAX_QUERIES] if n > MEMO_MAX_QUERIES else torch.arange(n)
    d = nearest_distances(refs[idx], refs, exclude=idx)
    duplicates = int((d < 1e-6).sum())
    fresh = d[d >= 1e-6]
    if fresh.numel() == 0:
        raise ValueError("every training image has an exact duplicate; cannot calibrate memorisation")
    threshold = float(torch.quantile(fresh.double(), percentile / 100.0))
    return threshold, float(fresh.median()), duplicates


# ---------------------------------------------------------------- the evaluator

def _check_images(images_u8, what: str) -> torch.Tensor:
    if not isinstance(images_u8, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(images_u8).__name__}")
    if images_u8.dtype != torch.uint8:
        raise ValueError(f"{what} must be uint8 [N,C,S,S] (0..255), got dtype {images_u8.dtype}")
    if images_u8.dim() != 4 or images_u8.shape[2] != images_u8.shape[3]:
        raise ValueError(f"{what} must be square images shaped [N,C,S,S], got {tuple(images_u8.shape)}")
    if images_u8.shape[1] not in (1, 3, 4):
        raise ValueError(f"{what} must have 1, 3 or 4 channels, got {images_u8.shape[1]}")
    if images_u8.shape[2] < 8:
        raise ValueError(f"{what} must be at least 8x8 px, got {images_u8.shape[2]}x{images_u8.shape[3]}")
    return images_u8.cpu()


def _check_labels(labels, n: int, num_classes: int, what: str) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"{what} must be a 1-D tensor with one label per image ({n}), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"{what} must be integer class indices, got dtype {labels.dtype}")
    labels = labels.long().cpu()
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{what} must lie in 0..{num_classes - 1}, got values {labels.min()}..{labels.max()}")
    return labels


def stratified_split(labels: torch.Tensor, num_classes: int, holdout: float,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-back indices): ~``holdout`` of every class held back, at least 1 when the
    class has 2+ images, and never the class's last image (the classifier must see every class)."""
    train, held = [], []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        n = len(idx)
        k = 0
        if holdout > 0 and n >= 2:
            k = min(max(1, round(holdout * n)), n - 1)
        held.append(idx[:k])
        train.append(idx[k:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(held)).values


def _per_class(preds: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> dict[str, float]:
    out = {}
    for c, name in enumerate(class_names):
        mask = labels == c
        if mask.any():
            out[name] = float((preds[mask] == c).float().mean())
    return out


class Evaluator:
    """A fitted yardstick for one dataset: classifier + held-back reals + memorisation reference."""

    def __init__(self, *, spec: ClassifierSpec, state_dict: dict, class_names: list[str], image_shape: tuple,
                 holdout_images: torch.Tensor, holdout_labels: torch.Tensor, memo_reference: torch.Tensor,
                 nn_threshold: float, nn_median: float, info: dict, device="cpu"):
        self.spec = spec
        self.class_names = list(class_names)
        self.image_shape = tuple(int(v) for v in image_shape)  # (C, S, S)
        self.holdout_images = holdout_images
        self.holdout_labels = holdout_labels
        self.memo_reference = memo_reference  # uint8, all training images at <= MEMO_MAX_SIZE
        self.nn_threshold = float(nn_threshold)
        self.nn_median = float(nn_median)
        self.info = dict(info)
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):  # weight init draws from the global RNG; keep it untouched
            self.model = SmallCNN(spec).to(self.device)
        self.model.load_state_dict(state_dict)
        self.model.eval()
        self._memo_refs = memo_pixels(memo_reference)
        _, feats = predict_and_features(self.model, holdout_images, self.device)
        self._holdout_features = feats.numpy()

    # ------------------------------------------------------------ construction

    @classmethod
    def fit(cls, images_u8: torch.Tensor, labels, class_names: list[str], *, seed: int = 0, device="cpu",
            budget_s: float = 30, holdout: float = 0.2, flip: bool = True) -> "Evaluator":
        """Train the classifier on a stratified ~(1-holdout) split; keep the rest to compare samples with.

        ``flip=False`` trains it without mirror images: it then also judges whether mirrored pictures still
        look like their class (``mirror_test``), and does not accept a mirrored sample the data never shows.

        Leaves the global RNG state untouched (training runs must resume bit-exactly around this call).
        """
        start = time.perf_counter()
        images_u8 = _check_images(images_u8, "images_u8")
        class_names = [str(c) for c in class_names]
        if len(class_names) < 2:
            raise ValueError(f"the evaluator needs at least 2 classes to classify, got {len(class_names)}")
        if len(set(class_names)) != len(class_names):
            raise ValueError(f"class names must be unique, got {class_names}")
        labels = _check_labels(labels, images_u8.shape[0], len(class_names), "labels")
        counts = torch.bincount(labels, minlength=len(class_names))
        empty = [class_names[i] for i in range(len(class_names)) if counts[i] == 0]
        if empty:
            raise ValueError(f"classes without any image: {', '.join(empty)}")
        if not 0 <= holdout < 1:
            raise ValueError(f"holdout must be in [0, 1), got {holdout}")
        if budget_s <= 0:
            raise ValueError(f"budget_s must be positive, got {budget_s}")
        device = torch.device(device)
        fork_devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            train_idx, held_idx = stratified_split(labels, len(class_names), holdout, gen)
            no_holdout = [class_names[c] for c in range(len(class_names)) if not (labels[held_idx] == c).any()]
            if holdout > 0 and no_holdout:
                warnings.warn(f"evaluator: classes with a single image have no held-back real: {', '.join(no_holdout)}")
            spec = ClassifierSpec(in_channels=images_u8.shape[1], num_classes=len(class_names),
                                  work_size=work_size_for(images_u8.shape[-1]))
            fit_start = time.perf_counter()
            # Reserve a little of the budget for calibration and held-back scoring.
            model, report = train_classifier(images_u8[train_idx], labels[train_idx], spec, generator=gen,
                                             device=device, budget_s=max(0.5, budget_s * 0.9 - (fit_start - start)),
                                             max_steps=classifier_steps(len(train_idx)), flip=flip)
            memo_reference = memo_reference_images(images_u8)
            threshold, median, duplicates = calibrate_nn_threshold(memo_pixels(memo_reference), gen)
        info = {"seed": seed, "holdout": holdout, "n_train": int(len(train_idx)), "n_holdout": int(len(held_idx)),
                "classifier_steps": report.steps, "classifier_epochs": round(report.epochs, 2),
                "classifier_seconds": round(report.seconds, 3), "classifier_final_loss": report.final_loss,
                "stopped_by_budget": report.stopped_by_budget, "exact_duplicates_in_training": duplicates,
                "classifier_flips": bool(flip)}
        evaluator = cls(spec=spec, state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
                        class_names=class_names, image_shape=tuple(images_u8.shape[1:]),
                        holdout_images=images_u8[held_idx].clone(), holdout_labels=labels[held_idx].clone(),
                        memo_reference=memo_reference, nn_threshold=threshold, nn_median=median, info=info,
                        device=device)
        evaluator.info.update(evaluator._real_reference(images_u8[train_idx], labels[train_idx]))
        evaluator.info["fit_seconds"] = round(time.perf_counter() - start, 3)
        return evaluator

    def _real_reference(self, train_images: torch.Tensor, train_labels: torch.Tensor) -> dict:
        """Figures of real images, to read sample figures against (how good can the yardstick be?)."""
        out: dict = {"real_accuracy": None, "real_balanced_accuracy": None, "real_per_class_accuracy": {},
                     "real_fid": None, "real_kid": None}
        if len(self.holdout_labels) == 0:
            return out
        preds, _ = predict_and_features(self.model, self.holdout_images, self.device)
        per_class = _per_class(preds, self.holdout_labels, self.class_names)
        out["real_accuracy"] = float((preds == self.holdout_labels).float().mean())
        out["real_balanced_accuracy"] = float(np.mean(list(per_class.values())))
        out["real_per_class_accuracy"] = per_class
        if len(self.holdout_labels) >= 2 and len(train_labels) >= 2:
            # Training reals vs held-back reals, as many as held back: what a perfect copier would get.
            k = min(len(train_labels), len(self.holdout_labels))
            pick = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(1))[:k]
            _, f = predict_and_features(self.model, train_images[pick], self.device)
            out["real_fid"] = fid_from_features(f.numpy(), self._holdout_features)[0]
            out["real_kid"] = kernel_inception_distance(f.numpy(), self._holdout_features)
        return out

    def mirror_test(self) -> dict:
        """Accuracy on the held-back reals as they are and mirrored left-right: a classifier fitted without flips
        that still recognises mirrored pictures says the data does not care about left and right."""
        if len(self.holdout_labels) == 0:
            return {"n": 0, "accuracy": None, "mirrored_accuracy": None, "kept": None}
        preds, _ = predict_and_features(self.model, self.holdout_images, self.device)
        mirrored, _ = predict_and_features(self.model, self.holdout_images.flip(-1), self.device)
        right, right_mirrored = preds == self.holdout_labels, mirrored == self.holdout_labels
        return {"n": int(len(self.holdout_labels)), "accuracy": float(right.float().mean()),
                "mirrored_accuracy": float(right_mirrored.float().mean()),
                # of the images it recognises, the share it still recognises mirrored
                "kept": float((right & right_mirrored).sum() / right.sum()) if right.any() else None}

    def nearest_training(self, samples_u8: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        """(RMS distances [N,k], training-image indices [N,k]) of each sample's nearest training images, nearest
        first (mirror images count as the image: training may flip); ``memorised`` is distance < nn_threshold."""
        return nearest_neighbours(memo_pixels(_check_images(samples_u8, "samples_u8")), self._memo_refs, k=k)

    # ------------------------------------------------------------ scoring

    def score(self, samples_u8: torch.Tensor, sample_labels) -> dict:
        """Figures for labelled samples (uint8 [N,C,S,S] in the training images' format). JSON-ready.

        ``fid``/``kid`` are left out (not None) when they cannot be computed: fewer than 2 samples, or an
        evaluator fitted without held-back reals.
        """
        samples_u8 = _check_images(samples_u8, "samples_u8")
        if tuple(samples_u8.shape[1:]) != self.image_shape:
            raise ValueError(f"samples are shaped {tuple(samples_u8.shape[1:])} (C,S,S) but the evaluator was fitted "
                             f"on {self.image_shape}; sample at the training size and channel count")
        if samples_u8.shape[0] == 0:
            raise ValueError("no samples to score")
        labels = _check_labels(sample_labels, samples_u8.shape[0], len(self.class_names), "sample_labels")
        preds, feats = predict_and_features(self.model, samples_u8, self.device)
        per_class = _per_class(preds, labels, self.class_names)
        result: dict = {
            "n_samples": int(samples_u8.shape[0]),
            "accuracy": float((preds == labels).float().mean()),
            "balanced_accuracy": float(np.mean(list(per_class.values()))),
            "per_class_accuracy": per_class,
        }
        f = feats.numpy()
        if len(f) >= 2 and len(self._holdout_features) >= 2:
            fid, s_samples, s_reals = fid_from_features(f, self._holdout_features)
            result.update(fid=fid, fid_se=fid_standard_error(f, self._holdout_features),
                          kid=kernel_inception_distance(f, self._holdout_features),
                          fid_covariance="ledoit-wolf shrunk", fid_shrinkage=[round(s_samples, 4), round(s_reals, 4)],
                          n_reals=int(len(self._holdout_features)))
        nn = nearest_distances(memo_pixels(samples_u8), self._memo_refs)
        result["memorised_share"] = float((nn < self.nn_threshold).float().mean())
        result["nn_threshold"] = self.nn_threshold
        # < 1: samples sit closer to training images than training images sit to each other.
        result["nn_ratio"] = float(nn.median() / self.nn_median) if self.nn_median > 0 else None
        for key in ("real_accuracy", "real_balanced_accuracy", "real_fid", "real_kid"):
            result[key] = self.info.get(key)
        return result

    # ------------------------------------------------------------ persistence

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "spec": self.spec.to_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "class_names": self.class_names, "image_shape": list(self.image_shape),
                "holdout_images": self.holdout_images, "holdout_labels": self.holdout_labels,
                "memo_reference": self.memo_reference, "nn_threshold": self.nn_threshold,
                "nn_median": self.nn_median, "info": self.info}

    def save(self, path) -> Path:
        """torch.save of a plain dict, atomically and durably (core.files: never a half-written file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_with(path, lambda f: torch.save(self.to_dict(), f))
        return path

    @classmethod
    def load(cls, path, device="cpu") -> "Evaluator":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no evaluator file at {path}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a damaged zip/pickle
            raise EvaluatorFileError(f"{path} is not a readable evaluator file (corrupt or truncated?): {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise EvaluatorFileError(f"{path} is not a Menagerie evaluator file")
        if data.get("version") != VERSION:
            raise EvaluatorFileError(f"{path} has evaluator format version {data.get('version')}, "
                                     f"this code reads version {VERSION}; fit a new evaluator")
        try:
            return cls(spec=ClassifierSpec(**data["spec"]), state_dict=data["state_dict"],
                       class_names=data["class_names"], image_shape=tuple(data["image_shape"]),
                       holdout_images=data["holdout_images"], holdout_labels=data["holdout_labels"],
                       memo_reference=data["memo_reference"], nn_threshold=data["nn_threshold"],
                       nn_median=data["nn_median"], info=data["info"], device=device)
        except (KeyError, TypeError, RuntimeError) as exc:
            raise EvaluatorFileError(f"{path} is an incomplete or inconsistent evaluator file: {exc!r}") from exc


def memo_reference_images(images_u8: torch.Tensor) -> torch.Tensor:
    """All training images as uint8 at <= MEMO_MAX_SIZE (what samples are checked against for copies)."""
    if images_u8.shape[-1] <= MEMO_MAX_SIZE:
        return images_u8.clone()
    x = F.interpolate(images_u8.float(), size=(MEMO_MAX_SIZE, MEMO_MAX_SIZE), mode="area")
    return x.round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------- reading sample folders / command line

def read_sample_folder(folder, class_names: list[str], channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read ``folder/<class>/*.png`` into (uint8 [N,C,S,S], labels) using the evaluator's class order."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no sample folder at {folder}")
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    images, labels = [], []
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    unknown = [p.name for p in subdirs if p.name not in class_names]
    if unknown:
        raise ValueError(f"{folder} has folders for classes the evaluator does not know: {', '.join(unknown)}")
    for sub in subdirs:
        files = sorted(sub.glob("*.png"), key=lambda p: (len(p.stem), p.stem))
        for file in files:
            try:
                with Image.open(file) as im:
                    arr = np.asarray(im.convert(mode))
            except OSError as exc:
                raise ValueError(f"cannot read sample image {file}: {exc}") from exc
            if arr.ndim == 2:
                arr = arr[:, :, None]
            images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
            labels.append(class_names.index(sub.name))
    if not images:
        raise ValueError(f"no sample images (*.png) under {folder}/<class>/")
    sizes = {tuple(t.shape) for t in images}
    if len(sizes) > 1:
        raise ValueError(f"sample images under {folder} have different sizes: {sorted(sizes)}")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def _latest_epoch(run_dir: Path) -> int:
    from . import rundir

    epochs = rundir.list_epochs(run_dir)
    if not epochs:
        raise ValueError(f"{run_dir} has no sample grids yet (samples/epoch_NNNN.png)")
    return epochs[-1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m diffusion.evaluate",
        description="Score a run's saved samples (samples/epoch_NNNN/<class>/*.png) with RUN_DIR/evaluator.pt; "
                    "prints JSON.")
    parser.add_argument("run_dir", type=Path, help="run directory")
    parser.add_argument("--epoch", type=int, default=None, help="epoch to score (default: the latest sample grid)")
    parser.add_argument("--samples", type=Path, default=None,
                        help="score this folder of <class>/*.png instead (e.g. the output of `manage.py sample`)")
    parser.add_argument("--evaluator", type=Path, default=None, help="evaluator file (default RUN_DIR/evaluator.pt)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        evaluator = Evaluator.load(args.evaluator or args.run_dir / "evaluator.pt", device=args.device)
        if args.samples is not None:
            folder, epoch = args.samples, None
        else:
            from . import rundir

            epoch = args.epoch if args.epoch is not None else _latest_epoch(args.run_dir)
            folder = rundir.epoch_samples_dir(args.run_dir, epoch)
            if not folder.is_dir():
                have = rundir.list_epochs(args.run_dir)
                raise ValueError(f"{args.run_dir} has no samples for epoch {epoch} (epochs with samples: "
                                 f"{', '.join(map(str, have)) or 'none'})")
        images, labels = read_sample_folder(folder, evaluator.class_names, evaluator.image_shape[0])
        result = evaluator.score(images, labels)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"epoch": epoch, "samples": str(folder), **result}
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
