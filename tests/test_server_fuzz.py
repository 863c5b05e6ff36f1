"""Property-based fuzzing of the live server from its own ``/openapi.json`` (schemathesis).

Every documented operation gets a bounded number of generated requests, valid ones
("positive") and schema-violating ones ("negative"); none may get a 5xx. Valid requests have
their cost-driving numbers (steps, hypotheses, poses, frames) clamped so that the run stays
short on a CPU; the values' types, joint names, floats and strings are left as generated.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from server_process import start_server, weights_for_tests  # noqa: E402

TOKEN = "fuzz-token-0123456789abcdef"
EXAMPLES = 6  # per operation and mode
#: Cost-driving request fields and the most a fuzzed *valid* request may ask for.
CLAMPS = {"steps": 3, "num_hypotheses": 3, "num": 3}
MAX_FRAMES = 2

OPERATIONS = [
    ("GET", "/v1/health"),
    ("GET", "/v1/skeleton"),
    ("GET", "/v1/info"),
    ("POST", "/v1/estimate"),
    ("POST", "/v1/complete"),
    ("POST", "/v1/generate"),
    ("POST", "/v1/variations"),
    ("POST", "/v1/detect"),
    ("POST", "/v1/jobs/generate"),
    ("POST", "/v1/jobs/complete"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{job_id}"),
    ("DELETE", "/v1/jobs/{job_id}"),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    weights = weights_for_tests(tmp_path_factory.mktemp("weights"))
    sp = start_server(["--device", "cpu", "--weights", str(weights)],
                      env={"POSEDIFF_TOKEN": TOKEN}, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    schema = schemathesis.openapi.from_url(sp.url + "/openapi.json", headers=auth)
    yield sp, schema, auth
    with sp.client() as c:  # leave no job running
        for job in c.get("/v1/jobs").json()["jobs"]:
            c.delete(f"/v1/jobs/{job['id']}")
    code = sp.stop()
    out = sp.output()
    assert code == 0, out
    assert "Exception in ASGI application" not in out, out  # every failure was handled and answered


def clamp(body):
    """Bound the cost of a request in place: numbers only, so a valid body stays valid.

    Invalid ("negative") bodies are clamped too: pydantic's lax mode accepts ``1000.0`` or
    ``"1000"`` for an integer, so a body that breaks the schema's types can still be a valid,
    expensive request.
    """
    if not isinstance(body, dict):
        return
    for key, most in CLAMPS.items():
        v = body.get(key)
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)) and v > most:
            body[key] = most
        elif isinstance(v, str) and v.strip().isdigit() and int(v) > most:
            body[key] = str(most)
    if isinstance(body.get("frames"), list) and len(body["frames"]) > MAX_FRAMES:
        del body["frames"][MAX_FRAMES:]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("method,path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_errors(live, method, path, mode):
    sp, schema, auth = live
    operation = schema[path][method]
    if mode is GenerationMode.NEGATIVE and method == "GET" and "{" not in path:
        pytest.skip("no parameters or body to make invalid")
    failures = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        clamp(case.body)
        response = case.call(base_url=sp.url, headers=auth, timeout=120)
        if response.status_code >= 500:
            failures.append(f"{response.status_code} for {case.as_curl_command(headers=auth)}\n{response.text[:500]}")
        # not a 5xx, and the server answers the next request
        assert response.status_code < 500, failures[-1]

    run()
    assert not failures
    assert sp.proc.poll() is None, sp.output()
