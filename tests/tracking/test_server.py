"""`mlflow models serve -m models:/NAME@champion -w 2` on loopback, started as the README says (with
the body limit's protocol): good answers in every input format, 4xx for bad requests, short errors."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.tracking_fixtures import CLASS_NAMES, make_50_megapixel_jpeg

pytestmark = pytest.mark.slow  # starts a two-worker scoring server

START_TIMEOUT_S = 150
MAX_REQUEST_BYTES = 8_000_000
WORKERS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def scoring_server(served_model, tracking_store, tmp_path_factory):
    """The MLflow scoring server for the champion, started once for this module: (url, log file)."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    # The server execs `uvicorn` from PATH: put this interpreter's scripts folder first.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_store, "PATH": path,
           "UVICORN_HTTP": "mlimages.tracking.serving_http:LimitedHTTPProtocol",
           "MLIMAGES_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{served_model}@champion",
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", str(WORKERS)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, log)
        yield url, log
    finally:
        stop(process)


@pytest.fixture(scope="module")
def server(scoring_server) -> str:
    return scoring_server[0]


def stop(process: subprocess.Popen) -> None:
    """Stop the server's process group (uvicorn runs as a child of the mlflow command)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_ready(url: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the scoring server exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the scoring server did not answer /ping within {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")


def post(url: str, images: list[bytes], column: str = "image", params: dict | None = None) -> requests.Response:
    body = {"dataframe_split": {"columns": [column], "data": [[base64.b64encode(i).decode()] for i in images]}}
    if params:
        body["params"] = params
    return requests.post(f"{url}/invocations", json=body, timeout=60)


def check_good_answer(url: str, photo: bytes) -> None:
    response = post(url, [photo])
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert set(prediction) == {"classes", "names", "probabilities"}
    assert prediction["names"] == [CLASS_NAMES[c] for c in prediction["classes"]] and len(prediction["names"]) == 3
    assert sum(prediction["probabilities"]) == pytest.approx(1.0, abs=1e-4)


def test_answers_a_real_photo_with_names(server, fixture_photo):
    check_good_answer(server, fixture_photo)


def test_batched_request_and_top_k_param(server, fixture_photo):
    response = post(server, [fixture_photo] * 3, params={"top_k": 2})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 3 and all(len(p["classes"]) == 2 for p in predictions)
    assert predictions[0] == predictions[2]


@pytest.mark.parametrize("case, message", [
    ("not_an_image", "not a JPEG/PNG image"),
    ("empty_image", "empty image"),
    ("wrong_column", "image"),
    ("fifty_megapixels", "too many pixels"),
    ("malformed_json", "json"),
])
def test_bad_requests_get_a_4xx_with_a_clear_message_and_the_server_keeps_going(server, fixture_photo, case, message):
    if case == "malformed_json":
        response = requests.post(f"{server}/invocations", data=b'{"dataframe_split": {"columns": [',
                                 headers={"Content-Type": "application/json"}, timeout=30)
    elif case == "wrong_column":
        response = post(server, [fixture_photo], column="picture")
    else:
        payload = {"not_an_image": b"GIF? no, just text", "empty_image": b"",
                   "fifty_megapixels": make_50_megapixel_jpeg()}[case]
        response = post(server, [payload])
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert message.lower() in json.loads(response.text)["message"].lower()
    check_good_answer(server, fixture_photo)


def small_photo() -> bytes:
    from mlimages.tracking.serving import make_example_image

    return make_example_image()


def request_formats(image: bytes) -> dict[str, dict]:
    """The same one-image request in every JSON format MLflow's scoring server accepts."""
    text = base64.b64encode(image).decode()
    return {
        "dataframe_split": {"dataframe_split": {"columns": ["image"], "data": [[text]]}},
        "dataframe_records": {"dataframe_records": [{"image": text}]},
        "inputs_records": {"inputs": [{"image": text}]},
        "inputs_columns": {"inputs": {"image": [text]}},
        "instances": {"instances": [{"image": text}]},
    }


def test_every_input_format_gives_the_same_answer(server):
    answers = {}
    for name, body in request_formats(small_photo()).items():
        response = requests.post(f"{server}/invocations", json=body | {"params": {"top_k": 2}}, timeout=60)
        assert response.status_code == 200, (name, response.text[:300])
        answers[name] = response.json()["predictions"]
    assert len({json.dumps(a) for a in answers.values()}) == 1 and len(answers["instances"][0]["classes"]) == 2


def test_a_b64_object_gets_an_error_naming_the_accepted_format(server):
    text = base64.b64encode(small_photo()).decode()
    response = requests.post(f"{server}/invocations", json={"instances": [{"image": {"b64": text}}]}, timeout=60)
    assert response.status_code == 400
    message = response.json()["message"]
    assert '{"dataframe_split": {"columns": ["image"]' in message and text[:40] not in response.text


def test_threshold_returns_every_class_at_or_above_it_whatever_top_k(server):
    body = request_formats(small_photo())["dataframe_split"]
    everything = requests.post(f"{server}/invocations", json=body | {"params": {"threshold": 0.0, "top_k": 1}},
                               timeout=60).json()["predictions"][0]
    assert sorted(everything["classes"]) == [0, 1, 2]  # top_k ignored when a threshold is given
    cut = sorted(everything["probabilities"])[1]
    some = requests.post(f"{server}/invocations", json=body | {"params": {"threshold": cut}},
                         timeout=60).json()["predictions"][0]
    assert len(some["classes"]) == 2 and min(some["probabilities"]) >= cut


@pytest.mark.parametrize("params, message", [
    ({"treshold": 0.3}, "unknown params ['treshold']"),
    ({"threshold": 1.5}, "threshold must be a number from 0 to 1"),
    ({"threshold": -0.1}, "threshold must be a number from 0 to 1"),
    ({"top_k": 0}, "top_k must be an integer >= 1"),
    ({"top_k": "many"}, "top_k"),
])
def test_unknown_or_out_of_range_params_get_400(server, params, message):
    body = request_formats(small_photo())["dataframe_split"] | {"params": params}
    response = requests.post(f"{server}/invocations", json=body, timeout=60)
    assert response.status_code == 400, response.text[:300]
    assert message in response.json()["message"] and len(response.content) < 1024


def test_a_body_over_the_limit_gets_413_with_a_short_message(server, fixture_photo):
    junk = b"x" * (MAX_REQUEST_BYTES + 1)
    response = requests.post(f"{server}/invocations", data=junk, headers={"Content-Type": "application/json"},
                             timeout=60)
    assert response.status_code == 413
    expected = f"request body over the limit of {MAX_REQUEST_BYTES} bytes (MLIMAGES_MAX_REQUEST_BYTES)"
    assert response.json()["message"] == expected and len(response.content) < 200
    chunked = requests.post(f"{server}/invocations", data=iter([b"x" * 1_000_000] * 9),
                            headers={"Content-Type": "application/json"}, timeout=60)
    assert chunked.status_code == 413  # no Content-Length: counted as it arrives
    check_good_answer(server, fixture_photo)


@pytest.mark.parametrize("body", [
    b"y" * 3_000_000,  # junk just under the limit
    json.dumps({"dataframe_split": {"columns": ["image"], "data": [["QUJD" * 500_000]]}}).encode(),  # not an image
    json.dumps({"dataframe_split": {"columns": ["picture"], "data": [["QUJD" * 500_000]]}}).encode(),
    json.dumps({"dataframe_records": [{"image": "QUJD" * 500_000}], "params": {"top_k": -1}}).encode(),
])
def test_no_error_response_echoes_the_input_or_exceeds_2_kb(server, body):
    response = requests.post(f"{server}/invocations", data=body, headers={"Content-Type": "application/json"},
                             timeout=60)
    assert 400 <= response.status_code < 500
    assert len(response.content) <= 2048 and set(response.json()) == {"error_code", "message"}
    assert "QUJDQUJD" not in response.text and "yyyyyyyy" not in response.text


def test_two_workers_serve_concurrent_requests(scoring_server):
    from concurrent.futures import ThreadPoolExecutor

    url, log = scoring_server
    pids = set(re.findall(r"Started server process \[(\d+)\]", log.read_text()))
    assert len(pids) == WORKERS, log.read_text()[-2000:]
    body = request_formats(small_photo())["dataframe_split"]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: requests.post(f"{url}/invocations", json=body, timeout=120), range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert len({r.text for r in responses}) == 1
