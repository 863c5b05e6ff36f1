"""The named priors (``--prior default|cmu|PATH``): the shipped CMU-only prior, the licence each
prior's metadata implies, the clear errors for a bad ``--prior``, ``/v1/info`` of a live server,
and ``posediff eval --prior default,cmu`` printing both priors in one table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.eval_compare import merged_rows, relative
from backend.mocap import datasets as D
from backend.prior import registry
from backend.prior.model import PoseDenoiser, PriorConfig, load_prior, save_prior
from backend.skeleton import BONE_LENGTHS, JOINT_INDEX, bone_lengths

ROOT = Path(__file__).resolve().parents[1]
_BIN = Path(sys.executable).parent / "posediff"
POSEDIFF = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "backend"]
CMU_FILE = registry.NAMED["cmu"].file


def run(*args, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([*POSEDIFF, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def cmu_service():
    from backend.service import PoseService

    return PoseService("cmu", device="cpu")


# ------------------------------------------------------------------ the shipped CMU prior


def test_cmu_prior_is_shipped_with_the_default_architecture():
    assert CMU_FILE.exists(), f"{CMU_FILE} missing: the CMU-only prior ships with PoseDiff"
    cmu, default = load_prior(CMU_FILE, "cpu"), load_prior(None, "cpu")
    for k in ("num_joints", "width", "depth", "time_dim", "cond_dim", "diffusion_steps", "data_scale", "joint_names"):
        assert getattr(cmu.cfg, k) == getattr(default.cfg, k), k
    assert cmu.cfg.version.startswith("prior-cmu")
    assert cmu.extra["steps"] > 0 and cmu.extra["data"]


def test_cmu_prior_metadata_lists_only_cmu_sources():
    info = registry.describe("cmu")
    sources = [r["source"] for r in info.training_data]
    assert sources and all(registry.dataset_of(s) == "cmu" for s in sources), sources
    assert not any("h36m" in s.lower() or "bandai" in s.lower() for s in sources), sources
    assert all(r["dataset"].startswith("CMU") and r["poses"] > 0 for r in info.training_data)
    assert info.commercial is True and info.licence_summary == "commercial use OK"
    assert "resold" in info.licence
    # the file alone (given by path) leads to the same verdict: the licence follows from its metadata
    by_path = registry.describe(str(CMU_FILE))
    assert by_path.commercial is True and by_path.name == str(CMU_FILE)
    # and the default prior is the research one
    d = registry.describe("default")
    assert d.commercial is False and d.licence_summary == "research only"
    assert {registry.dataset_of(r["source"]) for r in d.training_data} >= {"h36m", "bandai"}


def test_cmu_prior_generates_plausible_distinct_poses(cmu_service):
    from backend.http import schemas
    from backend.service import GENERATE_STEPS

    gen = np.array(cmu_service.generate(schemas.GenerateRequest(num=48, seed=0)).poses)
    assert np.isfinite(gen).all()
    # returned poses sit on the canonical skeleton; the denoiser's own samples nearly so
    assert np.abs(bone_lengths(gen)[:, 1:] - BONE_LENGTHS[1:]).max() < 1e-3
    smp = cmu_service.sampler(None, GENERATE_STEPS, eta=1.0)
    smp.w.polish_steps = 0
    raw = smp.sample(48, None, seed=0).world_rel
    raw_err_mm = np.abs(bone_lengths(raw)[:, 1:] - BONE_LENGTHS[1:]).mean() * 1000
    assert raw_err_mm < 15.0, raw_err_mm
    # upright people (the head above the pelvis), no collapsed or repeated poses
    assert (gen[:, JOINT_INDEX["head"], 2] > gen[:, 0, 2]).mean() >= 0.9
    g = D.remove_yaw(gen)
    d = np.linalg.norm(g[:, None] - g[None], axis=-1).mean(-1) * 1000  # [48, 48] mean joint distance, mm
    diversity = d.sum() / (len(g) * (len(g) - 1))
    assert 120.0 < diversity < 400.0, diversity
    assert d[~np.eye(len(g), dtype=bool)].min() > 5.0


# ------------------------------------------------------------------ licence of a PATH file


def _weights(tmp_path: Path, name: str, extra: dict | None) -> Path:
    import torch

    torch.manual_seed(0)
    path = tmp_path / f"{name}.safetensors"
    save_prior(PoseDenoiser(PriorConfig(width=32, depth=1, version=name)), path, extra=extra)
    return path


def test_licence_of_a_weights_file_follows_its_training_sources(tmp_path):
    shared = "/data"
    cmu_only = {"data": {f"{shared}/cmu_more.zip::amc/@cmu_amc": 10, f"{shared}/mine@cmu": 5}}
    cases = {
        "cmu_only": (cmu_only, True, "commercial use OK"),
        "with_h36m": ({"data": {"h36m": 10, f"{shared}/x@cmu": 3}}, False, "research only"),
        "with_bandai": ({"data": {f"{shared}/bandai_bvh.zip@bandai": 10}}, False, "research only"),
        "own_mocap": ({"data": {"/home/me/studio@mixamo": 10}}, None, registry.UNKNOWN),
        "no_metadata": (None, None, registry.UNKNOWN),
        # a fine-tune inherits its starting prior's sources
        "tuned_from_default": ({**cmu_only, "init": {"version": "prior-v2", "data": {"h36m": 1}}}, False, "research only"),
        "tuned_from_cmu": ({**cmu_only, "init": {"version": "prior-cmu-v1", "data": cmu_only["data"]}}, True, "commercial use OK"),
        "tuned_from_unrecorded": ({**cmu_only, "init": {"path": "old.safetensors"}}, None, registry.UNKNOWN),
    }
    for name, (extra, commercial, summary) in cases.items():
        info = registry.describe(_weights(tmp_path, name, extra))
        assert (info.commercial, info.licence_summary) == (commercial, summary), name
        assert info.version == name
    tuned = registry.describe(tmp_path / "tuned_from_default.safetensors")
    assert [r.get("via") for r in tuned.training_data] == [None, None, "init"]
    assert "Human3.6M" in tuned.licence


def test_unknown_prior_name_or_missing_file_raise_naming_prior(tmp_path):
    with pytest.raises(registry.PriorChoiceError, match=r"^--prior foo: unknown prior; choose default or cmu"):
        registry.describe("foo")
    with pytest.raises(FileNotFoundError, match=r"--prior .*none\.safetensors: no such file"):
        registry.describe(tmp_path / "none.safetensors")
    with pytest.raises(registry.PriorChoiceError, match="not a file"):
        registry.describe(tmp_path)


# ------------------------------------------------------------------ command line and server


def test_cli_bad_prior_exits_2_with_one_line_and_no_output(tmp_path):
    out = tmp_path / "res.json"
    procs = {
        "name": subprocess.Popen([*POSEDIFF, "generate", "--num", "2", "--prior", "nosuch", "--output", str(out)],
                                 cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True),
        "file": subprocess.Popen([*POSEDIFF, "complete", "--input", "samples/requests/complete.json", "--weights",
                                  str(tmp_path / "gone.safetensors"), "--output", str(out)],
                                 cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True),
        "serve": subprocess.Popen([*POSEDIFF, "serve", "--port", "0", "--prior", "nosuch"],
                                  cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True),
        "eval": subprocess.Popen([*POSEDIFF, "eval", "prior", "--frames", "5", "--prior", "default,nosuch"],
                                 cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True),
    }
    for kind, p in procs.items():
        stdout, stderr = p.communicate(timeout=180)
        lines = stderr.strip().splitlines()
        assert p.returncode == 2, (kind, stderr)
        assert len(lines) == 1 and "--prior" in lines[0] and "Traceback" not in stderr, (kind, stderr)
        assert ("nosuch" in lines[0]) if kind != "file" else ("gone.safetensors: no such file" in lines[0])
        assert stdout.strip() == "", (kind, stdout)
    assert not out.exists()


def test_server_info_reports_the_cmu_prior(tmp_path):
    from server_process import start_server

    token = "t" * 32
    sp = start_server(["--port", "0", "--device", "cpu", "--prior", "cmu"], {"POSEDIFF_TOKEN": token}, token=token)
    try:
        assert "prior cmu: commercial use OK" in sp.ready_line
        with sp.client() as c:
            info = c.get("/v1/info").json()
            poses = c.post("/v1/generate", json={"num": 2, "seed": 0, "steps": 8}).json()["poses"]
    finally:
        assert sp.stop() == 0
    p = info["prior"]
    assert p["name"] == "cmu" and p["commercial"] is True and p["licence_summary"] == "commercial use OK"
    assert p["version"] == info["model_version"] and p["version"].startswith("prior-cmu")
    assert p["training_data"] and all(r["dataset"].startswith("CMU") for r in p["training_data"])
    assert np.array(poses).shape == (2, 21, 3)


def test_eval_prints_two_priors_side_by_side():
    p = run("eval", "prior", "--frames", "24", "--prior", "default", "--prior", "cmu")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "prior default: prior-v2, research only" in out and "prior cmu: prior-cmu" in out
    assert "priors default, cmu (same frames and seeds)" in out
    table = out.split("priors default, cmu")[1].splitlines()
    header = table[1]
    assert header.split()[:2] == ["poses", "prior"]
    rows = [r for r in table[3:] if r.strip()]
    assert rows[0].startswith("generated ") and " default " in rows[0]
    assert rows[1].startswith("generated ") and " cmu " in rows[1]
    assert " cmu vs default " in rows[2] and "%" in rows[2]
    assert sum(" vs default " in r for r in rows) == 2  # one comparison row per row that depends on the prior
    assert sum(" (any) " in r for r in rows) == 2  # training and held-out poses: the same for both


def test_merged_rows_put_priors_side_by_side():
    a = ("t", ["setting", "best-of-1", "note"], [["exact", "40.0", "x"], ["noisy", "50.0", "-"]])
    b = ("t", ["setting", "best-of-1", "note"], [["exact", "44.0", "x"], ["noisy", "45.0", "-"]])
    header, rows = merged_rows(["default", "cmu"], [a, b])
    assert header == ["setting", "prior", "best-of-1", "note"]
    assert rows == [["exact", "default", "40.0", "x"], ["exact", "cmu", "44.0", "x"], ["exact", "cmu vs default", "+10.0 %", ""],
                    ["noisy", "default", "50.0", "-"], ["noisy", "cmu", "45.0", "-"], ["noisy", "cmu vs default", "-10.0 %", ""]]
    assert relative("0", "3") == "" and relative("2.0", "1.0") == "-50.0 %"
    with pytest.raises(ValueError):
        merged_rows(["a", "b"], [a, ("t", ["setting"], [["exact"]])])
    assert merged_rows(["default", "cmu"], [a, a])[1] == [["exact", "(any)", "40.0", "x"], ["noisy", "(any)", "50.0", "-"]]

