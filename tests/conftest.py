"""Shared fixtures of the backend tests: the loaded PoseService (once per session) and a few
real Human3.6M training poses (subject S1; never the held-out S9/S11)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.mocap import datasets as D


@pytest.fixture(scope="session")
def pose_service():
    """The shipped prior on the CPU, loaded once for every test that samples."""
    from backend.service import PoseService

    return PoseService(device="cpu")


@pytest.fixture(scope="session")
def h36m_train_poses() -> np.ndarray:
    """``[N, J, 3]`` S1 poses (world, metres, Z up, pelvis at the origin), canonical bone lengths.

    Every 200th frame of subject S1 (training data). Skips when ``shared/data`` is absent.
    """
    if not D.H36M_FILE.exists():
        pytest.skip(f"{D.H36M_FILE} not found (shared data)")
    clips = D.load_h36m(("S1",), stride=200)
    return D.normalise_bone_lengths(np.concatenate([clips[k] for k in sorted(clips)]))
