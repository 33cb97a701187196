"""The quality benchmark checks its own maths before it measures anything: the Fréchet distance the judge reports,
the real-data floor's matched counts, balanced accuracy, the memorised share and the train/tuned/untouched split.

`bench/quality.py` runs `run()` first on every call (about a second), so no figure is written by maths that fails
these checks; `python bench/quality.py --self-test` runs them alone. They live here, not in tests/, because this
maths is the benchmark's own (no product code uses it) and bench/ is scripts, not something the tests import.
Each check raises CheckFailed saying what was tried and what came out (not `assert`: `python -O` would drop it).
"""
from __future__ import annotations

import math
import time

import numpy as np
import quality_data as qd
import quality_judge as qj
import torch


class CheckFailed(AssertionError):
    """One of the benchmark's own checks failed: its figures cannot be trusted until it is fixed."""


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


def close(value: float, target: float, *, rel: float = 1e-6, abs_tol: float = 1e-12) -> bool:
    return math.isclose(value, target, rel_tol=rel, abs_tol=abs_tol)


def frechet_of_a_set_with_itself_is_zero() -> None:
    f = np.random.default_rng(0).normal(size=(300, 16))
    value = qj.frechet(f, f)
    expect(close(value, 0, abs_tol=1e-8), f"Fréchet of a set with itself: {value}, not 0")


def frechet_of_a_shifted_set_is_the_squared_shift() -> None:
    # Same covariance on both sides, so only the means differ: exactly ||shift||².
    f = np.random.default_rng(1).normal(size=(200, 8))
    shift = np.arange(8) / 4
    value = qj.frechet(f, f + shift)
    expect(close(value, float(shift @ shift)), f"Fréchet of a shifted set: {value}, not {float(shift @ shift)}")


def frechet_of_two_gaussians_follows_the_closed_form() -> None:
    # N(0, I) vs N(mu, s² I) in d dims: ||mu||² + d (1 - s)². Large samples, so the estimate is close.
    rng = np.random.default_rng(2)
    d, s = 4, 2.0
    mu = np.array([1.0, -1.0, 0.5, 0.0])
    a = rng.normal(size=(20000, d))
    b = mu + s * rng.normal(size=(20000, d))
    value, target = qj.frechet(a, b), float(mu @ mu + d * (1 - s) ** 2)
    expect(close(value, target, rel=0.03), f"Fréchet of two Gaussians: {value}, closed form {target} (3 %)")


def floor_compares_the_same_per_class_counts_and_is_near_one_for_copies() -> None:
    rng = np.random.default_rng(3)
    train_labels = np.repeat([0, 1, 2], [80, 10, 40])
    train = rng.normal(size=(130, 6)) + train_labels[:, None]
    held = rng.normal(size=(60, 6)) + np.repeat([0, 1, 2], 20)[:, None]
    sample_labels = np.repeat([0, 1, 2], 30)
    counts = qj.matched_counts(sample_labels, train_labels)
    expect(counts == {0: 30, 1: 10, 2: 30}, f"matched counts {counts}, not {{0: 30, 1: 10, 2: 30}}")
    # Samples that are training images score about the floor; samples of the wrong class far above it.
    copies = train[qj.pick_per_class(train_labels, {0: 30, 1: 10, 2: 30}, None)]
    copy_labels = np.repeat([0, 1, 2], [30, 10, 30])
    fig = qj.frechet_and_floor(copies, copy_labels, train, train_labels, held)
    expect(fig["n_compared"] == 70, f"the floor compared {fig['n_compared']} images, not 70")
    expect(0.5 < fig["frechet_ratio"] < 2, f"copies of training images score {fig['frechet_ratio']:.3f}x the floor, "
                                           "not between 0.5x and 2x")
    wrong = qj.frechet_and_floor(copies + 3, copy_labels, train, train_labels, held)
    expect(wrong["frechet_ratio"] > 5, f"shifted copies score {wrong['frechet_ratio']:.3f}x the floor, not over 5x")


def split_is_deterministic_disjoint_and_complete() -> None:
    names = {"a": [f"{i}.png" for i in range(100)], "b": ["x.png", "y.png", "z.png"], "c": ["only.png"]}
    parts = qd.split_parts(names, salt="s")
    again = qd.split_parts({k: list(reversed(v)) for k, v in names.items()}, salt="s")
    expect(parts == again, "the split depends on the order the names are given in")
    for cls, all_names in names.items():
        seen = [n for p in qd.PARTS for n in parts[p][cls]]
        expect(sorted(seen) == sorted(all_names), f"class {cls}: the parts do not hold every image")
        expect(len(set(seen)) == len(seen), f"class {cls}: an image is in two parts")
        expect(bool(parts["train"][cls]), f"class {cls} has no training image")
    sizes = {p: {c: len(parts[p][c]) for c in names} for p in ("tuned", "untouched")}
    expect(sizes["tuned"]["a"] == sizes["untouched"]["a"] == 15, f"held back of 100 images: {sizes}, not 15 each")
    expect(sizes["tuned"]["b"] == sizes["untouched"]["b"] == 1, f"held back of 3 images: {sizes}, not 1 each")
    expect(parts["tuned"]["c"] == parts["untouched"]["c"] == [], f"held back of 1 image: {sizes}, not none")
    expect(qd.split_parts(names, salt="other") != parts, "the salt (the dataset's name) does not change the split")


def split_of_a_class_does_not_depend_on_the_other_classes() -> None:
    one = qd.split_parts({"a": [f"{i}" for i in range(40)]}, salt="s")
    two = qd.split_parts({"a": [f"{i}" for i in range(40)], "b": ["p", "q", "r"]}, salt="s")
    expect(all(one[p]["a"] == two[p]["a"] for p in qd.PARTS), "adding a class changed another class's split")


def balanced_accuracy_weighs_classes_equally() -> None:
    labels = torch.tensor([0] * 9 + [1])
    preds = torch.zeros(10, dtype=torch.long)  # all class 0: 90 % plain, 50 % balanced
    acc, per = qj.balanced_accuracy(preds, labels, 2)
    expect(close(acc, 0.5) and per == {0: 1.0, 1: 0.0}, f"balanced accuracy {acc} {per}, not 0.5 {{0: 1.0, 1: 0.0}}")


def memorised_counts_copies_and_mirrors_but_not_fresh_images() -> None:
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (40, 3, 16, 16), generator=gen, dtype=torch.uint8)
    fresh = torch.randint(0, 256, (10, 3, 16, 16), generator=gen, dtype=torch.uint8)
    samples = torch.cat([train[:5], train[5:10].flip(-1), fresh])
    share = qj.memorised(samples, train)["memorised_share"]
    expect(close(share, 0.5), f"5 copies, 5 mirrored copies and 10 fresh images: memorised {share}, not 0.5")


CHECKS = (frechet_of_a_set_with_itself_is_zero, frechet_of_a_shifted_set_is_the_squared_shift,
          frechet_of_two_gaussians_follows_the_closed_form,
          floor_compares_the_same_per_class_counts_and_is_near_one_for_copies,
          split_is_deterministic_disjoint_and_complete, split_of_a_class_does_not_depend_on_the_other_classes,
          balanced_accuracy_weighs_classes_equally, memorised_counts_copies_and_mirrors_but_not_fresh_images)


def run() -> str:
    """Every check; raises CheckFailed (naming the check) at the first that fails, else says how many passed."""
    t0 = time.perf_counter()
    for check in CHECKS:
        try:
            check()
        except CheckFailed as exc:
            raise CheckFailed(f"quality bench self-check {check.__name__} failed: {exc}") from None
    return f"quality bench self-checks: {len(CHECKS)} passed ({time.perf_counter() - t0:.1f} s)"
