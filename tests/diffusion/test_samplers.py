"""Samplers: correctness against an exact denoiser, seeded reproducibility, batched guidance."""
import pytest
import torch
from torch import nn

from diffusion.samplers import SAMPLERS, sample, to_uint8
from diffusion.schedule import CosineSchedule
from diffusion.unet import build_model


class ExactDenoiser(nn.Module):
    """The ideal model for a dataset of one image per class: returns the exact v (or eps) for that image.
    The null class predicts the mean image, so guidance has something to push against."""

    def __init__(self, targets: torch.Tensor, schedule: CosineSchedule, prediction: str = "v"):
        super().__init__()
        self.register_buffer("targets", torch.cat([targets, targets.mean(0, keepdim=True)]))
        self.schedule, self.prediction = schedule, prediction
        self.null_class = len(targets)
        self.image_size = targets.shape[-1]
        self.anchor = nn.Parameter(torch.zeros(()))  # samplers read the device from a parameter

        class C:  # minimal config (samplers read in_channels)
            in_channels = targets.shape[1]
        self.cfg = C

    def forward(self, x, t, labels):
        x0 = self.targets[labels]
        alpha, sigma = (v[:, None, None, None] for v in self.schedule.alpha_sigma(t))
        eps = (x - alpha * x0) / sigma
        return eps if self.prediction == "eps" else alpha * eps - sigma * x0


def _targets():
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 6, 6, generator=g) * 1.6 - 0.8


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("prediction", ["v", "eps"])
def test_every_sampler_recovers_the_image_an_exact_denoiser_knows(sampler, prediction):
    """Tried: each sampler with 10 steps (ddpm 50) and the ideal model; every sample must land on its class's image."""
    s = CosineSchedule()
    targets = _targets()
    model = ExactDenoiser(targets, s, prediction)
    labels = torch.tensor([0, 1, 2, 2])
    out = sample(model, s, labels, steps=50 if sampler == "ddpm" else 10, sampler=sampler, guidance=1.0,
                 generator=torch.Generator().manual_seed(0), prediction=prediction)
    assert out.shape == (4, 3, 6, 6)
    assert torch.allclose(out, targets[labels], atol=2e-2), (out - targets[labels]).abs().max()


def test_same_seed_same_images_other_seed_other_images():
    """Tried: a random micro UNet sampled twice with seed 5 and once with seed 6, for every sampler."""
    torch.manual_seed(0)
    m = build_model("micro", in_channels=3, num_classes=2, image_size=8)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    s = CosineSchedule()
    labels = torch.tensor([0, 1, 1])
    for sampler in SAMPLERS:
        run = lambda seed: sample(m, s, labels, steps=4, sampler=sampler, guidance=2.0,  # noqa: E731
                                  generator=torch.Generator().manual_seed(seed))
        a, b, c = run(5), run(5), run(6)
        assert torch.equal(a, b) and not torch.allclose(a, c)
        assert a.min() >= -1 and a.max() <= 1


def test_guidance_combines_cond_and_uncond_from_one_batched_pass():
    """Tried: guidance 3 with the ideal model. One step of DDIM from pure noise to t=0 with x0 = uncond +
    3 (cond - uncond) in x0-space; the batched pass must equal the formula computed from separate passes."""
    s = CosineSchedule()
    targets = _targets()
    model = ExactDenoiser(targets, s)
    calls = []
    orig = model.forward

    def counting(x, t, labels):
        calls.append(len(labels))
        return orig(x, t, labels)
    model.forward = counting
    labels = torch.tensor([0, 2])
    out = sample(model, s, labels, steps=1, sampler="ddim", guidance=3.0, generator=torch.Generator().manual_seed(0),
                 clip=False)
    assert calls == [4]  # conditional and unconditional halves in a single forward
    mean = targets.mean(0)
    expected = mean + 3.0 * (targets[labels] - mean)
    assert torch.allclose(out, expected.clamp(-1, 1), atol=5e-3)  # t=0 keeps sigma=5e-4 of noise


def test_trajectory_has_one_x0_frame_per_step():
    """Tried: 3 steps of DPM-Solver++ 2M with return_trajectory; 3 frames of the output's shape."""
    s = CosineSchedule()
    model = ExactDenoiser(_targets(), s)
    out, frames = sample(model, s, torch.tensor([0]), steps=3, sampler="dpm++2m", guidance=1.0,
                         generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert len(frames) == 3 and frames[-1].shape == out.shape


def test_to_uint8_maps_the_range_ends():
    assert to_uint8(torch.tensor([-1.0, 0.0, 1.0, 2.0])).tolist() == [0, 128, 255, 255]


def test_bf16_network_stays_close_to_float32():
    """The network may run in bfloat16 (fast on CPUs with AVX512-BF16) while the solver stays in float32:
    the images it draws from the same noise barely differ (checked on a trained model in bench/sample_speed.py)."""
    torch.manual_seed(0)
    model = build_model("micro", in_channels=3, num_classes=3, image_size=8)
    s = CosineSchedule()
    labels = torch.tensor([0, 1, 2, 0])
    runs = [sample(model, s, labels, steps=8, sampler="dpm++2m", guidance=2.0,
                   generator=torch.Generator().manual_seed(3), bf16=bf16) for bf16 in (False, True)]
    assert (runs[0] - runs[1]).abs().mean() < 0.02


def _interval_run(guidance, interval):
    s = CosineSchedule()
    model = ExactDenoiser(_targets(), s)
    labels = torch.tensor([0, 1, 2])
    return sample(model, s, labels, steps=6, guidance=guidance, generator=torch.Generator().manual_seed(3),
                  bf16=False, interval=interval)


def test_interval_guidance_covering_every_sigma_is_plain_guidance():
    """Tried: an interval (0, 1e9] holds every noise level of the run, so it must be classifier-free guidance."""
    assert torch.allclose(_interval_run(3.0, [0.0, 1e9]), _interval_run(3.0, None))


def test_interval_guidance_with_an_empty_interval_is_the_conditional_model():
    """Tried: an interval no step falls in ([1e6, 1e7]): guidance 3 there must equal guidance 1 (cond. only)."""
    out = _interval_run(3.0, [1e6, 1e7])
    assert torch.allclose(out, _interval_run(1.0, None))
    assert not torch.allclose(out, _interval_run(3.0, None))  # guidance does change this model's samples


def test_guided_at_reads_sigma_over_alpha():
    from diffusion.samplers import guided_at
    s = CosineSchedule()
    a, sg = s.alpha_sigma(torch.tensor([0.5], dtype=torch.float64))
    sigma = float(sg / a)
    assert guided_at(s, 0.5, [sigma * 0.9, sigma * 1.1])
    assert not guided_at(s, 0.5, [sigma * 1.1, sigma * 2])
    assert guided_at(s, 0.5, None)
