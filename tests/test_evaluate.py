"""The evaluation's nearest-neighbour completion baseline (``posediff eval complete``)."""

from __future__ import annotations

import numpy as np

from backend.eval_complete import COMPLETE_CASES, retrieval_completion
from backend.mocap import datasets as D
from backend.skeleton import JOINT_INDEX, NUM_JOINTS


def test_retrieval_completion_finds_a_moved_and_turned_bank_pose(h36m_train_poses):
    bank = h36m_train_poses
    unknown = [JOINT_INDEX[n] for n in COMPLETE_CASES["arms"]]
    kn = [j for j in range(NUM_JOINTS) if j not in unknown]
    target = bank[len(bank) // 2] @ D.rotation_z(np.array([2.0]))[0].T + np.array([1.5, -0.7, 0.2])
    out = retrieval_completion(bank, target, kn, k=5)
    assert out.shape == (5, NUM_JOINTS, 3)
    # the same pose comes first, placed and turned onto the known joints, its arms included
    assert np.abs(out[0] - target).max() < 1e-6
    fits = np.linalg.norm(out[:, kn] - target[kn], axis=-1).mean(-1)
    assert np.all(np.diff(fits) >= -1e-9)
