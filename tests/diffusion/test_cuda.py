"""The GPU recipe (bf16 autocast, channels_last, torch.compile: on by default on CUDA only). Runs where CUDA is
present, skipped elsewhere; the CPU half checks the defaults stay off without CUDA."""
import pytest
import torch

from diffusion import rundir
from diffusion.train import train
from tests.diffusion.diffusion_helpers import micro_config

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_the_gpu_recipe_is_off_by_default_on_the_cpu(tiny_folder, tmp_path):
    """Tried: a micro run on the CPU with the recipe flags left unset: none of them may switch on."""
    status = train(micro_config(tiny_folder, device="cpu", epochs=1), tmp_path / "run", progress=False)
    assert status["state"] == "completed"
    assert "bf16 autocast False, channels_last False, torch.compile False" in (tmp_path / "run" / "train.log").read_text()


@cuda
def test_training_on_cuda_uses_bf16_channels_last_and_compile(tiny_folder, tmp_path):
    """Tried: 2 epochs on CUDA with the defaults: the log names the recipe, the run completes with finite loss,
    and sampling from the run works."""
    run = tmp_path / "run"
    status = train(micro_config(tiny_folder, device="cuda", epochs=2, image_size=16, eval=True,
                                eval_budget_s=3.0, eval_samples=12), run, progress=False)
    assert status["state"] == "completed"
    log = (run / "train.log").read_text()
    assert "bf16 autocast True, channels_last True, torch.compile True" in log
    losses = [m["loss"] for m in rundir.read_metrics(run) if m["kind"] == "train"]
    assert losses and all(loss == loss and loss < 10 for loss in losses)
    from diffusion.generate import generate_to_dir
    assert len(generate_to_dir(run, tmp_path / "out", n=1, steps=2, device="cuda")) == 3


@cuda
def test_the_recipe_can_be_turned_off_on_cuda(tiny_folder, tmp_path):
    status = train(micro_config(tiny_folder, device="cuda", epochs=1, amp=False, channels_last=False,
                                compile=False), tmp_path / "run", progress=False)
    assert status["state"] == "completed"
    assert "bf16 autocast False, channels_last False, torch.compile False" in (tmp_path / "run" / "train.log").read_text()
