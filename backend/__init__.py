"""PoseDiff backend: an unconditional diffusion prior of 3D human poses, guided at sampling time.

Snelgar et al. 2026, "Flexible Geometric Guidance for Probabilistic Human Pose Estimation with
Diffusion Models": one model trained on 3D poses only serves estimation from 2D evidence
(heatmap guidance), completion from known joints, and generation.
"""

__version__ = "0.1.0"
