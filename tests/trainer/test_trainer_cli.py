"""trainer.cli: `manage.py train` / `sample` through Flask's CLI runner on a real instance folder."""
import json

import torch

from diffusion import rundir
from trainer.cli import sample_command, train_command

# Training runs in this process: micro models are all per-op overhead, one thread avoids fork/join stalls on a
# shared, busy CPU (as in tests/diffusion).
torch.set_num_threads(1)


def test_train_on_a_folder_then_sample_it_by_run_id(runner, app, dataset, tmp_path):
    """Tried: `train --data DIR --epochs 1 --preset micro --image-size 8 --flip off --json`, then `sample RUN
    --class red --n 2 --steps 2 --out OUT --json`, then `--which 1` (a kept epoch) and `--which 7` (none kept).
    The run lands in <instance>/runs/<id>, the PNGs in OUT/red/ with a nearest.json naming training images."""
    data = dataset({"red": 4, "blue": 4}, kind="discs", size=8, root=tmp_path / "data")
    result = runner.invoke(train_command, ["--data", str(data), "--epochs", "1", "--preset", "micro",
                                           "--image-size", "8", "--batch-size", "4", "--flip", "off", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout.strip().splitlines()[-1])
    run_dir = rundir.checkpoint_path(app.instance_path + "/runs/" + info["run_id"], "last").parent.parent
    assert info["state"] == "completed" and run_dir.is_dir() and info["grid"].endswith("epoch_0001.png")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["class_names"] == ["blue", "red"] and config["flip"] == "off"
    assert config["flip_decision"]["flip"] is False and "chosen by the user" in info["augmentation"]

    out = tmp_path / "out"
    result = runner.invoke(sample_command, [info["run_id"], "--class", "red", "--n", "2", "--steps", "2",
                                            "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    sampled = json.loads(result.stdout.strip().splitlines()[-1])
    assert sampled["written"] == 2 and sampled["per_class"] == {"red": 2}
    assert sorted(p.name for p in (out / "red").iterdir()) == ["0.png", "1.png", "nearest.json"]
    nearest = json.loads((out / "red" / "nearest.json").read_text())
    first = nearest["pictures"]["0.png"]["nearest"][0]
    assert set(nearest["pictures"]) == {"0.png", "1.png"} and first["path"].startswith(str(data))
    assert len(first["sha256"]) == 64 and 0 <= first["distance"] <= 1

    epoch1 = runner.invoke(sample_command, [info["run_id"], "--n", "1", "--steps", "2", "--which", "1",
                                            "--out", str(tmp_path / "e1"), "--json"])
    assert epoch1.exit_code == 0, epoch1.output
    none_kept = runner.invoke(sample_command, [info["run_id"], "--n", "1", "--steps", "2", "--which", "7",
                                               "--out", str(tmp_path / "e7")])
    assert none_kept.exit_code != 0 and "kept no weights for epoch 7" in none_kept.output

    # Resuming may only lengthen training.
    bad = runner.invoke(train_command, ["--resume", info["run_id"], "--lr", "0.1"])
    assert bad.exit_code != 0 and "cannot change when resuming" in bad.output
    more = runner.invoke(train_command, ["--resume", str(run_dir), "--epochs", "2", "--json"])
    assert more.exit_code == 0, more.output
    assert json.loads(more.stdout.strip().splitlines()[-1])["epoch"] == 2


def test_train_errors_are_clear(runner, dataset, tmp_path):
    """Tried: a missing snapshot id, a single-class folder, and sampling an unknown run."""
    missing = runner.invoke(train_command, ["--snapshot", "nope", "--epochs", "1"])
    assert missing.exit_code != 0 and "no snapshot 'nope'" in missing.output
    one = dataset({"red": 2}, kind="discs", size=8, root=tmp_path / "one")
    single = runner.invoke(train_command, ["--data", str(one), "--epochs", "1", "--preset", "micro",
                                           "--image-size", "8"])
    assert single.exit_code != 0 and "at least two" in single.output
    unknown = runner.invoke(sample_command, ["no-such-run", "--out", str(tmp_path / "o")])
    assert unknown.exit_code != 0 and "no run 'no-such-run'" in unknown.output


def test_train_without_data_snapshots_the_current_images(runner, app):
    """Tried: `train` with neither --snapshot nor --data on an empty instance: the snapshot step must refuse
    with the curator's explanation (fewer than two classes)."""
    result = runner.invoke(train_command, ["--epochs", "1", "--preset", "micro", "--image-size", "8"])
    assert result.exit_code != 0 and "snapshot" in result.output and "two classes" in result.output
