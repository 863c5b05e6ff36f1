"""Acclaim ASF/AMC motion capture (the original CMU format): parser and forward kinematics.

An ASF file is the skeleton: per bone a unit ``direction``, a ``length``, an ``axis`` (Euler
angles giving the bone's local frame, order ``XYZ``) and its degrees of freedom (``dof rx ry
rz``); ``:hierarchy`` gives the parents. An AMC file is the motion: per frame a frame number,
then ``root TX TY TZ RX RY RZ`` and one line of dof values (degrees) per moving bone.

Forward kinematics (as Acclaim/CMU define it): with ``C`` the bone's axis rotation and ``M`` its
dof rotation (``Rz @ Ry @ Rx``, the ``XYZ`` order), the bone's global rotation is
``L = L_parent @ C @ M @ C^-1`` and its end is ``start + L @ direction * length``; a bone starts
where its parent ends (the root's end is the root position).

:class:`AmcMotion` presents the result like :class:`backend.bvh.BvhMotion`: a joint per bone
placed at the bone's *start* (named after the bone, with the bone's global rotation), plus
``<bone>_End`` at its end, so that a BVH conversion with ASF bone names (and its mapping,
``backend/mappings/cmu_asf.toml``) reads the same joints. Units are the file's (CMU:
``length 0.45`` -> 1 unit = 0.0254/0.45 m), Y up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from backend.errors import MocapFileError
from backend.mocap.bvh import _axis_rotation

_ROOT_DOF = {"TX": 0, "TY": 1, "TZ": 2, "RX": 3, "RY": 4, "RZ": 5}


class AmcError(MocapFileError):
    """A malformed ASF or AMC file; the message names the file and the line (1-based)."""


@dataclass
class AsfSkeleton:
    """A parsed ASF skeleton.

    Attributes:
        bones: bone names in hierarchy order (parents first); index 0 is ``"root"``.
        parents: ``[B]`` parent index (-1 for the root).
        directions: ``[B, 3]`` unit bone directions (global rest frame).
        lengths: ``[B]`` bone lengths (file units).
        axes: ``[B, 3, 3]`` the ``C`` rotation of each bone.
        dofs: per bone, its dof names in AMC order (``["rx", "rz"]``); the root's are
            from ``order`` (``["TX", ..., "RZ"]``).
        length_unit: the ``:units length`` value (CMU: 0.45, i.e. 1 unit = 1/0.45 inch).
    """

    bones: list[str]
    parents: np.ndarray
    directions: np.ndarray
    lengths: np.ndarray
    axes: np.ndarray
    dofs: list[list[str]]
    length_unit: float


def _euler_xyz(angles_deg: np.ndarray) -> np.ndarray:
    """``[..., 3]`` Euler angles (degrees, about x, y, z; order XYZ) -> ``Rz @ Ry @ Rx``."""
    a = np.deg2rad(np.asarray(angles_deg, np.float64))
    return _axis_rotation(2, a[..., 2]) @ _axis_rotation(1, a[..., 1]) @ _axis_rotation(0, a[..., 0])


def parse_asf(text: str, source: str = "<asf>") -> AsfSkeleton:
    """Parse an ASF skeleton.

    Raises:
        AmcError: a bone without name/direction/length, an unknown dof, a hierarchy line naming
            an unknown bone; names the file and line.
    """
    lines = text.splitlines()
    section = None
    bones: dict[str, dict] = {}
    order: list[str] = ["TX", "TY", "TZ", "RX", "RY", "RZ"]
    root_axis = np.zeros(3)
    children: dict[str, list[str]] = {}
    length_unit = 1.0
    cur: dict | None = None
    cur_line = 0
    for ln, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(":"):
            section = line.split()[0]
            continue
        parts = line.split()
        if section == ":units" and parts[0] == "length":
            length_unit = float(parts[1])
        elif section == ":root":
            if parts[0] == "order":
                order = [p.upper() for p in parts[1:]]
                bad = [p for p in order if p not in _ROOT_DOF]
                if bad:
                    raise AmcError(source, ln, f"unknown root dof {bad[0]!r}; expected TX TY TZ RX RY RZ")
            elif parts[0] == "orientation":
                root_axis = np.array([float(v) for v in parts[1:4]])
        elif section == ":bonedata":
            if parts[0] == "begin":
                cur, cur_line = {"dof": []}, ln
            elif parts[0] == "end":
                if cur is None or not {"name", "direction", "length"} <= set(cur):
                    raise AmcError(source, ln, "bone block without name, direction and length")
                bones[cur["name"]] = cur
                cur = None
            elif cur is not None:
                key = parts[0]
                try:
                    if key == "name":
                        cur["name"] = parts[1]
                    elif key == "direction":
                        cur["direction"] = np.array([float(v) for v in parts[1:4]])
                    elif key == "length":
                        cur["length"] = float(parts[1])
                    elif key == "axis":
                        cur["axis"] = np.array([float(v) for v in parts[1:4]])
                        if len(parts) > 4 and parts[4].upper() != "XYZ":
                            raise AmcError(source, ln, f"axis order {parts[4]!r} not supported (only XYZ)")
                    elif key == "dof":
                        cur["dof"] = [d.lower() for d in parts[1:]]
                        bad = [d for d in cur["dof"] if d not in ("rx", "ry", "rz")]
                        if bad:
                            raise AmcError(source, ln, f"dof {bad[0]!r} not supported (rx ry rz only)")
                except AmcError:
                    raise
                except (ValueError, IndexError):
                    raise AmcError(source, ln, f"bad {key!r} line: {line!r}") from None
        elif section == ":hierarchy":
            if parts[0] in ("begin", "end"):
                continue
            children.setdefault(parts[0], []).extend(parts[1:])
            for name in parts:
                if name != "root" and name not in bones:
                    raise AmcError(source, ln, f"hierarchy names bone {name!r}, which :bonedata does not define")
    if cur is not None:
        raise AmcError(source, cur_line, "bone block not closed with 'end' (truncated file?)")
    names = ["root"]
    parents = [-1]
    stack = [("root", 0)]
    while stack:
        name, idx = stack.pop(0)
        for ch in children.get(name, []):
            names.append(ch)
            parents.append(idx)
            stack.append((ch, len(names) - 1))
    if len(names) == 1:
        raise AmcError(source, len(lines), "no :hierarchy (or an empty one)")
    dirs = np.zeros((len(names), 3))
    lens = np.zeros(len(names))
    axes = np.zeros((len(names), 3, 3))
    axes[0] = _euler_xyz(root_axis)
    dofs = [order]
    for i, n in enumerate(names[1:], 1):
        b = bones[n]
        d = b["direction"]
        dirs[i] = d / max(np.linalg.norm(d), 1e-12)
        lens[i] = b["length"]
        axes[i] = _euler_xyz(b.get("axis", np.zeros(3)))
        dofs.append(b["dof"])
    return AsfSkeleton(names, np.array(parents), dirs, lens, axes, dofs, length_unit)


_FRAME_SPLIT = re.compile(r"^\s*(\d+)\s*$", re.M)


@dataclass
class AmcMotion:
    """AMC motion on an ASF skeleton, with the joint interface of :class:`backend.bvh.BvhMotion`.

    Attributes:
        source: the AMC file name.
        skeleton: the ASF skeleton.
        names: joint names: each bone (at its start) and ``<bone>_End`` (at its end).
        values: per bone, ``[F, len(dofs)]`` float64 dof values (degrees; root translation in
            file units).
        frame_time: seconds per frame (AMC has none: CMU's 120 fps unless given).
    """

    source: str
    skeleton: AsfSkeleton
    values: list[np.ndarray]
    frame_time: float = 1.0 / 120.0
    names: list[str] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        bones = self.skeleton.bones
        self.names = list(bones) + [f"{b}_End" for b in bones]
        self._index = {n: i for i, n in enumerate(self.names)}

    @property
    def num_frames(self) -> int:
        return int(self.values[0].shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"{self.source}: no joint {name!r}; the file has: {', '.join(self.names)}") from None

    def forward_kinematics(self, frames=None, joints=None) -> tuple[np.ndarray, np.ndarray]:
        """Positions and rotations of every bone start and end.

        Args:
            frames: frame selection (indices or slice); all if None.
            joints: ignored (every bone is computed; ASF skeletons are small).
        Returns:
            ``(positions [F, 2B, 3], rotations [F, 2B, 3, 3])`` in file units and axes, joints
            ordered as :attr:`names`; a bone's start and end carry the bone's global rotation.
        """
        sk = self.skeleton
        vals = [v if frames is None else v[frames] for v in self.values]
        f = vals[0].shape[0]
        nb = len(sk.bones)
        start = np.zeros((f, nb, 3))
        end = np.zeros((f, nb, 3))
        glob = np.zeros((f, nb, 3, 3))
        for b in range(nb):
            dof = sk.dofs[b]
            v = vals[b]
            ang = np.zeros((f, 3))
            if b == 0:
                trans = np.zeros((f, 3))
                for k, d in enumerate(dof):
                    slot = _ROOT_DOF[d]
                    if slot < 3:
                        trans[:, slot] = v[:, k]
                    else:
                        ang[:, slot - 3] = v[:, k]
                c = sk.axes[0]
                glob[:, 0] = c @ _euler_xyz(ang) @ c.T
                start[:, 0] = trans
                end[:, 0] = trans
                continue
            for k, d in enumerate(dof):
                ang[:, "xyz".index(d[1])] = v[:, k]
            c = sk.axes[b]
            p = sk.parents[b]
            glob[:, b] = glob[:, p] @ (c @ _euler_xyz(ang) @ c.T)
            start[:, b] = end[:, p]
            end[:, b] = start[:, b] + np.einsum("fab,b->fa", glob[:, b], sk.directions[b] * sk.lengths[b])
        return np.concatenate([start, end], 1), np.concatenate([glob, glob], 1)

    def positions(self, frames=None, joints=None) -> np.ndarray:
        """``[F, 2B, 3]`` positions of bone starts and ends (file units and axes)."""
        return self.forward_kinematics(frames, joints)[0]


def parse_amc(text: str, skeleton: AsfSkeleton, source: str = "<amc>", fps: float = 120.0) -> AmcMotion:
    """Parse AMC motion for an ASF skeleton.

    Args:
        text: the AMC file.
        skeleton: from :func:`parse_asf`.
        source: name used in errors.
        fps: frame rate (AMC files do not store it; CMU's is 120).
    Raises:
        AmcError: no frames, a bone the skeleton lacks, a wrong number of values, a non-number
            (names the file and line).
    """
    bone_index = {b: i for i, b in enumerate(skeleton.bones)}
    heads = list(_FRAME_SPLIT.finditer(text))
    if not heads:
        raise AmcError(source, 0, "no frames (expected a frame number line, then one line per bone)")
    nb = len(skeleton.bones)
    values = [np.zeros((len(heads), len(skeleton.dofs[b]))) for b in range(nb)]
    line_no, pos = 1, 0
    for fi, h in enumerate(heads):
        body_end = heads[fi + 1].start() if fi + 1 < len(heads) else len(text)
        line_no += text.count("\n", pos, h.start())
        pos = h.start()
        for k, raw in enumerate(text[h.end():body_end].splitlines()):
            parts = raw.split()
            if not parts:
                continue
            ln = line_no + k
            b = bone_index.get(parts[0])
            if b is None:
                raise AmcError(source, ln, f"bone {parts[0]!r} is not in the ASF skeleton")
            if len(parts) - 1 != len(skeleton.dofs[b]):
                raise AmcError(source, ln, f"{parts[0]} has {len(parts) - 1} values, its ASF dof list has {len(skeleton.dofs[b])}")
            try:
                values[b][fi] = [float(x) for x in parts[1:]]
            except ValueError:
                raise AmcError(source, ln, f"non-numeric value in {raw.strip()!r}") from None
    return AmcMotion(source, skeleton, values, 1.0 / fps)
