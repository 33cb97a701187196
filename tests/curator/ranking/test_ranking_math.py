"""The rating maths and pair choice of the ranking feature (curator.ranking.rating, curator.ranking.pairing).

Pure logic, no database: each test says what it tries and what must hold.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curator.ranking.pairing import choose_pair
from curator.ranking.rating import (
    Comparison,
    Rating,
    RatingConfig,
    RatingState,
    compute_ratings,
    normal_cdf,
    pair_counts,
    prob_in_top_k,
    replay,
    settled_progress,
    update,
)

MIRROR = {"left": "right", "right": "left", "tie": "tie", "neither": "neither"}
BOTH = [RatingConfig(refine=False), RatingConfig(refine=True)]
CONFIG_IDS = ["online", "refined"]


def comparison_lists(max_images=6, max_len=25, outcomes=("left", "right", "tie", "neither")):
    """Random comparison sequences over images 0..n-1 (never an image against itself)."""
    def build(n):
        pair = st.tuples(st.integers(0, n - 1), st.integers(0, n - 2), st.sampled_from(outcomes)).map(
            lambda t: (t[0], t[1] if t[1] < t[0] else t[1] + 1, t[2]))
        return st.tuples(st.just(n), st.lists(pair, max_size=max_len))
    return st.integers(2, max_images).flatmap(build)


# --- the update maths ---------------------------------------------------------------------------

@pytest.mark.parametrize("config", BOTH, ids=CONFIG_IDS)
def test_a_win_raises_the_winner_and_lowers_the_loser(config):
    # Tried: one "left" answer between two fresh images. The left one must rise, the right one fall,
    # by the same amount (equal priors), and an onlooker must not move.
    r = compute_ratings(["a", "b", "c"], [("a", "b", "left")], config)
    assert r["a"].mu > 0 > r["b"].mu
    assert r["a"].mu == pytest.approx(-r["b"].mu, abs=1e-12)
    assert r["c"] == Rating(0.0, config.prior_sigma, 0)
    assert (r["a"].n, r["b"].n) == (1, 1)


@pytest.mark.parametrize("config", BOTH, ids=CONFIG_IDS)
@settings(max_examples=40, deadline=None)
@given(data=comparison_lists())
def test_mirrored_answers_give_mirrored_ratings(config, data):
    # Tried: every comparison with left and right swapped and the outcome mirrored. The ratings
    # must be the same (the model has no side bias).
    n, comparisons = data
    mirrored = [(b, a, MIRROR[o]) for a, b, o in comparisons]
    r1, r2 = compute_ratings(range(n), comparisons, config), compute_ratings(range(n), mirrored, config)
    for i in range(n):
        assert r1[i].mu == pytest.approx(r2[i].mu, abs=1e-6)
        assert r1[i].sigma == pytest.approx(r2[i].sigma, abs=1e-6)
        assert r1[i].n == r2[i].n


@pytest.mark.parametrize("config", BOTH, ids=CONFIG_IDS)
def test_a_tie_between_equals_keeps_them_equal_and_more_certain(config):
    # Tried: "can't tell" between two fresh images, then between two images with identical records.
    r = compute_ratings([1, 2], [(1, 2, "tie")], config)
    assert r[1].mu == r[2].mu == 0.0
    assert r[1].sigma == r[2].sigma < config.prior_sigma
    history = [(1, 3, "left"), (2, 4, "left"), (1, 2, "tie")]
    r = compute_ratings([1, 2, 3, 4], history, config)
    assert r[1].mu == pytest.approx(r[2].mu, abs=1e-9)


@pytest.mark.parametrize("config", BOTH, ids=CONFIG_IDS)
def test_uncertainty_shrinks_with_every_comparison(config):
    # Tried: image 0 meets images 1..8 in turn with mixed answers; its sigma must fall each time.
    state = RatingState(range(9), config)
    sigmas = [state.ratings()[0].sigma]
    for j, outcome in zip(range(1, 9), ["left", "right", "tie", "left", "left", "right", "tie", "left"]):
        state.apply((0, j, outcome))
        sigmas.append(state.ratings()[0].sigma)
    assert all(later < earlier for earlier, later in zip(sigmas, sigmas[1:])), sigmas


def test_a_tie_is_half_a_win():
    # Tried: a tie against a strong opponent must raise a weak image (it did better than expected),
    # and a tie against a weak opponent must lower a strong one.
    base = [("strong", "x", "left"), ("strong", "y", "left"), ("weak", "x", "right")]
    before = compute_ratings(["strong", "weak", "x", "y"], base)
    after = compute_ratings(["strong", "weak", "x", "y"], base + [("weak", "strong", "tie")])
    assert after["weak"].mu > before["weak"].mu
    assert after["strong"].mu < before["strong"].mu


def test_neither_belongs_is_not_a_comparison():
    # Tried: "neither" answers mixed into a sequence. Ratings and counts must equal those of the
    # sequence without them (the caller flags the images; the rating ignores the answer).
    comps = [(0, 1, "left"), (1, 2, "neither"), (2, 0, "tie"), (0, 2, "neither"), (1, 2, "right")]
    assert compute_ratings(range(3), comps) == compute_ratings(
        range(3), [c for c in comps if c[2] != "neither"])
    assert compute_ratings(range(3), comps)[1].n == 2


def test_refinement_reaches_the_exact_posterior_mode():
    # Tried: 40 random answers among 6 images, then a dense Newton solve of the same MAP problem.
    # The refined means must match it, and beat the online means on the objective.
    rng = np.random.default_rng(3)
    comps = []
    for _ in range(40):
        a, b = rng.choice(6, 2, replace=False)
        comps.append((int(a), int(b), ["left", "right", "tie"][int(rng.integers(3))]))
    config = RatingConfig(prior_sigma=1.5)
    refined = compute_ratings(range(6), comps, config)
    online = compute_ratings(range(6), comps, RatingConfig(prior_sigma=1.5, refine=False))
    L = np.array([c[0] for c in comps]); R = np.array([c[1] for c in comps])
    Y = np.array([{"left": 1.0, "right": 0.0, "tie": 0.5}[c[2]] for c in comps])

    def objective(t):
        d = t[L] - t[R]
        return np.sum(np.logaddexp(0, -d) + (1 - Y) * d) + 0.5 * t @ t / 1.5 ** 2

    theta = np.zeros(6)
    for _ in range(50):
        d = theta[L] - theta[R]
        p = 1 / (1 + np.exp(-d))
        g = theta / 1.5 ** 2
        H = np.eye(6) / 1.5 ** 2
        for l, r, pp, y in zip(L, R, p, Y):
            g[l] += pp - y; g[r] -= pp - y
            e = np.zeros(6); e[l], e[r] = 1, -1
            H += pp * (1 - pp) * np.outer(e, e)
        theta -= np.linalg.solve(H, g)
    mu_refined = np.array([refined[i].mu for i in range(6)])
    mu_online = np.array([online[i].mu for i in range(6)])
    np.testing.assert_allclose(mu_refined, theta, atol=1e-6)
    assert objective(mu_refined) < objective(mu_online)


def test_refined_ratings_recover_a_known_order():
    # Tried: 3,000 answers drawn from a true Bradley-Terry model over 100 images. The ratings
    # must track the true strengths closely, and 1-sigma intervals must cover roughly 68%.
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 1.5, 100)
    comps = []
    for _ in range(3000):
        a, b = rng.choice(100, 2, replace=False)
        win = rng.random() < 1 / (1 + np.exp(-(truth[a] - truth[b])))
        comps.append((int(a), int(b), "left" if win else "right"))
    r = compute_ratings(range(100), comps, RatingConfig(prior_sigma=1.5))
    mu = np.array([r[i].mu for i in range(100)]); sigma = np.array([r[i].sigma for i in range(100)])
    assert np.corrcoef(mu, truth)[0, 1] > 0.95
    assert 0.5 < np.mean(np.abs(mu - truth) < sigma) < 0.9


# --- ratings are derived data -------------------------------------------------------------------

@pytest.mark.parametrize("config", BOTH, ids=CONFIG_IDS)
@settings(max_examples=40, deadline=None)
@given(data=comparison_lists(max_images=7, max_len=30))
def test_recompute_equals_incremental_exactly(config, data):
    # Tried: random answer sequences applied one at a time (in place, and through the pure
    # `update`), checked after every answer against a recompute from scratch. Equal to the bit.
    n, comparisons = data
    state, pure = RatingState(range(n), config), RatingState(range(n), config)
    for i, comparison in enumerate(comparisons):
        state.apply(comparison)
        before = pure.ratings()
        pure = update(pure, comparison)
        recomputed = compute_ratings(range(n), comparisons[: i + 1], config)
        assert state.ratings() == recomputed == pure.ratings()
    assert pure.ratings() == compute_ratings(range(n), comparisons, config)
    if comparisons:  # `update` left the old state untouched
        assert before == compute_ratings(range(n), comparisons[:-1], config)


def test_undo_is_a_recompute_without_the_last_answer():
    # Tried: five answers, then "undo" by recomputing without the last one. The result must equal
    # the ratings shown before that answer was given.
    comps = [(0, 1, "left"), (2, 3, "right"), (1, 2, "tie"), (0, 3, "left"), (3, 1, "left")]
    state = replay(range(4), comps[:-1])
    shown_before = state.ratings()
    state.apply(comps[-1])
    assert state.ratings() != shown_before
    assert compute_ratings(range(4), comps[:-1]) == shown_before


def test_image_order_and_late_arrivals_do_not_change_ratings():
    # Tried: the same answers with the images listed in reverse, and with image 4 added after the
    # answers started. Ratings may differ only by float rounding.
    comps = [(0, 1, "left"), (2, 3, "right"), (1, 2, "tie"), (0, 3, "left"), (4, 1, "left")]
    forward = compute_ratings(range(5), comps)
    backward = compute_ratings(reversed(range(5)), comps)
    late = replay(range(4), comps[:4])
    late.add_image(4)
    late.apply(comps[4])
    for i in range(5):
        for other in (backward[i], late.ratings()[i]):
            assert other.mu == pytest.approx(forward[i].mu, abs=1e-9)
            assert other.sigma == pytest.approx(forward[i].sigma, abs=1e-9)


@pytest.mark.parametrize("bad, error", [
    ((0, 1, "maybe"), ValueError),       # unknown outcome
    ((0, 0, "left"), ValueError),        # an image against itself
    ((0, 9, "left"), KeyError),          # an image not in this class
    ((0, 1), ValueError),                # not a triple
])
def test_bad_comparisons_are_refused_and_change_nothing(bad, error):
    # Tried: malformed answers. Each must raise a clear error and leave the state as it was.
    state = replay(range(3), [(0, 1, "left")])
    before = state.ratings()
    with pytest.raises(error):
        state.apply(bad)
    assert state.ratings() == before and state.comparisons_counted == 1


def test_bad_setup_is_refused():
    # Tried: a duplicate image id, and a non-positive prior.
    with pytest.raises(ValueError, match="already rated"):
        RatingState([1, 2, 1])
    with pytest.raises(ValueError, match="prior_sigma"):
        RatingConfig(prior_sigma=0)


# --- top-k membership and progress --------------------------------------------------------------

def _ratings(mu, sigma):
    return {i: Rating(float(m), float(s), 5) for i, (m, s) in enumerate(zip(mu, sigma))}


def test_normal_cdf_matches_math_erf():
    # Tried: the numpy CDF against math.erf over a wide range.
    x = np.linspace(-8, 8, 161)
    expected = [0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x]
    np.testing.assert_allclose(normal_cdf(x), expected, atol=2e-7)


@pytest.mark.parametrize("k", [1, 10, 25, 49])
def test_prob_in_top_k_sums_to_k_and_agrees_between_methods(k):
    # Tried: 50 images with mixed means and uncertainties, both estimators. Both must sum to about
    # k, stay in [0, 1], and agree with each other.
    rng = np.random.default_rng(k)
    ratings = _ratings(rng.normal(0, 2, 50), rng.uniform(0.2, 1.5, 50))
    mc = prob_in_top_k(ratings, k, samples=4000, seed=1)
    analytic = prob_in_top_k(ratings, k, method="analytic")
    assert sum(mc.values()) == pytest.approx(k, abs=1e-9)
    assert sum(analytic.values()) == pytest.approx(k, abs=1e-4)
    assert all(0.0 <= p <= 1.0 for p in [*mc.values(), *analytic.values()])
    assert max(abs(mc[i] - analytic[i]) for i in ratings) < 0.12
    assert prob_in_top_k(ratings, k, samples=500, seed=7) == prob_in_top_k(ratings, k, samples=500, seed=7)


def test_prob_in_top_k_edges_and_bad_k():
    # Tried: k = 0, k >= n, and invalid k values.
    ratings = _ratings([1.0, 0.0, -1.0], [0.5, 0.5, 0.5])
    assert set(prob_in_top_k(ratings, 0).values()) == {0.0}
    assert set(prob_in_top_k(ratings, 5).values()) == {1.0}
    with pytest.raises(ValueError):
        prob_in_top_k(ratings, -1)
    with pytest.raises(TypeError):
        prob_in_top_k(ratings, 1.5)
    with pytest.raises(ValueError):
        prob_in_top_k(ratings, 1, method="guess")


def test_settled_progress_counts_decided_places():
    # Tried: five clearly separated images (tiny sigma) with k=2, then fresh prior ratings.
    clear = _ratings([9, 6, 3, 0, -3], [0.1] * 5)
    assert tuple(settled_progress(clear, 2)) == (2, 2, 5, 5)
    fresh = compute_ratings(range(5), [])
    assert settled_progress(fresh, 2).settled_in == 0
    with pytest.raises(ValueError):
        settled_progress(clear, 2, threshold=0.4)


# --- choosing the next pair ---------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 30), k=st.integers(0, 40), seed=st.integers(0, 2 ** 32 - 1),
       explore=st.floats(0, 1))
def test_choose_pair_returns_two_different_known_images(n, k, seed, explore):
    # Tried: many class sizes, k (including k >= n), seeds and exploration rates.
    rng = np.random.default_rng(seed)
    ratings = _ratings(rng.normal(0, 2, n), rng.uniform(0.1, 2, n))
    a, b = choose_pair(ratings, k, rng=rng, explore=explore)
    assert a != b and a in ratings and b in ratings


def test_choose_pair_does_not_repeat_while_unasked_pairs_remain():
    # Tried: 150 choices on 100 images with k=5 and no exploration, so the few images near the
    # boundary are picked again and again and, without random candidates, exhaust their first
    # list of 12 neighbours each side; each answer is recorded in the history. No pair may be
    # asked twice: the widened list still holds unasked opponents close to the boundary.
    ratings = _ratings(np.linspace(4, -4, 100), np.full(100, 0.6))
    history: dict[frozenset, int] = {}
    rng = np.random.default_rng(0)
    firsts = []
    for _ in range(150):
        a, b = choose_pair(ratings, 5, history=history, rng=rng, explore=0.0, n_random=0)
        key = frozenset((a, b))
        assert key not in history
        history[key] = 1
        firsts.extend((a, b))
    assert max(firsts.count(i) for i in ratings) > 20  # the boundary images really were re-picked
    # A plain set of asked pairs is accepted too; tuples are refused with a clear message.
    assert frozenset(choose_pair(ratings, 5, history=set(history), rng=1)) not in history
    with pytest.raises(TypeError, match="frozenset"):
        choose_pair(ratings, 5, history={(0, 1): 1}, rng=1)


def test_choose_pair_focuses_on_the_top_k_boundary():
    # Tried: 3 images far above, 15 close together, 82 far below, k=5: two top places are open
    # among the 15. Without exploration, every pair must involve an undecided image
    # (0.05 < P(top-5) < 0.95).
    mu = np.concatenate([np.full(3, 12.0), np.linspace(1, -1, 15), np.full(82, -12.0)])
    mu[:3] += np.arange(3)
    ratings = _ratings(mu, np.full(100, 0.8))
    p = prob_in_top_k(ratings, 5)
    rng = np.random.default_rng(0)
    undecided = {i for i, v in p.items() if 0.05 < v < 0.95}
    assert 0 < len(undecided) < 20
    for _ in range(100):
        a, b = choose_pair(ratings, 5, rng=rng, explore=0.0)
        assert a in undecided or b in undecided


def test_choose_pair_puts_near_duplicates_head_to_head():
    # Tried: every image in a near-duplicate pair (2i, 2i+1). Unmet mates must be paired; once all
    # mates have met, the choice falls back to the usual candidates.
    ratings = _ratings(np.random.default_rng(0).normal(0, 1, 20), np.full(20, 1.0))
    groups = [{2 * i, 2 * i + 1} for i in range(10)]
    for seed in range(20):
        a, b = choose_pair(ratings, 4, rng=seed, groups=groups)
        assert min(a, b) // 2 == max(a, b) // 2 and min(a, b) % 2 == 0
    met = {frozenset(g): 1 for g in groups}
    pairs = [frozenset(choose_pair(ratings, 4, rng=s, groups=groups, history=met)) for s in range(20)]
    assert not any(p in met for p in pairs)


def test_choose_pair_is_deterministic_for_a_seed():
    # Tried: the same inputs and seed twice (same pair sequence), and different seeds (pairs vary).
    rng = np.random.default_rng(5)
    ratings = _ratings(rng.normal(0, 2, 200), rng.uniform(0.2, 2, 200))
    seq = lambda seed: [choose_pair(ratings, 20, rng=g) for g in [np.random.default_rng(seed)] for _ in range(10)]
    assert seq(1) == seq(1)
    assert len({choose_pair(ratings, 20, rng=s) for s in range(20)}) > 5


def test_choose_pair_refuses_bad_input():
    # Tried: too few images, a bad exploration rate, a non-integer k, a bad rng,
    # ratings that are not Rating triples, a bad window and a bad repeat penalty.
    with pytest.raises(ValueError, match="two images"):
        choose_pair(_ratings([0.0], [1.0]), 1, rng=0)
    ratings = _ratings([0.0, 1.0, 2.0], [1.0] * 3)
    with pytest.raises(ValueError, match="explore"):
        choose_pair(ratings, 1, rng=0, explore=1.5)
    with pytest.raises(TypeError):
        choose_pair(ratings, "1", rng=0)
    with pytest.raises(TypeError):
        choose_pair(ratings, 1, rng="seed")
    with pytest.raises(ValueError, match="Rating"):
        choose_pair({1: (0.0, 1.0), 2: (1.0, 1.0)}, 1, rng=0)
    with pytest.raises(ValueError, match="window"):
        choose_pair(ratings, 1, rng=0, window=0)
    with pytest.raises(ValueError, match="repeat_penalty"):
        choose_pair(ratings, 1, rng=0, repeat_penalty=0)


def test_active_ranking_finds_a_small_top_k():
    # Tried: a compressed version of bench/ranking_sim.py: 64 images, hidden order, 10% flipped
    # answers, 2 x n log2 n answers chosen by choose_pair. The rated top-8 must be mostly right,
    # and better than the same number of uniformly random pairs.
    def run(active):
        rng = np.random.default_rng(11)
        true_rank = rng.permutation(64)
        state, history = RatingState(range(64)), {}
        for _ in range(2 * 64 * 6):
            if active:
                a, b = choose_pair(state.ratings(), 8, history=history, rng=rng)
            else:
                a, b = (int(v) for v in rng.choice(64, 2, replace=False))
            right = true_rank[a] < true_rank[b]
            if rng.random() < 0.1:
                right = not right
            state.apply(Comparison(a, b, "left" if right else "right"))
            history[frozenset((a, b))] = history.get(frozenset((a, b)), 0) + 1
        r = state.ratings()
        top = sorted(r, key=lambda i: -r[i].mu)[:8]
        return sum(true_rank[i] < 8 for i in top) / 8
    active, random = run(True), run(False)
    assert active >= 0.875
    assert active >= random


def test_pair_counts_counts_unordered_pairs():
    # Tried: the same pair asked in both orders, and a "neither" answer (asked, so it counts).
    counts = pair_counts([(1, 2, "left"), (2, 1, "tie"), (1, 3, "neither")])
    assert counts == {frozenset((1, 2)): 2, frozenset((1, 3)): 1}
