"""``posediff``: the backend's command line (JSON in, JSON out; ``-`` = stdin/stdout).

Exit status 0 on success; on bad input a one-line error on stderr naming the field and why,
exit status 2, and no partial output file (outputs are written to a temporary file and renamed).
See ``shared/design/CONTRACT.md`` for the request and response shapes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A one-line, user-facing error (exit status 2)."""


def _read_json(path: str):
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliError(f"--input: {path} is not JSON text (not UTF-8: a binary file?); give a request .json file") from None
    except OSError as e:
        raise CliError(f"--input: cannot read {path}: {e.strerror}") from None
    try:
        return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(CliError(f"--input: {c} is not allowed (JSON numbers must be finite)")))
    except json.JSONDecodeError as e:
        raise CliError(f"--input: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise CliError(f"--input: {path} nests arrays or objects too deeply to be a request (see CONTRACT.md)") from None


def check_output(path: str) -> None:
    """Refuse an ``--output`` that cannot be written *before* the work is done (a long video
    would otherwise fail at its end): a folder, a path under a file, a folder not writable.
    Missing folders are fine (they are created when the result is written).

    Raises:
        CliError: names the path and what to give instead.
    """
    if path == "-":
        return
    out = Path(path)
    if out.is_dir():
        raise CliError(f"--output: {path} is a folder; give a file name such as {out / 'result.json'}")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CliError(f"--output: {parent} is a file, not a folder; give an output path in a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"--output: cannot write in {parent} (permission denied); give a path in a folder you can write")


def _write_json(path: str, obj) -> None:
    text = json.dumps(obj, indent=1) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    out = Path(path)
    try:  # checked before the work (main's check_output); what changed since fails here, as clearly
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as e:
        raise CliError(f"--output: cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise CliError(f"--output: cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _validate(model, data):
    from pydantic import ValidationError

    from backend.errors import input_error_from

    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise input_error_from(e) from None


def _service(args):
    from backend.service import PoseService

    return PoseService(getattr(args, "prior", None), getattr(args, "device", None))


PRIOR_HELP = ("the pose prior: default (the shipped research prior: research only, non-commercial), cmu (CMU-only: "
              "commercial use OK) or the path of a .safetensors file (licence from its training data); "
              "--weights is the same option")


def _add_common(p: argparse.ArgumentParser, output: bool = True) -> None:
    if output:
        p.add_argument("--output", "-o", default="-", help="response JSON file ('-' = stdout)")
    p.add_argument("--prior", "--weights", dest="prior", default=None, metavar="default|cmu|PATH", help=PRIOR_HELP)
    p.add_argument("--device", default=None, help="cuda | cpu (default: CUDA when available)")


def _sequence_flags(args, data: dict, video: bool = False) -> None:
    """``--moving-camera`` / ``--no-cuts`` into the request's ``sequence`` (a video's is made here).

    Raises:
        CliError: one of them with a request that is no sequence.
    """
    flags = [(flag, key, value) for flag, on, key, value in (("--moving-camera", args.moving_camera, "moving_camera", True),
                                                            ("--no-cuts", args.no_cuts, "detect_cuts", False)) if on]
    if flags and video:
        data.setdefault("sequence", {})
    for flag, key, value in flags:
        if not isinstance(data.get("sequence"), dict):
            raise CliError(f"{flag}: goes with a video, an image sequence or a request with \"sequence\"")
        data["sequence"][key] = value


def cmd_estimate(args) -> int:
    from backend.http import schemas
    from backend.vision.video import is_sequence_path

    if args.images and args.input:
        raise CliError("estimate: give either --input REQ.json or IMAGE files, not both")
    if args.person is not None and not args.images:
        raise CliError("--person: goes with IMAGE files or a video; in a request JSON, give each frame's \"person\"")
    if args.lens is not None and not args.images:
        raise CliError("--lens: goes with IMAGE files or a video; in a request JSON, give each frame's camera.focal_35mm")
    if args.mirrored and not args.images:
        raise CliError("--mirrored: goes with IMAGE files or a video; in a request JSON, give each frame's \"mirrored\"")
    lo, hi = schemas.FOCAL_35MM_RANGE
    if args.lens is not None and not (lo <= args.lens <= hi):
        raise CliError(f"--lens: {args.lens:g} mm is not a 35 mm-equivalent focal length ({lo:g}-{hi:g}; a phone's main "
                       "camera is about 26, its 2x / 3x / 5x 48 / 77 / 120)")
    if args.images and not args.input and (args.sequence or (len(args.images) == 1 and is_sequence_path(args.images[0]))):
        return _estimate_sequence(args)
    if args.every < 1:
        raise CliError(f"--every: {args.every} is not a frame step; give 1 (every frame) or more")
    if args.input:
        data = _read_json(args.input)
    elif args.images:
        person = {} if args.person is None else {"person": args.person}
        if args.lens is not None:
            person["camera"] = {"focal_35mm": args.lens}
        if args.mirrored:
            person["mirrored"] = True
        data = {"frames": [{"image": str(Path(i).resolve()) if Path(i).exists() else i, **person} for i in args.images]}
    else:
        raise CliError("estimate: give --input REQ.json or one or more IMAGE files")
    if isinstance(data, dict):
        if args.num is not None:
            data["num_hypotheses"] = args.num
        if args.seed is not None:
            data["seed"] = args.seed
        if args.steps is not None:
            data["steps"] = args.steps
        if args.previews:
            data["previews"] = True
        _sequence_flags(args, data)
    req = _validate(schemas.EstimateRequest, data)
    res = _service(args).estimate(req)
    if args.overlay:
        _write_overlays(Path(args.overlay), req, res)
    _write_json(args.output, res.model_dump(exclude_none=True))
    return 0


@contextlib.contextmanager
def _ctrl_c_cancels():
    """While inside: Ctrl-C (SIGINT) sets a flag that the returned ``cancel()`` reports, so a long
    clip stops at the next frame or denoising step with :class:`backend.errors.Cancelled` (exit 130,
    nothing written). A handler of its own, so Ctrl-C works even where the process was started
    with SIGINT ignored (a background job of a non-interactive shell: Python then installs no
    ``KeyboardInterrupt`` handler), and a flag, not ``KeyboardInterrupt``, which can be raised
    inside a finaliser, where Python prints it and goes on. A second Ctrl-C interrupts at once."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hit = threading.Event()

    def on_sigint(signum, frame):
        if hit.is_set():
            raise KeyboardInterrupt
        hit.set()

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield hit.is_set
    finally:
        signal.signal(signal.SIGINT, old)


def _estimate_sequence(args) -> int:
    """A video file, an image folder/glob, or several images with ``--sequence``: one clip, streamed.

    Frames are decoded one at a time (no request size limit for a local path); a tqdm bar counts
    the frames; Ctrl-C stops and writes nothing (the output is only written at the end).
    """
    from tqdm import tqdm

    from backend.http import schemas
    from backend.sequence import estimate_sequence
    from backend.vision.video import open_frames

    path = args.images if len(args.images) > 1 else args.images[0]
    src = open_frames(path, every=args.every, start=args.start, end=args.end, fps=args.fps, field="video")
    data = {"video": {"path": args.images[0], "every": args.every}, "seed": args.seed if args.seed is not None else 0}
    if args.person is not None:
        data["video"]["person"] = args.person
    if args.lens is not None:
        data["video"]["camera"] = {"focal_35mm": args.lens}
    if args.mirrored:
        data["video"]["mirrored"] = True
    if args.num is not None:
        data["num_hypotheses"] = args.num
    if args.steps is not None:
        data["steps"] = args.steps
    _sequence_flags(args, data, video=True)
    req = _validate(schemas.EstimateRequest, data)
    svc = _service(args)
    with _ctrl_c_cancels() as cancelled:  # before the bar: a Ctrl-C once it shows is always seen
        bar = tqdm(total=len(src), unit="frame", desc=src.name, file=sys.stderr, disable=args.output == "-" and not sys.stderr.isatty())
        try:
            res = estimate_sequence(svc, req, progress=lambda f: bar.update(max(0, round(f * len(src)) - bar.n)),
                                    cancel=cancelled, frame_source=src)
        finally:
            bar.close()
    for i, fr in enumerate(res.frames):
        for w in fr.warnings:
            print(f"frame {i}: {w}", file=sys.stderr)
    for w in res.sequence.warnings if res.sequence is not None else ():
        print(f"clip: {w}", file=sys.stderr)
    if res.sequence is not None and res.sequence.cuts:
        print(f"{len(res.sequence.cuts) + 1} shots (cuts at frames {', '.join(map(str, res.sequence.cuts))}): each "
              "shot's camera in sequence.camera_motion / camera_translation", file=sys.stderr)
    elif res.sequence is not None and res.sequence.camera_motion:
        import numpy as np

        from backend.vision.camera_motion import turn_deg

        turn = max(turn_deg(np.asarray(m)) for m in res.sequence.camera_motion)
        print(f"the camera turned by up to {turn:.1f} degrees during the clip (handheld): undone in the track "
              "(sequence.camera_motion)", file=sys.stderr)
    if res.sequence is not None and res.sequence.camera_zoom:
        z = res.sequence.camera_zoom
        print(f"the lens zoomed ({min(z):.2f}-{max(z):.2f}x the first frame's focal length): each frame's depth solved "
              "with its own (sequence.camera_zoom, frames[i].camera)", file=sys.stderr)
    if res.sequence is not None and res.sequence.camera_translation and res.sequence.moving_camera:
        import math

        print(f"the camera travelled {math.dist(res.sequence.camera_translation[0], res.sequence.camera_translation[-1]):.2f} m "
              "(from the feet; sequence.camera_translation)", file=sys.stderr)
    _write_json(args.output, res.model_dump(exclude_none=True))
    return 0


def _write_overlays(folder: Path, req, res) -> None:
    """Photo (or blank canvas) with detected keypoints and the best hypotheses' projections."""
    import numpy as np

    from backend.camera import Intrinsics, project
    from backend.skeleton import JOINT_NAMES, PARENTS
    from backend.vision.overlay import draw_overlay, encode_png

    folder.mkdir(parents=True, exist_ok=True)
    for i, (fr_req, fr) in enumerate(zip(req.frames, res.frames)):
        K = Intrinsics(**fr.camera)
        if fr_req.image is not None:
            from backend.vision.photo import load_image

            rgb = load_image(fr_req.image).rgb
            rgb = np.ascontiguousarray(rgb[:, ::-1]) if fr.mirrored else rgb  # the keypoints and camera are of the flipped picture
            if rgb.shape[1] != K.width:
                import cv2

                rgb = cv2.resize(rgb, (K.width, K.height))
        else:
            rgb = np.full((K.height, K.width, 3), 255, np.uint8)
        projs = [project(np.array(h.joints) + np.array(h.root_translation), K) for h in fr.hypotheses[:3]]
        side = [np.array(h.world_joints) for h in fr.hypotheses[:3] if h.world_joints is not None]
        img = draw_overlay(rgb, fr.keypoints or {}, projs, JOINT_NAMES, PARENTS, side_poses=side or None)
        path = folder / f"overlay_{i:03d}.png"
        path.write_bytes(encode_png(img))
        print(f"wrote {path}", file=sys.stderr)


def cmd_complete(args) -> int:
    from backend.http import schemas

    req = _validate(schemas.CompleteRequest, _read_json(args.input))
    _write_json(args.output, _service(args).complete(req).model_dump(exclude_none=True))
    return 0


def cmd_generate(args) -> int:
    from backend.http import schemas

    req = _validate(schemas.GenerateRequest, {"num": args.num, "seed": args.seed, **({"steps": args.steps} if args.steps else {})})
    _write_json(args.output, _service(args).generate(req).model_dump(exclude_none=True))
    return 0


def cmd_variations(args) -> int:
    from backend.http import schemas

    req = _validate(schemas.VariationsRequest, _read_json(args.input))
    _write_json(args.output, _service(args).variations(req).model_dump(exclude_none=True))
    return 0


def cmd_assist(args) -> int:
    from backend.http import schemas

    req = _validate(schemas.AssistRequest, _read_json(args.input))
    _write_json(args.output, _service(args).assist(req).model_dump(exclude_none=True))
    return 0


def cmd_detect(args) -> int:
    from backend.http import schemas

    if args.images and args.input:
        raise CliError("detect: give either --input REQ.json or IMAGE files, not both")
    if args.input:
        data = _read_json(args.input)
    elif args.images:
        data = {"frames": [{"image": i, **({"mirrored": True} if args.mirrored else {})} for i in args.images]}
    else:
        raise CliError("detect: give one or more IMAGE files or --input REQ.json")
    if args.mirrored and args.input:
        raise CliError("--mirrored: goes with IMAGE files; in a request JSON, give each frame's \"mirrored\"")
    if args.heatmaps and isinstance(data, dict):
        data["heatmaps"] = True
    req = _validate(schemas.DetectRequest, data)
    from backend.service import run_detect
    from backend.vision.detector import PoseDetector

    _write_json(args.output, run_detect(PoseDetector(), req).model_dump(exclude_none=True))
    return 0


def cmd_skeleton(args) -> int:
    from backend.skeleton import JOINT_NAMES, describe

    _write_json(args.output, {"joint_names": list(JOINT_NAMES), "joints": describe()})
    return 0


def cmd_train(args) -> int:
    from backend.prior.train import train

    train(args)
    return 0


def cmd_eval(args) -> int:
    from backend.evaluate import run

    return run(args)


def cmd_bench(args) -> int:
    from backend.bench import run

    return run(args)


def cmd_serve(args) -> int:
    from backend.http.serve import serve_command

    return serve_command(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="posediff", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("estimate", help="3D pose hypotheses from 2D keypoints, photos, a video or an image sequence")
    e.add_argument("images", nargs="*", help="image files, a video file, an image folder or glob (instead of --input)")
    e.add_argument("--input", "-i", default=None, help="request JSON ('-' = stdin)")
    e.add_argument("--num", type=int, default=None, help="hypotheses per frame (default 20)")
    e.add_argument("--seed", type=int, default=None)
    e.add_argument("--steps", type=int, default=None, help="DDIM steps (default 40)")
    e.add_argument("--previews", action="store_true", help="add PNG previews to the response")
    e.add_argument("--overlay", default=None, metavar="DIR", help="write overlay PNGs (keypoints + best hypotheses) here")
    e.add_argument("--person", type=int, default=None, metavar="N",
                   help="which detected person, by size (0 = largest, the default); in a video or image sequence: "
                        "picked on the first frame, then followed")
    e.add_argument("--lens", type=float, default=None, metavar="MM",
                   help="35 mm-equivalent focal length of the photos or video (camera.focal_35mm), instead of their EXIF "
                        "or metadata, or the default where they say nothing (40 mm for photos, 28 for footage); a "
                        "phone's main camera ~26, its telephotos 48 / 77 / 120; a webcam ~28")
    e.add_argument("--mirrored", action="store_true",
                   help="the photos or video are mirror images (a selfie saved as previewed, a webcam's recording, a "
                        "photo taken in a mirror): flipped left-right first, so the pose is the person's own (their "
                        "right arm is the rig's right arm); keypoints and overlays are of the flipped picture")
    e.add_argument("--sequence", action="store_true", help="the IMAGE files are consecutive frames of one clip (adds a track)")
    e.add_argument("--every", type=int, default=1, help="video / image sequence: keep every N-th frame")
    e.add_argument("--start", default=None, help="video / image sequence: first frame ('12') or time ('0.5s')")
    e.add_argument("--end", default=None, help="video / image sequence: end frame, exclusive ('120') or time ('4.8s')")
    e.add_argument("--fps", type=float, default=None, help="frame rate (default: from the video; 25 for images)")
    e.add_argument("--moving-camera", action="store_true",
                   help="video / image sequence: the camera travels with the person (a tracking shot, a dolly): its path "
                        "is recovered from the person's planted feet (sequence.moving_camera)")
    e.add_argument("--no-cuts", action="store_true",
                   help="video / image sequence: one shot, do not look for cuts (an edited clip's changes of camera; "
                        "sequence.detect_cuts false)")
    _add_common(e)
    e.set_defaults(func=cmd_estimate)

    c = sub.add_parser("complete", help="fill in unknown joints from known ones")
    c.add_argument("--input", "-i", required=True)
    _add_common(c)
    c.set_defaults(func=cmd_complete)

    g = sub.add_parser("generate", help="random plausible poses")
    g.add_argument("--num", type=int, default=8)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--steps", type=int, default=None)
    _add_common(g)
    g.set_defaults(func=cmd_generate)

    v = sub.add_parser("variations", help="poses near a given one")
    v.add_argument("--input", "-i", required=True)
    _add_common(v)
    v.set_defaults(func=cmd_variations)

    a = sub.add_parser("assist", help="pose assist: one completed pose for pinned joints, warm-started from 'previous'")
    a.add_argument("--input", "-i", required=True)
    _add_common(a)
    a.set_defaults(func=cmd_assist)

    d = sub.add_parser("detect", help="2D keypoints from photos (BlazePose)")
    d.add_argument("images", nargs="*")
    d.add_argument("--input", "-i", default=None)
    d.add_argument("--heatmaps", action="store_true", help="include the log-heatmaps")
    d.add_argument("--mirrored", action="store_true",
                   help="the photos are mirror images (a selfie saved as previewed, a photo in a mirror): detected "
                        "flipped left-right, keypoints in the flipped picture's pixels")
    d.add_argument("--output", "-o", default="-")
    d.set_defaults(func=cmd_detect)

    s = sub.add_parser("serve", help="the HTTP backend for the Blender add-on")
    try:
        from backend.http.serve import add_serve_arguments

        add_serve_arguments(s)
    except ImportError:
        pass
    s.set_defaults(func=cmd_serve)

    k = sub.add_parser("skeleton", help="joint names, parents, bone lengths")
    k.add_argument("--output", "-o", default="-")
    k.set_defaults(func=cmd_skeleton)

    from backend import evaluate
    from backend.prior import train

    t = sub.add_parser("train", help="train the pose prior on mocap")
    train.add_arguments(t)
    t.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="accuracy tables (lift, complete, prior, detect)")
    evaluate.add_arguments(ev)
    ev.set_defaults(func=cmd_eval)

    b = sub.add_parser("bench", help="speed tables")
    b.add_argument("--prior", "--weights", dest="prior", default=None, metavar="default|cmu|PATH", help=PRIOR_HELP)
    b.add_argument("--device", default=None)
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--only", default="all", choices=["all", "assist"], help="all rows, or only the pose-assist rows")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from backend.errors import Cancelled, InputError, input_error_from

    args = build_parser().parse_args(argv)
    try:
        if isinstance(getattr(args, "output", None), str):
            check_output(args.output)
        return int(args.func(args) or 0)
    except (CliError, InputError) as e:
        print(f"posediff {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValidationError as e:  # a model the service built from the input, e.g. a non-finite result
        print(f"posediff {args.command}: error: {input_error_from(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as e:
        print(f"posediff {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Cancelled:
        print(f"posediff {args.command}: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
