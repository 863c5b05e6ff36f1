"""``posediff eval complete``: completion of unknown joints against a retrieval baseline (printed, not asserted).

Held-out frames are placed at a random position and facing in the world; for each case (legs,
arms or one side unknown) the known joints are sent as the canonical skeleton's positions, and
as the add-on's request for a rig of other proportions (bone directions + the positions of the
known chains' roots, :func:`complete_request`). Columns: best-of-1 and best-of-N error of the
unknown joints (mm, world frame; over all unknown joints and over the 17 Human3.6M joints), the
baseline of the N training poses nearest on the known joints (:func:`retrieval_completion`),
the largest known-joint error; and for positions vs directions, errors after rebuilding both
hypothesis and truth with canonical bone lengths, and the best bone-angle error.
"""

from __future__ import annotations

import math

import numpy as np

from backend.evaluate import eval_frames, print_table
from backend.mocap import datasets as D
from backend.skeleton import H36M17, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS

COMPLETE_CASES = {
    "legs": ["right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_toe", "left_toe"],
    "arms": ["left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist", "left_hand", "right_hand"],
    "right side": [n for n in JOINT_NAMES if n.startswith("right_")],
}


def cmd_complete(args, service) -> None:
    from backend.http import schemas

    poses = eval_frames(tuple(args.subjects.split(",")), args.frames, seed=args.seed)
    bank = D.normalise_bone_lengths(eval_frames(D.TRAIN_SUBJECTS, 20000, seed=args.seed + 1))
    settings = args.known.split(",")
    rows, drows = [], []
    for case, unknown in COMPLETE_CASES.items():
        rng = np.random.default_rng(args.seed)  # the same placements, facings and rigs for every case
        unk = [JOINT_INDEX[n] for n in unknown]
        kn = [j for j in range(NUM_JOINTS) if j not in unk]
        unk17 = [j for j in unk if j in H36M17]  # the same, over the 17 Human3.6M joints (no toes, hand ends)
        e = {k: [] for k in ("unk", "kn", "b1", "nn", "17", "nn17", "b1_17")}
        d = {st: {k: [] for k in ("b1", "bN", "ang")} for st in settings}
        for i, pose in enumerate(poses):
            # a random placement and facing in the world: completion must solve them
            th = rng.uniform(0, 2 * math.pi)
            R = D.rotation_z(np.array([th]))[0]
            world = pose @ R.T + np.array([rng.uniform(-2, 2), rng.uniform(-2, 2), 1.0])
            rig_scale = rng.uniform(0.8, 1.25, NUM_JOINTS)  # a rig of other proportions, per bone
            for st in settings:
                frame = complete_request(world, kn, rig_scale if st == "directions" else None)
                req = schemas.CompleteRequest(frames=[frame], num_hypotheses=args.num, seed=args.seed + i,
                                              steps=args.steps, guidance_scale=args.guidance_scale)
                H = np.array([h.joints for h in service.complete(req).frames[0].hypotheses])
                rb = _joint_errors_mm(canonical_from_directions(H), canonical_from_directions(world[None])[0], unk)
                d[st]["b1"].append(rb[0])
                d[st]["bN"].append(rb.min())
                d[st]["ang"].append(_bone_angles_deg(H, world, unk).min())
                if st != "positions":
                    continue
                e["unk"].append(_joint_errors_mm(H, world, unk).min())
                e["17"].append(_joint_errors_mm(H, world, unk17).min())
                e["b1"].append(_joint_errors_mm(H[:1], world, unk)[0])
                e["b1_17"].append(_joint_errors_mm(H[:1], world, unk17)[0])
                e["kn"].append(np.linalg.norm(H[:, kn] - world[None, kn], axis=-1).max() * 1000)
                nn = retrieval_completion(bank, world, kn, args.num)
                e["nn"].append(_joint_errors_mm(nn, world, unk).min())
                e["nn17"].append(_joint_errors_mm(nn, world, unk17).min())
        if "positions" in settings:
            m = {k: f"{np.mean(v):.1f}" for k, v in e.items()}
            rows.append([case, m["b1"], m["unk"], m["b1_17"], m["17"], m["nn"], m["nn17"], f"{np.max(e['kn']):.2f}"])
        for st in settings:
            drows.append([case, st, f"{np.mean(d[st]['b1']):.1f}", f"{np.mean(d[st]['bN']):.1f}", f"{np.mean(d[st]['ang']):.1f}"])
    n = args.num
    if rows:
        print_table(f"eval complete: H3.6M {args.subjects}, {len(poses)} frames, {n} hypotheses (mm, world frame)",
                    ["unknown", "best-of-1 unknown", f"best-of-{n} unknown", "best-of-1, 17-joint set",
                     f"best-of-{n}, 17-joint set", f"baseline: best of {n} nearest training poses", "baseline, 17-joint set",
                     "max known-joint error"], rows)
        print(f"baseline: the {n} of {len(bank)} training poses (S1-S8) nearest on the known joints after a yaw + "
              "translation fit, unknown joints taken from them")
    print_table(f"eval complete, known positions vs known directions from a rig of other proportions ({len(poses)} frames)",
                ["unknown", "known", "best-of-1 unknown (mm)", f"best-of-{n} unknown (mm)", f"best-of-{n} bone angle (deg)"], drows)
    print("positions: the known joints of the canonical skeleton; directions: the add-on's request for a rig whose bones "
          "are 0.8-1.25x the model's (rescaled by leg length about the pelvis; known bone directions + the positions of "
          "the known chains' roots). "
          "Errors on the unknown joints after rebuilding hypothesis and truth with canonical bone lengths from the pelvis.")


def complete_request(world: np.ndarray, kn: list[int], rig_scale: np.ndarray | None = None) -> dict:
    """A completion frame for joints ``kn`` of ``world`` (``[J, 3]``, metres, canonical skeleton).

    With ``rig_scale`` (``[J]`` factor per bone), the request the add-on sends for a rig of other
    proportions: the pose rebuilt with bone lengths ``BONE_LENGTHS * rig_scale`` from the pelvis,
    rescaled about the pelvis by model leg / rig leg (``addon.blender_rig.to_model_scale``): the
    directions of the known joints' bones (parent -> joint, unit) and the positions of the known
    joints whose parent is not known (``addon.retarget.chain_root_positions``).
    """
    from backend.skeleton import BONE_LENGTHS, PARENTS

    names = [JOINT_NAMES[j] for j in kn]
    if rig_scale is None:
        return {"known": {n: world[j].tolist() for n, j in zip(names, kn)}}
    L = BONE_LENGTHS * rig_scale
    rig = world.copy()
    for j, p in enumerate(PARENTS):
        if p >= 0:
            v = world[j] - world[p]
            rig[j] = rig[p] + v / np.linalg.norm(v) * L[j]
    legs = [JOINT_INDEX[n] for n in ("left_knee", "left_ankle", "right_knee", "right_ankle")]
    s = BONE_LENGTHS[legs].sum() / L[legs].sum()
    rig = rig[0] + (rig - rig[0]) * s
    dirs = {}
    for n, j in zip(names, kn):
        p = PARENTS[j]
        if p >= 0 and p in kn:
            v = rig[j] - rig[p]
            dirs[n] = (v / np.linalg.norm(v)).tolist()
    roots = {n: rig[j].tolist() for n, j in zip(names, kn) if not (n in dirs and PARENTS[j] in kn)}
    return {"known": roots, "known_directions": dirs}


def canonical_from_directions(P: np.ndarray) -> np.ndarray:
    """``[N, J, 3]`` poses rebuilt from their bone directions with canonical lengths, pelvis at the origin."""
    from backend.skeleton import BONE_LENGTHS, PARENTS

    out = np.zeros_like(np.asarray(P, np.float64))
    for j, p in enumerate(PARENTS):
        if p >= 0:
            v = P[:, j] - P[:, p]
            out[:, j] = out[:, p] + v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9) * BONE_LENGTHS[j]
    return out


def _bone_angles_deg(H: np.ndarray, gt: np.ndarray, idx: list[int]) -> np.ndarray:
    """Mean angle (degrees) between the bones parent->joint of ``H`` (``[N, J, 3]``) and ``gt`` over ``idx``: ``[N]``."""
    from backend.skeleton import PARENTS

    idx = [j for j in idx if PARENTS[j] >= 0]
    par = [PARENTS[j] for j in idx]
    a = H[:, idx] - H[:, par]
    b = (gt[idx] - gt[par])[None]
    c = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return np.degrees(np.arccos(np.clip(c, -1, 1))).mean(-1)


def _joint_errors_mm(H: np.ndarray, gt: np.ndarray, idx: list[int]) -> np.ndarray:
    """Mean error (mm) over joints ``idx`` of each pose in ``H`` (``[N, J, 3]`` metres) against ``gt`` (``[J, 3]``): ``[N]``."""
    return np.linalg.norm(H[:, idx] - gt[None, idx], axis=-1).mean(-1) * 1000


def retrieval_completion(bank: np.ndarray, known: np.ndarray, kn: list[int], k: int) -> np.ndarray:
    """Nearest-neighbour completion baseline: the ``k`` poses of ``bank`` (``[N, J, 3]``) that best
    fit the known joints ``known[kn]`` (world, metres) after a yaw + translation fit, placed there.

    Returns ``[k, J, 3]`` world-frame poses, best fit first.
    """
    import torch

    from backend.prior.geometry import yaw_align

    w = np.zeros(bank.shape[1])
    w[kn] = 1.0
    src = torch.as_tensor(np.asarray(bank, np.float64))
    R, t = yaw_align(src, torch.as_tensor(np.asarray(known, np.float64)), torch.as_tensor(w))
    placed = (src @ R.transpose(1, 2) + t[:, None]).numpy()
    fit = np.linalg.norm(placed[:, kn] - known[kn], axis=-1).mean(-1)
    return placed[np.argsort(fit)[:k]]
