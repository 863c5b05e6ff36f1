"""Mapping files (``backend/mocap/mappings/*.toml``): how a mocap skeleton's joints give the model's.

A mapping names, for each model joint, one source joint, a weighted mean of several, or a point
fixed in a source joint's frame (an offset in file units), plus the file's unit and up axis; a
mapping may name a ``fallback`` for files its joints do not fit. :func:`load_mapping` checks a
file and says what is wrong and where (:class:`backend.errors.InputError`); the conversion of
motions with a mapping is :func:`backend.mocap.clips.motion_to_model`.

Mapping file format (TOML; a user can write one for their own rig)::

    [source]
    description = "what rig this is"
    unit_m = 0.01          # metres per file unit (required)
    up = "y"               # "y" or "z": the file's up axis (required)
    fps = 30               # optional: overrides the file's Frame Time
    skip_frames = 1        # optional: leading frames dropped (e.g. a T-pose calibration frame)
    fallback = "cmu_asf"   # optional: mapping used for files whose joints this one cannot find

    [joints]               # model joint = source spec; joints the source lacks are left out
    left_knee = "LeftLeg"                                  # one source joint (or "<Joint>_End")
    pelvis = { mean = ["LeftUpLeg", "RightUpLeg"] }         # mean of several joints
    spine = { mean = ["Spine", "Spine1"], weights = [0.4, 0.6] }  # affine: weights sum to 1
    neck = { joint = "Head", offset = [0.0, 0.5, 1.2] }     # point fixed in a joint's local frame
    thorax = [{ joint = "chest", offset = [0, 9, -1] }, { joint = "thorax", offset = [0, 1, 0] }]
                           # a list: alternatives, the first whose joints the file has is used
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.errors import InputError
from backend.mocap.bvh import BvhMotion
from backend.skeleton import JOINT_INDEX, JOINT_NAMES

MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"

#: Joints every mapping must provide (the rest can be derived, see :func:`fill_missing`).
REQUIRED_JOINTS: tuple[str, ...] = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "thorax", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)


@dataclass
class _Spec:
    """One model joint's source definition: an affine mean of joints or a rigid offset point."""

    names: list[str]
    weights: np.ndarray | None = None
    offset: np.ndarray | None = None  # [3] file units in the joint's local frame


@dataclass
class Mapping:
    """A parsed mapping file (see the module docstring for the format).

    Attributes:
        path: the .toml file.
        unit_m: metres per file unit.
        up: ``"y"`` or ``"z"``.
        fps: frame rate override, or None to use the file's Frame Time.
        skip_frames: leading frames dropped.
        joints: model joint name -> alternative source specs (the first the file can satisfy is used).
        fallback: the mapping tried for files this one does not fit, or None.
    """

    path: Path
    unit_m: float
    up: str
    fps: float | None
    skip_frames: int
    joints: dict[str, list[_Spec]]
    fallback: "Mapping | None" = None

    def fits(self, motion: BvhMotion) -> bool:
        """Whether every mapped model joint can be found in ``motion``."""
        return all(any(all(n in motion._index for n in s.names) for s in specs) for specs in self.joints.values())

    def for_motion(self, motion: BvhMotion) -> "Mapping":
        """This mapping, or the first in its fallback chain that fits ``motion`` (else this one)."""
        m: Mapping | None = self
        while m is not None:
            if m.fits(motion):
                return m
            m = m.fallback
        return self


def _mapping_error(path: Path, where: str, msg: str) -> InputError:
    return InputError(f"{path} [{where}]", msg)


def load_mapping(mapping: str | os.PathLike, _chain: tuple[Path, ...] = ()) -> Mapping:
    """Read a mapping file.

    Args:
        mapping: a shipped mapping name (``"bandai"`` -> ``backend/mocap/mappings/bandai.toml``) or a
            path to a ``.toml`` file.
    Returns:
        The :class:`Mapping`.
    Raises:
        FileNotFoundError: no such mapping (lists the shipped names).
        InputError: bad TOML, unknown model joint name, missing/invalid ``unit_m`` or ``up``,
            weights that do not match or do not sum to 1; the message names the file and key.
    """
    p = Path(mapping)
    if p.suffix != ".toml" and not p.exists():
        p = MAPPINGS_DIR / f"{mapping}.toml"
    if not p.exists():
        shipped = sorted(q.stem for q in MAPPINGS_DIR.glob("*.toml"))
        raise FileNotFoundError(f"mapping {str(mapping)!r} not found; shipped mappings: {', '.join(shipped)}, or give a .toml path")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(str(p), f"not valid TOML: {e}") from None
    src = data.get("source", {})
    unit = src.get("unit_m")
    if not isinstance(unit, (int, float)) or not unit > 0:
        raise _mapping_error(p, "source", f"unit_m must be a positive number of metres per file unit, found {unit!r}")
    up = src.get("up")
    if up not in ("y", "z"):
        raise _mapping_error(p, "source", f'up must be "y" or "z", found {up!r}')
    fps = src.get("fps")
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
        raise _mapping_error(p, "source", f"fps must be a positive number, found {fps!r}")
    skip = src.get("skip_frames", 0)
    if not isinstance(skip, int) or skip < 0:
        raise _mapping_error(p, "source", f"skip_frames must be a non-negative integer, found {skip!r}")
    joints: dict[str, list[_Spec]] = {}
    for name, val in data.get("joints", {}).items():
        where = f"joints.{name}"
        if name not in JOINT_INDEX:
            raise _mapping_error(p, where, f"unknown model joint {name!r}; valid names: {', '.join(JOINT_NAMES)}")
        alts = val if isinstance(val, list) else [val]
        if not alts:
            raise _mapping_error(p, where, "an empty list of alternatives; give at least one source joint")
        joints[name] = [_parse_spec(p, f"{where}[{i}]" if isinstance(val, list) else where, v) for i, v in enumerate(alts)]
    missing = [j for j in REQUIRED_JOINTS if j not in joints]
    if missing:
        raise _mapping_error(p, "joints", f"required model joints not mapped: {', '.join(missing)}")
    fallback = src.get("fallback")
    fb = None
    if fallback is not None:
        if not isinstance(fallback, str) or not fallback:
            raise _mapping_error(p, "source", f"fallback must be a mapping name or .toml path, found {fallback!r}")
        if p.resolve() in _chain or len(_chain) > 8:
            raise _mapping_error(p, "source", f"fallback chain loops back to {p}")
        near = p.parent / fallback
        fb = load_mapping(near if near.suffix == ".toml" and near.exists() else fallback, _chain + (p.resolve(),))
    return Mapping(p, float(unit), up, float(fps) if fps else None, skip, joints, fb)


def _parse_spec(p: Path, where: str, val) -> _Spec:
    if isinstance(val, str) and val:
        return _Spec([val], np.ones(1))
    if not isinstance(val, dict):
        raise _mapping_error(p, where, f"expected a joint name, {{mean = [...]}} or {{joint = ..., offset = [x, y, z]}}, found {val!r}")
    if "mean" in val:
        names = val["mean"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
            raise _mapping_error(p, where, "mean must be a non-empty list of source joint names")
        w = val.get("weights")
        if w is None:
            return _Spec(names, np.full(len(names), 1.0 / len(names)))
        if not (isinstance(w, list) and len(w) == len(names) and all(isinstance(x, (int, float)) for x in w)):
            raise _mapping_error(p, where, f"weights must be {len(names)} numbers, one per joint in mean")
        w = np.asarray(w, np.float64)
        if abs(w.sum() - 1.0) > 1e-6:
            raise _mapping_error(p, where, f"weights must sum to 1 (an affine combination), they sum to {w.sum():g}")
        return _Spec(names, w)
    if "joint" in val:
        name, off = val["joint"], val.get("offset", [0.0, 0.0, 0.0])
        if not (isinstance(name, str) and name):
            raise _mapping_error(p, where, "joint must be a source joint name")
        if not (isinstance(off, list) and len(off) == 3 and all(isinstance(x, (int, float)) for x in off)):
            raise _mapping_error(p, where, "offset must be [x, y, z] in file units, in the joint's local frame")
        return _Spec([name], offset=np.asarray(off, np.float64))
    raise _mapping_error(p, where, "a table needs 'mean' (with optional 'weights') or 'joint' (with 'offset')")


def resolve_spec(motion: BvhMotion, mapping: Mapping, model_joint: str) -> _Spec:
    """The first alternative spec of a model joint whose source joints the file has."""
    specs = mapping.joints[model_joint]
    for spec in specs:
        if all(n in motion._index for n in spec.names):
            return spec
    wanted = " or ".join(repr(s.names[0] if len(s.names) == 1 else s.names) for s in specs)
    lacking = sorted({n for s in specs for n in s.names if n not in motion._index})
    raise InputError(
        motion.source,
        f"mapping {mapping.path} maps {model_joint} to {wanted}, but this file has no joint "
        f"{', '.join(map(repr, lacking))}; the file's joints are: {', '.join(motion.names)}",
    )
