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


def test_patch_folding_keeps_shapes_and_starts_at_zero():
    """Tried: a 2x2 pixel-unshuffle UNet on RGBA at 16 px; output shape equals the input's and a fresh model
    predicts exactly 0 (zero-initialised last layer)."""
    from diffusion.unet import UNetConfig
    m = UNet(UNetConfig(in_channels=4, num_classes=2, image_size=16, channels=8, channel_mults=(1, 2),
                        attn_levels=(1,), head_channels=8, patch_size=2))
    x = torch.randn(2, 4, 16, 16)
    out = m(x, torch.rand(2), torch.tensor([0, 2]))
    assert out.shape == x.shape and torch.count_nonzero(out) == 0
    with pytest.raises(ValueError, match="divisible by 8"):
        preset_config("small", in_channels=3, num_classes=2, image_size=20)


def test_config_knows_each_presets_size_factor():
    """The torch-free config names the UNet's presets, and its TrainConfig.validate refuses exactly the sizes the UNet
    would refuse."""
    from diffusion import config
    from diffusion.config import PRESET_SIZE_FACTOR, TrainConfig, patch_scale
    assert tuple(PRESETS) == config.PRESETS  # the same presets, in the same order, in the form and the UNet
    for name in PRESETS:
        for size in (32, 64, 128):
            cfg = preset_config(name, in_channels=3, num_classes=2, image_size=size)
            assert PRESET_SIZE_FACTOR[name] * patch_scale(size) == cfg.patch_size * 2 ** (len(cfg.channel_mults) - 1)
    with pytest.raises(ValueError, match="divisible by 16"):
        TrainConfig(data="x", image_size=72, preset="small", epochs=1).validate()
    with pytest.raises(ValueError, match="divisible by 8"):
        TrainConfig(data="x", image_size=20, preset="small", epochs=1).validate()
    TrainConfig(data="x", image_size=24, preset="small", epochs=1).validate()


def test_64_px_runs_at_the_inner_resolution_of_32_px():
    """Tried: "small" at 32 and 64 px: 2x2 patches at 32, 4x4 at 64, so the UNet works at 16x16 in both."""
    for size, patch in ((32, 2), (64, 4)):
        cfg = preset_config("small", in_channels=3, num_classes=2, image_size=size)
        assert cfg.patch_size == patch and size // cfg.patch_size == 16
    m = UNet(preset_config("small", in_channels=3, num_classes=2, image_size=64))
    x = torch.randn(2, 3, 64, 64)
    assert m(x, torch.rand(2), torch.tensor([0, 1])).shape == x.shape


def test_4x4_patches_get_a_pixel_head_that_starts_as_the_identity_and_old_runs_load_without_one():
    """Tried: "small" at 64 px gets the full-resolution head, at 32 px none; a fresh 64 px model still predicts exactly
    0; a model_config saved before the head existed (no pixel_head key) builds the same network as then."""
    from diffusion.unet import PIXEL_HEAD_WIDTH, UNetConfig
    assert preset_config("small", in_channels=3, num_classes=2, image_size=64).pixel_head == PIXEL_HEAD_WIDTH
    assert preset_config("small", in_channels=3, num_classes=2, image_size=32).pixel_head == 0
    m = UNet(preset_config("tiny", in_channels=3, num_classes=2, image_size=64))
    assert torch.count_nonzero(m(torch.randn(2, 3, 64, 64), torch.rand(2), torch.tensor([0, 1]))) == 0
    old = preset_config("small", in_channels=3, num_classes=2, image_size=64).to_dict()
    del old["pixel_head"]
    assert UNet(UNetConfig.from_dict(old)).pixel_head is None


def _denoising_error(pixel_head: int) -> float:
    """Train a UNet whose 4x4 patches (48 values) pass through 8 channels to predict the noise added to smooth
    pictures; return its error on fresh ones."""
    from diffusion.unet import UNetConfig
    torch.manual_seed(0)
    m = UNet(UNetConfig(in_channels=3, num_classes=1, image_size=16, channels=8, channel_mults=(1,),
                        attn_levels=(), head_channels=8, patch_size=4, pixel_head=pixel_head))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)

    def batch(n):
        x0 = torch.nn.functional.interpolate(torch.randn(n, 3, 4, 4), size=16, mode="bilinear", align_corners=False)
        eps = torch.randn_like(x0)
        return x0 + 0.5 * eps, eps

    t, y = torch.full((16,), 0.3), torch.zeros(16, dtype=torch.long)
    for _ in range(60):
        xt, eps = batch(16)
        loss = (m(xt, t, y) - eps).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        xt, eps = batch(16)
        return float((m(xt, t, y) - eps).pow(2).mean())


def test_the_pixel_head_lets_a_patched_unet_predict_per_pixel_noise():
    """The maths behind the head: 48 noise values per 4x4 patch cannot all pass through 8 channels, so without the
    head most of the noise stays unpredicted (error near the noise's variance, 1); with it, the error falls well
    below (the noise of a smooth picture is what differs from its neighbours)."""
    without, with_head = _denoising_error(0), _denoising_error(16)
    assert without > 0.5
    assert with_head < 0.5 * without
