"""Pose assist: one completed pose per update, fast and continuous under small moves of the pins.

Interactive completion (what Cascadeur calls AutoPosing): while the animator drags a few pinned
joints, every update asks for ONE hypothesis of the whole body that reproduces the pins. Two
things make it usable live:

* **few denoising steps**: a warm-started update runs ``ASSIST_STEPS`` DDIM steps from an
  intermediate noise level instead of the full schedule;
* **warm start from the previous pose** (SDEdit, Meng et al. 2022): ``previous`` is noised to step
  ``strength * T`` with noise fixed by the seed, then denoised under the guidance of the pins
  (x0 refinement + DPS, :mod:`backend.prior.sampler`), once for the new pins and once for the
  pins where ``previous`` has them; the update adds the difference of the two samples to
  ``previous`` (:func:`warm_update`). Deterministic DDIM (eta = 0) and shared noise make that a
  smooth function of the pins, zero when they do not move: a small move of the pins gives a
  small change of the pose, no jumps between modes of the prior and no drift at rest (measured:
  a plain SDEdit restart from ``previous`` moved a resting pose by 2-13 cm per update).

Without ``previous`` (the first update of a drag) a short cold completion draws a few candidates
and keeps the best-ranked one (:func:`backend.ranking.rank_score`).

The yaw of a warm-started update is the previous pose's own (the prior is yaw-invariant, so the
sample is taken in world axes); its placement is solved from the pins. Every known joint is
reproduced exactly; the other bones keep the canonical lengths (:func:`rebuild_bones`).
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import torch

from backend.errors import InputError
from backend.http import schemas
from backend.prior.guidance import Conditions, GuidanceWeights
from backend.prior.sampler import GuidedSampler
from backend.prior.terms import KnownDirectionsTerm, KnownJointsTerm
from backend.skeleton import JOINT_NAMES, PARENTS

#: DDIM steps of a warm-started update (measured in ``posediff bench``: two samples of 6 keep it under 150 ms).
ASSIST_STEPS = 6
#: SDEdit strength of a warm start: the previous pose is noised to step ``strength * T``.
ASSIST_STRENGTH = 0.3
#: Fraction of the way toward the prior's own completion that each update relaxes (0 = none).
ASSIST_SETTLE = 0.1
#: Pin motion (metres) at which an update relaxes by the full ``ASSIST_SETTLE``.
SETTLE_DISTANCE = 0.02
#: DPS step of a warm update (0 = off): DPS steps are normalised by the residual, which is not
#: smooth where the residual is small (measured: joints far from a moved pin jumped 5 cm).
WARM_DPS = 0.0
#: Cold start (no ``previous``): DDIM steps and candidates drawn, the best-ranked one kept.
COLD_STEPS = 16
COLD_CANDIDATES = 8


def assist(service, req: schemas.AssistRequest, progress=None, cancel=None) -> schemas.AssistResponse:
    """One completed pose for the pins of ``req`` (world frame, metres); see the module docstring.

    Args:
        service: a :class:`backend.service.PoseService` (its loaded prior is used).
        req: validated request; ``previous`` is ``[J, 3]`` in ``joint_names`` order, world frame.
    Returns:
        :class:`schemas.AssistResponse` with ``joints`` ``[J, 3]`` world frame, metres; every known
        joint reproduced.
    Raises:
        InputError: ``previous`` is not a body pose (e.g. all joints at one point).
        Cancelled: ``cancel()`` became true between denoising steps.
    """
    from backend.service import joint_array

    t0 = time.perf_counter()
    known, known_w = joint_array(req.known)
    dirs, dirs_w = joint_array(req.known_directions)
    seed = 0 if req.seed is None else req.seed
    with _one_thread():
        if req.previous is not None:
            prev = np.asarray(req.previous, np.float64)
            spread = np.linalg.norm(prev - prev.mean(0), axis=-1).max()
            if not 0.05 < spread < 10.0:
                raise InputError("previous", f"not a body pose (joints within {spread:.3g} m of their centre): send the "
                                             "last assist result in joint_names order, or leave 'previous' out")
            joints = warm_update(service.model, prev, known, known_w, dirs, dirs_w, seed,
                                 strength=req.strength if req.strength is not None else ASSIST_STRENGTH,
                                 steps=req.steps or ASSIST_STEPS, settle=ASSIST_SETTLE, cancel=cancel)
        else:
            joints = cold_completion(service.model, known, known_w, dirs, dirs_w, seed, req.steps or COLD_STEPS, cancel)
        smp = GuidedSampler(service.model)
        x = torch.tensor(joints - joints[:1], dtype=torch.float32, device=smp.device)[None]
        plaus = float(smp.plausibility(x)[0])
    if progress is not None:
        progress(1.0)
    return schemas.AssistResponse(
        joint_names=list(JOINT_NAMES), joints=np.round(joints, 5).tolist(), plausibility_mm=round(-plaus * 1000, 2),
        warm_start=req.previous is not None, time_ms=round((time.perf_counter() - t0) * 1000, 1))


def _conditions(known, known_w, dirs, dirs_w, fix_yaw: bool) -> Conditions:
    cond = Conditions(fix_yaw=fix_yaw)
    if known_w.any():
        cond.known, cond.known_w = known, known_w
    if dirs_w.any():
        cond.directions, cond.directions_w = dirs, dirs_w
    return cond


def cold_completion(model, known, known_w, dirs, dirs_w, seed: int, steps: int, cancel=None) -> np.ndarray:
    """First update of a drag: best-ranked of ``COLD_CANDIDATES`` short guided samples.

    ``known`` ``[J, 3]`` world metres with ``known_w`` ``[J]`` 0/1; ``dirs``/``dirs_w`` likewise for
    unit bone directions. Returns ``[J, 3]`` world metres (pelvis at the origin if only directions
    are known), bones rebuilt as in :func:`rebuild_bones`.
    """
    from backend.ranking import rank_score

    cond = _conditions(known, known_w, dirs, dirs_w, fix_yaw=False)
    res = GuidedSampler(model, steps=steps, eta=0.5).sample(COLD_CANDIDATES, cond, seed=seed, cancel=cancel)
    k = int(np.argmax(rank_score(res.loglik, res.plausibility, COLD_CANDIDATES)))
    return rebuild_bones(res.world_rel[k] + (res.world_root[k] if res.world_root is not None and cond.has_known else 0.0),
                         known_w)


def warm_update(model, prev: np.ndarray, known, known_w, dirs, dirs_w, seed: int, strength: float, steps: int,
                settle: float, cancel=None) -> np.ndarray:
    """One update of a drag, warm-started from ``prev`` (``[J, 3]`` world metres).

    Let ``S(pins)`` be the guided SDEdit sample from ``prev`` (noised to ``strength * T`` with the
    seed's noise, ``steps`` deterministic DDIM steps, yaw kept, placement solved from the pins).
    The update is the finite difference

        ``X = prev + S(new pins) - S(pins of prev)`` blended as ``(1 - settle) X + settle S(new pins)``,

    where "pins of prev" are ``prev``'s own joints (and bone directions) at the pinned joints. The
    first term is how the prior moves the unknown joints when the pins move (zero when they do
    not: no drift of a pose at rest); ``settle`` relaxes the pose toward the prior's own completion
    a little at each update, scaled by how far the pins moved (full at ``SETTLE_DISTANCE``), so a
    pose whose pins rest does not move at all. The two samples are one batch with shared noise
    (:class:`PinsTerm`), so ``X`` is smooth in the pins. Known
    joints come out exactly; unknown bones are then rebuilt with canonical lengths
    (:func:`rebuild_bones`). Returns ``[J, 3]`` world metres.
    """
    from backend.skeleton import BONE_LENGTHS

    prev_dirs = prev - prev[[max(p, 0) for p in PARENTS]]
    old_dirs = prev_dirs / np.maximum(np.linalg.norm(prev_dirs, axis=-1, keepdims=True), 1e-9)
    old_known = np.where(known_w[:, None] > 0, prev, 0.0)
    strength = float(np.clip(strength, 0.05, 1.0))
    smp = GuidedSampler(model, steps=max(steps, math.ceil(steps / strength)), eta=0.0,
                        weights=GuidanceWeights.for_prior(model, dps_scale=WARM_DPS))
    # one batch of two: hypothesis 0 guided by the new pins, 1 by prev's own, same noise
    terms = []
    if known_w.any():
        terms.append(PinsTerm(np.stack([known, old_known]), known_w))
    if dirs_w.any():
        terms.append(PinDirectionsTerm(np.stack([dirs, np.where(dirs_w[:, None] > 0, old_dirs, 0.0)]), dirs_w))
    res = smp.sample(2, Conditions(fix_yaw=True, terms=terms), seed=seed, init=prev, strength=strength,
                     cancel=cancel, shared_noise=True)
    # directions only: the samples are pelvis-centred; place them at prev's pelvis
    s_new, s_old = res.world_rel + (res.world_root[:, None] if known_w.any() else prev[0])
    # relax in proportion to how far the pins moved: nothing moves while they rest
    moved = np.linalg.norm(known - old_known, axis=-1)[known_w > 0].max(initial=0.0)
    turned = (np.linalg.norm(dirs - old_dirs, axis=-1) * BONE_LENGTHS)[dirs_w > 0].max(initial=0.0)
    settle = settle * min(1.0, max(moved, turned) / SETTLE_DISTANCE)
    X = (1.0 - settle) * (prev + s_new - s_old) + settle * s_new
    X[known_w > 0] = known[known_w > 0]
    return rebuild_bones(X, known_w)


class PinsTerm(KnownJointsTerm):
    """:class:`~backend.prior.terms.KnownJointsTerm` with one set of known joints per hypothesis
    (``known`` ``[B, J, 3]`` world metres; ``weights`` ``[J]`` shared): pose assist samples the
    new pins and the previous pose's own pins in one batch."""

    def prepare(self, state):
        super().prepare(state)
        state.world_points = (self.known, self.w)  # [B, J, 3]: align_world's mean shift broadcasts

    def update(self, X, step):
        P = self.known - step.world_t[:, None]
        self.tgt = (P @ step.world_R) @ step.R.transpose(1, 2)


class PinDirectionsTerm(KnownDirectionsTerm):
    """:class:`~backend.prior.terms.KnownDirectionsTerm` with one set of directions per hypothesis
    (``[B, J, 3]`` unit, world frame; ``weights`` ``[J]`` shared)."""

    def update(self, X, step):
        self.work = (self.dirs @ step.world_R) @ step.R.transpose(1, 2)


def rebuild_bones(X: np.ndarray, fixed_w: np.ndarray) -> np.ndarray:
    """Canonical bone lengths for the joints not in ``fixed_w``, root outward.

    Each free joint is put at its canonical bone length from its (already rebuilt) parent along
    the current bone direction; a free joint with a fixed child (a knee above a pinned ankle) is
    put where both of its bones have their canonical lengths, nearest its current position
    (two-bone IK: the circle where the spheres about the parent and the child meet); fixed joints
    (``fixed_w > 0``) stay where they are, so only an out-of-reach pin stretches a bone.
    ``X`` ``[J, 3]`` metres; returns ``[J, 3]``.
    """
    from backend.skeleton import BONE_LENGTHS

    out = np.array(X, np.float64)
    fixed_child = {}
    for c, p in enumerate(PARENTS):
        if p >= 0 and fixed_w[c] > 0:
            fixed_child.setdefault(p, c)
    for j, p in enumerate(PARENTS):
        if p < 0 or fixed_w[j] > 0:
            continue
        L = float(BONE_LENGTHS[j])
        if j in fixed_child:
            c = fixed_child[j]
            out[j] = _two_bone(out[p], X[c], L, float(BONE_LENGTHS[c]), X[j])
            continue
        d = X[j] - X[p]
        n = np.linalg.norm(d)
        out[j] = out[p] + (d / n * L if n > 1e-9 else d)
    return out


#: Soft-IK zone (metres): within this of full extension a limb straightens gradually instead of
#: snapping (rigid two-bone IK moves the middle joint like sqrt(distance) there: a jump).
SOFT_IK = 0.03


def _two_bone(a: np.ndarray, c: np.ndarray, la: float, lc: float, hint: np.ndarray) -> np.ndarray:
    """The middle joint of a two-bone chain ``a -> j -> c`` (bone lengths ``la``, ``lc``): on the
    circle at ``la`` from ``a`` and ``lc`` from ``c``, on ``hint``'s side of the line a-c.

    Near full extension the reach is softened (soft IK, as in animation rigs): the chain is solved
    for a target pulled toward ``a`` by ``SOFT_IK * exp(-(d - d0) / SOFT_IK)`` beyond
    ``d0 = la + lc - SOFT_IK``, so the joint moves smoothly and the last bone stretches by at most
    a few millimetres before the pin is out of reach (then it stretches as needed).
    """
    ac = c - a
    d = float(np.linalg.norm(ac))
    if d < 1e-9:
        return a + (hint - a) / max(np.linalg.norm(hint - a), 1e-9) * la
    u = ac / d
    d0 = la + lc - SOFT_IK
    if d > d0:
        d = la + lc - SOFT_IK * math.exp(-(d - d0) / SOFT_IK)
    d = max(d, abs(la - lc) + 1e-6)
    x = (d * d + la * la - lc * lc) / (2 * d)  # along a->c
    r = math.sqrt(max(la * la - x * x, 0.0))
    v = (hint - a) - np.dot(hint - a, u) * u
    nv = np.linalg.norm(v)
    if nv < 1e-9:
        v = np.cross(u, [0.0, 0.0, 1.0])
        nv = max(np.linalg.norm(v), 1e-9)
    return a + x * u + r * v / nv


@contextlib.contextmanager
def _one_thread():
    """One intra-op thread for the duration (a one-pose batch is too small to split; on a
    loaded 2-core machine two threads waiting on each other made an update 20x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
