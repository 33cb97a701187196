"""The noise schedule's maths: monotone, invertible parameterisations, min-SNR weights."""
import math

import torch

from diffusion.schedule import CosineSchedule, stratified_times


def test_alpha_decreases_sigma_increases_and_they_stay_variance_preserving():
    """Tried: 1001 times across [0, 1]; alpha must fall, sigma rise, alpha^2 + sigma^2 = 1, logSNR hit its ends."""
    s = CosineSchedule()
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    a, sg = s.alpha_sigma(t)
    assert torch.all(a[1:] < a[:-1]) and torch.all(sg[1:] > sg[:-1])
    assert torch.allclose(a ** 2 + sg ** 2, torch.ones_like(a), atol=1e-12)
    lam = s.logsnr(t)
    assert math.isclose(lam[0].item(), 15.0, abs_tol=1e-6) and math.isclose(lam[-1].item(), -15.0, abs_tol=1e-6)
    assert torch.allclose(s.t_from_logsnr(lam), t, atol=1e-9)


def test_cosine_shape_matches_the_classic_schedule_in_the_middle():
    """Tried: t = 0.5; the clipped cosine must stay close to alpha_bar = cos^2(pi/4) = 0.5."""
    a, _ = CosineSchedule().alpha_sigma(torch.tensor([0.5], dtype=torch.float64))
    assert abs(a.item() ** 2 - 0.5) < 0.02


def test_v_and_eps_parameterisations_invert_exactly():
    """Tried: random x0/eps at random t; the model output that equals the target must give back x0 and eps."""
    s = CosineSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.rand(6, generator=g, dtype=torch.float64) * 0.98 + 0.01
    xt = s.add_noise(x0, eps, t)
    for pred in ("v", "eps"):
        rx0, reps = s.to_x0_eps(xt, s.target(x0, eps, t, pred), t, pred)
        assert torch.allclose(rx0, x0, atol=1e-8), pred
        assert torch.allclose(reps, eps, atol=1e-8), pred


def test_min_snr_weights():
    """Tried: low and high SNR. x0-space weight is min(snr, gamma), so v-weights are min(snr,g)/(snr+1)
    (1/(1+1/snr) -> ~snr at low SNR, gamma/(snr+1) at high) and gamma = 0 turns weighting off."""
    s = CosineSchedule()
    t = torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)
    snr = s.snr(t)
    w_v = s.loss_weight(t, "v", 5.0)
    w_eps = s.loss_weight(t, "eps", 5.0)
    assert torch.allclose(w_v, torch.clamp(snr, max=5.0) / (snr + 1))
    assert torch.allclose(w_eps, torch.clamp(snr, max=5.0) / snr)
    assert w_eps[-1] == 1.0 and w_eps[0] < 0.5  # noisy steps keep full weight, clean ones are damped
    assert torch.equal(s.loss_weight(t, "v", 0.0), torch.ones(3, dtype=torch.float64))


def test_stratified_times_cover_the_interval_evenly():
    """Tried: a batch of 8; exactly one time must fall in each eighth of [0, 1)."""
    t = stratified_times(8, torch.Generator().manual_seed(3), "cpu")
    bins = torch.floor(t * 8).long().sort().values
    assert torch.equal(bins, torch.arange(8)) and t.min() >= 0 and t.max() < 1


def test_a_shifted_schedule_adds_the_shift_to_every_log_snr_and_still_inverts():
    """Tried: shift -1.39 (2 log(32/64)); log-SNR moves by exactly the shift at every t, t_from_logsnr inverts it, the
    noise is larger at every inner t, and a schedule saved before shifts existed loads unshifted."""
    plain, shifted = CosineSchedule(), CosineSchedule(shift=2 * math.log(32 / 64))
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    assert torch.allclose(shifted.logsnr(t), plain.logsnr(t) + shifted.shift)
    assert torch.allclose(shifted.t_from_logsnr(shifted.logsnr(t)), t, atol=1e-9)
    assert torch.all(shifted.alpha_sigma(t[1:-1])[1] > plain.alpha_sigma(t[1:-1])[1])
    assert CosineSchedule.from_dict(shifted.to_dict()).shift == shifted.shift
    assert CosineSchedule.from_dict({"kind": "cosine", "logsnr_min": -15.0, "logsnr_max": 15.0}).shift == 0.0
