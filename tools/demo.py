# SPDX-License-Identifier: GPL-3.0-or-later
"""PoseDiff demo (``python3 build.py demo``): pose a Rigify human metarig from a photo.

1. starts the real backend, ``.venv/bin/posediff serve --port <free port>`` with a random
   ``POSEDIFF_TOKEN``, and waits for ``/v1/health``;
2. ``POST /v1/estimate`` ``{"frames": [{"image": <abs path>}], "num_hypotheses": 20, "seed": 0}``
   through the add-on's HTTP client (``addon/client.py``, imported outside Blender), then stops
   the backend;
3. builds a scene in real Blender (``bpy``): Rigify human metarig, a camera reproducing the
   response's intrinsics with the photo as background, the best hypothesis keyed on frame 1 and
   the next ones on frames 2, 3, ... through the add-on's retargeting (``addon/blender_rig.py``,
   ``addon/retarget.py``, the ``RIGIFY_METARIG`` preset), placed in front of the camera so the
   rig lines up with the person in the photo;
4. reads the posed rig back and compares knee/elbow flexion, hip/shoulder spread and shoulder
   abduction with the hypothesis (table printed, stored under ``"check"``);
5. writes into ``--out`` (default ``out/``):

   * ``demo.blend``: the keyed rig, camera (photo packed as background), bone-shape mesh;
   * ``demo.json``: the estimate response plus ``"applied": {"frame": 0, "hypothesis": K,
     "blender_frame": 1}``: ``frame`` is the index of the photo in the response's ``frames``
     (0 = the first and only photo), ``hypothesis`` the index of the keyed hypothesis in that
     frame's (score-sorted) list, keyed on Blender frame 1, the first keyed frame; also
     ``"check"`` (limb angles, reprojection) and ``"demo"`` (keyed frames, timings, files);
   * ``demo.png``: detector overlay (keypoints + projected hypotheses) next to a Workbench
     render of the keyed rig over the photo.

Exit status: 0 on success, 1 if a step fails or the limb-angle check is off by more than the
tolerance, 2 for bad arguments (e.g. a missing photo).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))

DEFAULT_IMAGE = ROOT / "samples" / "image2.jpeg"
POSEDIFF = ROOT / ".venv" / "bin" / "posediff"
#: Largest acceptable difference between rig and hypothesis limb angles, degrees.
TOLERANCE_DEG = 5.0
FIRST_FRAME = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/demo.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="full-body photo (PNG/JPEG); default samples/image2.jpeg")
    p.add_argument("--out", type=Path, default=ROOT / "out", help="output folder (default out/)")
    p.add_argument("--num-hypotheses", type=int, default=20, help="hypotheses to sample (default 20)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--keyed", type=int, default=None,
                   help="how many hypotheses to key on consecutive frames from frame 1 (default: all)")
    p.add_argument("--port", type=int, default=None, help="backend port (default: a free one)")
    p.add_argument("--no-fit-root", action="store_true",
                   help="anchor the rig's pelvis exactly at the hypothesis' pelvis (the add-on's default) "
                        "instead of shifting it so all joints line up best")
    a = p.parse_args(argv)
    if not a.image.is_file():
        p.error(f"--image {a.image}: no such file; give a PNG or JPEG photo of a person")
    if not 1 <= a.num_hypotheses <= 100:
        p.error(f"--num-hypotheses {a.num_hypotheses}: must be 1..100")
    if a.keyed is not None and a.keyed < 1:
        p.error(f"--keyed {a.keyed}: must be at least 1")
    a.image = a.image.resolve()
    a.out = a.out.resolve()
    return a


class Timer:
    """Wall-clock seconds per step, printed as they finish."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.steps: dict[str, float] = {}
        self._last = self.t0

    def done(self, step: str, what: str = "") -> None:
        now = time.perf_counter()
        self.steps[step] = round(now - self._last, 2)
        self._last = now
        print(f"[demo] {step:<10} {self.steps[step]:6.1f} s  {what}", flush=True)

    def total(self) -> float:
        return round(time.perf_counter() - self.t0, 2)


def estimate(args, timer: Timer) -> dict:
    """Start the backend, run the estimate through ``addon.client.Client``, stop the backend."""
    from demo_backend import running_backend

    payload = {"frames": [{"image": str(args.image)}], "num_hypotheses": args.num_hypotheses, "seed": args.seed}
    log = args.out / "demo_serve.log"
    with running_backend(POSEDIFF, log, ROOT, args.port) as client:
        timer.done("backend", f"posediff serve up at {client.url} (log {log})")
        res = client.request("POST", "/v1/estimate", payload, timeout=600)
        timer.done("estimate", f"POST /v1/estimate: {len(res['frames'][0]['hypotheses'])} hypotheses "
                               f"of {args.image.name}")
    return res


def reprojection(rig_cam: dict, frame: dict, names: list[str], k: int) -> dict:
    """Mean pixel distance of the rig's joints (seen through the camera) to hypothesis ``k``'s
    projection and to the detector keypoints."""
    import numpy as np
    from demo_image import hypothesis_pixels, intrinsics_of

    from backend.camera import project

    K = intrinsics_of(frame["camera"])
    hyp_px = dict(zip(names, hypothesis_pixels(frame)[k]))
    rig_px = {j: project(np.asarray(p, np.float64), K) for j, p in rig_cam.items()}
    d_h = [float(np.linalg.norm(rig_px[j] - hyp_px[j])) for j in rig_px if j in hyp_px]
    kps = frame.get("keypoints") or {}
    d_k = [float(np.linalg.norm(rig_px[j] - np.asarray(kps[j][:2]))) for j in rig_px if j in kps]
    out = {"joints": len(d_h), "rig_vs_hypothesis_px": round(sum(d_h) / max(len(d_h), 1), 2),
           "per_joint_rig_vs_hypothesis_px": {j: round(float(np.linalg.norm(rig_px[j] - hyp_px[j])), 1)
                                              for j in rig_px if j in hyp_px}}
    if d_k:
        out["rig_vs_keypoints_px"] = round(sum(d_k) / len(d_k), 2)
    return out


def build_scene(args, res: dict, timer: Timer) -> dict:
    """Scene, keys, check, render and .blend; returns the ``check`` and ``demo`` records."""
    import bpy  # noqa: F401  (real Blender as a module)
    import demo_scene as ds
    from demo_check import compare_angles, format_table

    from addon import blender_rig

    names = res["joint_names"]
    fr = res["frames"][0]
    hyps = fr["hypotheses"]
    if not hyps:
        raise RuntimeError("the estimate returned no hypotheses")
    best = 0  # hypotheses are sorted by score, best first (CONTRACT.md)
    timer.done("bpy", "imported bpy")

    ds.reset_scene()
    ob = ds.add_metarig()
    cam = ds.add_photo_camera(fr["camera"], args.image, hyps[best].get("camera_pitch_deg") or 0.0,
                              hyps[best].get("camera_roll_deg") or 0.0)
    k_cam = ds.camera_intrinsics(cam)
    cam_err = max(abs(k_cam[c] - float(fr["camera"][c])) for c in ("fx", "cx", "cy"))
    shapes = ds.add_bone_shapes(ob)
    timer.done("scene", f"Rigify metarig ({len(ob.data.bones)} bones), camera {cam.data.lens:.1f} mm "
                        f"(intrinsics round trip {cam_err:.2g} px), bone shapes")

    n_key = min(args.keyed or len(hyps), len(hyps))
    order = [best] + [i for i in range(len(hyps)) if i != best]
    keyed = []
    for i, k in enumerate(order[:n_key]):
        rec = ds.key_hypothesis(ob, hyps[k], names, cam, FIRST_FRAME + i, fit_root=not args.no_fit_root)
        rec["hypothesis"] = k
        keyed.append(rec)
    timer.done("keys", f"keyed {n_key} hypotheses on frames {FIRST_FRAME}..{FIRST_FRAME + n_key - 1} "
                       f"({keyed[0]['bones_keyed']} bones each)")

    # Read every keyed frame back from the animation and compare with its hypothesis.
    scene = bpy.context.scene
    per_frame = []
    first = None
    for rec in keyed:
        scene.frame_set(rec["frame"])
        rig = blender_rig.posed_joints_world(ob)
        c = compare_angles(rig, dict(zip(names, hyps[rec["hypothesis"]]["joints"])), TOLERANCE_DEG)
        per_frame.append({"blender_frame": rec["frame"], "hypothesis": rec["hypothesis"],
                          "max_abs_diff_deg": c["max_abs_diff_deg"], "ok": c["ok"]})
        if first is None:
            first = c
            first["reprojection"] = reprojection(ds.world_to_camera(rig, cam), fr, names, rec["hypothesis"])
    check = {"blender_frame": FIRST_FRAME, "hypothesis": best, **first,
             "all_keyed_frames": per_frame,
             "all_ok": all(p["ok"] for p in per_frame)}
    timer.done("check", "rig read back from the keys")
    print(f"[demo] limb angles, Blender frame {FIRST_FRAME} (rig) vs hypothesis {best} (camera-frame joints):")
    print("       " + format_table(first).replace("\n", "\n       "))
    rp = first["reprojection"]
    print(f"[demo] rig joints through the camera: {rp['rig_vs_hypothesis_px']:.1f} px from the hypothesis' "
          f"projection, {rp.get('rig_vs_keypoints_px', float('nan')):.1f} px from the detector keypoints "
          f"(mean over {rp['joints']} joints); all {len(per_frame)} keyed frames within "
          f"{TOLERANCE_DEG:g} deg: {check['all_ok']}")

    render = args.out / "demo_render.png"
    ds.render_workbench(render, FIRST_FRAME)
    timer.done("render", f"Workbench render {scene.render.resolution_x}x{scene.render.resolution_y} -> {render}")
    ds.save_blend(args.out / "demo.blend", FIRST_FRAME, FIRST_FRAME + n_key - 1, FIRST_FRAME)
    timer.done("blend", f"saved {args.out / 'demo.blend'}")
    demo = {"rig": ob.name, "bone_shapes": shapes.name, "camera": cam.name, "lens_mm": round(cam.data.lens, 3),
            "keyed": keyed, "fit_root": not args.no_fit_root, "render": str(render)}
    return {"check": check, "demo": demo}


def compose(args, res: dict, timer: Timer, check: dict) -> Path:
    """demo.png: detector overlay | rig render over the photo."""
    from demo_image import detector_panel, load_photo, rig_panel, side_by_side

    fr = res["frames"][0]
    photo = load_photo(args.image, int(fr["camera"]["width"]), int(fr["camera"]["height"]))
    n = len(fr["hypotheses"])
    left = detector_panel(photo, fr, res["joint_names"])
    right = rig_panel(photo, args.out / "demo_render.png")
    footer = (f"{args.image.name}: {n} hypotheses, seed {args.seed}; rig keyed with hypothesis "
              f"#{check['hypothesis']} on frame {check['blender_frame']}; limb angles within "
              f"{check['max_abs_diff_deg']:.1f} deg; orange = left, blue = right")
    img = side_by_side([left, right], ["2D keypoints (red) + hypotheses (best in colour)",
                                       "Rigify metarig keyed in Blender"], footer)
    path = args.out / "demo.png"
    img.save(path)
    timer.done("picture", f"{path} ({img.width}x{img.height})")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    from demo_backend import BackendStartError

    from addon.client import BackendError

    try:
        res = estimate(args, timer)
        built = build_scene(args, res, timer)
        png = compose(args, res, timer, built["check"])
    except (BackendError, BackendStartError) as e:
        print(f"[demo] error: backend: {e}", file=sys.stderr)
        return 1
    except (RuntimeError, ValueError, KeyError, OSError) as e:
        print(f"[demo] error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    out = dict(res)
    out["applied"] = {"frame": 0, "hypothesis": built["check"]["hypothesis"],
                      "blender_frame": built["check"]["blender_frame"]}
    out["check"] = built["check"]
    built["demo"]["timings_s"] = {**timer.steps, "total": timer.total()}
    built["demo"]["image"] = str(args.image)
    out["demo"] = built["demo"]
    jpath = args.out / "demo.json"
    tmp = jpath.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(jpath)
    print(f"[demo] done in {timer.total():.1f} s:\n"
          f"       {args.out / 'demo.blend'}  (keyed Rigify metarig, frames {FIRST_FRAME}.."
          f"{FIRST_FRAME + len(built['demo']['keyed']) - 1}; open it in Blender and look through the camera)\n"
          f"       {png}  (detector overlay | rig over the photo)\n"
          f"       {jpath}  (estimate response + applied + check)")
    if not built["check"]["all_ok"]:
        print(f"[demo] limb-angle check FAILED: rig differs from a hypothesis by more than {TOLERANCE_DEG:g} deg",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
