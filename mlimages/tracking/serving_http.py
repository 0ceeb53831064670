"""HTTP limits for `mlflow models serve`: a body-size cap (413), short error bodies, known params only.

MLflow's scoring server (FastAPI under uvicorn) reads any request body whole and has no size
option; some of its error bodies repeat the input (a 25 MB junk body came back as a 184 MB error)
and carry a stack trace; and it drops params the signature does not declare with a warning,
so a misspelt ``treshold`` is silently ignored. None of this can be fixed from inside the pyfunc,
which sees only parsed input. So the server's own HTTP protocol class is swapped: uvicorn takes
any importable protocol class for ``--http``, and reads its options from ``UVICORN_*`` variables,
which `mlflow models serve` passes on to the uvicorn it starts (each worker imports it)::

    UVICORN_HTTP=mlimages.tracking.serving_http:LimitedHTTPProtocol \\
    MLIMAGES_MAX_REQUEST_BYTES=20000000 mlflow models serve -m models:/NAME@champion -w 2 ...

The protocol is uvicorn's own with the application wrapped in `RequestLimits`, a plain ASGI
middleware: every request, every worker, before FastAPI sees it.
"""

from __future__ import annotations

import json
import os
import re

from uvicorn.protocols.http.auto import AutoHTTPProtocol

MAX_REQUEST_BYTES_ENV = "MLIMAGES_MAX_REQUEST_BYTES"
DEFAULT_MAX_REQUEST_BYTES = 20_000_000  # a few large photos, base64-encoded
MAX_ERROR_BYTES = 2048
MAX_MESSAGE_CHARS = 400
KNOWN_PARAMS = ("top_k", "threshold")
MLFLOW_ECHO = re.compile(r"'\.\s*Error: ")


def error_body(error_code: str, message: str) -> bytes:
    """An MLflow-style JSON error, its message cut to one short line."""
    line = message.strip().splitlines()[0] if message.strip() else "error"
    if len(line) > MAX_MESSAGE_CHARS:
        line = line[: MAX_MESSAGE_CHARS - 3] + "..."
    return json.dumps({"error_code": error_code, "message": line}).encode()


def shorten_error(body: bytes) -> bytes:
    """An error body of at most a few hundred bytes: error code and the first line of its message.

    MLflow's bodies are JSON with ``error_code``, ``message`` and often ``stack_trace``; the trace
    and anything past the first line (where MLflow repeats the input) are dropped.
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        # MLflow prefixes the reason with the whole input, "Failed to predict data '<input>'. \nError: ..."
        # or "Failed to enforce schema of data '<input>' with schema '<schema>'. Error: ...": keep the reason.
        message = MLFLOW_ECHO.split(str(parsed.get("message", "")))[-1]
        return error_body(str(parsed.get("error_code", "BAD_REQUEST")), message)
    return error_body("BAD_REQUEST", body[:MAX_MESSAGE_CHARS].decode("utf-8", errors="replace"))


def unknown_params(body: bytes) -> list[str]:
    """Names under ``params`` of a JSON request that the served model does not take."""
    if b'"params"' not in body:  # base64 never holds a quote: most requests skip the parse
        return []
    try:
        params = json.loads(body).get("params")
    except (ValueError, AttributeError):
        return []  # malformed JSON: MLflow answers it
    return sorted(str(k) for k in params if k not in KNOWN_PARAMS) if isinstance(params, dict) else []


class RequestLimits:
    """ASGI middleware: 413 over `max_body_bytes`, 400 for unknown params, error bodies kept short."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body, too_large = await self.read_body(scope, receive)
        if too_large:
            message = f"request body over the limit of {self.max_body_bytes} bytes ({MAX_REQUEST_BYTES_ENV})"
            return await respond(send, 413, error_body("REQUEST_LIMIT_EXCEEDED", message))
        if names := unknown_params(body):
            message = f"unknown params {names}; this model takes {list(KNOWN_PARAMS)}"
            return await respond(send, 400, error_body("INVALID_PARAMETER_VALUE", message))
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # e.g. http.disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, ShortErrors(send))

    async def read_body(self, scope, receive) -> tuple[bytes, bool]:
        """The whole body, or (b"", True) once it passes the limit (the rest is read and dropped,
        so the client gets its 413 instead of a reset connection)."""
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        too_large = declared.isdigit() and int(declared) > self.max_body_bytes
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk, more = message.get("body", b""), message.get("more_body", False)
            size += len(chunk)
            too_large = too_large or size > self.max_body_bytes
            if not too_large:
                chunks.append(chunk)
        return (b"", True) if too_large else (b"".join(chunks), False)


class ShortErrors:
    """Wraps `send`: a response with status >= 400 is buffered and replaced by `shorten_error`."""

    def __init__(self, send):
        self.send = send
        self.error_start = None
        self.chunks: list[bytes] = []
        self.size = 0

    async def __call__(self, message):
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.error_start = message
            return None
        if self.error_start is None or message["type"] != "http.response.body":
            return await self.send(message)
        if self.size <= MAX_ERROR_BYTES * 4:  # enough to hold the code and the message's first line
            self.chunks.append(message.get("body", b""))
            self.size += len(self.chunks[-1])
        if not message.get("more_body", False):
            await respond(self.send, self.error_start["status"], shorten_error(b"".join(self.chunks)))


async def respond(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def max_request_bytes() -> int:
    """The configured body limit (``MLIMAGES_MAX_REQUEST_BYTES``)."""
    value = os.environ.get(MAX_REQUEST_BYTES_ENV, str(DEFAULT_MAX_REQUEST_BYTES))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{MAX_REQUEST_BYTES_ENV} must be a positive number of bytes, got {value!r}")
    return int(value)


class LimitedHTTPProtocol(AutoHTTPProtocol):
    """uvicorn's HTTP protocol serving the application behind `RequestLimits`."""

    # Read when uvicorn imports this class at start-up, so a bad value stops the server at once.
    max_body_bytes = max_request_bytes()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = RequestLimits(self.app, self.max_body_bytes)
