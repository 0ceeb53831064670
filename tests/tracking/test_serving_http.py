"""The scoring server's HTTP limits as plain functions (the live server is in test_server.py)."""

from __future__ import annotations

import json

import pytest

from mlimages.tracking import serving_http


def test_mlflow_error_loses_the_echoed_input_and_the_stack_trace():
    echoed = "QUJD" * 100_000
    body = json.dumps({"error_code": "INVALID_PARAMETER_VALUE", "stack_trace": "Traceback ...\n" * 1000,
                       "message": f"Failed to predict data '{echoed}'. \nError: image 0: not a JPEG/PNG image"})
    short = serving_http.shorten_error(body.encode())
    assert json.loads(short) == {"error_code": "INVALID_PARAMETER_VALUE", "message": "image 0: not a JPEG/PNG image"}


def test_long_or_plain_text_errors_are_cut_to_one_short_line():
    short = serving_http.shorten_error(b"first line\n" + b"x" * 100_000)
    assert json.loads(short) == {"error_code": "BAD_REQUEST", "message": "first line"}
    long_line = json.dumps({"error_code": "BAD_REQUEST", "message": "y" * 10_000}).encode()
    assert len(json.loads(serving_http.shorten_error(long_line))["message"]) == serving_http.MAX_MESSAGE_CHARS


def test_unknown_params_are_found_only_under_params():
    assert serving_http.unknown_params(b'{"dataframe_split": {}, "params": {"treshold": 1, "top_k": 2}}') == ["treshold"]
    assert serving_http.unknown_params(b'{"dataframe_split": {"columns": ["params"]}}') == []
    assert serving_http.unknown_params(b'{"params": ') == []  # malformed: left to MLflow's own message


@pytest.mark.parametrize("value", ["0", "-5", "20MB", ""])
def test_a_bad_configured_limit_is_refused(monkeypatch, value):
    monkeypatch.setenv(serving_http.MAX_REQUEST_BYTES_ENV, value)
    with pytest.raises(ValueError, match="MLIMAGES_MAX_REQUEST_BYTES must be a positive number of bytes"):
        serving_http.max_request_bytes()
