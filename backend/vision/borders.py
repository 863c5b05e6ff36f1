"""Black bars around the picture: the part of a frame the camera filmed.

Video as people find it is often framed in black: a portrait phone clip shown in a landscape video
(pillarbox: bars left and right, the picture a third of the frame's width), a 4:3 clip in 16:9, a
film scene letterboxed to 2.39:1 (bars above and below), a screen recording of any of them. The
camera's focal length, when nothing gives it, is guessed from the size of the picture
(:func:`backend.camera.default_intrinsics`: a field of view on its diagonal); taken from the padded
frame, a pillarboxed portrait clip's guess is 1.8x too long (16:9 against 9:16) and the person
lifted as seen through a telephoto lens. :func:`content_box` finds the picture inside the bars,
which :func:`backend.vision.photo.intrinsics_for` then guesses the camera for (its principal point
at the picture's centre).

Method: as FFmpeg's ``cropdetect`` filter, rows and columns at the frame's borders that are dark
all along (here: 99 % of their pixels' brightest channel at most :data:`BAR_LEVEL`, on a copy at
most :data:`WORK_WIDTH` wide, so compression noise and a logo do not break a bar). A border is
cut off only where the opposite border has a bar of about the same width (platforms and players
centre the picture; a night scene's dark side does not come in pairs), each bar is at least
:data:`MIN_BAR` of the side, and the picture meets it along a straight edge (:data:`EDGE_LIT`: a
person centred on a black backdrop is not a picture in bars). Re-uploads often fill the bars with the picture itself, enlarged and
blurred: there the picture's edges are found as a pair of straight lines across the whole frame
(a brightness step in at least :data:`EDGE_SHARE` of the rows, or columns; a photo's own lines
reach half of them at most), centred, with the outside at most :data:`FILL_DETAIL` as detailed as
the inside (a portrait-mode photo's blurred background has no such lines).
"""

from __future__ import annotations

import numpy as np

#: Brightest channel (0-255) of a bar pixel: black plus compression noise.
BAR_LEVEL = 24
#: Frames are searched at most this wide (pixels; the box is scaled back to the frame's).
WORK_WIDTH = 320
#: A bar is at least this fraction of the frame's side (thinner dark borders are the picture's own).
MIN_BAR = 0.03
#: The two bars of a pair differ by at most this fraction of the side (a centred picture).
BAR_SYMMETRY = 0.02
#: The picture's first and last rows / columns inside the bars are lit along at least this share of
#: their length (a straight edge: a person centred on a black studio backdrop touches the dark's
#: edge at a few points only).
EDGE_LIT = 0.5
#: A picture's edge in a blurred fill: a brightness step of more than :data:`EDGE_STEP` (0-255,
#: across two pixels of the search copy) in at least this share of the rows (the sample photos' own
#: lines: 0.26-0.53; an inset's edges 1.0) ...
EDGE_SHARE = 0.9
EDGE_STEP = 12.0
#: ... and the fill at most this detailed (mean brightness gradient) as the picture between.
FILL_DETAIL = 0.35


def _dark_run(dark: np.ndarray) -> int:
    """Length of the run of True at the start of ``dark`` ``[N]`` bool."""
    return int(np.argmin(dark)) if not dark.all() else len(dark)


def _inset_edges(grey: np.ndarray) -> tuple[int, int] | None:
    """``(x0, x1)``: the columns where a picture set into a blurred fill of itself begins and ends
    (see the module docstring), or None. ``grey``: ``[H, W]`` float brightness (transposed for rows)."""
    h, w = grey.shape
    step = np.abs(grey[:, 2:] - grey[:, :-2])  # column x + 1
    line = (step > EDGE_STEP).mean(0) >= EDGE_SHARE  # [w - 2]
    lo, hi = int(np.ceil(MIN_BAR * w)), w // 2
    left = [x + 1 for x in range(w - 2) if line[x] and lo <= x + 1 < hi]
    right = [x + 1 for x in range(w - 2) if line[x] and w // 2 < x + 1 <= w - lo]
    detail = np.abs(np.diff(grey, axis=1))
    for x0 in left:
        for x1 in right:
            if abs(x0 - (w - x1)) <= max(2, BAR_SYMMETRY * w):
                inside = float(detail[:, x0 + 2 : x1 - 2].mean()) if x1 - x0 > 6 else 0.0
                outside = float(np.concatenate([detail[:, : max(1, x0 - 2)], detail[:, x1 + 2 :]], 1).mean())
                if inside > 0 and outside <= FILL_DETAIL * inside:
                    return x0, x1
    return None


def content_box(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """The picture inside black bars (see the module docstring).

    Args:
        rgb: ``[H, W, 3]`` uint8 frame.
    Returns:
        ``(x0, y0, x1, y1)`` pixels of ``rgb`` (end exclusive), or None where the frame has no bars.
    """
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, WORK_WIDTH / max(w, 1))
    small = rgb if s == 1.0 else cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    g = np.asarray(small).max(-1)
    sh, sw = g.shape
    cols = np.percentile(g, 99, axis=0) <= BAR_LEVEL  # [sw] a column dark all along
    rows = np.percentile(g, 99, axis=1) <= BAR_LEVEL  # [sh]
    if cols.all() or rows.all():
        return None  # a black frame: no picture to find
    box = [0, 0, sw, sh]
    grey = np.asarray(small, np.float64).mean(-1)
    lit = np.asarray(small).max(-1) > BAR_LEVEL  # [sh, sw]
    for axis, dark, n in ((0, cols, sw), (1, rows, sh)):
        a, b = _dark_run(dark), _dark_run(dark[::-1])
        edge = lit if axis == 0 else lit.T  # the picture begins along a straight edge, lit along most of it
        if (min(a, b) >= MIN_BAR * n and abs(a - b) <= max(1, BAR_SYMMETRY * n)
                and min(edge[:, a].mean(), edge[:, n - b - 1].mean()) >= EDGE_LIT):
            box[axis], box[axis + 2] = a, n - b
        elif (edges := _inset_edges(grey if axis == 0 else grey.T)) is not None:
            box[axis], box[axis + 2] = edges
    if box == [0, 0, sw, sh]:
        return None
    x0, y0, x1, y1 = box
    return (int(round(x0 / s)), int(round(y0 / s)), min(w, int(round(x1 / s))), min(h, int(round(y1 / s))))
