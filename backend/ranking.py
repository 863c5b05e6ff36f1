"""Ranking a frame's candidates: which hypotheses are kept, in which order, and the aggregate.

The sampler returns more candidates than asked for (``service.PHOTO_OVERSAMPLE`` for a single
photo, ``service.OVERSAMPLE`` otherwise); each gets a score
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
#: A single frame's estimate (``PoseService.estimate`` without a sequence): its candidates'
#: plausibility is measured with this many noise draws shared by all of them
#: (``GuidedSampler.plausibility(common=True)``) and weighs this much against the evidence fit in
#: :func:`rank_score` (chosen on S8 frames, see there). Sequences use the sampler's 2 final draws,
#: common to all candidates, at ``backend.sequence.SEQUENCE_PLAUSIBILITY_WEIGHT``; completion keeps
#: the sampler's own plausibility (2 draws, each candidate its own) and weight 1.
#: Measured and not kept (2026-12-04): the common draws taken at yaw-rotated copies of each pose
#: (draw k at 360 k / draws degrees about Z: test-time augmentation over the prior's yaw symmetry,
#: as VideoPose3D's flip augmentation at test time). Photo protocol, away from standing, best-of-1
#: / best-of-20 mm, exact / noisy / 24 mm / swap+truncated: S8 32 frames 42.8 / 28.8, 46.5 / 33.6,
#: 65.3 / 49.8, 82.5 / 58.2 -> 39.7 / 28.6, 55.8 / 36.0, 70.2 / 49.9, 80.4 / 54.9; held-out S9/S11
#: 48 frames 44.8 / 31.3, 56.6 / 38.3, 75.0 / 52.3, 77.1 / 57.2 -> 45.7 / 30.9, 53.5 / 36.3, 74.9 /
#: 51.7, 77.9 / 55.9 (floor subset within 1.2 mm, a little better); lab (``eval lift --frames 30``)
#: best-of-1 42.5 / 67.5 / 84.5 -> 48.6 / 63.2 / 83.3; sequences (their 2 common draws at 0 and
#: 180 degrees) held-out 5 lab clips track 34.6 / 3.66 -> 35.5 / 3.77, S9 8 clips 43.1 / 4.43 ->
#: 43.0 / 4.71. Better on held-out noisy photos, worse on S8 and the lab's exact 2D and the tracks.
PLAUSIBILITY_DRAWS = 8
PLAUSIBILITY_WEIGHT = 2.0
#: The aggregate: softmax(score / temperature)-weighted mean of the best ``AGGREGATE_TOP``.
AGGREGATE_TOP = 10
AGGREGATE_TEMPERATURE = 0.5
#: :func:`consensus_first`: the best ``CONSENSUS_TOP`` scored candidates, weights
#: softmax(score / temperature), the temperature per task (a completion's score is the prior's
#: agreement alone, flatter than a photo's evidence fit); None turns the consensus choice off.
CONSENSUS_TOP: int | None = 5
CONSENSUS_TEMPERATURE = {"estimate": 0.5, "complete": 1.0}


def rank_score(loglik: np.ndarray | None, plausibility: np.ndarray | None, n: int,
               camera_logprior: np.ndarray | None = None, plausibility_weight: float = 1.0,
               reference: int | None = None) -> np.ndarray:
    """Score of each candidate of one frame: standardised evidence fit + standardised prior agreement
    times ``plausibility_weight`` (+ the camera prior).

    ``reference``: standardise with the mean and spread of the first ``reference`` candidates
    only (the sampler's own, when kinematic flips are appended: their order is then the one they
    have without the flips).

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

    A single frame's estimate measures the plausibility with :data:`PLAUSIBILITY_DRAWS` noise
    draws common to all candidates and weighs it :data:`PLAUSIBILITY_WEIGHT` times the fit. Why:
    two draws per candidate, each its own, put about 4 mm of noise (standard deviation, up to 16)
    on each candidate's value, as much as the spread of the 10 best-scored of a frame (3-4.5 mm),
    so the top of the order was half noise: rank correlation with the error within the 10
    best-scored 0.32 / 0.38 / 0.46 / 0.18 -> 0.62 / 0.67 / 0.65 / 0.48 with 8 common draws (S8
    photos away from standing, noisy / 24 mm / swap+truncated; lab noisy). Measured offline on
    the same candidates (S8, 48 frames per row, 60 candidates, 20 kept, the consensus of the best
    5 as before; best-of-1 / best-of-20 mm), 2 own draws and weight 1 -> 8 common draws, weight 2:

    ===========================  ============  ============
    setting                      before        this
    ===========================  ============  ============
    photo away, exact            51.5 / 40.1   50.7 / 40.1
    photo away, noisy (50 mm)    57.3 / 44.7   55.2 / 44.7
    photo away, noisy 35 mm      83.4 / 57.8   74.3 / 57.5
    photo away, noisy 24 mm      76.5 / 55.1   69.6 / 55.1
    photo away, swap             81.3 / 60.3   75.5 / 60.3
    photo away, swap+truncated   105.9 / 77.3  94.1 / 77.3
    photo away, no EXIF          75.6 / 57.2   69.6 / 57.0
    lab exact                    53.3 / 40.0   49.4 / 39.9
    lab noisy                    71.8 / 53.3   71.1 / 52.6
    lab limbs                    86.8 / 60.3   80.6 / 59.8
    ===========================  ============  ============

    Through the service (its own noise draws; the same 48 frames): noisy 52.2 / 44.7, 24 mm
    67.2 / 55.1, swap+truncated 93.8 / 77.3, no EXIF 66.7 / 57.0, lab noisy 70.6 / 52.7.
    Mean over the photo rows 75.9 -> 69.9 (frames 0-23: 81.6 -> 75.3, frames 24-47: 70.3 -> 64.4),
    lab 70.7 -> 67.0; per frame 102 better and 51 worse by more than 10 mm, tops worse than 200 mm
    8 -> 3. Common draws alone (2 of them, weight 2) gave 70.5 / 69.2; 8 own draws 70.9-72.9 /
    69.7-71.7 at weights 1-2; weights 1.5-4 and the camera prior's 0-1 within about a millimetre.
    No better than the consensus of the best 5 at temperature 0.5 (mean of the photo rows with the
    new plausibility 69.9): the best-scored alone 71.2, the consensus of the best 3-60 at 0.25-1
    69.7-78.9 (at 2: up to 98.5), the heaviest mode (the candidate with the most softmax weight
    within 40-120 mm of it, hard or Gaussian) 70.8-90.6. Not kept either: the camera's height
    above the lowest joint and robust reprojection errors (median, 80th percentile, max) as
    terms (rank correlation with the error within the 10 best-scored 0.0-0.3, below the fit's).
    The plausibility's noise level (``GuidedSampler.plausibility``, t = 100 of the 1000 training
    steps) against others, offline on the same pools with kinematic flips (S8 photo away, 24
    frames x exact / noisy / 24 mm / swap+truncated, mean best-of-1 / best-of-20 mm): t = 100
    65.6 / 48.4, t = 50 66.2 / 48.5, 200 72.1 / 48.7, 400 80.2 / 52.2, the mean of 100 and 200
    67.7 / 48.6, of all four 70.6 / 49.1.
    """

    def z(a):
        a = np.asarray(a, np.float64)
        ref = a[:reference] if reference else a
        sd = ref.std()
        return (a - ref.mean()) / sd if sd > 1e-12 else np.zeros_like(a)

    score = np.zeros(n)
    if loglik is not None:
        score = score + z(loglik)
    if plausibility is not None:
        score = score + plausibility_weight * z(plausibility)
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
#: Measured and not kept (2026-12-04): a completion's plausibility from 8 noise draws common to all
#: candidates (as a single photo's) instead of each candidate's own 2. 17-joint best-of-1 /
#: best-of-20 mm, legs | arms | one side; own 2 draws: S8 24 frames 78.4 / 47.5 | 168.3 / 87.1 |
#: 90.3 / 51.5, held-out S9/S11 48 frames 126.0 / 70.1 | 188.3 / 110.4 | 107.3 / 70.0. Common 8 for
#: score and share: S8 76.0 / 49.4 | 159.9 / 85.4 | 83.9 / 52.8, held-out 120.5 / 71.4 | 188.8 /
#: 110.6 | 107.2 / 71.8 (share 1.0: held-out best-of-20 74.8 / 111.0 / 72.0); common 8 for the
#: score (consensus and order) only, the share from the own draws: S8 76.2 / 47.7 | 148.5 / 86.8 |
#: 85.9 / 53.1, held-out 122.6 / 73.0 | 190.3 / 111.0 | 108.1 / 69.4. S8's large best-of-1 gains
#: do not carry to the held-out subjects: S8 is one of the prior's training subjects, so its
#: plausibility judges S8 poses better than new ones (the same pattern as the sequences' re-scoring
#: beside ``backend.sequence.SEQUENCE_PLAUSIBILITY_WEIGHT``).
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
