"""Ranking a frame's candidates (backend/ranking.py): pure numpy, no model."""

import numpy as np

from backend.ranking import completion_selection, consensus_first, farthest_point_selection, rank_score
from backend.skeleton import NUM_JOINTS


def _poses(offsets_m):
    """One pose per x offset (metres): every joint shifted along x."""
    base = np.random.default_rng(0).normal(0, 0.3, (NUM_JOINTS, 3))
    return np.stack([base + np.array([dx, 0.0, 0.0]) for dx in offsets_m])


def test_consensus_is_the_candidate_the_best_agree_on():
    # the best-scored is an outlier (0.5 m off); the next four agree within 2 cm
    P = _poses([0.5, 0.0, 0.01, -0.01, 0.02, 3.0])
    s = np.array([1.0, 0.9, 0.9, 0.8, 0.8, 0.7])  # sorted best first
    assert consensus_first(P, s, top=5, temperature=0.5) in (1, 2, 3, 4)
    # the sixth (far off, outside the best five) is never chosen, whatever its position
    assert consensus_first(P, s, top=6, temperature=1e9) != 5


def test_consensus_keeps_a_dominant_score_and_edge_cases():
    P = _poses([0.5, 0.0, 0.01, -0.01, 0.02])
    # one score far above the rest: its own weight makes it the minimum-risk choice
    assert consensus_first(P, np.array([50.0, 0, 0, 0, 0]), top=5, temperature=0.5) == 0
    # off, one candidate: the best-scored
    assert consensus_first(P, np.zeros(5), top=0) == 0
    assert consensus_first(P[:1], np.zeros(1), top=5) == 0


def test_rank_score_standardises_terms_and_selection_covers():
    ll = np.array([-1.0, -2.0, -3.0])
    pl = np.array([-0.30, -0.20, -0.10])  # the opposite order, other units
    s = rank_score(ll, pl, 3)
    np.testing.assert_allclose(s, 0.0, atol=1e-12)  # equal and opposite after standardising
    # a single frame's estimate weighs the (re-measured) plausibility more: its order wins
    assert int(np.argmax(rank_score(ll, pl, 3, plausibility_weight=2.0))) == 2
    assert rank_score(None, None, 4).shape == (4,)
    P = _poses([0.0, 0.001, 1.0, 2.0])
    sel = farthest_point_selection(P, 3, first=[0])
    assert sel[0] == 0 and sel[1] == 3 and sel[2] == 2  # the far ones before the near duplicate


def test_completion_selection_keys_the_pool_consensus_and_covers_the_plausible():
    # a cluster of four near x = 0, two near x = 1, one implausible outlier at x = -5
    P = _poses([0.0, 0.01, 0.02, 0.03, 1.0, 1.01, -5.0])
    score = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])  # the best-scored is in the small cluster
    pl = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])  # the outlier is the least plausible
    sel = completion_selection(P, P, score, pl, 3)
    assert len(sel) == 3 and len(set(sel.tolist())) == 3
    assert sel[0] in (0, 1, 2, 3)  # the consensus of the whole pool, not the best score
    assert 4 in sel and 6 not in sel  # the best-scored is kept; the outlier is not (not among the plausible)
    assert list(score[sel[1:]]) == sorted(score[sel[1:]], reverse=True)
