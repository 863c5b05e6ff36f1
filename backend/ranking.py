"""Ranking a frame's candidates: which hypotheses are kept, in which order, and the aggregate.

The sampler returns more candidates than asked for (``service.OVERSAMPLE``); each gets a score
(:func:`rank_score`: evidence fit + prior agreement + camera prior), the best-scored are kept,
and the one keyed by default (``hypotheses[0]``) is the consensus of the best few
(:func:`consensus_first`, a minimum-Bayes-risk choice; given the top score, so the order stays
sorted; sequences keep the plain score order for their track). Completion keeps a covering set
instead of the best-scored, keyed by the consensus of all its candidates
(:func:`completion_selection`). Pure numpy; no torch, no Blender.
"""

from __future__ import annotations

import numpy as np

#: Weight of the camera prior's log-density in :func:`rank_score` (chosen on S8 frames).
CAMERA_PRIOR_WEIGHT = 0.3
#: The aggregate: softmax(score / temperature)-weighted mean of the best ``AGGREGATE_TOP``.
AGGREGATE_TOP = 10
AGGREGATE_TEMPERATURE = 0.5
#: :func:`consensus_first`: the best ``CONSENSUS_TOP`` scored candidates, weights
#: softmax(score / temperature), the temperature per task (a completion's score is the prior's
#: agreement alone, flatter than a photo's evidence fit); None turns the consensus choice off.
CONSENSUS_TOP: int | None = 5
CONSENSUS_TEMPERATURE = {"estimate": 0.5, "complete": 1.0}


def rank_score(loglik: np.ndarray | None, plausibility: np.ndarray | None, n: int,
               camera_logprior: np.ndarray | None = None) -> np.ndarray:
    """Score of each candidate of one frame: standardised evidence fit + standardised prior agreement
    (+ the camera prior).

    ``loglik`` (``[n]``, mean log-likelihood of the evidence per joint) and ``plausibility``
    (``[n]``, negative denoiser disagreement in metres) are each centred and divided by their spread
    across the frame's candidates, then summed, so neither term wins by its units: with exact 2D
    the fit separates the candidates, with noisy or partial 2D (a detector's) every candidate
    fits within the noise and the prior decides. Measured against a fixed ``loglik + 10
    plausibility`` on 30 frames of the training subject S8 (60 candidates): best-of-1 from noisy
    limb joints 114 -> 91 mm, aggregate 93 -> 79 mm; from exact 2D best-of-1 66 -> 74 mm.
    ``camera_logprior`` (``[n]`` nats: how typical each candidate's camera tilt and subject
    distance are of photos, :class:`backend.prior.camera_prior.CameraPrior`) is added times
    :data:`CAMERA_PRIOR_WEIGHT`, unstandardised (it is a log-density already).
    """

    def z(a):
        a = np.asarray(a, np.float64)
        sd = a.std()
        return (a - a.mean()) / sd if sd > 1e-12 else np.zeros_like(a)

    score = np.zeros(n)
    for term in (loglik, plausibility):
        if term is not None:
            score = score + z(term)
    if camera_logprior is not None:
        score = score + CAMERA_PRIOR_WEIGHT * np.asarray(camera_logprior, np.float64)
    return score


def farthest_point_selection(poses: np.ndarray, k: int, first: list[int]) -> list[int]:
    """``k`` distinct indices of ``poses`` (``[B, J, 3]``) chosen greedily to cover them: ``first``,
    then each time the pose farthest (mean per-joint distance) from those already chosen.

    Completion's hypotheses are meant to span the ways the unknown joints can go. Measured
    (60 candidates, 20 kept, best-of-20 on the unknown joints of the 17-joint set; legs / arms /
    one side, mm): keeping the 20 best-scored: S8 52.3 / 101.0 / 63.9, S9+S11 65.0 / 117.8 / 80.9;
    this selection from the best-scored candidate and the candidates' medoid: S8 52.2 / 83.6 / 58.0,
    S9+S11 65.8 / 106.6 / 72.3 (starting from the best-scored alone: S8 50.8 / 82.2 / 56.3 but
    S9+S11 legs 73.8). Best-of-1 (the best-scored, kept first) is unchanged.
    """
    P = np.asarray(poses, np.float64)
    sel = list(dict.fromkeys(int(i) for i in first))
    dmin = np.min([np.linalg.norm(P - P[i], axis=-1).mean(-1) for i in sel], axis=0)
    while len(sel) < min(k, len(P)):
        i = int(np.argmax(dmin))
        sel.append(i)
        dmin = np.minimum(dmin, np.linalg.norm(P - P[i], axis=-1).mean(-1))
    return sel[:k]


#: :func:`completion_selection`: the covering set is drawn from this share of the candidates, the
#: most plausible ones (the prior's agreement), besides its seeds (chosen on S8, see there).
COMPLETE_PLAUSIBLE_SHARE = 0.75


def completion_selection(rel: np.ndarray, poses: np.ndarray, score: np.ndarray, plausibility: np.ndarray,
                         keep: int) -> np.ndarray:
    """A completion's kept hypotheses: indices into its ``B`` candidates, the default key first.

    The first is the consensus of *all* the candidates (:func:`consensus_first` with ``top = B``,
    task ``"complete"``, on ``poses``): the known joints hardly separate the candidates, so the
    best few by score are no better a jury than the whole pool. The rest, sorted by ``score``,
    cover the ways the unknown joints can go: :func:`farthest_point_selection` on ``rel`` seeded
    with the consensus, the best-scored candidate and the medoid, among the
    :data:`COMPLETE_PLAUSIBLE_SHARE` most plausible candidates (the farthest-point rule otherwise
    picks the prior's least typical samples).

    Args:
        rel: ``[B, J, 3]`` pelvis-relative candidates (metres); poses: ``[B, J, 3]`` the same as
            returned (absolute world); score: ``[B]`` (:func:`rank_score`); plausibility: ``[B]``.
        keep: how many to keep (``< B``).

    Measured (60 candidates, 20 kept; best-of-1 / best-of-20 of the unknown joints of the 17-joint
    set, mm; legs | arms | one side), 12 S8 frames: the best-scored + medoid covering set with the
    consensus of its 5 best 78.8/50.1 | 189.4/81.3 | 96.5/59.7 -> this 82.7/48.8 | 179.2/81.3 |
    96.5/58.6; the same 12 frames drawn as 240 candidates: 87.1/55.6 | 162.2/82.4 | 116.8/60.3 ->
    80.1/49.3 | 151.5/79.8 | 97.2/61.1.
    """
    B = len(poses)
    by_score = np.argsort(-np.asarray(score))
    first = int(by_score[consensus_first(np.asarray(poses)[by_score], np.asarray(score)[by_score], top=B,
                                         task="complete")])
    R = np.asarray(rel, np.float64)
    medoid = int(np.argmin(np.linalg.norm(R[:, None] - R[None], axis=-1).mean(-1).mean(1)))
    seeds = list(dict.fromkeys([first, int(by_score[0]), medoid]))
    n_pl = max(int(round(B * COMPLETE_PLAUSIBLE_SHARE)), keep)
    cand = np.union1d(np.argsort(-np.asarray(plausibility))[:n_pl], seeds)
    sel = cand[farthest_point_selection(R[cand], keep, first=[int(np.searchsorted(cand, i)) for i in seeds])]
    rest = [int(i) for i in sel[np.argsort(-np.asarray(score)[sel])] if i != first]
    return np.asarray([first] + rest)


def aggregate(hyps: np.ndarray, scores: np.ndarray, top: int = AGGREGATE_TOP, temperature: float = AGGREGATE_TEMPERATURE) -> np.ndarray:
    """Score-weighted mean of the best hypotheses (after FMPose3D's RPEA, reprojection-weighted).

    Args:
        hyps: ``[B, J, 3]`` sorted best first; scores: ``[B]`` (log-likelihood-like, higher better).
        top: how many of the best to average; temperature: softmax temperature on the scores.
    Returns:
        ``[J, 3]``.
    """
    k = min(top, len(hyps))
    s = np.asarray(scores[:k], np.float64)
    w = np.exp((s - s.max()) / max(temperature, 1e-6))
    w = w / w.sum()
    return np.einsum("b,bjc->jc", w, np.asarray(hyps[:k], np.float64))


def diversity(poses: np.ndarray) -> float:
    """Mean pairwise per-joint distance between hypotheses (metres); ``[B, J, 3] -> float``."""
    p = np.asarray(poses, np.float64)
    p = p - p[:, :1]
    if len(p) < 2:
        return 0.0
    d = np.linalg.norm(p[:, None] - p[None], axis=-1).mean(-1)
    return float(d.sum() / (len(p) * (len(p) - 1)))




def consensus_first(poses: np.ndarray, scores: np.ndarray, top: int | None = None,
                    temperature: float | None = None, task: str = "estimate") -> int:
    """Index of the hypothesis to key by default: the minimum-Bayes-risk choice among the best.

    Among the ``top`` best-scored of ``poses`` (``[B, J, 3]``, metres, any one frame, sorted best
    first by ``scores`` ``[B]``), the one whose expected MPJPE to the others is smallest, the
    others weighted by ``softmax(score / temperature)``: ``argmin_k sum_b w_b MPJPE(P_k, P_b)``
    (minimum-Bayes-risk decoding, Kumar & Byrne 2004, applied to pose hypotheses). A pose the
    best-scored candidates agree on is a safer key than the single best score, which with noisy
    2D is often a lucky fit with a wrong depth; unlike :func:`aggregate` it is a real sample with
    the skeleton's bone lengths. Measured on the training subject S8 (20 kept of 60 candidates;
    best-of-1 MPJPE, 17 joints, mm; best-scored -> consensus of the best 5, temperature 0.5): lab
    protocol 24 frames exact 68.0 -> 56.2, noisy 79.7 -> 74.9, noisy limbs 84.3 -> 83.9; photo
    protocol away from standing 10 frames noisy 74.2 -> 68.4, swapped legs + cut feet 116.0 -> 107.1.
    Completion (``task="complete"``, temperature 1.0; 20 S8 frames, best-of-1 of the unknown
    joints, legs / arms / one side): 97.9 / 225.3 / 112.4 -> 93.7 / 216.8 / 111.5 (the mean of all
    60 candidates, not a valid pose, would be 94.4 / 207.1 / 112.0: completion's best-of-1 is
    limited by the ambiguity itself, not by the choice). A completion now takes the consensus of
    all its candidates instead (:func:`completion_selection`).

    Returns:
        an index into ``poses`` (0 when ``top`` is None or there is one candidate).
    """
    top = CONSENSUS_TOP if top is None else top
    temperature = CONSENSUS_TEMPERATURE.get(task, 0.5) if temperature is None else temperature
    k = min(int(top or 0), len(poses))
    if k < 2:
        return 0
    P = np.asarray(poses[:k], np.float64)
    s = np.asarray(scores[:k], np.float64)
    w = np.exp((s - s.max()) / max(temperature, 1e-6))
    w = w / w.sum()
    risk = np.linalg.norm(P[:, None] - P[None], axis=-1).mean(-1) @ w
    return int(np.argmin(risk))
