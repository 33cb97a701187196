"""The learned check (curator.dedup.verifier): its numpy forward pass is torch's, its weights ship with the package,
and it only ever decides the pairs in its band."""
import io

import numpy as np
import pytest
from PIL import Image as PILImage

from curator.dedup import matching
from curator.dedup.verifier import STRIDES, WEIGHTS, Verifier, default_verifier
from curator.imports.hashing import fingerprint_bytes
from tests.imagefiles import DEMO_IMAGES as DEMO


def test_the_shipped_weights_load():
    assert WEIGHTS.exists(), "curator/dedup/verifier.npz is made by bench/dedup_verifier.py and must be committed"
    assert default_verifier() is not None


def test_numpy_forward_pass_equals_torch():
    """Random weights and inputs: the numpy network (3x3 convolutions as matrix products, strides 1-2-2-2, mean
    and max pooling, two dense layers; the difference of the two pictures folded into the first layer's weights)
    gives torch's probabilities from the two pictures and their difference."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    widths = (5, 6, 7, 8)
    conv = nn.Sequential(*[m for k, w in enumerate(widths) for m in (
        nn.Conv2d(9 if k == 0 else widths[k - 1], w, 3, stride=STRIDES[k], padding=1), nn.ReLU())])
    head = nn.Sequential(nn.Linear(2 * widths[-1] + 4, 10), nn.ReLU(), nn.Linear(10, 1))
    images = torch.rand(300, 6, 32, 32) - 0.3
    scalars = torch.rand(300, 4)
    with torch.no_grad():
        h = conv(torch.cat([images, images[:, 0:3] - images[:, 3:6]], 1))
        expected = torch.sigmoid(head(torch.cat([h.mean((2, 3)), h.amax((2, 3)), scalars], 1))).squeeze(1).numpy()
    weights = {**{f"conv.{k}": v.numpy() for k, v in conv.state_dict().items()},
               **{f"head.{k}": v.numpy() for k, v in head.state_dict().items()}}
    got = Verifier(weights).probabilities(images.numpy(), scalars.numpy())
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_second_opinion_confirms_or_rejects_only_by_the_network():
    bar = matching.DEFAULT_CONFIRM_THRESHOLD
    scores = np.array([0.35, 0.5, 0.69, 0.72, 0.79, 0.75])
    same = np.array([0.95, 0.99, 0.2, 0.91, matching.LEARNED_SAME - 0.01, 1.0])
    out = matching.second_opinion(scores, same, bar)
    assert list(out >= bar) == [True, True, False, True, False, True]
    assert out[4] == pytest.approx(bar - 0.001)  # rejected: just below the bar, still shown
    assert out[3] >= 0.72 and out[5] >= 0.75  # confirmed: never lowered, raised as the network is surer
    assert out[0] < out[1] < out[5]
    assert (out < matching.KEEPER_MATCH).all()  # a network verdict never makes a keeper link


def test_learned_veto_only_lowers_pairs_the_network_is_sure_differ():
    bar = matching.DEFAULT_CONFIRM_THRESHOLD
    scores = np.array([0.72, 0.85, 0.88, 0.75])
    same = np.array([0.01, 0.049, 0.06, 0.99])
    out = matching.learned_veto(scores, same, bar)
    assert list(out >= bar) == [False, False, True, True]
    assert out[0] == pytest.approx(bar - 0.001) and out[1] == pytest.approx(bar - 0.001)  # still shown, below the bar
    np.testing.assert_array_equal(out[2:], scores[2:])  # never raised: from 64 px up the network only vetoes


def test_a_faint_pair_is_shown_to_the_network_with_its_contrast_raised_alike():
    """Two light-grey glyphs on white (a panel indicator: 215-255) span 40 grey levels; the network sees both pictures
    raised by the same gain, 96 / 40, about the pair's mid grey (so their difference keeps its sign and grows alike),
    white clipped at 255. A pair spanning 96 or more is shown as it is, and no pair is raised more than 8 times."""
    faint = np.full((1, 3, 4, 4), 255.0, dtype=np.float32)
    other = faint.copy()
    faint[..., 1, 1] = 215.0
    other[..., 2, 2] = 225.0
    x, y = matching._stretched(faint, other)
    assert x[0, 0, 1, 1] == pytest.approx(235.0 - 20.0 * 2.4) and y[0, 0, 2, 2] == pytest.approx(235.0 - 10.0 * 2.4)
    assert x[0, 0, 0, 0] == 255.0 and y[0, 0, 0, 0] == 255.0  # 235 + 20 * 2.4 = 283, clipped
    contrasty = faint.copy()
    contrasty[..., 3, 3] = 40.0
    same_x, same_y = matching._stretched(contrasty, other)
    np.testing.assert_array_equal(same_x, contrasty)
    np.testing.assert_array_equal(same_y, other)
    flat = np.full((1, 3, 4, 4), 128.0, dtype=np.float32)
    barely = flat.copy()
    barely[..., 0, 0] = 126.0
    x, y = matching._stretched(flat, barely)
    assert x[0, 0, 0, 0] - y[0, 0, 0, 0] == pytest.approx(2.0 * matching._STRETCH_MAX)


def _small_demo(n: int, side: int) -> list:
    """Fingerprints of ``n`` demo emoji reduced to ``side`` px (small icons: the pairs the network is asked about)."""
    out = []
    for path in sorted(DEMO.glob("*/*.png"))[:n]:
        buf = io.BytesIO()
        PILImage.open(path).convert("RGBA").resize((side, side), PILImage.LANCZOS).save(buf, "PNG")
        out.append(fingerprint_bytes(buf.getvalue()))
    return out


def test_learned_check_decides_only_small_pictures_in_its_band(monkeypatch):
    """Tried: every pair of 30 demo emoji at 24 px and at 96 px, with the check on and off. Scores below the floor
    and from 0.9 up (clear strangers, clear copies) are the confirm score's alone; small pairs in the band change,
    each either passing the bar or falling just below it; pairs of 64 px or more are at most vetoed (confirmed ones
    only), and none of the demo's 96 px pairs is."""
    bar = matching.DEFAULT_CONFIRM_THRESHOLD
    for side, asked in ((24, True), (96, False)):
        stack = matching.Thumbs(_small_demo(30, side))
        a, b = np.triu_indices(len(stack.sizes), 1)
        kw = dict(threshold=bar, sizes_a=stack.sizes[a], sizes_b=stack.sizes[b])
        monkeypatch.setattr(matching, "LEARNED_CHECK", True)
        checked = matching.confirm_scores(stack.stack[a], stack.stack[b], **kw)
        monkeypatch.setattr(matching, "LEARNED_CHECK", False)
        alone = matching.confirm_scores(stack.stack[a], stack.stack[b], **kw)
        band = (alone >= matching.LEARNED_FLOOR) & (alone < matching.LEARNED_CEILING)
        np.testing.assert_array_equal(checked[~band], alone[~band])
        if asked:
            assert band.sum() >= 10  # the test exercises the band
            decided = checked[band]
            assert ((decided >= bar) | np.isclose(decided, np.minimum(alone[band], bar - 0.001))).all()
        else:
            vetoed = checked != alone
            assert ((alone[vetoed] >= bar) & (alone[vetoed] < matching.LEARNED_CEILING)).all()
            np.testing.assert_allclose(checked[vetoed], bar - 0.001)
            assert not vetoed.any()  # the demo's different emoji at 96 px: the confirm score already keeps them apart


def test_the_review_page_says_when_the_learned_check_decided(monkeypatch):
    from curator.dedup.service import why_text
    decided = matching.Match(1, 2, "near", 12, 14, 0.74)
    plain = matching.Match(1, 2, "near", 3, 4, 0.93)
    assert ("similarity 0.74 after aligning (needs 0.70; under 64 px the learned check decides, from it up it may "
            "veto)") in why_text(decided, 1)
    assert "learned" not in why_text(plain, 1) and "similarity 0.93" in why_text(plain, 1)
    # with the pictures' sizes it says whether the check decided: a 24 px icon's pair, not a pair of wallpapers
    assert "(needs 0.70; confirmed by the learned check, the smaller picture being 24 px)" in why_text(decided, 1, 24)
    assert ("(needs 0.70; the learned check, which may veto such a pair, did not; no coloured area changed colour)"
            in why_text(decided, 1, 1080))
    assert "learned" not in why_text(plain, 1, 1080)
    # from 28 px every confirmed pair also passed the recolour check (matching.recoloured), whatever its score
    assert "(needs 0.70; no coloured area changed colour)" in why_text(plain, 1, 1080)
    assert "(needs 0.70; no coloured area changed colour)" in why_text(plain, 1, matching.RECOLOUR_FROM)
    assert "colour" not in why_text(plain, 1, 24) and "colour" not in why_text(plain, 1)
    monkeypatch.setattr(matching, "LEARNED_CHECK", False)
    assert "learned" not in why_text(decided, 1) and "learned" not in why_text(decided, 1, 24)
    # a pair the hashes did not propose (a rendition drawn again) says how it was found
    assert "nearest" not in why_text(decided, 1)
    assert why_text(matching.Match(1, 2, "near", 30, 34, 0.82), 1).endswith(
        "hash distance 30 bits (pHash 30, dHash 34; too far apart for the hashes, proposed as one of the pictures "
        "whose layout is nearest)")
