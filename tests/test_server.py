"""The local HTTP server, run for real as a subprocess on loopback (``posediff serve``).

Also unit tests of its parts that need no server: the token and Host rules
(:mod:`backend.http.auth`) and the single-worker job queue (:mod:`backend.http.jobs`).
"""

from __future__ import annotations

import base64
import json
import math
import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_process import ROOT, serve_command, start_server, weights_for_tests

from backend.camera import default_intrinsics, project, tilt_rotation
from backend.errors import Cancelled, InputError
from backend.http.auth import HostPolicy, bearer_ok, resolve_token, split_host_header
from backend.http.jobs import CANCELLED, DONE, FAILED, JobQueue
from backend.skeleton import JOINT_NAMES, canonical_rest_pose

TOKEN = "test-token-0123456789abcdef"
NJ = len(JOINT_NAMES)
SAMPLE_IMAGE = ROOT / "samples" / "image2.jpeg"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return weights_for_tests(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def server(weights, tmp_path_factory):
    token_file = tmp_path_factory.mktemp("cfg") / "unused-token"
    sp = start_server(["--device", "cpu", "--weights", str(weights)],
                      env={"POSEDIFF_TOKEN": TOKEN, "POSEDIFF_TOKEN_FILE": str(token_file)}, token=TOKEN)
    print(f"\nserver startup (process start to healthy): {sp.startup_s:.2f} s; {sp.ready_line}")
    yield sp
    code = sp.stop()
    assert code == 0, sp.output()
    assert "Exception in ASGI application" not in sp.output(), sp.output()  # every failure was handled


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def keypoint_request(num_hypotheses: int = 4, seed: int = 0, steps: int | None = 8) -> tuple[dict, np.ndarray]:
    """An estimate request from the rest pose seen by a camera 4 m away, tilted 10 degrees down.

    Returns (request body, ``[J, 3]`` camera-frame joints in metres).
    """
    K = default_intrinsics(1000, 1000)
    R = tilt_rotation(math.radians(10.0))
    pose_world = canonical_rest_pose().astype(np.float64)
    cam = pose_world @ R.T + np.array([0.0, 0.2, 4.0])
    uv = project(cam, K)
    keypoints = {n: [float(uv[j, 0]), float(uv[j, 1]), 0.9] for j, n in enumerate(JOINT_NAMES)}
    req = {"frames": [{"keypoints": keypoints, "camera": K.as_dict()}], "num_hypotheses": num_hypotheses,
           "seed": seed}
    if steps:
        req["steps"] = steps
    return req, cam


def assert_finite_pose(p, n_joints=NJ):
    a = np.asarray(p, dtype=np.float64)
    assert a.shape == (n_joints, 3)
    assert np.isfinite(a).all()


def wait_for(fn, what: str, deadline_s: float = 120.0, every: float = 0.05):
    """Poll ``fn()`` until it returns a truthy value (a bound, not a timing assertion)."""
    t_end = time.monotonic() + deadline_s
    while time.monotonic() < t_end:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"gave up waiting for {what} after {deadline_s} s")


# ----------------------------------------------------------------------------- health, auth, hosts


def test_health_needs_no_token(server):
    r = httpx.get(server.url + "/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["version"]
    assert r.headers.get("x-request-id")


def test_routes_require_the_token(server):
    for path in ("/v1/skeleton", "/v1/info", "/openapi.json", "/v1/jobs"):
        r = httpx.get(server.url + path)
        assert r.status_code == 401, path
        assert "Authorization" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(server.url + "/v1/generate", json={"num": 1})
    assert r.status_code == 401


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", f"Basic {TOKEN}",
                                    TOKEN, f"Token {TOKEN}"])
def test_wrong_token_refused(server, header):
    r = httpx.get(server.url + "/v1/skeleton", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.json()["detail"] == "wrong token"


def test_bad_host_header_refused(server, client):
    for host in ("evil.example", f"evil.example:{server.port}", f"localhost:{server.port + 1}",
                 f"127.0.0.1.evil.example:{server.port}", "", "[::1"):
        r = client.get("/v1/skeleton", headers={"Host": host})
        assert r.status_code == 400, host
        assert "Host header" in r.json()["detail"]
    # health is token-free but still checks Host (DNS rebinding)
    assert httpx.get(server.url + "/v1/health", headers={"Host": "evil.example"}).status_code == 400
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", f"[::1]:{server.port}", "localhost"):
        assert client.get("/v1/skeleton", headers={"Host": host}).status_code == 200, host


def test_no_cors(server, client):
    r = client.options("/v1/estimate", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/v1/skeleton", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


# ----------------------------------------------------------------------------- static routes


def test_skeleton(client):
    r = client.get("/v1/skeleton")
    assert r.status_code == 200
    body = r.json()
    assert body["joint_names"] == list(JOINT_NAMES)
    assert [j["name"] for j in body["joints"]] == list(JOINT_NAMES)
    assert body["joints"][0]["parent"] is None
    assert all(j["bone_length_m"] >= 0 for j in body["joints"])


def test_info(client):
    body = client.get("/v1/info").json()
    assert body["device"] == "cpu"
    assert body["joint_names"] == list(JOINT_NAMES)
    assert body["max_body_bytes"] == 32 * 2**20  # the default --max-body-mb, which the add-on checks against
    assert body["request_encodings"] == ["gzip"]


def test_openapi_documents_the_schemas(client):
    spec = client.get("/openapi.json").json()
    for path in ("/v1/estimate", "/v1/complete", "/v1/generate", "/v1/variations", "/v1/detect", "/v1/assist",
                 "/v1/image", "/v1/jobs/estimate", "/v1/jobs/{job_id}", "/v1/health", "/v1/skeleton"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    for name in ("EstimateRequest", "EstimateResponse", "CompleteRequest", "GenerateRequest", "GenerateResponse",
                 "VariationsRequest", "DetectRequest", "DetectResponse", "JobStatus", "AssistRequest", "AssistResponse"):
        assert name in schemas, name
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# ----------------------------------------------------------------------------- round trips


def test_estimate_from_projected_keypoints(client):
    req, _ = keypoint_request(num_hypotheses=5)
    r = client.post("/v1/estimate", json=req)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["joint_names"] == list(JOINT_NAMES)
    (frame,) = body["frames"]
    hyps = frame["hypotheses"]
    assert len(hyps) == 5
    scores = [h["score"] for h in hyps]
    assert scores == sorted(scores, reverse=True)
    for h in hyps:
        assert_finite_pose(h["joints"])
        assert np.allclose(h["joints"][0], 0.0, atol=1e-4)  # root-relative, pelvis first
        assert len(h["root_translation"]) == 3
    assert_finite_pose(frame["aggregate"])


def test_complete_reproduces_known_joints(client):
    rest = canonical_rest_pose().astype(np.float64) + np.array([0.5, -1.0, 1.0])
    known_names = ["pelvis", "left_wrist", "right_ankle", "head"]
    known = {n: rest[JOINT_NAMES.index(n)].tolist() for n in known_names}
    r = client.post("/v1/complete", json={"frames": [{"known": known}], "num_hypotheses": 3, "seed": 1, "steps": 8})
    assert r.status_code == 200, r.text
    (frame,) = r.json()["frames"]
    assert len(frame["hypotheses"]) == 3
    for h in frame["hypotheses"]:
        assert_finite_pose(h["joints"])
        j = np.asarray(h["joints"])
        for n in known_names:
            assert np.linalg.norm(j[JOINT_NAMES.index(n)] - known[n]) < 0.02, n


def test_assist_keeps_pins_and_moves_little(client):
    rest = canonical_rest_pose().astype(np.float64) + np.array([0.2, 0.5, 1.0])
    pins = ["left_wrist", "right_ankle", "left_ankle"]
    known = {n: rest[JOINT_NAMES.index(n)].tolist() for n in pins}
    r = client.post("/v1/assist", json={"known": known, "seed": 0})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["joint_names"] == list(JOINT_NAMES)
    assert_finite_pose(first["joints"])
    known["left_wrist"] = (np.asarray(known["left_wrist"]) + [0.01, 0.0, 0.0]).tolist()
    r = client.post("/v1/assist", json={"known": known, "previous": first["joints"], "seed": 0})
    assert r.status_code == 200, r.text
    j, prev = np.asarray(r.json()["joints"]), np.asarray(first["joints"])
    for n in pins:
        assert np.linalg.norm(j[JOINT_NAMES.index(n)] - known[n]) < 1e-4, n
    assert np.linalg.norm(j - prev, axis=-1).max() <= 0.03  # a 1 cm pin move: at most 3 cm anywhere
    bad = client.post("/v1/assist", content=b'{"known": {"left_wrist": [NaN, 0, 1]}}',
                      headers={"content-type": "application/json"})
    assert bad.status_code == 422 and "left_wrist" in bad.json()["message"], bad.text
    none = client.post("/v1/assist", json={"known": {}})
    assert none.status_code == 422 and "no pins" in none.json()["message"], none.text


def test_generate(client):
    r = client.post("/v1/generate", json={"num": 3, "seed": 2, "steps": 6})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["joint_names"] == list(JOINT_NAMES)
    assert len(body["poses"]) == 3
    for p in body["poses"]:
        assert_finite_pose(p)
        assert np.allclose(p[0], 0.0, atol=1e-4)
    again = client.post("/v1/generate", json={"num": 3, "seed": 2, "steps": 6}).json()
    assert np.allclose(again["poses"], body["poses"], atol=1e-5)  # same seed, same poses


def test_variations(client):
    pose = canonical_rest_pose().astype(np.float64)
    req = {"pose": {n: pose[j].tolist() for j, n in enumerate(JOINT_NAMES)}, "strength": 0.3, "num": 2, "seed": 3,
           "fixed": ["left_ankle"]}
    r = client.post("/v1/variations", json=req)
    assert r.status_code == 200, r.text
    poses = r.json()["poses"]
    assert len(poses) == 2
    for p in poses:
        assert_finite_pose(p)


def _has_detector() -> bool:
    import importlib.util

    return importlib.util.find_spec("backend.vision.detector") is not None


@pytest.mark.skipif(not _has_detector(), reason="backend.vision.detector (the 2D detector) is not in the tree yet")
def test_detect_photo_by_path_and_base64(client):
    r = client.post("/v1/detect", json={"frames": [{"image": str(SAMPLE_IMAGE)}]})
    assert r.status_code == 200, r.text
    (frame,) = r.json()["frames"]
    assert {"left_wrist", "right_ankle", "left_shoulder"} <= set(frame["keypoints"])
    w, h = frame["camera"]["width"], frame["camera"]["height"]
    for u, v, c in frame["keypoints"].values():
        assert -0.5 * w < u < 1.5 * w and -0.5 * h < v < 1.5 * h and 0 <= c <= 1
    b64 = base64.b64encode(SAMPLE_IMAGE.read_bytes()).decode()
    r2 = client.post("/v1/detect", json={"frames": [{"image": b64}]})
    assert r2.status_code == 200, r2.text
    k1, k2 = frame["keypoints"], r2.json()["frames"][0]["keypoints"]
    assert set(k1) == set(k2)
    assert all(np.allclose(k1[n][:2], k2[n][:2], atol=1.0) for n in k1)


def test_image_decodes_a_heic_photo_as_an_upright_jpeg(client, tmp_path):
    """``POST /v1/image``: what a client that cannot read a HEIC (Blender) shows instead; the JPEG it
    answers has the photo's size and is detected like the photo; a file that is no image is a 400."""
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()  # to write the HEIC here (the server decodes it in its own process)
    heic = tmp_path / "IMG_0002.heic"
    Image.open(SAMPLE_IMAGE).convert("RGB").save(heic, "HEIF", quality=90)
    r = client.post("/v1/image", json={"image": base64.b64encode(heic.read_bytes()).decode()})
    assert r.status_code == 200, r.text
    body = r.json()
    jpeg = base64.b64decode(body["jpeg"])
    assert jpeg[:2] == b"\xff\xd8" and [body["width"], body["height"]] == body["original_size"] == list(Image.open(SAMPLE_IMAGE).size)
    k = [client.post("/v1/detect", json={"frames": [{"image": img}]}).json()["frames"][0]["keypoints"]
         for img in (str(SAMPLE_IMAGE), body["jpeg"])]
    assert max(np.hypot(*np.subtract(k[0][n][:2], k[1][n][:2])) for n in ("left_knee", "right_wrist", "left_hip")) < 8.0
    bad = client.post("/v1/image", json={"image": base64.b64encode(b"not a photo" * 500).decode()})
    assert bad.status_code == 400 and bad.json()["detail"]["field"] == "image"
    assert "not a recognised image" in bad.json()["detail"]["message"]


# ----------------------------------------------------------------------------- bad input


def _field_named(r: httpx.Response, fragment: str) -> bool:
    detail = r.json()["detail"]
    fields = [d["field"] for d in detail] if isinstance(detail, list) else [detail["field"]]
    return any(fragment in f for f in fields)


def test_nan_and_infinity_rejected(client):
    req, _ = keypoint_request()
    text = json.dumps(req).replace(json.dumps(req["frames"][0]["keypoints"]["left_wrist"][0]), "NaN", 1)
    r = client.post("/v1/estimate", content=text, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert _field_named(r, "frames[0].keypoints.left_wrist")
    r = client.post("/v1/complete", content='{"frames": [{"known": {"pelvis": [0, 0, Infinity]}}]}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and _field_named(r, "frames[0].known.pelvis")


def test_unknown_joint_rejected(client):
    r = client.post("/v1/complete", json={"frames": [{"known": {"left_pinky": [0, 0, 1]}}]})
    assert r.status_code == 422
    assert _field_named(r, "frames[0].known")
    assert "left_pinky" in r.json()["message"]


def test_wrong_types_rejected(client):
    r = client.post("/v1/generate", json={"num": "many"})
    assert r.status_code == 422 and _field_named(r, "num")
    r = client.post("/v1/estimate", json={"frames": "none"})
    assert r.status_code == 422 and _field_named(r, "frames")
    r = client.post("/v1/estimate", json=[1, 2])
    assert r.status_code == 422


def test_invalid_json_rejected(client):
    r = client.post("/v1/estimate", content=b'{"frames": [', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["message"]
    r = client.post("/v1/generate", content=b"\xff\xfe\x00", headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500


def test_bad_bodies_say_what_is_wrong_with_them(client):
    r = client.post("/v1/generate", content=b'{"num": 1,,}', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["message"].startswith("body: not valid JSON at character 10: ")
    r = client.post("/v1/generate", content=b"num=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "Content-Type: application/json" in r.json()["message"]


def test_the_finiteness_check_names_the_first_bad_number_in_blocks_and_ragged_lists():
    """Blocks of numbers are checked at once (numpy), anything else walked; either way the path of
    the first NaN, infinity or out-of-bound number is named."""
    from backend.http.schemas import _first_non_finite as first

    nan, inf = float("nan"), float("inf")
    assert first([[1.0, 2.0], [3.0, 4]]) is None and first([]) is None and first([[]]) is None
    assert first([[1.0, 2.0], [3.0, nan]]) == (1, 1)
    assert first({"a": [[1, 2], [3, 4]], "b": [1.0, 1e9]}, bound=1e6) == ("b", 1)
    assert first([[1.0], [2.0, -inf]]) == (1, 1)  # ragged: walked
    assert first([None, 1.0, nan]) == (2,) and first(["x", inf]) == (1,) and first([True, 2.0]) is None
    assert first([10**400], bound=1e6) == (0,) and first([10**400]) is None  # an int too big for a float: walked
    assert first({"frames": [{"joints": [[0.0, 0.0, 0.0]] * 20 + [[0.0, nan, 0.0]]}]}) == ("frames", 0, "joints", 20, 1)


def test_track_refuses_frames_that_are_not_an_estimate_response(client):
    """``POST /v1/track`` takes a response's frames back: wrong joint counts, NaN or absurd values
    and a fixed frame outside the clip are 4xx naming the field (they were 500s)."""
    req, _ = keypoint_request(num_hypotheses=2, steps=4)
    req["frames"] = req["frames"] * 3
    req["sequence"] = {"fps": 25}
    res = client.post("/v1/estimate", json=req)
    assert res.status_code == 200, res.text
    frames = res.json()["frames"]
    ok = {"frames": frames, "sequence": {"fps": 25}}
    assert client.post("/v1/track", json=ok).status_code == 200

    def track(edit):
        body = json.loads(json.dumps(ok))
        edit(body)
        return client.post("/v1/track", content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})

    r = track(lambda b: b["frames"][1]["hypotheses"][0].update(joints=b["frames"][1]["hypotheses"][0]["joints"][:5]))
    assert r.status_code == 422 and r.json()["message"].startswith("frames[1].hypotheses[0].joints: List should have at least 21")
    r = track(lambda b: b["frames"][0].update(aggregate=b["frames"][0]["aggregate"][:5]))
    assert r.status_code == 422 and "frames[0].aggregate" in r.json()["message"]
    for bad in (math.nan, 1e300):
        r = track(lambda b, bad=bad: b["frames"][2]["hypotheses"][1]["joints"][3].__setitem__(0, bad))
        assert r.status_code == 422 and "frames[2].hypotheses[1].joints[3][0]: not a finite number" in r.json()["message"]
    r = track(lambda b: b["sequence"].update(fixed={"50": 0}))
    assert r.status_code == 400 and "frame 50 is not in the sequence (its 3 frames are 0-2)" in r.text
    assert client.get("/v1/health").status_code == 200


def test_limits_rejected(client):
    req, _ = keypoint_request()
    req["num_hypotheses"] = 10**6
    r = client.post("/v1/estimate", json=req)
    assert r.status_code == 422 and _field_named(r, "num_hypotheses")
    r = client.post("/v1/generate", json={"num": 10**9})
    assert r.status_code == 422 and _field_named(r, "num")
    r = client.post("/v1/jobs/generate", json={"num": 10**9})
    assert r.status_code == 422 and _field_named(r, "num")


def test_service_input_error_is_400_with_field(client, tmp_path):
    r = client.post("/v1/estimate", json={"frames": [{"image": str(tmp_path / "missing.png")}]})
    assert r.status_code == 400, r.text
    assert r.json()["detail"]["field"] == "frames[0].image"


def test_a_mirror_rotation_is_422_naming_the_field(client):
    req, _ = keypoint_request()
    req["frames"][0]["camera"]["rotation"] = [[1, 0, 0], [0, 1, 0], [0, 0, -1]]  # a mirror, not a rotation
    r = client.post("/v1/estimate", json=req)
    assert r.status_code == 422, r.text
    assert _field_named(r, "frames[0].camera.rotation") and "rotation" in r.json()["message"]
    assert client.post("/v1/jobs/estimate", json=req).status_code == 422  # refused before it is queued


def test_variations_of_an_empty_pose_is_4xx(client):
    r = client.post("/v1/variations", json={"pose": {}})
    assert 400 <= r.status_code < 500, r.text


def test_absurd_magnitudes_are_4xx(client):
    r = client.post("/v1/estimate", json={"frames": [{"keypoints": {"pelvis": [1e300, 1e300, 1], "head": [-1e300, 5, 1]}}],
                                          "num_hypotheses": 2, "steps": 3})
    assert 400 <= r.status_code < 500, r.text
    r = client.post("/v1/complete", json={"frames": [{"known": {"pelvis": [1e300, 0, 0], "head": [0, 0, -1e300]}}],
                                          "num_hypotheses": 2, "steps": 3})
    assert 400 <= r.status_code < 500, r.text


def test_tiny_focal_length_is_4xx(client):
    r = client.post("/v1/estimate", json={"frames": [{"keypoints": {"pelvis": [10, 10, 1], "head": [20, 5, 1]},
                                                      "camera": {"fx": 1e-300, "width": 100, "height": 100}}],
                                          "num_hypotheses": 1, "steps": 1})
    assert 400 <= r.status_code < 500, r.text


def test_missing_image_file_is_4xx(client):
    r = client.post("/v1/detect", json={"frames": [{"image": "/no/such/photo.jpg"}]})
    assert 400 <= r.status_code < 500, r.text
    assert "frames[0].image" in json.dumps(r.json()["detail"])


def test_oversized_body_413(client):
    big = b'{"frames": [{"image": "' + b"A" * (33 * 2**20) + b'"}]}'
    r = client.post("/v1/detect", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "--max-body-mb" in r.json()["detail"]

    def stream():  # chunked: no Content-Length, the server must count
        yield b'{"frames": [{"image": "'
        for _ in range(40):
            yield b"A" * 2**20
        yield b'"}]}'

    r = client.post("/v1/detect", content=stream(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert client.get("/v1/health").status_code == 200


def test_gzip_bodies_are_read_within_a_bound(client):
    """``Content-Encoding: gzip``: the body is decompressed (the same answer as plain); one that would
    decompress past 8x the limit (a compression bomb) is 413 after bounded work, a corrupt one 400,
    another encoding 415; the server keeps serving."""
    import gzip

    req, _ = keypoint_request(num_hypotheses=2)
    plain = client.post("/v1/estimate", json=req)
    zipped = client.post("/v1/estimate", content=gzip.compress(json.dumps(req).encode()),
                         headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert plain.status_code == zipped.status_code == 200, zipped.text
    assert zipped.json()["frames"][0]["hypotheses"][0]["joints"] == plain.json()["frames"][0]["hypotheses"][0]["joints"]

    bomb = gzip.compress(b'{"frames": [{"image": "' + b"A" * (257 * 2**20) + b'"}]}', compresslevel=9)
    assert len(bomb) < 2**20  # small on the wire, 257 MB decompressed: over 8 x 32 MB
    r = client.post("/v1/detect", content=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "once decompressed" in r.json()["detail"]
    r = client.post("/v1/detect", content=gzip.compress(b'{"frames": []}')[:-6],
                    headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip request body is" in r.json()["detail"]
    r = client.post("/v1/detect", content=b"{}", headers={"Content-Type": "application/json", "Content-Encoding": "br"})
    assert r.status_code == 415 and "gzip" in r.json()["detail"]
    assert client.get("/v1/health").status_code == 200


def test_unknown_job_and_task(client):
    assert client.get("/v1/jobs/0123456789abcdef").status_code == 404
    assert client.delete("/v1/jobs/0123456789abcdef").status_code == 404
    r = client.post("/v1/jobs/dance", json={})
    assert r.status_code == 404 and "estimate" in r.json()["detail"]


# ----------------------------------------------------------------------------- jobs


def test_jobs_progress_queue_cancel_and_complete(client):
    # A: long (64 frames x 200 hypotheses x 1000 steps); B: small, queued behind A on the one worker.
    req_a, _ = keypoint_request(num_hypotheses=200, steps=1000)
    req_a["frames"] = req_a["frames"] * 64
    ra = client.post("/v1/jobs/estimate", json=req_a)
    assert ra.status_code == 202, ra.text
    assert ra.json()["state"] == "queued"
    a = ra.json()["id"]
    b = client.post("/v1/jobs/generate", json={"num": 2, "seed": 1, "steps": 5}).json()["id"]

    def a_progressing():
        s = client.get(f"/v1/jobs/{a}").json()
        return s if s["state"] == "running" and 0 < s["progress"] < 1 else None

    sa = wait_for(a_progressing, "job A to report progress")
    assert sa["task"] == "estimate" and sa["result"] is None
    sb = client.get(f"/v1/jobs/{b}").json()
    if client.get(f"/v1/jobs/{a}").json()["state"] == "running":
        assert sb["state"] == "queued"  # one worker: B cannot start while A runs

    listed = {j["id"]: j for j in client.get("/v1/jobs").json()["jobs"]}
    assert a in listed and b in listed

    rc = client.delete(f"/v1/jobs/{a}")
    assert rc.status_code == 200 and rc.json()["cancel_requested"]
    sa = wait_for(lambda: (s := client.get(f"/v1/jobs/{a}").json())["state"] in ("cancelled", "done") and s,
                  "job A to stop")
    assert sa["state"] == "cancelled", sa
    assert sa["result"] is None

    sb = wait_for(lambda: (s := client.get(f"/v1/jobs/{b}").json())["state"] in ("done", "failed") and s,
                  "job B to finish")
    assert sb["state"] == "done", sb
    assert sb["progress"] == 1.0
    assert len(sb["result"]["poses"]) == 2
    for p in sb["result"]["poses"]:
        assert_finite_pose(p)
    # the server is healthy and serves synchronous requests afterwards
    assert client.get("/v1/health").json()["status"] == "ok"
    assert client.post("/v1/generate", json={"num": 1, "steps": 3}).status_code == 200


def test_addon_client_message_names_the_field_as_the_server_does(server):
    """The add-on shows the server's field path (frames[0].camera.rotation), the CLI's format too."""
    from addon.client import BackendError
    from addon.client import Client as AddonClient

    req, _ = keypoint_request()
    req["frames"][0]["camera"]["rotation"] = [[1, 0, 0], [0, 1, 0], [0, 0, -1]]
    with pytest.raises(BackendError) as e:
        AddonClient(server.url, TOKEN).request("POST", "/v1/estimate", req)
    assert e.value.status == 422 and "frames[0].camera.rotation: " in str(e.value) and "mirror" in str(e.value)


def test_job_with_bad_input_fails_with_field(client, tmp_path):
    req = {"frames": [{"image": str(tmp_path / "missing.png")}]}  # only the service can find this out
    jid = client.post("/v1/jobs/estimate", json=req).json()["id"]
    s = wait_for(lambda: (s := client.get(f"/v1/jobs/{jid}").json())["state"] not in ("queued", "running") and s,
                 "the job to end")
    assert s["state"] == "failed"
    assert s["error_field"] == "frames[0].image" and "missing.png" in s["error"]


def test_sync_requests_while_a_job_runs_are_served_in_turn(client):
    jid = client.post("/v1/jobs/generate", json={"num": 64, "steps": 50, "seed": 4}).json()["id"]
    results = []

    def call():
        with httpx.Client(base_url=str(client.base_url), headers=dict(client.headers), timeout=120) as c:
            results.append(c.post("/v1/generate", json={"num": 1, "steps": 3}).status_code)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert results == [200, 200, 200]
    s = wait_for(lambda: (s := client.get(f"/v1/jobs/{jid}").json())["state"] == "done" and s, "the job to finish")
    assert len(s["result"]["poses"]) == 64


def test_a_sync_request_whose_client_hangs_up_is_cancelled(server, client):
    """A long synchronous request whose client disconnects stops at its next denoising step: the
    request after it is served, and the server says why (not run to its end for nobody)."""
    import socket

    body = json.dumps({"num": 1024, "steps": 1000, "seed": 1}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(1.0)  # it is running (the denoiser's first steps)
    assert client.post("/v1/generate", json={"num": 1, "steps": 3}).status_code == 200
    wait_for(lambda: "the client disconnected; its generate was cancelled" in server.output(), "the cancellation log line")


# ----------------------------------------------------------------------------- process behaviour


def test_second_server_on_the_same_port_exits_2(server, weights):
    command = serve_command() + ["--port", str(server.port), "--weights", str(weights)]
    t0 = time.monotonic()
    p = subprocess.run(command, cwd=ROOT,
                       env={**os.environ, "POSEDIFF_TOKEN": TOKEN}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0] and str(server.port) in lines[0]
    assert "Traceback" not in p.stderr
    print(f"\nbusy-port exit after {time.monotonic() - t0:.2f} s")
    assert httpx.get(server.url + "/v1/health").status_code == 200


def test_missing_weights_exit_2(tmp_path):
    p = subprocess.run(serve_command() + ["--port", "0", "--weights", str(tmp_path / "none.safetensors")], cwd=ROOT,
                       env={**os.environ, "POSEDIFF_TOKEN": TOKEN}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "none.safetensors" in p.stderr and "Traceback" not in p.stderr


def test_token_file_created_private_and_clean_shutdown_with_work_in_flight(weights, tmp_path):
    token_file = tmp_path / "cfg" / "posediff" / "token"
    env = {k: v for k, v in os.environ.items() if k != "POSEDIFF_TOKEN"}
    env["POSEDIFF_TOKEN"] = ""
    sp = start_server(["--device", "cpu", "--weights", str(weights), "--token-file", str(token_file)],
                      env=env)
    try:
        assert str(token_file) in sp.ready_line
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert httpx.get(sp.url + "/v1/skeleton", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(sp.url + "/v1/skeleton", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401

        # a long synchronous request in flight and a queued job: SIGINT still stops the server cleanly
        long_req, _ = keypoint_request(num_hypotheses=200, steps=1000)
        long_req["frames"] = long_req["frames"] * 64
        answers = []

        def call():
            try:
                with sp.client(token=token) as c:
                    answers.append(c.post("/v1/estimate", json=long_req).status_code)
            except httpx.TransportError as e:
                answers.append(type(e).__name__)

        caller = threading.Thread(target=call)
        caller.start()
        with sp.client(token=token) as c:
            wait_for(lambda: any(j["state"] == "running" for j in c.get("/v1/jobs").json()["jobs"]),
                     "the synchronous request to start on the worker")
            assert c.post("/v1/jobs/generate", json={"num": 2}).json()["state"] == "queued"
    finally:
        code = sp.stop(signal.SIGINT)
    caller.join(60)
    assert code == 0, sp.output()
    assert answers == [503], answers  # told that the server is shutting down
    assert "Traceback" not in sp.output()


# ----------------------------------------------------------------------------- auth unit tests (no server)


def test_resolve_token_env_then_file(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "token"
    monkeypatch.setenv("POSEDIFF_TOKEN", "from-env-token-xxxxxxxx")
    src = resolve_token(path)
    assert src.token == "from-env-token-xxxxxxxx" and src.path is None and not path.exists()
    monkeypatch.delenv("POSEDIFF_TOKEN")
    first = resolve_token(path)
    assert first.created and first.path == path.resolve() and path.read_text().strip() == first.token
    again = resolve_token(path)
    assert again.token == first.token and not again.created  # reused
    monkeypatch.setenv("POSEDIFF_TOKEN_FILE", str(tmp_path / "other"))
    assert resolve_token().path == (tmp_path / "other").resolve()
    os.chmod(path, 0o644)
    resolve_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tightened


def test_bearer_compare():
    assert bearer_ok("Bearer abc", "abc") and bearer_ok("bearer abc", "abc")
    assert not bearer_ok(None, "abc") and not bearer_ok("Bearer abcd", "abc") and not bearer_ok("abc", "abc")
    assert not bearer_ok("Bearer \udcff", "abc")


def test_host_policy():
    loop = HostPolicy("127.0.0.1", 8765)
    for ok in ("localhost:8765", "127.0.0.1:8765", "[::1]:8765", "LOCALHOST:8765", "localhost", "127.0.0.2:8765"):
        assert loop.allows(ok), ok
    for bad in ("evil.example:8765", "localhost:8766", "192.168.1.2:8765", "", None, "::1:8765", "localhost:x",
                "localhost:99999999"):
        assert not loop.allows(bad), bad
    lan = HostPolicy("0.0.0.0", 8765, frozenset({"studio-pc"}))
    assert lan.allows("192.168.1.2:8765") and lan.allows("studio-pc:8765") and not lan.allows("evil.example:8765")
    assert split_host_header("[::1]:80") == ("::1", 80)


# ----------------------------------------------------------------------------- job queue unit tests (no server)


def test_job_queue_runs_one_at_a_time_in_order():
    q = JobQueue(keep_finished=3)
    running, seen, lock = [], [], threading.Lock()

    def work(i):
        def fn(progress, cancel):
            with lock:
                running.append(i)
                assert len(running) == 1, "two jobs ran at once"
            for k in range(5):
                progress((k + 1) / 5)
            with lock:
                running.remove(i)
                seen.append(i)
            return i * i
        return fn

    jobs = [q.submit("square", work(i)) for i in range(6)]
    assert [j.future.result(30) for j in jobs] == [i * i for i in range(6)]
    assert seen == list(range(6))
    assert all(j.state == DONE and j.progress == 1.0 for j in jobs)
    assert len(q.list()) == 3  # only the last 3 finished jobs are remembered
    assert q.get(jobs[0].id) is None and q.get(jobs[-1].id).result == 25
    q.close()


def test_job_queue_keeps_results_within_a_byte_budget():
    """Results kept as JSON bytes count against ``keep_result_bytes``: the oldest finished jobs are
    forgotten first, the newest is kept even alone over the budget (a client is about to read it)."""
    q = JobQueue(keep_finished=10, keep_result_bytes=2500)
    jobs = [q.submit("json", lambda p, c, i=i: b"x" * 1000, serialize=bytes) for i in range(4)]
    for j in jobs:
        j.future.result(30)
    assert [j.id for j in q.list()] == [j.id for j in jobs[2:]]  # 2 x 1000 bytes fit in 2500, 3 do not
    big = q.submit("json", lambda p, c: b"x" * 5000, serialize=bytes)
    big.future.result(30)
    assert [j.id for j in q.list()] == [big.id] and q.get(big.id).result == b"x" * 5000
    q.close()


def test_a_kept_job_holds_neither_its_request_nor_its_response_objects():
    """Once run, a remembered job keeps its result as serialized, not the request its function closes
    over nor the objects it returned (measured: a 60 s clip's track job held 470 MB so, 30 MB after)."""
    import gc
    import weakref

    class Frames(list):
        pass

    q = JobQueue()
    request, response = Frames([1.0] * 10), Frames([2.0] * 10)
    seen = (weakref.ref(request), weakref.ref(response))
    job = q.submit("track", lambda p, c, req=request, res=response: res, serialize=lambda r: b"[2.0]")
    bad_request = Frames([3.0])

    def bad(p, c, req=bad_request):
        raise InputError("frames[0]", "bad input")  # its traceback's frames hold the request

    failed = q.submit("bad", bad)
    seen += (weakref.ref(bad_request),)
    del bad, bad_request
    assert job.future.result(30) == b"[2.0]"
    with pytest.raises(InputError):
        failed.future.result(30)
    del request, response
    gc.collect()
    assert [r() for r in seen] == [None, None, None] and q.get(job.id).result == b"[2.0]"
    q.close()


def test_job_queue_call_runs_on_the_jobs_thread_and_records_nothing():
    """``call`` (how ``posediff serve`` builds the model) runs on the thread that runs the jobs, so all
    torch work shares one OpenMP thread team; its value comes back, its exception is raised to the caller."""
    q = JobQueue()
    where = q.call(threading.get_ident)
    job = q.submit("where", lambda p, c: threading.get_ident())
    assert where == job.future.result(30) != threading.get_ident()
    with pytest.raises(ZeroDivisionError):
        q.call(lambda: 1 / 0)
    assert [j.id for j in q.list()] == [job.id]  # calls are not jobs
    q.close()


def test_job_queue_cancel_running_and_queued_and_failures():
    q = JobQueue()
    started = threading.Event()

    def slow(progress, cancel):
        started.set()
        while True:  # the service's loop: check cancel() between steps
            if cancel():
                raise Cancelled("cancelled")
            time.sleep(0.01)

    def bad(progress, cancel):
        raise InputError("frames[0].camera.fx", "must be positive")

    def broken(progress, cancel):
        return 1 / 0

    a = q.submit("slow", slow)
    b = q.submit("queued", lambda p, c: "never")
    c = q.submit("bad", bad)
    d = q.submit("broken", broken)
    started.wait(30)
    assert q.cancel(b.id).state == CANCELLED  # queued: cancelled at once, never runs
    q.cancel(a.id)
    with pytest.raises(Cancelled):
        a.future.result(30)
    assert a.state == CANCELLED
    with pytest.raises(InputError):
        c.future.result(30)
    assert c.state == FAILED and c.error_field == "frames[0].camera.fx" and c.error == "must be positive"
    with pytest.raises(ZeroDivisionError):
        d.future.result(30)
    assert d.state == FAILED and "internal error" in d.error
    assert b.future.exception(1) is not None
    e = q.submit("after", lambda p, c: "still working")
    assert e.future.result(30) == "still working"
    q.close()
