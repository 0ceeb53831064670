"""Open Images' mirror in the downloader: dead URLs recovered, MD5 checked, both sources recorded.

Two loopback servers play the original hosts (127.0.0.1) and the mirror (localhost, so it is a
host of its own for the politeness gate); one log records the order of the requests both saw.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time

import pytest

from mlimages.download.fallback import open_mirror
from mlimages.errors import InputError

from .fault_server import FaultServer, make_jpeg, make_photo, make_png, run_download

MIRROR_HEADER = "ImageID,Subset,OriginalURL,OriginalLandingURL,License,OriginalSize,OriginalMD5\n"


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@pytest.fixture
def hosts():
    """(origin server, mirror server, request log of (server name, path) in arrival order)."""
    log, lock, servers = [], threading.Lock(), {}
    for name in ("origin", "mirror"):
        server = FaultServer()
        original = server.RequestHandlerClass.do_GET

        def do_get(handler, name=name, original=original):
            with lock:
                log.append((name, handler.path))
            original(handler)
        server.RequestHandlerClass = type(f"{name}Handler", (server.RequestHandlerClass,), {"do_GET": do_get})
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers[name] = server
    yield servers["origin"], servers["mirror"], log
    for server in servers.values():
        server.shutdown()
        server.server_close()


def mirror_url(mirror: FaultServer) -> str:
    return f"http://localhost:{mirror.server_port}/m/{{image_id}}.jpg"


def write_metadata(path, rows: list[tuple[str, str, bytes]]):
    """Open Images' metadata CSV: (image id, original URL, the bytes whose MD5 is listed)."""
    lines = [f"{image_id},train,{url},https://flickr/x,cc-by,{len(data)},{md5_b64(data)}\n"
             for image_id, url, data in rows]
    path.write_text(MIRROR_HEADER + "".join(lines), encoding="utf-8")
    return path


def serve(server: FaultServer, path: str, status: int, body: bytes = b"", content_type="image/jpeg") -> None:
    server.routes[path] = lambda handler, hits: handler.send_body(status, body or b"gone", content_type)


def test_a_dead_url_is_recovered_from_the_mirror_with_its_md5_checked(hosts, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mlimages.download.summary")
    origin, mirror, log = hosts
    good, recovered, placeholder = make_photo(10), make_photo(11), make_photo(12)
    serve(origin, "/alive.jpg", 200, good)
    serve(origin, "/dead.jpg", 404)
    serve(origin, "/unlisted.jpg", 404)
    placeholder_url = origin.url("/photo_unavailable.gif")
    origin.routes["/moved.jpg"] = lambda h, hits: h.send_body(302, b"", headers={"Location": placeholder_url})
    serve(origin, "/photo_unavailable.gif", 200, make_png(), "image/gif")
    serve(mirror, "/m/dead1.jpg", 200, recovered)
    serve(mirror, "/m/moved1.jpg", 200, placeholder)
    csv_path = write_metadata(tmp_path / "meta.csv", [("alive1", origin.url("/alive.jpg"), good),
                                                      ("dead1", origin.url("/dead.jpg"), recovered),
                                                      ("moved1", origin.url("/moved.jpg"), placeholder)])
    sources = [origin.url(p) for p in ("/alive.jpg", "/dead.jpg", "/unlisted.jpg", "/moved.jpg")]
    outcome = run_download(tmp_path, sources, mirror_metadata_csv=str(csv_path), mirror_url_template=mirror_url(mirror))
    assert [outcome.status(line) for line in (1, 2, 3, 4)] == ["ok", "ok", "not_found", "ok"]
    assert [outcome.samples[line]["served_by"] for line in (1, 2, 4)] == ["origin", "mirror", "mirror"]
    sample, status = outcome.samples[2], outcome.statuses[2]
    assert outcome.images[sample["key"]] == recovered and sample["source"] == origin.url("/dead.jpg")
    assert sample["mirror_url"] == mirror_url(mirror).format(image_id="dead1") and sample["md5_matched"] is True
    assert status["served_by"] == "mirror" and [(leg["via"], leg["status"]) for leg in status["legs"]] == [
        ("origin", "not_found"), ("mirror", "ok")]
    assert [leg["status"] for leg in outcome.statuses[4]["legs"]] == ["gone", "ok"]
    assert "legs" not in outcome.statuses[1] and "legs" not in outcome.statuses[3]
    assert ("mirror", "/m/alive1.jpg") not in log  # a live original is never looked for on the mirror
    assert outcome.report["mirror"] == {"recovered": 2, "first": 0, "origin_after_mirror": 0, "both_failed": 0}
    assert "mirror: recovered 2 (original URL dead)" in caplog.text  # the end-of-run summary
    assert (tmp_path / "meta.csv.sqlite").is_file()


def test_turning_the_mirror_on_recovers_dead_lines_of_an_earlier_run(hosts, tmp_path):
    origin, mirror, log = hosts
    photo = make_photo(30)
    serve(origin, "/alive.jpg", 200, make_photo(31))
    serve(origin, "/dead.jpg", 404)
    serve(origin, "/unlisted.jpg", 404)
    serve(mirror, "/m/dead.jpg", 200, photo)
    csv_path = write_metadata(tmp_path / "meta.csv", [("dead", origin.url("/dead.jpg"), photo)])
    sources = [origin.url(p) for p in ("/alive.jpg", "/dead.jpg", "/unlisted.jpg")]
    before = run_download(tmp_path, sources)
    assert [before.status(line) for line in (1, 2, 3)] == ["ok", "not_found", "not_found"]
    with_mirror = {"mirror_metadata_csv": str(csv_path), "mirror_url_template": mirror_url(mirror)}
    after = run_download(tmp_path, sources, **with_mirror)  # no --retry-failures needed
    assert [after.status(line) for line in (1, 2, 3)] == ["ok", "ok", "not_found"]
    assert after.samples[2]["served_by"] == "mirror" and after.report["run"]["fetched"] == 1
    assert [(leg["via"], leg["status"]) for leg in after.statuses[2]["legs"]] == [("origin", "not_found"),
                                                                                  ("mirror", "ok")]
    assert after.statuses[3]["mirror_checked"] is True and after.statuses[3]["http_status"] == 404
    assert log.count(("origin", "/dead.jpg")) == log.count(("origin", "/unlisted.jpg")) == 1  # not asked again
    assert after.report["mirror"]["recovered"] == 1
    requests = len(log)
    again = run_download(tmp_path, sources, **with_mirror)
    assert again.report["run"]["fetched"] == 0 and len(log) == requests  # asked once, not on every run


def test_md5_mismatch_and_both_failing_give_one_failure_record_naming_both(hosts, tmp_path):
    origin, mirror, _ = hosts
    serve(origin, "/swapped.jpg", 404)
    serve(origin, "/gone.jpg", 410)
    serve(mirror, "/m/swapped.jpg", 200, make_jpeg(1))  # another image than the CSV's MD5 names
    serve(mirror, "/m/gone.jpg", 404)
    csv_path = write_metadata(tmp_path / "meta.csv", [("swapped", origin.url("/swapped.jpg"), make_jpeg(2)),
                                                      ("gone", origin.url("/gone.jpg"), make_jpeg(3))])
    outcome = run_download(tmp_path, [origin.url("/swapped.jpg"), origin.url("/gone.jpg")],
                           mirror_metadata_csv=str(csv_path), mirror_url_template=mirror_url(mirror))
    assert outcome.samples == {} and outcome.images == {}
    swapped, gone = outcome.statuses[1], outcome.statuses[2]
    assert swapped["status"] == "md5_mismatch" and not swapped["retryable"]
    assert [(leg["via"], leg["status"], leg["http_status"]) for leg in swapped["legs"]] == [
        ("origin", "not_found", 404), ("mirror", "md5_mismatch", 200)]
    assert gone["status"] == "not_found"
    assert [(leg["via"], leg["status"], leg["http_status"]) for leg in gone["legs"]] == [
        ("origin", "gone", 410), ("mirror", "not_found", 404)]
    assert gone["error"].startswith("origin gone: HTTP 410; mirror not_found: HTTP 404")
    assert gone["attempts"] == 2
    assert outcome.report["mirror"]["both_failed"] == 2 and outcome.report["by_status"] == {
        "md5_mismatch": 1, "not_found": 1}


def test_prefer_mirror_asks_the_mirror_first_and_falls_back_to_the_original(hosts, tmp_path):
    origin, mirror, log = hosts
    first, fallback = make_photo(20), make_photo(21)
    for path, data in (("/first.jpg", first), ("/fallback.jpg", fallback), ("/unlisted.jpg", make_photo(22))):
        serve(origin, path, 200, data)
    serve(mirror, "/m/first.jpg", 200, first)
    mirror.routes["/m/fallback.jpg"] = lambda h, hits: h.send_body(503, b"busy", "text/plain")
    csv_path = write_metadata(tmp_path / "meta.csv", [("first", origin.url("/first.jpg"), first),
                                                      ("fallback", origin.url("/fallback.jpg"), fallback)])
    sources = [origin.url(p) for p in ("/first.jpg", "/fallback.jpg", "/unlisted.jpg")]
    outcome = run_download(tmp_path, sources, mirror_metadata_csv=str(csv_path), mirror_url_template=mirror_url(mirror),
                           prefer_mirror=True, max_attempts=2)
    assert [outcome.status(line) for line in (1, 2, 3)] == ["ok", "ok", "ok"]
    assert [outcome.samples[line]["served_by"] for line in (1, 2, 3)] == ["mirror", "origin", "origin"]
    assert ("origin", "/first.jpg") not in log
    fallback_requests = [entry for entry in log if "fallback" in entry[1]]
    assert fallback_requests == [("mirror", "/m/fallback.jpg")] * 2 + [("origin", "/fallback.jpg")]
    assert [leg["status"] for leg in outcome.statuses[2]["legs"]] == ["server_error", "ok"]
    assert outcome.statuses[2]["attempts"] == 3
    assert outcome.report["mirror"] == {"recovered": 0, "first": 1, "origin_after_mirror": 1, "both_failed": 0}


def test_the_mirror_host_gets_the_per_host_cap(hosts, tmp_path):
    origin, mirror, _ = hosts
    active, peak, lock = [0], [0], threading.Lock()

    def slow_image(handler, hits):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.15)
        with lock:
            active[0] -= 1
        handler.send_body(200, make_jpeg(int(handler.path.split("/")[-1].split(".")[0])))
    mirror.routes["/m/"] = slow_image
    origin.routes["/dead/"] = lambda h, hits: h.send_body(404, b"no", "text/plain")
    rows = [(str(n), origin.url(f"/dead/{n}.jpg"), make_jpeg(n)) for n in range(8)]
    csv_path = write_metadata(tmp_path / "meta.csv", rows)
    outcome = run_download(tmp_path, [url for _, url, _ in rows], mirror_metadata_csv=str(csv_path),
                           mirror_url_template=mirror_url(mirror), concurrency=6, per_host_concurrency=2,
                           per_host_concurrency_min=2, per_host_concurrency_max=2, decode_workers=0)
    assert outcome.report["mirror"]["recovered"] == 8
    assert peak[0] <= 2


def test_the_mirror_index_is_opened_once_per_process(tmp_path):
    from .fault_server import download_config

    csv_path = write_metadata(tmp_path / "meta.csv", [("a", "http://x/a.jpg", b"a")])
    config = download_config(mirror_metadata_csv=str(csv_path), mirror_url_template="http://m/{image_id}")
    assert open_mirror(config) is open_mirror(config) and open_mirror(config).lookup("http://x/a.jpg").image_id == "a"
    assert open_mirror(download_config()) is None


@pytest.mark.parametrize("changes, where, message", [
    ({"mirror_metadata_csv": "missing.csv"}, "download.mirror_metadata_csv", "metadata CSV not found"),
    ({"mirror_url_template": "http://m/{id}.jpg"}, "download.mirror_url_template", "only use {image_id}"),
    ({"mirror_url_template": "http://m/x.jpg"}, "download.mirror_url_template", "no {image_id}"),
    ({"mirror_metadata_csv": "", "prefer_mirror": True}, "download.prefer_mirror", "needs download.mirror_metadata"),
    ({"columns": "ImageID,OriginalURL\n"}, "meta.csv:1", "missing column"),
])
def test_bad_mirror_settings_stop_before_any_fetch(hosts, tmp_path, monkeypatch, changes, where, message):
    origin, _, log = hosts
    serve(origin, "/a.jpg", 200, make_jpeg(1))
    monkeypatch.chdir(tmp_path)
    if "columns" in changes:
        (tmp_path / "meta.csv").write_text(changes.pop("columns"), encoding="utf-8")
    else:
        write_metadata(tmp_path / "meta.csv", [("x", origin.url("/a.jpg"), make_jpeg(1))])
    settings = {"mirror_metadata_csv": "meta.csv", "mirror_url_template": "http://m/{image_id}.jpg", **changes}
    with pytest.raises(InputError) as caught:
        run_download(tmp_path, [origin.url("/a.jpg")], **settings)
    assert where in str(caught.value) and message in str(caught.value) and "\n" not in str(caught.value)
    assert log == [] and not (tmp_path / "images").exists()


def test_worker_processes_each_open_the_index_and_recover(hosts, tmp_path):
    origin, mirror, _ = hosts
    origin.routes["/dead/"] = lambda h, hits: h.send_body(404, b"no", "text/plain")
    mirror.routes["/m/"] = lambda h, hits: h.send_body(200, make_jpeg(int(h.path.split("/")[-1].split(".")[0])))
    rows = [(str(n), origin.url(f"/dead/{n}.jpg"), make_jpeg(n)) for n in range(6)]
    csv_path = write_metadata(tmp_path / "meta.csv", rows)
    outcome = run_download(tmp_path, [url for _, url, _ in rows], mirror_metadata_csv=str(csv_path),
                           mirror_url_template=mirror_url(mirror), processes=2, samples_per_shard=2)
    assert outcome.report["run"]["processes"] == 2 and outcome.report["mirror"]["recovered"] == 6
    assert sorted(outcome.samples[line]["served_by"] for line in range(1, 7)) == ["mirror"] * 6


def test_a_shard_task_run_on_its_own_builds_and_uses_the_index(hosts, tmp_path):
    from dataclasses import replace

    from mlimages.download.task import TaskSettings, download_shard

    from .fault_server import FAST

    origin, mirror, _ = hosts
    serve(origin, "/dead.jpg", 404)
    serve(mirror, "/m/dead.jpg", 200, make_jpeg(5))
    csv_path = write_metadata(tmp_path / "meta.csv", [("dead", origin.url("/dead.jpg"), make_jpeg(5))])
    list_path = tmp_path / "list.tsv"
    list_path.write_text(f"{origin.url('/dead.jpg')}\t1:1\n", encoding="utf-8")
    config = replace(FAST, mirror_metadata_csv=str(csv_path), mirror_url_template=mirror_url(mirror))
    (tmp_path / "images").mkdir()
    tally = download_shard(list_path, 0, TaskSettings(config), tmp_path / "images")
    assert tally.mirror["recovered"] == 1 and (tmp_path / "meta.csv.sqlite").is_file()
