"""Guidance: the terms that steer the unconditional prior at sampling time, and how they combine.

Snelgar et al. 2026 guide an unconditional pose diffusion model with geometric evidence: the 2D
keypoint detector's heatmaps at the projected joints (estimation), known 3D joints (completion),
nothing (generation). Here every DDIM step's x0 estimate (Song et al. 2021) is *refined* with the
evidence and the DDIM update continues from the refined x0 ("x0 refinement" guidance, as in
Platypose). The refinement is one Gauss-Newton step of the MAP problem
``min_X sum_k a_k ||d_k(X)||^2 + b ||X - X_hat||^2`` around the denoiser's estimate ``X_hat``
(precision ``b`` from the noise level, :func:`backend.prior.geometry.prior_precision`), solved
bone by bone down the kinematic tree with the canonical bone lengths (:func:`tree_walk`): each
bone's direction is the precision-weighted blend of the denoiser's direction and the direction
each evidence term asks for,

    dir_j = normalise((b * d_prior_j + sum_k a_kj * d_kj) / (b + sum_k a_kj))

so the skeleton is a hard constraint, which removes the scale-depth ambiguity (NOTES.md).

The interface (one object per piece of evidence)
------------------------------------------------
A term is a :class:`GuidanceTerm`; every hook has a no-op default, so a term overrides only what
it needs. The sampler (:class:`backend.prior.sampler.GuidedSampler`) calls them like this and
knows nothing else about any term::

    terms = build_terms(cond)                 # backend.prior.terms: built-in terms + cond.terms
    for term in terms: term.prepare(state)    # once per sample(): tensors, state.pitch, ...
    ...each DDIM step:  x0 = refine(x0_hat, state, abar, frac, prior)   # and once more to polish
        # refine(): per inner step, every term.update(X, step), then tree_walk(), which asks
        # every term.bone_targets(level, parent, d_prior, step) -> (directions, precision) | None
    ...at the end:      term.finish(final, result) -> (log-likelihood [B], joints counted) | None

* :class:`SampleState` (one per ``sample()`` call): the batch, the device, the weights, the
  camera tilt being solved (``pitch``/``roll``, set by a term that sees through the camera),
  world correspondences for the yaw fit (``world_points``/``world_vectors``), timings.
* :class:`RefineStep` (one per refinement): noise level, progress ``frac``, prior precision,
  the working frame (``R``: upright model frame -> working frame, the camera frame when there
  is a camera, else identity), the denoiser's estimate in it (``Xh``) and the yaw + placement
  taking the model frame to the request's world (``world_R``, ``world_t``, or None).
* :meth:`GuidanceTerm.bone_targets` returns, for the joints of one tree level
  (:class:`backend.prior.geometry.TreeLevel`), the unit directions parent->joint it wants
  (``[B, n, 3]``, working frame) and their precisions (``[B, n, 1]``, ``[1, n, 1]`` or a float,
  1/m^2 at bone length: 0 where the term has nothing to say).
* :attr:`GuidanceTerm.dps_joints` (``[J]`` or None): joints whose refined x0 the DPS step
  (Chung et al. 2023) pulls the denoiser toward, so the evidence reaches unseen joints.

Built-in terms (:mod:`backend.prior.terms`): :class:`~backend.prior.terms.Evidence2DTerm`
(keypoints or heatmaps through the perspective camera), :class:`~backend.prior.terms.KnownJointsTerm`,
:class:`~backend.prior.terms.KnownDirectionsTerm`.

Adding a term (say, temporal smoothness toward the previous frame's bone directions) touches
neither the DDIM loop nor the tree walk::

    class PreviousFrameTerm(GuidanceTerm):
        '''Pull each bone toward its direction in the previous frame (unit ``[J, 3]``, upright frame).'''

        def __init__(self, prev_dirs, sigma=0.05):
            self.prev, self.sigma = prev_dirs, sigma

        def prepare(self, state):
            self.d = torch.as_tensor(self.prev, dtype=torch.float32, device=state.device)
            self.a = state.weights.scale / self.sigma**2

        def update(self, X, step):
            self.d_work = self.d[None] @ step.R.transpose(1, 2)  # upright -> working frame

        def bone_targets(self, level, parent, d_prior, step):
            return self.d_work[:, level.joints], self.a

    sampler.sample(20, Conditions(evidence=ev, terms=[PreviousFrameTerm(prev)]))

A term the service builds for every request of some kind belongs in
:func:`backend.prior.terms.build_terms` (with the field of :class:`Conditions` that carries its
evidence); a caller with its own evidence just passes the term in ``Conditions.terms``. Terms are stateful within one ``sample()`` call
(``prepare`` resets them), so a term object is not shared between threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from backend.prior.camera_prior import CameraPrior
from backend.prior.evidence import Evidence2D, HeatmapEvidence, KeypointEvidence
from backend.prior.geometry import (
    MIN_DEPTH,
    TreeLevel,
    prior_precision,
    solve_root_translation,
    tilt_batch,
    tree_levels,
    unit,
    yaw_align,
)
from backend.skeleton import BONE_LENGTHS, NUM_JOINTS, PARENTS

# names importable from here as before the split into evidence / geometry
__all__ = [
    "MIN_DEPTH", "Conditions", "Evidence2D", "FinalPose", "GuidanceTerm", "GuidanceWeights", "HeatmapEvidence",
    "KeypointEvidence", "RefineStep", "SampleState", "prior_precision", "refine", "solve_root_translation",
    "tree_walk", "yaw_align",
]


@dataclass
class GuidanceWeights:
    """Precisions (1/m^2 unless noted) and step controls of the guidance.

    ``scale`` multiplies every evidence precision (the "guidance scale"); ``known_sigma`` and
    ``direction_sigma`` (m at bone length) are the tolerances of known joints and directions.
    """

    scale: float = 1.0
    known_sigma: float = 0.005
    direction_sigma: float = 0.01
    inner_steps: int = 2
    prior_cap: float = 300.0  # max precision of the denoiser's x0 (1/m^2): r_t >= 6 cm
    polish_steps: int = 2  # extra inner steps on the final x0 with the prior at ``polish_prior``
    polish_prior: float = 400.0  # 1/m^2 (r = 5 cm)
    dps_scale: float = 1.0  # DPS step on x_t toward the refined x0 of known joints/directions (0 = off)
    retilt_at: tuple = (0.5, 1.0)  # fractions of the DDIM steps where camera pitch/roll are re-estimated
    #: the re-estimates after the first search only the grid neighbours (one step of view pitch and
    #: of roll) of each hypothesis' tilt (sequences, ``backend.sequence.RETILT_LOCAL``)
    retilt_local: bool = False
    #: prior over camera tilt and subject distance for photos of unknown orientation (None = the
    #: older plausibility-only argmax over -15..45 degrees pitch, level roll)
    camera_prior: CameraPrior | None = field(default_factory=CameraPrior)
    tilt_sample: bool = False  # draw each hypothesis' tilt from the grid posterior (False: its argmax)
    tilt_spread: bool = False  # start the hypotheses at pitches spread over the camera prior (False: 8 degrees)
    #: Student-t degrees of freedom of the 2D residuals (0 = Gaussian); 16 with the two kinds of
    #: swap hypotheses (S8: photo noisy best-of-20 52.1 -> 48.9 mm vs 8, lab alike; see Evidence2DTerm)
    robust_nu: float = 16.0
    #: per hypothesis, take a limb pair's 2D labels swapped when that fits better (half the
    #: hypotheses from 0.3 of the steps, half from 0.7: ``backend.prior.terms.SWAP_SHARE``)
    swap_limbs: bool = True

    #: the fields a weights file may set (``guidance`` in its metadata, :func:`backend.prior.model.save_prior`)
    STORABLE = ("scale", "known_sigma", "direction_sigma", "inner_steps", "prior_cap", "polish_steps",
                "polish_prior", "dps_scale", "robust_nu")

    @classmethod
    def check_stored(cls, stored: dict) -> dict:
        """``stored`` (a weights file's ``guidance`` dict) if every entry names a field of
        :attr:`STORABLE` with a finite number (not a bool); checked when a prior is saved and
        loaded (:mod:`backend.prior.model`), so a bad file fails at start-up, not on a request.

        Raises:
            ValueError: names the bad entries and the allowed fields.
        """
        if not isinstance(stored, dict):
            raise ValueError(f"the prior's guidance settings must be a JSON object, not {type(stored).__name__}")
        bad = [k for k, v in stored.items()
               if k not in cls.STORABLE or isinstance(v, bool) or not isinstance(v, (int, float))
               or not np.isfinite(v)]
        if bad:
            raise ValueError(f"the prior's weights file stores unknown or non-numeric guidance settings {bad}; "
                             f"allowed: {', '.join(cls.STORABLE)}")
        return stored

    @classmethod
    def for_prior(cls, model, **overrides) -> GuidanceWeights:
        """The weights a prior was tuned with: these defaults, then the ``guidance`` dict its
        weights file stores (``model.guidance``, set by :func:`backend.prior.model.load_prior`),
        then ``overrides``. A prior whose x0 estimate is more precise near the data (a
        v-predicting one) can so carry a higher ``prior_cap`` / ``polish_prior`` without changing
        the shipped prior's behaviour.

        Raises:
            ValueError: the stored dict names a field outside :attr:`STORABLE` or a non-number.
        """
        stored = cls.check_stored(getattr(model, "guidance", None) or {})
        # each value as its field's type (int or float: the class default's)
        w = cls(**{k: type(getattr(cls, k))(v) for k, v in stored.items()})
        for k, v in overrides.items():
            setattr(w, k, v)
        return w


@dataclass
class Conditions:
    """Evidence for one frame. All optional; none at all = unconditional generation.

    Attributes:
        evidence: 2D likelihood (keypoints or heatmaps), normalised image coordinates.
        rotation: world->camera rotation ``[3, 3]`` when the camera orientation is known.
        known: ``[J, 3]`` known joint positions, world frame, metres (rows of unknown joints ignored).
        known_w: ``[J]`` 1 for known joints, else 0.
        directions: ``[J, 3]`` known unit directions parent->joint, world frame.
        directions_w: ``[J]`` 1 where a direction is known.
        fix_yaw: keep the world yaw of known joints as given (variations) instead of solving it.
        terms: further :class:`GuidanceTerm` objects, applied after the built-in ones.
    """

    evidence: Evidence2D | None = None
    rotation: np.ndarray | None = None
    known: np.ndarray | None = None
    known_w: np.ndarray | None = None
    directions: np.ndarray | None = None
    directions_w: np.ndarray | None = None
    fix_yaw: bool = False
    terms: list = field(default_factory=list)

    @property
    def has_2d(self) -> bool:
        return self.evidence is not None and self.evidence.num_visible > 0

    @property
    def has_known(self) -> bool:
        return self.known_w is not None and float(np.sum(self.known_w)) > 0

    @property
    def has_directions(self) -> bool:
        return self.directions_w is not None and float(np.sum(self.directions_w)) > 0


@dataclass
class SampleState:
    """What the sampler and the terms share during one ``sample()`` call.

    Attributes:
        cond: the evidence; batch: ``B``; device; weights; terms: the active terms, in order.
        pitch, roll: ``[B]`` camera tilt (radians) per hypothesis, or None without a camera.
        fixed_tilt: the tilt is given (a known camera rotation) and not re-estimated.
        subject_ray: ``[B, 3]`` camera-frame direction towards the subject (the hypotheses' pelvis,
            at first the pelvis' 2D anchor, or the 2D centroid where it is not seen), or None; the camera prior weighs the pitch
            at which the subject is seen along it (:func:`backend.prior.camera_prior.view_pitch`).
        world_points: (``[J, 3]`` world targets, ``[J]`` weights) for the yaw + placement fit.
        world_vectors: (``[J, 3]`` unit world directions parent->joint, ``[J]`` weights), yaw only.
        dps_mask: ``[J]`` union of the terms' :attr:`~GuidanceTerm.dps_joints` (None: no DPS step).
        generator: the sample's random generator (seeded), for terms and tilt draws that need one.
        timings: seconds per part (``denoiser``, ``guidance``, ``root_solve``).
    """

    cond: Conditions
    batch: int
    device: torch.device
    weights: GuidanceWeights
    terms: list = field(default_factory=list)
    pitch: torch.Tensor | None = None
    roll: torch.Tensor | None = None
    fixed_tilt: bool = False
    subject_ray: torch.Tensor | None = None
    world_points: tuple[torch.Tensor, torch.Tensor] | None = None
    world_vectors: tuple[torch.Tensor, torch.Tensor] | None = None
    dps_mask: torch.Tensor | None = None
    generator: torch.Generator | None = None
    timings: dict = field(default_factory=lambda: {"denoiser": 0.0, "guidance": 0.0, "root_solve": 0.0})

    @property
    def has_camera(self) -> bool:
        return self.pitch is not None

    @property
    def world_anchored(self) -> bool:
        return self.world_points is not None or self.world_vectors is not None

    def camera_rotation(self) -> torch.Tensor:
        """``[B, 3, 3]`` upright model frame -> camera frame, from ``pitch`` and ``roll``."""
        return tilt_batch(self.pitch, self.roll)

    def align_world(self, Xm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Yaw ``[B, 3, 3]`` + translation ``[B, 3]`` taking model-frame poses ``Xm`` (``[B, J, 3]``,
        metres) onto ``world_points`` / ``world_vectors`` (2D Kabsch, :func:`yaw_align`);
        identity yaw with ``cond.fix_yaw``. World = ``Xm @ R^T + t``."""
        B = Xm.shape[0]
        if self.cond.fix_yaw:
            R = torch.eye(3, device=Xm.device).expand(B, 3, 3)
            if self.world_points is not None:
                known, w = self.world_points
                t = ((known - Xm) * w[:, None]).sum(1) / w.sum().clamp(min=1e-8)
            else:
                t = Xm.new_zeros(B, 3)
            return R, t
        par = torch.tensor([max(p, 0) for p in PARENTS], device=Xm.device)
        vs = vd = vw = None
        if self.world_vectors is not None:
            dirs, vw = self.world_vectors
            vs = Xm - Xm[:, par]
            vd = dirs * torch.tensor(BONE_LENGTHS, device=Xm.device)[:, None]
        if self.world_points is not None:
            return yaw_align(Xm, self.world_points[0], self.world_points[1], vs, vd, vw)
        R, _ = yaw_align(Xm, Xm.new_zeros(NUM_JOINTS, 3), Xm.new_zeros(NUM_JOINTS), vs, vd, vw)
        return R, Xm.new_zeros(B, 3)


@dataclass
class RefineStep:
    """One refinement of an x0 estimate (a DDIM step, or the final polish when ``abar`` is None).

    Attributes:
        state: the sample's state.
        abar: cumulative alpha of the step (None = final polish); frac: 0..1 through the steps.
        prior: precision ``b`` of the denoiser's x0 (1/m^2).
        R: ``[B, 3, 3]`` upright model frame -> working frame (camera frame, or identity).
        Xh: ``[B, J, 3]`` the denoiser's x0 in the working frame, metres.
        world_R, world_t: model frame -> request world (``[B, 3, 3]``, ``[B, 3]``), or None.
    """

    state: SampleState
    abar: float | None
    frac: float
    prior: float
    R: torch.Tensor
    Xh: torch.Tensor
    world_R: torch.Tensor | None = None
    world_t: torch.Tensor | None = None

    def world_to_working(self, P: torch.Tensor, translate: bool = True) -> torch.Tensor:
        """``[J, 3]`` world points (or directions, ``translate=False``) -> ``[B, J, 3]`` working frame."""
        P = P[None] - self.world_t[:, None] if translate else P[None].expand(self.R.shape[0], -1, -1)
        return (P @ self.world_R) @ self.R.transpose(1, 2)


@dataclass
class FinalPose:
    """The final x0 handed to :meth:`GuidanceTerm.finish`.

    Attributes:
        model: ``[B, J, 3]`` upright model frame, pelvis at the origin, metres.
        world: ``[B, J, 3]`` in the request's world (after the yaw + placement fit) when the
            evidence fixes it, else None; a term may replace it (known joints snap exactly).
    """

    model: torch.Tensor
    world: torch.Tensor | None = None


class GuidanceTerm:
    """One piece of evidence steering the sampler; see the module docstring for the call order."""

    #: ``[J]`` weights of the joints this term constrains in 3D (DPS target), or None.
    dps_joints: np.ndarray | None = None

    def prepare(self, state: SampleState) -> None:
        """Once per ``sample()``, before the first step: move data to ``state.device``; set up the
        camera (``state.pitch``/``roll``) or world correspondences (``state.world_points``/``vectors``)."""

    def update(self, X: torch.Tensor, step: RefineStep) -> None:
        """Before each inner step's tree walk: ``X`` ``[B, J, 3]`` current estimate (working frame, m)."""

    def bone_targets(self, level: TreeLevel, parent: torch.Tensor, d_prior: torch.Tensor,
                     step: RefineStep) -> tuple[torch.Tensor, torch.Tensor | float] | None:
        """Directions wanted for the bones into ``level.joints``.

        Args:
            level: the tree level; parent: ``[B, n, 3]`` refined parent positions (working frame);
            d_prior: ``[B, n, 3]`` the denoiser's unit bone directions.
        Returns:
            (unit directions ``[B, n, 3]``, precisions broadcastable to ``[B, n, 1]``, 1/m^2) or None.
        """
        return None

    def finish(self, final: FinalPose, result) -> tuple[torch.Tensor, int] | None:
        """On the final pose: fill this term's fields of ``result`` (a ``SampleResult``) and return
        (summed log-likelihood of the evidence ``[B]``, number of joints it covers), or None."""
        return None


# ------------------------------------------------------------------------------------ refinement


def refine(Xh_m: torch.Tensor, state: SampleState, abar: float | None, frac: float, prior: float) -> torch.Tensor:
    """Refine the denoiser's x0 with every term of ``state``: ``inner_steps`` (``polish_steps`` when
    ``abar`` is None) of :meth:`GuidanceTerm.update` + :func:`tree_walk`.

    Args:
        Xh_m: ``[B, J, 3]`` the denoiser's x0, upright model frame, metres.
        abar, frac, prior: see :class:`RefineStep`.
    Returns:
        ``[B, J, 3]`` refined x0, upright model frame, metres.
    """
    B = Xh_m.shape[0]
    R = state.camera_rotation() if state.has_camera else torch.eye(3, device=Xh_m.device).expand(B, 3, 3)
    step = RefineStep(state, abar, frac, prior, R, Xh_m @ R.transpose(1, 2))
    if state.world_anchored:
        step.world_R, step.world_t = state.align_world(Xh_m)
    X = step.Xh
    for _ in range(state.weights.inner_steps if abar is not None else state.weights.polish_steps):
        for term in state.terms:
            term.update(X, step)
        X = tree_walk(X, step.Xh, state.terms, prior, step)
    return X @ R


def tree_walk(X: torch.Tensor, Xh: torch.Tensor, terms: list[GuidanceTerm], prior: float,
              step: RefineStep | None) -> torch.Tensor:
    """Rebuild the pose root-outward with canonical bone lengths (the module's blend formula).

    Joints at the same depth of the kinematic tree are independent given their parents, so the
    walk runs one tree level at a time, batched over joints. ``X``, ``Xh``: ``[B, J, 3]`` metres
    (working frame; ``Xh`` gives the prior's directions); ``prior``: its precision ``b``.
    Returns ``[B, J, 3]`` with the root at the origin.
    """
    out = torch.zeros_like(X)
    for level in tree_levels(X.device):
        js, ps, L = level
        # index_select / index_copy_: the same gathers as X[:, js] and out[:, js] = ..., without
        # advanced indexing's overhead (10x on these [B, n, 3] tensors on the CPU)
        xp = out.index_select(1, ps)  # [B, n, 3]
        d_prior = unit(Xh.index_select(1, js) - Xh.index_select(1, ps))
        num = prior * d_prior
        den = None
        for term in terms:
            got = term.bone_targets(level, xp, d_prior, step)
            if got is not None:
                d, a = got
                num = num + a * d
                den = a + float(prior) if den is None else den + a  # (prior + a_1) + a_2 ... as before
        den = float(prior) if den is None else den
        out.index_copy_(1, js, xp + L * unit(num / den))
    return out
