"""The quality benchmark's pure maths (bench/quality_judge.py, bench/quality_data.py): the Fréchet distance, the
real-data floor's matched counts, the split. bench/ is scripts, not a package: the modules are loaded by path."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


qj = _load("quality_judge")
qd = _load("quality_data")


def test_frechet_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(0).normal(size=(300, 16))
    assert qj.frechet(f, f) == pytest.approx(0, abs=1e-8)


def test_frechet_of_a_shifted_set_is_the_squared_shift():
    # Same covariance on both sides, so only the means differ: exactly ||shift||².
    f = np.random.default_rng(1).normal(size=(200, 8))
    shift = np.arange(8) / 4
    assert qj.frechet(f, f + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_frechet_of_two_gaussians_follows_the_closed_form():
    # N(0, I) vs N(mu, s² I) in d dims: ||mu||² + d (1 - s)². Large samples, so the estimate is close.
    rng = np.random.default_rng(2)
    d, s = 4, 2.0
    mu = np.array([1.0, -1.0, 0.5, 0.0])
    a = rng.normal(size=(20000, d))
    b = mu + s * rng.normal(size=(20000, d))
    assert qj.frechet(a, b) == pytest.approx(mu @ mu + d * (1 - s) ** 2, rel=0.03)


def test_floor_compares_the_same_per_class_counts_and_is_near_one_for_copies():
    rng = np.random.default_rng(3)
    train_labels = np.repeat([0, 1, 2], [80, 10, 40])
    train = rng.normal(size=(130, 6)) + train_labels[:, None]
    held = rng.normal(size=(60, 6)) + np.repeat([0, 1, 2], 20)[:, None]
    sample_labels = np.repeat([0, 1, 2], 30)
    assert qj.matched_counts(sample_labels, train_labels) == {0: 30, 1: 10, 2: 30}
    # Samples that are training images score about the floor; samples of the wrong class far above it.
    copies = train[qj.pick_per_class(train_labels, {0: 30, 1: 10, 2: 30}, None)]
    copy_labels = np.repeat([0, 1, 2], [30, 10, 30])
    fig = qj.frechet_and_floor(copies, copy_labels, train, train_labels, held)
    assert fig["n_compared"] == 70
    assert 0.5 < fig["frechet_ratio"] < 2
    wrong = qj.frechet_and_floor(copies + 3, copy_labels, train, train_labels, held)
    assert wrong["frechet_ratio"] > 5


def test_split_is_deterministic_disjoint_and_complete():
    names = {"a": [f"{i}.png" for i in range(100)], "b": ["x.png", "y.png", "z.png"], "c": ["only.png"]}
    parts = qd.split_parts(names, salt="s")
    again = qd.split_parts({k: list(reversed(v)) for k, v in names.items()}, salt="s")
    assert parts == again  # input order does not matter
    for cls, all_names in names.items():
        seen = [n for p in qd.PARTS for n in parts[p][cls]]
        assert sorted(seen) == sorted(all_names)  # every image once, in one part
        assert len(set(seen)) == len(seen)
        assert parts["train"][cls]  # a class always trains
    assert len(parts["tuned"]["a"]) == len(parts["untouched"]["a"]) == 15
    assert len(parts["tuned"]["b"]) == len(parts["untouched"]["b"]) == 1
    assert parts["tuned"]["c"] == parts["untouched"]["c"] == []
    assert qd.split_parts(names, salt="other") != parts  # the salt (dataset name) decides


def test_split_of_a_class_does_not_depend_on_the_other_classes():
    one = qd.split_parts({"a": [f"{i}" for i in range(40)]}, salt="s")
    two = qd.split_parts({"a": [f"{i}" for i in range(40)], "b": ["p", "q", "r"]}, salt="s")
    assert all(one[p]["a"] == two[p]["a"] for p in qd.PARTS)


def test_balanced_accuracy_weighs_classes_equally():
    labels = torch.tensor([0] * 9 + [1])
    preds = torch.zeros(10, dtype=torch.long)  # all class 0: 90 % plain, 50 % balanced
    acc, per = qj.balanced_accuracy(preds, labels, 2)
    assert acc == pytest.approx(0.5) and per == {0: 1.0, 1: 0.0}


def test_memorised_counts_copies_and_mirrors_but_not_fresh_images():
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (40, 3, 16, 16), generator=gen, dtype=torch.uint8)
    fresh = torch.randint(0, 256, (10, 3, 16, 16), generator=gen, dtype=torch.uint8)
    samples = torch.cat([train[:5], train[5:10].flip(-1), fresh])
    assert qj.memorised(samples, train)["memorised_share"] == pytest.approx(0.5)
