"""`manage.py stickers` and `manage.py upscaler train`: packs from new samples or favourites, clear errors."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.trainer.sticker_helpers import RUN_ID, make_run
from trainer import favourites
from trainer.cli import stickers_command, train_command, upscaler_group


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_pack_from_new_samples_has_pngs_svgs_sheet_and_a_manifest_to_regenerate(runner, app, dataset, tmp_path):
    """Tried: a 1-epoch micro run on 8 px discs, then `stickers RUN --class red --n 2 --seed 3 --steps 2 --scale 4
    --outline 2 --colours 4 --out PACK.zip --json`. The zip holds 2 PNGs (RGBA, 8x4 + 4 px) and 2 SVGs, the
    contact sheet and manifest.json naming run, class, seed, index, settings and a command that redraws each."""
    data = dataset({"red": 4, "blue": 4}, kind="discs", size=8, root=tmp_path / "data")
    trained = runner.invoke(train_command, ["--data", str(data), "--epochs", "1", "--preset", "micro",
                                            "--image-size", "8", "--batch-size", "4", "--json"])
    assert trained.exit_code == 0, trained.output
    run_id = last_json(trained)["run_id"]
    config = Path(app.instance_path) / "runs" / run_id / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "guidance": 1.5}))  # as a guidance sweep chose
    pack = tmp_path / "pack.zip"
    result = runner.invoke(stickers_command, [run_id, "--class", "red", "--n", "2", "--seed", "3", "--steps", "2",
                                              "--scale", "4", "--outline", "2", "--colours", "4", "--out",
                                              str(pack), "--json"])
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert summary["stickers"] == 2 and summary["settings"]["colours"] == 4
    z = zipfile.ZipFile(pack)
    manifest = json.loads(z.read("manifest.json"))
    assert manifest["run"] == run_id and manifest["settings"] == summary["settings"]
    assert [(s["class"], s["seed"], s["index"]) for s in manifest["stickers"]] == [("red", 3, 0), ("red", 3, 1)]
    for s in manifest["stickers"]:
        assert s["guidance"] == 1.5  # what they were drawn with: the run's default, not a fixed 3.0
        img = Image.open(z.open(s["png"]))
        assert img.mode == "RGBA" and img.size == (36, 36)
        assert z.read(s["svg"]).lstrip().startswith(b"<?xml")
        assert f"--class red --n {s['index'] + 1} --seed 3" in s["regenerate"]
    assert Image.open(z.open("contact-sheet.png")).width > 0


def test_pack_of_favourites(runner, app, instance_path, tmp_path):
    """Tried: two favourites (a sample and a generated picture) exported with `--favourites --scale 8 --json`. The
    pack has both, with the epoch of one and the generation's seed of the other; the default upscaler (auto) is
    Lanczos, since the run has no learned one."""
    run_dir = make_run(instance_path)
    favourites.add(run_dir, "samples/epoch_0001/dog/0.png")
    favourites.add(run_dir, "generated/20260101-000100-ab12/cat/0.png")
    pack = tmp_path / "fav.zip"
    result = runner.invoke(stickers_command, [RUN_ID, "--favourites", "--scale", "8", "--out", str(pack), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(zipfile.ZipFile(pack).read("manifest.json"))
    assert manifest["settings"]["upscaler"] == "lanczos"  # auto, and the run has no trained upscaler
    records = manifest["stickers"]
    assert [(r["class"], r.get("epoch"), r.get("seed")) for r in records] == [("dog", 1, None), ("cat", None, 7)]


@pytest.mark.parametrize("args,message", [
    (["bad\x00id", "--out", "x.zip"], "not a run id"),
    (["no-such-run", "--out", "x.zip"], "no run"),
    ([RUN_ID, "--scale", "3", "--out", "x.zip"], "'3' is not one of"),
    ([RUN_ID, "--outline", "2", "--outline-colour", "nope", "--out", "x.zip"], "not a colour"),
    ([RUN_ID, "--colours", "1", "--out", "x.zip"], "not in the range"),
    ([RUN_ID, "--out", "pack.txt"], "should end in .zip"),
    ([RUN_ID, "--favourites", "--out", "x.zip"], "no favourites yet"),
    ([RUN_ID, "--upscaler", "learned", "--favourites", "--out", "x.zip"], "no trained upscaler"),
])
def test_bad_input_gives_clear_errors(runner, app, instance_path, tmp_path, args, message):
    """Tried: a run id with NUL, an unknown run, scale 3, a colour that is not one, 1 colour, a pack not named
    .zip, favourites when there are none, the learned upscaler before training. Each exits non-zero saying why."""
    make_run(instance_path)
    args = [str(tmp_path / a) if a.endswith((".zip", ".txt")) else a for a in args]
    result = runner.invoke(stickers_command, args)
    assert result.exit_code != 0 and message in result.output, result.output


def test_upscaler_train_command(runner, app, instance_path, dataset, tmp_path):
    """Tried: `upscaler train RUN --steps 20 --json` on a run whose data is a folder of 64 px pictures, then
    `--minutes 0.1` on a run folder without data. The first completes after exactly 20 steps and reports held-back
    PSNR for learned and Lanczos at x4 and x8; the second fails with a clear message."""
    data = dataset({"cat": 4, "dog": 4}, size=64, root=tmp_path / "data")
    run_dir = make_run(instance_path, data=data)
    result = runner.invoke(upscaler_group, ["train", RUN_ID, "--steps", "20", "--json"])
    assert result.exit_code == 0, result.output
    info = last_json(result)
    assert info["state"] == "completed" and info["steps"] == 20
    assert "psnr_lanczos" in info["eval"]["x4"] and "psnr_learned" in info["eval"]["x8"]
    assert (run_dir / "upscaler" / "model.pt").exists()
    (run_dir / "config.json").write_text(json.dumps({"class_names": ["cat"]}))
    failed = runner.invoke(upscaler_group, ["train", RUN_ID, "--minutes", "0.1"])
    assert failed.exit_code != 0 and "not a training run" in failed.output
