"""`mlflow ui` on a loopback port, seen through headless Chromium: the screenshots and the UI test.

Pictures of the registry are only true if they are made from the real UI on the real store, so
the screenshot script (scripts/screenshots.py) and the browser test both start `mlflow ui` on a
free port and drive the system's Chromium (Debian's ``chromium``) with Playwright. Playwright's
own browser downloads are never used: the browser is the distribution's, started without the
network services (updates, sync, component downloads) a headless page has no use for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from mlimages.errors import InputError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1440, "height": 900}


def find_chromium() -> str | None:
    """The system Chromium's path, or None when it is not installed (`make chromium` installs it)."""
    for candidate in (os.environ.get("MLIMAGES_CHROMIUM"), CHROMIUM, shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def mlflow_ui(backend_store_uri: str, timeout_s: float = 180.0) -> Iterator[str]:
    """Run `mlflow ui` on the store, on a free loopback port; yields its address, stops it after.

    Raises:
        InputError: the server exited or did not answer within `timeout_s` (its last output named).
    """
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", backend_store_uri,
               "--host", "127.0.0.1", "--port", str(port)]
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"mlflow-ui-{port}.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, address, timeout_s, log)
        yield address
    finally:
        stop(server)
        log.unlink(missing_ok=True)


def stop(server: subprocess.Popen) -> None:
    """Stop the server and the workers it started (its own process group), politely, then not."""
    for signal_number, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal_number)
        try:
            server.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_until_up(server: subprocess.Popen, address: str, timeout_s: float, log: Path) -> None:
    """Poll the server's /health until it answers 200; a dead or silent server is an `InputError`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise InputError(f"mlflow ui exited ({server.returncode}): {tail[0]}", address)
        try:
            with urllib.request.urlopen(f"{address}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise InputError(f"mlflow ui did not answer in {timeout_s:.0f} s", address)


@contextlib.contextmanager
def chromium_page(executable: str | None = None) -> Iterator:
    """A Playwright page in the system's headless Chromium, at `VIEWPORT`; closed after."""
    from playwright.sync_api import sync_playwright

    executable = executable or find_chromium()
    if executable is None:
        raise InputError("Chromium not found (Debian: apt-get install chromium, or make chromium)", CHROMIUM)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()
