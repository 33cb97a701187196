"""Tests of the offline evaluator (diffusion.evaluate): the distance maths directly, then the fitted
classifier, memorisation check, persistence and command line on a synthetic, learnable dataset.

The synthetic dataset: per class one colour, drawn as a filled square of random size and position on a
white background with pixel noise, at 16 px — easy to learn, and every image distinct.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from diffusion.classifier import ClassifierSpec, train_classifier
from diffusion.evaluate import (
    Evaluator,
    EvaluatorFileError,
    fid_from_features,
    frechet_distance,
    kernel_inception_distance,
    main,
    shrunk_covariance,
    stratified_split,
)

COLOURS = [(220, 30, 30), (30, 160, 40), (40, 60, 220), (230, 200, 20)]
CLASS_NAMES = ["red", "green", "blue", "yellow"]


def make_squares(n_per_class: int, seed: int, size: int = 16, channels: int = 3):
    """Coloured squares per class (see module docstring); RGBA variant has a transparent background."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c, colour in enumerate(COLOURS):
        for _ in range(n_per_class):
            img = np.full((size, size, 4), (255, 255, 255, 0), dtype=np.float64)
            side = rng.integers(size // 3, size * 2 // 3 + 1)
            x0, y0 = rng.integers(0, size - side + 1, size=2)
            img[y0:y0 + side, x0:x0 + side, :3] = colour
            img[y0:y0 + side, x0:x0 + side, 3] = 255
            img[..., :3] += rng.normal(0, 12, size=(size, size, 3))
            img = np.clip(img, 0, 255).astype(np.uint8)
            images.append(torch.from_numpy(img[..., :channels].copy()).permute(2, 0, 1))
            labels.append(c)
    return torch.stack(images), torch.tensor(labels)


@pytest.fixture(scope="module")
def squares():
    return make_squares(30, seed=0)


@pytest.fixture(scope="module")
def evaluator(squares):
    images, labels = squares
    # 96 training images -> 120 classifier steps (~3 s on an idle 2-core CPU); the generous budget only
    # keeps a heavily shared CPU from cutting the training short.
    return Evaluator.fit(images, labels, CLASS_NAMES, seed=0, budget_s=30)


# ---------------------------------------------------------------- maths


def random_cov(d: int, rng) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_of_identical_gaussians_is_zero_and_grows_with_mean_shift():
    # Tried: the same (mu, C) on both sides, then the mean moved by growing amounts along one axis.
    rng = np.random.default_rng(0)
    mu, cov = rng.normal(size=8), random_cov(8, rng)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    shifts = [0.5, 1.0, 2.0]
    values = [frechet_distance(mu, cov, mu + s * np.eye(8)[0], cov) for s in shifts]
    for s, v in zip(shifts, values):
        assert v == pytest.approx(s ** 2, rel=1e-6)  # same covariance: exactly the squared mean shift
    assert values == sorted(values)


def test_frechet_distance_matches_closed_form_for_diagonal_covariances():
    # Tried: diagonal covariances, where the distance is sum (sqrt(a) - sqrt(b))^2 + |mu1 - mu2|^2.
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.zeros(3), np.array([1.0, -2.0, 0.0])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + 5.0
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_fid_from_samples_small_for_same_distribution_large_for_shifted():
    # Tried: 60 vs 60 points in 32-d (fewer points than a full covariance needs) from one Gaussian, and
    # from Gaussians one unit apart in every dimension (true distance 32).
    rng = np.random.default_rng(1)
    same = fid_from_features(rng.normal(size=(60, 32)), rng.normal(size=(60, 32)))[0]
    shifted = fid_from_features(rng.normal(size=(60, 32)), rng.normal(size=(60, 32)) + 1.0)[0]
    assert same < 8.0
    assert shifted > 25.0


def test_shrunk_covariance_is_positive_definite_with_few_samples_and_unshrunk_with_many():
    # Tried: 10 points in 20-d (sample covariance singular), and 20000 points in 4-d with a known covariance.
    rng = np.random.default_rng(2)
    _, cov, shrink = shrunk_covariance(rng.normal(size=(10, 20)))
    assert np.linalg.eigvalsh(cov).min() > 0
    assert shrink > 0.1
    true = np.diag([1.0, 2.0, 3.0, 4.0])
    x = rng.multivariate_normal(np.zeros(4), true, size=20000)
    _, cov, shrink = shrunk_covariance(x)
    assert shrink < 0.01
    assert np.allclose(cov, true, atol=0.15)


def test_kid_is_unbiased_for_one_distribution_and_positive_for_different_ones():
    # Tried: 300 repeats of two 8-point samples from one distribution (a biased MMD estimate would sit
    # clearly above 0 at such small n) and from two distributions with different means.
    rng = np.random.default_rng(3)
    same = np.array([kernel_inception_distance(rng.normal(size=(8, 16)), rng.normal(size=(8, 16)))
                     for _ in range(300)])
    assert abs(same.mean()) < 3 * same.std() / math.sqrt(len(same))
    diff = np.array([kernel_inception_distance(rng.normal(size=(8, 16)), rng.normal(size=(8, 16)) + 1.0)
                     for _ in range(50)])
    assert diff.mean() > 10 * same.std() / math.sqrt(len(same))
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 4)), np.zeros((5, 4)))


def test_stratified_split_holds_back_from_every_class_but_never_its_last_image():
    # Tried: classes of 1, 2, 9 and 100 images with 20 % held back.
    labels = torch.tensor([0] + [1] * 2 + [2] * 9 + [3] * 100)
    train, held = stratified_split(labels, 4, 0.2, torch.Generator().manual_seed(0))
    assert sorted(train.tolist() + held.tolist()) == list(range(len(labels)))
    held_counts = torch.bincount(labels[held], minlength=4).tolist()
    assert held_counts == [0, 1, 2, 20]
    assert torch.bincount(labels[train], minlength=4).min() >= 1


# ---------------------------------------------------------------- the fitted evaluator


def test_classifier_recognises_fresh_images_of_a_separable_dataset(evaluator):
    # Tried: held-back reals (real_accuracy) and 80 freshly drawn images the classifier never saw.
    assert evaluator.info["real_accuracy"] >= 0.9, evaluator.info  # info shows the steps the budget allowed
    fresh, labels = make_squares(20, seed=99)
    result = evaluator.score(fresh, labels)
    assert result["accuracy"] >= 0.9
    assert set(result["per_class_accuracy"]) == set(CLASS_NAMES)
    assert min(result["per_class_accuracy"].values()) >= 0.75
    json.dumps(result)  # metrics.jsonl needs plain JSON


def test_samples_with_wrong_labels_score_low_accuracy(evaluator):
    # Tried: fresh images labelled with the next class over (every label wrong).
    fresh, labels = make_squares(10, seed=98)
    assert evaluator.score(fresh, (labels + 1) % 4)["accuracy"] <= 0.15


def test_classifier_on_shuffled_labels_is_near_chance(squares):
    # Tried: the same images with labels shuffled: nothing to learn, held-back accuracy ~ 1/4.
    images, labels = squares
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(5))]
    ev = Evaluator.fit(images, shuffled, CLASS_NAMES, seed=0, budget_s=3)
    assert ev.info["real_accuracy"] <= 0.55


def test_fid_and_kid_rank_fresh_reals_above_noise(evaluator):
    # Tried: fresh images from the training distribution vs uniform noise images.
    fresh, labels = make_squares(16, seed=97)
    noise = torch.randint(0, 256, fresh.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    good, bad = evaluator.score(fresh, labels), evaluator.score(noise, labels)
    assert good["fid"] < bad["fid"]
    assert good["kid"] < bad["kid"]
    assert bad["accuracy"] < 0.6


def test_memorisation_flags_copies_of_training_images_not_fresh_ones(evaluator, squares):
    # Tried: exact copies, mirrored copies (training flips images) and lightly re-noised copies of
    # training images, vs freshly drawn images.
    images, labels = squares
    copies = images[::3]
    mirrored = copies.flip(-1)
    gen = torch.Generator().manual_seed(1)
    renoised = (copies.float() + 2 * torch.randn(copies.shape, generator=gen)).clamp(0, 255).to(torch.uint8)
    for batch in (copies, mirrored, renoised):
        result = evaluator.score(batch, labels[::3])
        assert result["memorised_share"] == 1.0
        assert result["nn_ratio"] < 0.3
    fresh, fresh_labels = make_squares(20, seed=96)
    result = evaluator.score(fresh, fresh_labels)
    assert result["memorised_share"] <= 0.1
    assert result["nn_threshold"] > 0


def test_fit_leaves_global_rng_untouched(squares):
    # Tried: a fit (which initialises and trains a network) while watching the global RNG state, which
    # training runs save in checkpoints to resume exactly.
    images, labels = squares
    before = torch.get_rng_state()
    Evaluator.fit(images[::2], labels[::2], CLASS_NAMES, seed=3, budget_s=1.0)
    assert torch.equal(torch.get_rng_state(), before)


def test_classifier_training_is_reproducible_for_a_seed(squares):
    # Tried: 15 classifier steps twice from one seed (identical weights), and once from another seed.
    images, labels = squares
    spec = ClassifierSpec(in_channels=3, num_classes=4, work_size=16, width=8)

    def weights(seed):
        torch.manual_seed(seed)
        model, report = train_classifier(images, labels, spec, generator=torch.Generator().manual_seed(seed),
                                         device="cpu", budget_s=1e6, max_steps=15)
        assert report.steps == 15
        return model.state_dict()

    a, b, c = weights(1), weights(1), weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("channels,size", [(4, 8), (4, 40), (1, 12)])
def test_fit_and_score_other_channel_counts_and_sizes(channels, size):
    # Tried: RGBA at 8 px and at 40 px (downsampled to 32 internally), greyscale at 12 px.
    images, labels = make_squares(8, seed=4, size=size, channels=3 if channels == 1 else channels)
    if channels == 1:
        images = images.float().mean(dim=1, keepdim=True).to(torch.uint8)
    ev = Evaluator.fit(images, labels, CLASS_NAMES, seed=0, budget_s=1.0)
    result = ev.score(images[:8], labels[:8])
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["memorised_share"] == 1.0  # they are training images
    assert ev.holdout_images.shape[1:] == (channels, size, size)


def test_without_held_back_reals_fid_and_kid_are_left_out(squares):
    # Tried: holdout=0 (every image trains the classifier): accuracy and memorisation still work.
    images, labels = squares
    ev = Evaluator.fit(images[::3], labels[::3], CLASS_NAMES, seed=0, budget_s=1.0, holdout=0.0)
    assert ev.info["n_holdout"] == 0 and ev.info["real_accuracy"] is None
    result = ev.score(images[::3][:4], labels[::3][:4])  # training images
    assert "fid" not in result and "kid" not in result
    assert result["memorised_share"] == 1.0


def test_bad_inputs_give_clear_errors(evaluator, squares):
    # Tried: float images, wrong sample size, labels out of range, one class, an empty class.
    images, labels = squares
    with pytest.raises(ValueError, match="uint8"):
        Evaluator.fit(images.float(), labels, CLASS_NAMES)
    with pytest.raises(ValueError, match="at least 2 classes"):
        Evaluator.fit(images, torch.zeros_like(labels), ["only"])
    with pytest.raises(ValueError, match="without any image: yellow"):
        Evaluator.fit(images[labels < 3], labels[labels < 3], CLASS_NAMES)
    with pytest.raises(ValueError, match="fitted on"):
        evaluator.score(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"0\.\.3"):
        evaluator.score(images[:2], torch.tensor([0, 4]))


# ---------------------------------------------------------------- persistence and command line


def test_save_load_round_trip_gives_identical_scores(evaluator, tmp_path):
    # Tried: save, load, score the same samples with both.
    fresh, labels = make_squares(5, seed=95)
    path = evaluator.save(tmp_path / "evaluator.pt")
    loaded = Evaluator.load(path)
    assert loaded.class_names == CLASS_NAMES
    assert loaded.score(fresh, labels) == evaluator.score(fresh, labels)


def test_corrupt_or_foreign_evaluator_file_gives_clear_error(evaluator, tmp_path):
    # Tried: random bytes, a truncated real file, a torch file holding something else, a missing file.
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all" * 10)
    with pytest.raises(EvaluatorFileError, match="garbage.pt.*corrupt"):
        Evaluator.load(garbage)
    good = evaluator.save(tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(EvaluatorFileError, match="truncated.pt"):
        Evaluator.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(EvaluatorFileError, match="not a Menagerie evaluator"):
        Evaluator.load(foreign)
    with pytest.raises(FileNotFoundError, match="no evaluator file"):
        Evaluator.load(tmp_path / "missing.pt")


def test_command_line_scores_a_run_directory(evaluator, tmp_path, capsys):
    # Tried: a run dir with evaluator.pt and one epoch of per-class sample PNGs; an epoch it lacks; a run
    # without samples.
    from PIL import Image

    run = tmp_path / "run"
    evaluator.save(run / "evaluator.pt")
    fresh, labels = make_squares(3, seed=94)
    (run / "samples").mkdir()
    Image.new("RGB", (16, 16)).save(run / "samples" / "epoch_0002.png")
    for i, (img, lab) in enumerate(zip(fresh, labels)):
        d = run / "samples" / "epoch_0002" / CLASS_NAMES[lab]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(d / f"{i}.png")
    assert main([str(run)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epoch"] == 2
    assert out["n_samples"] == 12
    direct = evaluator.score(fresh, labels)
    for key in ("accuracy", "per_class_accuracy", "memorised_share", "nn_threshold", "real_accuracy"):
        assert out[key] == direct[key], key
    for key in ("fid", "kid", "nn_ratio"):  # the folder is read in class-name order: float sums reorder
        assert out[key] == pytest.approx(direct[key], rel=1e-6), key

    assert main([str(run), "--epoch", "5"]) == 2
    assert "no samples for epoch 5" in capsys.readouterr().err

    empty = tmp_path / "empty"
    evaluator.save(empty / "evaluator.pt")
    assert main([str(empty)]) == 2
    assert "no sample grids" in capsys.readouterr().err
