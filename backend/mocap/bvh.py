"""BVH motion capture files: a parser and forward kinematics in numpy.

BVH (Biovision Hierarchy) holds a joint hierarchy (``HIERARCHY``: per joint an ``OFFSET`` from
its parent and a ``CHANNELS`` list) and a ``MOTION`` block of one line of channel values per frame.

Conventions used here (the common ones; Blender's importer and the CMU/Bandai exporters agree):

* Rotation channels are Euler angles in degrees, composed in the order listed, each about the
  joint's parent-aligned axes: for ``Zrotation Xrotation Yrotation`` the local rotation is
  ``R = Rz @ Rx @ Ry`` acting on column vectors.
* A joint with position channels uses those values as its translation from the parent joint
  (they *replace* ``OFFSET``; for the usual root with ``OFFSET 0 0 0`` this is the same as adding).
  Missing position axes keep the ``OFFSET`` value.
* Global position of joint ``j`` with parent ``p``: ``x_j = x_p + G_p @ t_j`` and
  ``G_j = G_p @ R_j`` where ``G`` is the global rotation.
* ``End Site`` blocks become joints named ``<Parent>_End`` (no channels), so a head top or
  finger tip stored as an end site can be mapped like any joint.

Positions come out in file units and the file's own axes (usually Y up); :mod:`backend.mocap.clips`
converts to metres and the Z-up world frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backend.errors import MocapFileError

_AXES = {"X": 0, "Y": 1, "Z": 2}
_CHANNEL_NAMES = {f"{a}{kind}" for a in "XYZ" for kind in ("position", "rotation")}


class BvhError(MocapFileError):
    """A malformed BVH file; the message names the file and the line number (1-based)."""


@dataclass
class BvhMotion:
    """A parsed BVH file.

    Attributes:
        source: file name used in error messages.
        names: ``[N]`` joint names in file order; end sites are named ``<Parent>_End``.
        parents: ``[N]`` parent index of each joint (-1 for a root). Parents precede children.
        offsets: ``[N, 3]`` float64 rest offset of each joint from its parent (file units).
        channels: per joint, the list of channel names (``"Zrotation"``, ``"Xposition"`` ...);
            empty for end sites.
        channel_start: ``[N]`` index of each joint's first channel in a motion row.
        frame_time: seconds per frame.
        motion: ``[F, C]`` float64 channel values (degrees for rotations, file units for positions).
    """

    source: str
    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[list[str]]
    channel_start: np.ndarray
    frame_time: float
    motion: np.ndarray
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {n: i for i, n in enumerate(self.names)}

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time if self.frame_time > 0 else 0.0

    def index(self, name: str) -> int:
        """Index of a joint (or ``<Parent>_End`` end site) name.

        Raises:
            KeyError: naming the file and listing the joints it has.
        """
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"{self.source}: no joint {name!r}; the file has: {', '.join(self.names)}") from None

    def positions(self, frames: np.ndarray | slice | None = None, joints: list[str] | None = None) -> np.ndarray:
        """Global joint positions by forward kinematics.

        Args:
            frames: frame selection (indices or slice); all frames if None.
            joints: names whose positions are wanted (their ancestors are computed too);
                all joints (end sites included) if None.
        Returns:
            ``[F, N, 3]`` float64 positions in file units and file axes, for all ``N`` joints
            of :attr:`names` (rows of joints not needed for ``joints`` are NaN).
        Raises:
            KeyError: if a name in ``joints`` is not in the file.
        """
        return self.forward_kinematics(frames, joints)[0]

    def forward_kinematics(
        self, frames: np.ndarray | slice | None = None, joints: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Global joint positions and orientations.

        Args:
            frames, joints: as :meth:`positions`.
        Returns:
            ``(positions [F, N, 3], rotations [F, N, 3, 3])``: positions in file units and axes;
            ``rotations[f, j]`` maps joint ``j``'s local axes to the file axes (for an end site,
            its parent's). Rows not needed for ``joints`` are NaN.
        Raises:
            KeyError: if a name in ``joints`` is not in the file.
        """
        mot = self.motion if frames is None else self.motion[frames]
        f, n = mot.shape[0], len(self.names)
        need = np.ones(n, bool)
        if joints is not None:
            need[:] = False
            for name in joints:
                j = self.index(name)
                while j >= 0 and not need[j]:
                    need[j] = True
                    j = int(self.parents[j])
        pos = np.full((f, n, 3), np.nan)
        glob = np.full((f, n, 3, 3), np.nan)
        for j in range(n):
            if not need[j]:
                continue
            chans = self.channels[j]
            start = self.channel_start[j]
            trans = np.broadcast_to(self.offsets[j], (f, 3)).copy()
            rot = None
            for k, ch in enumerate(chans):
                axis = _AXES[ch[0]]
                if ch.endswith("position"):
                    trans[:, axis] = mot[:, start + k]
                else:
                    m = _axis_rotation(axis, np.deg2rad(mot[:, start + k]))
                    rot = m if rot is None else rot @ m
            p = self.parents[j]
            if p < 0:
                pos[:, j] = trans
                glob[:, j] = rot if rot is not None else np.eye(3)
            else:
                pos[:, j] = pos[:, p] + np.einsum("fab,fb->fa", glob[:, p], trans)
                glob[:, j] = glob[:, p] @ rot if rot is not None else glob[:, p]
        return pos, glob


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """``[F, 3, 3]`` rotation matrices about one coordinate axis (angles in radians)."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(angle.shape + (3, 3))
    i, k = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1.0
    m[..., i, i] = c
    m[..., k, k] = c
    m[..., i, k] = -s
    m[..., k, i] = s
    return m


class _Tokens:
    """Whitespace tokens of the HIERARCHY section with their 1-based line numbers."""

    def __init__(self, lines: list[str], source: str):
        self.source = source
        self.items: list[tuple[str, int]] = []
        self.end_line = len(lines)
        self.pos = 0
        self.motion_line = 0
        for ln, line in enumerate(lines, 1):
            for tok in line.split():
                self.items.append((tok, ln))
                if tok == "MOTION":
                    self.motion_line = ln
                    return

    def error(self, msg: str, line: int | None = None) -> BvhError:
        if line is None:
            line = self.items[self.pos][1] if self.pos < len(self.items) else self.end_line
        return BvhError(self.source, line, msg)

    def peek(self) -> str | None:
        return self.items[self.pos][0] if self.pos < len(self.items) else None

    def next(self, what: str) -> tuple[str, int]:
        if self.pos >= len(self.items):
            raise self.error(f"file ends early: expected {what} (truncated file?)", self.end_line)
        tok = self.items[self.pos]
        self.pos += 1
        return tok

    def expect(self, word: str) -> int:
        tok, ln = self.next(repr(word))
        if tok != word:
            raise BvhError(self.source, ln, f"expected {word!r}, found {tok!r}")
        return ln

    def number(self, what: str) -> float:
        tok, ln = self.next(what)
        try:
            v = float(tok)
        except ValueError:
            raise BvhError(self.source, ln, f"expected a number for {what}, found {tok!r}") from None
        if not np.isfinite(v):
            raise BvhError(self.source, ln, f"{what} is not finite ({tok!r})")
        return v


def parse_bvh(text: str, source: str = "<bvh>") -> BvhMotion:
    """Parse the text of a BVH file.

    Args:
        text: the whole file.
        source: the file name, used in error messages.
    Returns:
        The :class:`BvhMotion` (hierarchy, channel layout, ``[F, C]`` motion).
    Raises:
        BvhError: unknown keyword, bad channel name or count, non-numeric value, truncated
            hierarchy or motion, or a MOTION line with the wrong number of values; the
            message names ``source`` and the line.
    """
    lines = text.splitlines()
    tok = _Tokens(lines, source)
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []

    first, ln = tok.next("HIERARCHY")
    if first != "HIERARCHY":
        raise BvhError(source, ln, f"expected 'HIERARCHY' at the start of a BVH file, found {first!r}")

    def parse_joint(parent: int, name: str, name_line: int) -> None:
        if name in names:
            raise BvhError(source, name_line, f"joint name {name!r} appears twice; joint names must be unique")
        j = len(names)
        names.append(name)
        parents.append(parent)
        offsets.append([0.0, 0.0, 0.0])
        channels.append([])
        tok.expect("{")
        seen_offset = False
        while True:
            word, wl = tok.next("'}' closing joint " + repr(name))
            if word == "OFFSET":
                offsets[j] = [tok.number(f"OFFSET of {name}") for _ in range(3)]
                seen_offset = True
            elif word == "CHANNELS":
                count_tok, cl = tok.next("channel count")
                try:
                    count = int(count_tok)
                except ValueError:
                    raise BvhError(source, cl, f"CHANNELS count must be an integer, found {count_tok!r}") from None
                if not 0 <= count <= 6:
                    raise BvhError(source, cl, f"CHANNELS count {count} of joint {name!r} is not between 0 and 6")
                chans = []
                for _ in range(count):
                    ch, chl = tok.next(f"channel name of {name}")
                    if ch not in _CHANNEL_NAMES:
                        raise BvhError(
                            source, chl,
                            f"bad channel {ch!r} for joint {name!r}; valid channels are "
                            "Xposition Yposition Zposition Xrotation Yrotation Zrotation",
                        )
                    if ch in chans:
                        raise BvhError(source, chl, f"channel {ch!r} repeated for joint {name!r}")
                    chans.append(ch)
                channels[j] = chans
            elif word == "JOINT":
                child, nl = tok.next("joint name")
                parse_joint(j, child, nl)
            elif word == "End":
                site, sl = tok.next("'Site'")
                if site != "Site":
                    raise BvhError(source, sl, f"expected 'Site' after 'End', found {site!r}")
                end_name = f"{name}_End"
                if end_name in names:  # a second end site on one joint
                    end_name = f"{name}_End{sum(n.startswith(name + '_End') for n in names) + 1}"
                names.append(end_name)
                parents.append(j)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
                e = len(names) - 1
                tok.expect("{")
                word2, wl2 = tok.next("OFFSET of end site")
                if word2 != "OFFSET":
                    raise BvhError(source, wl2, f"expected OFFSET in the End Site of {name!r}, found {word2!r}")
                offsets[e] = [tok.number(f"End Site OFFSET of {name}") for _ in range(3)]
                tok.expect("}")
            elif word == "}":
                if not seen_offset:
                    raise BvhError(source, wl, f"joint {name!r} has no OFFSET")
                return
            else:
                raise BvhError(
                    source, wl,
                    f"unknown keyword {word!r} in joint {name!r}; expected OFFSET, CHANNELS, JOINT, End Site or '}}'",
                )

    while True:
        word, wl = tok.next("ROOT or MOTION")
        if word == "ROOT":
            root, rl = tok.next("root joint name")
            parse_joint(-1, root, rl)
        elif word == "MOTION":
            break
        else:
            raise BvhError(source, wl, f"unknown keyword {word!r}; expected ROOT or MOTION")
    if not names:
        raise BvhError(source, wl, "no ROOT joint before MOTION")

    # MOTION header: "Frames: N" and "Frame Time: t", each on its own line.
    motion_line = tok.motion_line  # 1-based line of the MOTION keyword
    header: dict[str, str] = {}
    i = motion_line  # 0-based index of the line after MOTION
    while not ("frames" in header and "time" in header):
        if i >= len(lines):
            raise BvhError(source, len(lines), "file ends early: expected 'Frames:' and 'Frame Time:' after MOTION")
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        if line.startswith("Frames:"):
            header["frames"] = line[len("Frames:"):].strip()
            header["frames_line"] = str(i)
        elif line.startswith("Frame Time:"):
            header["time"] = line[len("Frame Time:"):].strip()
            header["time_line"] = str(i)
        else:
            raise BvhError(source, i, f"expected 'Frames:' or 'Frame Time:', found {line[:40]!r}")
        if "frames" in header and "time" in header:
            break
    try:
        num_frames = int(header["frames"])
        if num_frames < 0:
            raise ValueError
    except ValueError:
        raise BvhError(source, int(header["frames_line"]), f"Frames: must be a non-negative integer, found {header['frames']!r}") from None
    try:
        frame_time = float(header["time"])
        if not (np.isfinite(frame_time) and frame_time > 0):
            raise ValueError
    except ValueError:
        raise BvhError(source, int(header["time_line"]), f"Frame Time: must be a positive number of seconds, found {header['time']!r}") from None

    counts = [len(c) for c in channels]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    num_ch = int(sum(counts))
    rows = lines[i:]
    while rows and not rows[-1].strip():
        rows.pop()
    if len(rows) < num_frames:
        raise BvhError(
            source, len(lines),
            f"file ends early: 'Frames: {num_frames}' but only {len(rows)} motion lines (truncated file?)",
        )
    values: list[str] = []
    for r in range(num_frames):
        parts = rows[r].split()
        if len(parts) != num_ch:
            raise BvhError(
                source, i + r + 1,
                f"MOTION line has {len(parts)} values, expected {num_ch} (one per channel of the hierarchy)",
            )
        values.extend(parts)
    if len(rows) > num_frames and any(r.strip() for r in rows[num_frames:]):
        raise BvhError(
            source, i + num_frames + 1,
            f"more motion lines than 'Frames: {num_frames}'; fix the frame count",
        )
    try:
        motion = np.array(values, dtype=np.float64).reshape(num_frames, num_ch)
    except ValueError:
        for r in range(num_frames):
            for v in rows[r].split():
                try:
                    float(v)
                except ValueError:
                    raise BvhError(source, i + r + 1, f"MOTION value {v!r} is not a number") from None
        raise
    bad = ~np.isfinite(motion)
    if bad.any():
        r = int(np.argwhere(bad)[0, 0])
        raise BvhError(source, i + r + 1, "MOTION line has a non-finite value (nan/inf)")
    return BvhMotion(
        source=source,
        names=names,
        parents=np.asarray(parents, np.int64),
        offsets=np.asarray(offsets, np.float64),
        channels=channels,
        channel_start=starts,
        frame_time=frame_time,
        motion=motion,
    )


def read_bvh(path, source: str | None = None) -> BvhMotion:
    """Read and parse a BVH file from disk.

    Args:
        path: file path.
        source: name used in errors (defaults to the path).
    Raises:
        BvhError: as :func:`parse_bvh`; also for a file that is not UTF-8/Latin-1 text.
        FileNotFoundError: if the file does not exist.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_bvh(decode_text(data, source or str(path)), source or str(path))


def decode_text(data: bytes, source: str) -> str:
    """Decode file bytes as UTF-8 (falling back to Latin-1)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
