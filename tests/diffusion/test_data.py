"""Data preprocessing and loading: compositing, crop/pad, alpha kept, caching, and bad datasets."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion.data import DataError, epoch_permutation, load_images, make_batch, preprocess_image


def test_half_transparent_red_over_white_becomes_pink_and_alpha_mode_keeps_it():
    """Tried: a uniform (255,0,0,128) image. Over white it must be ~(255,127,127); with background='alpha'
    the 4th channel must stay 128 and the colour stay red."""
    img = Image.new("RGBA", (16, 16), (255, 0, 0, 128))
    rgb = preprocess_image(img, 8, "crop", "white")
    assert rgb.shape == (8, 8, 3)
    assert np.allclose(rgb[4, 4], (255, 127, 127), atol=2)
    black = preprocess_image(img, 8, "crop", "#000000")
    assert np.allclose(black[4, 4], (128, 0, 0), atol=2)
    rgba = preprocess_image(img, 8, "crop", "alpha")
    assert rgba.shape == (8, 8, 4) and np.allclose(rgba[4, 4], (255, 0, 0, 128), atol=2)


def test_crop_fills_the_square_and_pad_letterboxes_with_the_background():
    """Tried: a 16x8 image, left half blue, right half green. crop -> 8x8 centre with both colours, no
    background; pad -> white bands top and bottom, the image in the middle rows."""
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:, :8] = (0, 0, 255)
    arr[:, 8:] = (0, 255, 0)
    img = Image.fromarray(arr, "RGB")
    crop = preprocess_image(img, 8, "crop", "white")
    assert crop.shape == (8, 8, 3)
    assert np.allclose(crop[4, 0], (0, 0, 255), atol=10) and np.allclose(crop[4, 7], (0, 255, 0), atol=10)
    assert not np.any(np.all(crop == 255, axis=-1))
    pad = preprocess_image(img, 8, "pad", "white")
    assert np.all(pad[0] == 255) and np.all(pad[7] == 255)  # letterbox rows
    assert np.allclose(pad[4, 0], (0, 0, 255), atol=10) and np.allclose(pad[4, 7], (0, 255, 0), atol=10)


def test_load_folder_gives_uint8_tensor_labels_and_sorted_classes(tiny_folder, tmp_path):
    """Tried: the 3-class synthetic folder at 8 px with a disk cache; a second load must come from the cache."""
    images, labels, names = load_images(tiny_folder, 8, "crop", "white", cache_dir=tmp_path / "c")
    assert images.dtype == torch.uint8 and images.shape == (24, 3, 8, 8)
    assert names == ["blue", "green", "red"] and labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    cached = list((tmp_path / "c").glob("images-*.pt"))
    assert len(cached) == 1
    again = load_images(tiny_folder, 8, "crop", "white", cache_dir=tmp_path / "c")
    assert torch.equal(again[0], images)
    other = load_images(tiny_folder, 8, "pad", "white", cache_dir=tmp_path / "c")  # other settings, other key
    assert len(list((tmp_path / "c").glob("images-*.pt"))) == 2 and other[0].shape == images.shape


def test_snapshot_manifest_is_read_relative_to_its_folder(dataset, tmp_path):
    """Tried: a manifest whose item paths are relative ("../../images/...") as the curator writes them,
    with background='alpha' (4 channels) and the class order taken from the manifest."""
    dataset({"red": 3, "blue": 3}, kind="discs", root=tmp_path / "images")
    snap = tmp_path / "snapshots" / "s1"
    snap.mkdir(parents=True)
    items = [{"sha256": f"{c}{i}", "path": f"../../images/{c}/{i}.png", "label": c}
             for c in ("red", "blue") for i in range(3)]
    manifest = {"id": "s1", "classes": ["red", "blue"], "preprocess": {"image_size": 8}, "items": items}
    (snap / "manifest.json").write_text(json.dumps(manifest))
    images, labels, names = load_images(snap / "manifest.json", 8, "crop", "alpha")
    assert names == ["red", "blue"] and images.shape == (6, 4, 8, 8) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert list((snap / "cache").glob("images-*.pt"))  # cached next to the manifest


def test_empty_class_is_a_clear_error(dataset, tmp_path):
    """Tried: a folder with an empty class subfolder 'ghost'."""
    dataset({"red": 2, "blue": 2}, kind="discs", root=tmp_path)
    (tmp_path / "ghost").mkdir()
    with pytest.raises(DataError, match="ghost"):
        load_images(tmp_path, 8)


def test_single_class_is_a_clear_error(dataset, tmp_path):
    """Tried: only one class folder; the message must say two are needed."""
    dataset({"red": 2}, kind="discs", root=tmp_path)
    with pytest.raises(DataError, match="at least two"):
        load_images(tmp_path, 8)


def test_folder_without_class_subfolders_is_explained(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match="no class subfolders"):
        load_images(tmp_path, 8)


def test_images_smaller_than_the_training_size_are_upscaled_with_a_warning_naming_them(dataset, tmp_path):
    """Tried: 12 px images trained at 16 px."""
    dataset({"red": 2, "blue": 2}, kind="discs", size=12, root=tmp_path)
    with pytest.warns(UserWarning, match=r"smaller than the training size 16 px.*0\.png \(12x12\)"):
        images, _, _ = load_images(tmp_path, 16)
    assert images.shape == (4, 3, 16, 16)


def test_corrupt_image_names_the_file(dataset, tmp_path):
    dataset({"red": 2, "blue": 2}, kind="discs", root=tmp_path)
    (tmp_path / "red" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken.png"):
        load_images(tmp_path, 8)


def test_flips_happen_on_the_tensor_and_order_is_a_function_of_seed_and_epoch():
    """Tried: a batch of 64 copies of an asymmetric image; some must come out flipped, some not, values in [-1,1]."""
    img = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    img[..., 0] = 255
    batch = make_batch(img.expand(64, -1, -1, -1), torch.arange(64), flip=True,
                       generator=torch.Generator().manual_seed(0), device="cpu")
    left = batch[:, 0, 0, 0] > 0
    assert 10 < int(left.sum()) < 54 and batch.min() == -1 and batch.max() == 1
    assert torch.equal(epoch_permutation(10, 1, 3), epoch_permutation(10, 1, 3))
    assert not torch.equal(epoch_permutation(50, 1, 3), epoch_permutation(50, 1, 4))
