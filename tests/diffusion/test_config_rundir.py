"""TrainConfig round trip and validation; the torch-free run-directory helpers."""
import json
import os
import time

import pytest

from diffusion import rundir
from diffusion.config import TrainConfig, config_changes


def test_config_round_trips_and_unknown_keys_are_named():
    cfg = TrainConfig(data="d", epochs=3)
    d = cfg.to_dict()
    assert TrainConfig.from_dict({**d, "class_names": ["a"], "snapshot_id": "s", "created": "t"}) == cfg
    with pytest.raises(ValueError, match="unknown training setting.*learnin_rate"):
        TrainConfig.from_dict({**d, "learnin_rate": 1})


@pytest.mark.parametrize("change, words", [
    ({"epochs": None, "minutes": None}, "epochs or minutes"),
    ({"lr": 5.0}, "lr"),
    ({"background": "not-a-colour"}, "background"),
    ({"image_size": 30}, "multiple of 4"),
    ({"prediction": "x0"}, "prediction"),
    ({"device": "tpu"}, "device"),
    ({"data": ""}, "data is empty"),
])
def test_validate_names_the_bad_setting(change, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**{**TrainConfig(data="d", epochs=1).to_dict(), **change}).validate()


def test_only_epochs_and_minutes_may_change_on_resume():
    a = TrainConfig(data="d", epochs=1).to_dict()
    assert config_changes(a, {**a, "epochs": 5, "minutes": 2.0}) == []
    assert config_changes(a, {**a, "lr": 0.1, "seed": 3}) == ["lr", "seed"]


def test_run_dir_helpers(tmp_path):
    """Tried: a new run dir, atomic status merge, cancel request, grids and class samples listing, a torn
    metrics line, and liveness from heartbeat + pid."""
    run = rundir.new_run_dir(tmp_path / "runs")
    assert run.parent == tmp_path / "runs" and len(run.name.split("-")) == 3
    rundir.write_status(run, state="running", step=1)
    st = rundir.write_status(run, step=2, pid=os.getpid(), heartbeat=time.time())
    assert st["state"] == "running" and st["step"] == 2 and rundir.read_status(run)["step"] == 2
    assert rundir.is_alive(st) and not rundir.is_alive(st, now=time.time() + 120)
    assert not rundir.is_alive({**st, "pid": 2 ** 22 + 12345})  # no such process
    assert not rundir.is_alive({**st, "state": "completed"})
    rundir.request_cancel(run)
    assert rundir.cancel_requested(run)
    for e in (3, 1, 12):
        rundir.grid_path(run, e).parent.mkdir(parents=True, exist_ok=True)
        rundir.grid_path(run, e).write_bytes(b"png")
    d = rundir.epoch_samples_dir(run, 3) / "cat"
    d.mkdir(parents=True)
    for i in (10, 2, 0):
        (d / f"{i}.png").write_bytes(b"png")
    assert rundir.list_epochs(run) == [1, 3, 12]
    assert [p.name for p in rundir.class_sample_paths(run, 3, "cat")] == ["0.png", "2.png", "10.png"]
    (run / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1}) + "\n{\"kind\": \"tr")
    assert rundir.read_metrics(run) == [{"kind": "train", "step": 1}]
