"""`mlflow models serve -m models:/NAME@champion` on loopback: good answers, 4xx for bad requests."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.tracking_fixtures import CLASS_NAMES, make_50_megapixel_jpeg

START_TIMEOUT_S = 150


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(served_model, tracking_store, tmp_path_factory):
    """The MLflow scoring server for the champion, started once for this module."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    # The server execs `uvicorn` from PATH: put this interpreter's scripts folder first.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_store, "PATH": path}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{served_model}@champion",
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, log)
        yield url
    finally:
        stop(process)


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
