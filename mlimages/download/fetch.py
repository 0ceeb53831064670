"""Fetch the bytes of one source: HTTP with a total deadline and retries, or a local file.

The workers of a process share one `requests.Session`: urllib3's pools are thread-safe and lend a
connection to one request at a time, so every worker reuses a host's open connections (a session
per thread opened a connection per thread and host: with a hundred workers, most requests paid a
new TCP and TLS handshake). Every attempt runs under an `AttemptClock`: its sockets (each
redirect hop's too) are shut down at `deadline_s`, so no attempt outlives the deadline whatever
the server does, headers dripped a byte a second included (see `deadline` for why this holds).
The host slot is held only around the request, and its outcome adapts the host's cap
(`adaptive`). A small error body (a 404 page) is read to its
end too: only a fully read response returns its connection to the pool, and a new connection
costs a TCP and a TLS handshake. A fetch is one attempt: a retryable failure says when to try
again (exponential back-off with jitter, or the server's `Retry-After`) and the run schedules it.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

import requests
import urllib3

from mlimages.download import deadline
from mlimages.download.adaptive import NEUTRAL, TROUBLE, signal_of
from mlimages.download.config import DownloadConfig
from mlimages.download.connection import DeadlineAdapter
from mlimages.download.deadline import AttemptClock
from mlimages.download.hosts import HostGate, HostPaused, Ticket
from mlimages.download.outcome import FetchError
from mlimages.download.sources import is_local, read_local, resolve_local_path

CHUNK_BYTES = 64 * 1024
POOLED_HOSTS = 256  # hosts whose idle connections are kept (least recently used dropped first)
DRAIN_BYTES = 64 * 1024  # error bodies up to this size are read so the connection can be reused
NOAI_TOKENS = {"noai", "noimageai"}
THROTTLING = (429, 503)  # statuses that pause the whole host for `host_backoff_s` (or its Retry-After)


@dataclass
class Fetched:
    """The body of a successful fetch and how many attempts it took."""

    data: bytes | bytearray
    attempts: int
    http_status: int | None


def _no_op(ticket: Ticket | None) -> None:
    pass


class Fetcher:
    """Fetches sources for all workers of one process.

    Args:
        config: the download settings.
        gate: the per-host politeness gate of the process (backed by the run's budget).
    """

    def __init__(self, config: DownloadConfig, gate: HostGate):
        self.config = config
        self.gate = gate
        self._session = self._make_session()
        self._slow_s = config.read_timeout_s / 2  # an answer slower than this does not grow its host's cap

    def fetch(self, source: str, attempt: int = 1, on_start: Callable[[Ticket | None], None] = _no_op) -> Fetched:
        """Make attempt number `attempt` at `source`.

        `on_start` is called once the request may start (its host slot held): the watchdog's clock
        starts then, and the ticket lets the watchdog free the slot of a request it abandons.

        Raises:
            FetchError: with `.attempts` set, and `.retry_in_s` the seconds to wait before the next
                attempt, or None when this failure is final. The caller schedules the retry, so a
                line waiting out its back-off does not hold a worker.
        """
        if is_local(source):
            on_start(None)
            path = resolve_local_path(source, self.config.imagenet21k_root)
            return Fetched(read_local(path, self.config.max_body_bytes), attempt, None)
        host = urlsplit(source).hostname or ""
        try:
            data, status = self._fetch_in_slot(source, host, on_start, attempt)
            return Fetched(data, attempt, status)
        except HostPaused as paused:  # not requested: the line waits out the pause in the retry queue, not a worker
            error = FetchError("rate_limited", f"host asked for a pause, {paused.seconds:.0f} s left; not requested")
            error.attempts = attempt - 1
            # Give up for this run (retried on the next) when the pause is too long or the host refuses
            # everything: a host answering only 503 must not keep the run going at a request per pause.
            if paused.seconds <= self.config.max_retry_after_s and not paused.refusing:
                error.retry_in_s = paused.seconds + random.uniform(0.0, 1.0)  # spread the lines out after the pause
            raise error from None
        except FetchError as error:
            error.attempts = attempt
            error.retry_in_s = self._retry_delay_s(error, attempt)
            raise

    def _fetch_in_slot(self, url: str, host: str, on_start: Callable[[Ticket | None], None],
                       attempt: int) -> tuple[bytearray, int]:
        ticket = self.gate.acquire(host, max_pause_s=0.0)  # a worker never sleeps through a host's pause
        start, signal = time.monotonic(), NEUTRAL
        try:
            on_start(ticket)
            data, status = self._fetch_http(url)
            signal = signal_of("ok", status, time.monotonic() - start, self._slow_s)
            return data, status
        except FetchError as error:
            signal = signal_of(error.reason, error.http_status, time.monotonic() - start, self._slow_s)
            if signal == TROUBLE and attempt > 1:
                signal = NEUTRAL  # this URL failed before: news about the URL, not about its host's load
            self._pause_host(host, error)  # before the slot frees: no request slips in between
            raise
        finally:
            self.gate.release(ticket, signal)

    def _pause_host(self, host: str, error: FetchError) -> None:
        """After 429/503 (or any `Retry-After`), every worker waits: the host's wish, else `host_backoff_s`."""
        if error.retry_after_s is not None:
            self.gate.back_off(host, error.retry_after_s)
        elif error.http_status in THROTTLING:
            self.gate.back_off(host, self.config.host_backoff_s)

    def _retry_delay_s(self, error: FetchError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        config = self.config
        if not error.retryable or attempt >= config.max_attempts:
            return None
        if error.retry_after_s is not None:
            return None if error.retry_after_s > config.max_retry_after_s else error.retry_after_s
        if error.http_status in THROTTLING:
            return config.host_backoff_s  # the host's pause ends then too: no extra wait
        delay_s = min(config.backoff_max_s, config.backoff_base_s * 2 ** (attempt - 1))
        return delay_s * random.uniform(0.5, 1.5)

    def _make_session(self) -> requests.Session:
        """One session for all workers of the process; its pools keep up to a host's largest cap of connections."""
        session = requests.Session()
        adapter = DeadlineAdapter(pool_connections=POOLED_HOSTS, pool_maxsize=self.config.per_host_concurrency_max,
                                  max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = self.config.user_agent
        session.max_redirects = self.config.max_redirects
        return session

    def _fetch_http(self, url: str) -> tuple[bytearray, int]:
        """One request, every socket of it (redirect hops too) shut down at `deadline_s` (see `deadline`)."""
        config = self.config
        clock = AttemptClock(config.deadline_s)
        deadline.set_current(clock)
        timeout = (config.connect_timeout_s, min(config.read_timeout_s, config.deadline_s))
        try:
            try:
                response = self._session.get(url, stream=True, timeout=timeout)
            except requests.RequestException as error:
                raise classify_request_error(error, clock) from None
            with response:
                if clock.expired:  # the shutdown cut the headers short, and they parsed as complete
                    raise FetchError("timeout", past_deadline(clock, "headers"), response.status_code)
                try:
                    check_response(response, config)
                except FetchError:
                    drain_small_body(response, clock)
                    raise
                return read_body(response, config, clock), response.status_code
        finally:
            deadline.set_current(None)
            clock.close()


def classify_request_error(error: Exception, clock: AttemptClock | None = None) -> FetchError:
    """Map a requests/urllib3 exception to a failure class (a timeout whenever the deadline cut it short)."""
    detail = f"{type(error).__name__}: {str(error)[:160]}"
    if clock is not None and clock.expired:
        return FetchError("timeout", f"{past_deadline(clock, 'request')} ({detail[:100]})")
    if isinstance(error, requests.TooManyRedirects):
        return FetchError("redirect_loop", detail)
    if isinstance(error, (requests.Timeout, urllib3.exceptions.TimeoutError)):
        return FetchError("timeout", detail)
    if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        return FetchError("bad_url", detail)
    if "NameResolutionError" in repr(error) or "getaddrinfo" in str(error):
        return FetchError("dns", detail)
    return FetchError("connection", detail)


def past_deadline(clock: AttemptClock, part: str) -> str:
    return f"{part} not complete within deadline_s = {clock.seconds:g} s"


def check_response(response: requests.Response, config: DownloadConfig) -> None:
    """Raise for responses that are not worth reading: errors, opt-outs, placeholders, HTML."""
    status = response.status_code
    if status >= 400:
        raise status_error(status, response.headers.get("Retry-After"))
    final_url = response.url or ""
    if any(pattern in final_url for pattern in config.placeholder_url_patterns):
        raise FetchError("gone", f"redirected to placeholder {final_url[:120]}", status)
    robots = set(re.findall(r"[a-z]+", response.headers.get("X-Robots-Tag", "").lower()))
    if config.skip_noai and robots & NOAI_TOKENS:
        raise FetchError("noai", f"X-Robots-Tag: {', '.join(sorted(robots & NOAI_TOKENS))}", status)
    content_type = response.headers.get("Content-Type", "").lower()
    if content_type.startswith(("text/", "application/json", "application/xml")):
        raise FetchError("not_image", f"Content-Type {content_type[:60]}", status)
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > config.max_body_bytes:
        raise FetchError("too_large", f"Content-Length {length} > {config.max_body_bytes}", status)


def status_error(status: int, retry_after: str | None) -> FetchError:
    """The failure class of an HTTP error status."""
    if status == 404:
        return FetchError("not_found", "HTTP 404", status)
    if status == 410:
        return FetchError("gone", "HTTP 410", status)
    if status == 429:
        return FetchError("rate_limited", "HTTP 429", status, parse_retry_after_s(retry_after))
    if status >= 500:
        return FetchError("server_error", f"HTTP {status}", status, parse_retry_after_s(retry_after))
    return FetchError("http_error", f"HTTP {status}", status)


def parse_retry_after_s(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def drain_small_body(response: requests.Response, clock: AttemptClock) -> None:
    """Read a refused response's body to its end when it is small, so its connection is reused.

    A large, endless or slow body is left unread: closing the connection costs less than reading it.
    """
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > DRAIN_BYTES:
        return
    left = DRAIN_BYTES
    try:
        while left > 0 and not clock.expired:
            chunk = response.raw.read1(min(left, CHUNK_BYTES))
            if not chunk:
                return
            left -= len(chunk)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError):
        return


def read_body(response: requests.Response, config: DownloadConfig, clock: AttemptClock) -> bytearray:
    """Read the body within the total deadline and the size limit.

    The body is returned as the buffer it was read into: copying it into `bytes` would cost a
    second body-sized allocation per image for nothing (Pillow, hashlib and file writes take it).
    """
    length = response.headers.get("Content-Length", "")
    body = bytearray()
    try:
        while True:
            if clock.expired:
                raise FetchError("timeout", past_deadline(clock, "body"), response.status_code)
            chunk = response.raw.read1(CHUNK_BYTES, decode_content=True)
            if not chunk:
                break
            body += chunk
            if len(body) > config.max_body_bytes:
                raise FetchError("too_large", f"body over {config.max_body_bytes} bytes", response.status_code)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as error:
        failure = classify_request_error(error, clock)
        failure.http_status = response.status_code
        raise failure from None
    if clock.expired:  # the reaper's shutdown reads as an early end of the stream
        raise FetchError("timeout", past_deadline(clock, "body"), response.status_code)
    if length.isdigit() and len(body) < int(length) and "Content-Encoding" not in response.headers:
        raise FetchError("connection", f"body ended after {len(body)} of {length} bytes", response.status_code)
    return body
