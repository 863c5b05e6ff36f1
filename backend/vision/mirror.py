"""Mirror-image pictures: selfies saved as previewed, webcam recordings, photos taken in a mirror.

A phone's front camera shows the user a mirror image and some phones save it so (Android's "save
selfies as previewed", iOS's *Mirror Front Camera*); webcam apps (Photo Booth, most meeting and
recording apps) record what they preview; and a photo of oneself in a mirror is one. Estimated as
it is, such a picture gives the mirror image of the pose: the person raised their right arm, the
rig raises its left (the skeleton is symmetric, so nothing in the picture says which it is).

With ``mirrored`` on a request's frame, video or detect frame the picture is flipped left-right
as it is decoded, before the detector, the camera turn and the shot-cut search see it, so the
pose is the person's own (their right arm is the rig's right arm). What the response gives in
pixels (``keypoints``, ``camera``, ``box``, previews) is then of the flipped picture, the picture
as the camera saw it; what the request gives in pixels (keypoints, the camera's ``cx``) is of the
picture as given. Keypoints given with ``mirrored`` move to ``width - u`` and take the other side's
joint name (:func:`mirror_keypoints`), which needs the picture's width (``camera.width``). A
rotation given in ``camera.rotation`` is the camera's own and is kept.

Pixel coordinates follow ``shared/design/CONTRACT.md`` (pixel ``i`` spans ``[i, i + 1)``), so
flipping the columns maps ``u`` to ``width - u`` exactly.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from backend.errors import InputError
from backend.skeleton import JOINT_INDEX, JOINT_NAMES, MIRROR

#: What ``mirrored`` means, for the request schema's fields.
MIRRORED_DOC = ("the picture is a mirror image (a selfie saved as previewed, a webcam's recording, a photo taken in "
                "a mirror): it is flipped left-right before estimation so that the pose is the person's own (their "
                "right arm the rig's right arm); the response's pixels (keypoints, camera, box, previews) are then "
                "of the flipped picture. Keypoints given with it are flipped too (u -> camera.width - u, left and "
                "right names swapped)")


def mirror_photo(photo):
    """The photo flipped left-right (``rgb[:, ::-1]``), marked ``mirrored`` (flipped back where it was).

    Args:
        photo: a :class:`backend.vision.photo.Photo`.
    Returns:
        A new :class:`backend.vision.photo.Photo`; ``focal_35mm``, sizes and scale unchanged.
    """
    return replace(photo, rgb=np.ascontiguousarray(photo.rgb[:, ::-1]), mirrored=not photo.mirrored)


def mirror_u(u: float, width: float) -> float:
    """A horizontal pixel coordinate in the flipped picture (pixels; ``width`` the picture's)."""
    return float(width) - float(u)


def mirror_keypoints(keypoints: dict, width: float, field: str = "keypoints") -> dict:
    """Keypoints ``{name: [u, v(, confidence)]}`` of a mirror-image picture -> the flipped picture's:
    ``u -> width - u``, each joint renamed to its other side's (``left_wrist`` <-> ``right_wrist``:
    the detector that labelled the mirror image saw the person's right wrist as a left one).

    Args:
        keypoints: pixels of the picture as given; names from ``JOINT_NAMES``.
        width: the picture's width, pixels.
    Raises:
        InputError: an unknown joint name (field ``field.<name>``).
    """
    out = {}
    for name, kp in keypoints.items():
        if name not in JOINT_INDEX:
            raise InputError(f"{field}.{name}", f"unknown joint name; valid: {', '.join(JOINT_NAMES)}")
        out[JOINT_NAMES[MIRROR[JOINT_INDEX[name]]]] = [mirror_u(kp[0], width), *kp[1:]]
    return out


def unmirrored_keypoint_frame(fr, field: str, width: int | None = None):
    """A request's keypoint frame with ``mirrored`` -> the same frame in the flipped picture's pixels
    (keypoints by :func:`mirror_keypoints`, the camera's ``cx`` by :func:`mirror_u`), ``mirrored``
    off; other frames are returned as they are.

    Args:
        fr: :class:`backend.http.schemas.EstimateFrame`.
        width: the picture's width (pixels) where the frame's camera does not give it (a sequence's
            frames share the first frame's camera).
    Raises:
        InputError: ``mirrored`` keypoints without ``camera.width`` (field ``field.camera.width``).
    """
    if not fr.mirrored or fr.keypoints is None:
        return fr
    width = (fr.camera.width if fr.camera is not None else None) or width
    if not width:
        raise InputError(f"{field}.camera.width", "mirrored keypoints need the picture's width (pixels) to be flipped "
                         "(u -> width - u): give camera.width and camera.height")
    camera = fr.camera
    if camera is not None and camera.cx is not None:
        camera = camera.model_copy(update={"cx": mirror_u(camera.cx, width)})
    return fr.model_copy(update={"keypoints": mirror_keypoints(fr.keypoints, width, f"{field}.keypoints"),
                                 "camera": camera, "mirrored": False})
