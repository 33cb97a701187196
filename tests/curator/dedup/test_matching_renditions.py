"""curator.dedup.matching: pictures whose trims disagree (one copy kept a line more) are compared content to content."""
import numpy as np
from PIL import Image

from curator.dedup.matching import DEFAULT_CONFIRM_THRESHOLD as T
from curator.dedup.matching import _aspect_hypotheses, confirm_scores
from curator.imports.hashing import THUMB_SIDE


def fingerprint_of(content: np.ndarray, size=None) -> bytes:
    """A version-2 fingerprint as hashing stores it: the content squashed to the 64 px thumbnail, then its size
    (``size`` None: a version-1 thumbnail, no size)."""
    thumb = Image.fromarray(content).resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS).tobytes()
    if size is None:
        return thumb
    return thumb + np.array(size, "<u2").tobytes()


def blocky(seed: int, side: int = 18) -> np.ndarray:
    """A small pixel-art drawing: dark blocks on white with a dark frame (content touches every edge)."""
    rng = np.random.default_rng(seed)
    ink = rng.random((side // 3, side // 3)) < 0.4
    img = np.where(np.kron(ink, np.ones((3, 3), bool))[..., None], 40, 255).astype(np.uint8).repeat(3, axis=2)
    img[[0, -1]] = 40
    img[:, [0, -1]] = 40
    return img


def with_extra_rows(img: np.ndarray, rows: int = 2) -> np.ndarray:
    """The drawing as a trim that kept ``rows`` more lines at the bottom (JPEG noise the trim took for content)."""
    extra = np.full((rows, img.shape[1], 3), 222, np.uint8)
    return np.concatenate([img, extra])


def test_aspect_hypotheses_by_hand():
    # tried: equal shapes (one way, nothing squeezed), 18x18 against 18x20 (x relatively wider by 10/9: as it is,
    # x's rows squeezed by 10 % or y's columns by 10 %), the mirror (y's rows or x's columns), and a ratio too large
    # to be one picture trimmed twice (one way)
    shapes_x = np.array([[18, 18], [18, 18], [18, 20], [100, 60]])
    shapes_y = np.array([[36, 36], [18, 20], [18, 18], [60, 60]])
    pair, squeezes = _aspect_hypotheses(shapes_x, shapes_y)
    ways = {}
    for p, sq in zip(pair.tolist(), squeezes.tolist()):
        ways.setdefault(p, []).append(sq)
    assert ways[0] == [[0, 0, 0, 0]] and ways[3] == [[0, 0, 0, 0]]
    assert ways[1] == [[0, 0, 0, 0], [0, 10, 0, 0], [0, 0, 10, 0]]  # x's columns, x's rows, y's columns, y's rows
    assert ways[2] == [[0, 0, 0, 0], [0, 0, 0, 10], [10, 0, 0, 0]]


def test_a_copy_whose_trim_kept_two_lines_more_is_confirmed():
    # tried: an 18 px pixel-art drawing against the same drawing whose trim kept 2 more rows (11 %, beyond the crop
    # search's 6 % per side), with the contents' sizes stored (version 2) and without (version 1); and a different
    # drawing with the same extra rows, which must stay apart
    one, other = blocky(1), blocky(2)
    a = fingerprint_of(one, (18, 18))
    b = fingerprint_of(with_extra_rows(one), (18, 20))
    c = fingerprint_of(with_extra_rows(other), (18, 20))
    same, different = confirm_scores([a, a], [b, c])
    assert same >= T > different
    unsized = confirm_scores([fingerprint_of(one)], [fingerprint_of(with_extra_rows(one))])[0]
    assert unsized < same  # without the sizes the two trims cannot be evened out


def test_the_search_path_with_a_threshold_still_evens_out_trims():
    # tried: the same pair scored as the search scores it (a threshold: a 16 px first look, the squeezed ways only
    # for pairs that came near); the copy is still confirmed and the other drawing still is not
    one, other = blocky(1), blocky(2)
    a = fingerprint_of(one, (18, 18))
    same, different = confirm_scores([a, a], [fingerprint_of(with_extra_rows(one), (18, 20)),
                                              fingerprint_of(with_extra_rows(other), (18, 20))], threshold=T)
    assert same >= T > different
