# SPDX-License-Identifier: GPL-3.0-or-later
"""All operators, registered in this order. Each task lives in its own module:
``operators_backend`` (start/stop/check/cancel), ``operators_estimate`` (photos),
``operators_pose`` (complete, generate, variations), ``operators_hypotheses`` (apply, mapping);
``operators_common`` holds the shared task flow. A new operator module adds its ``CLASSES`` here.
"""

from __future__ import annotations

from . import operators_backend, operators_estimate, operators_hypotheses, operators_pose
from .operators_backend import check_backend_now  # noqa: F401  (public: used by scripts/tests)

CLASSES = (
    *operators_backend.CLASSES,
    *operators_estimate.CLASSES,
    *operators_pose.CLASSES,
    *operators_hypotheses.CLASSES,
)
