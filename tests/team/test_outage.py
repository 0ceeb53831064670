"""The team server goes away during training: for 30 seconds (stop the process, start it again on the
same port; training goes on, also while the backlog drains), for good (the run stops with one line; the
same command resumes once it is back), and a run killed while its backlog drains (the same command
delivers the rest)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

from mlimages.tracking.checkpoints import find_checkpoints
from mlimages.tracking.names import STEP_TAG
from mlimages.tracking.outbox import RETRY_EVERY_S

from tests.train.fakes import tiny_section, write_records

from .team_server import EXPERIMENT, RESEARCHER

REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = 30
CHECKPOINT_EVERY = 20
OUTAGE_LIMIT_S = 6  # more than one retry interval (5 s): the run stops after its second failed retry
PACE_STEPS = 3  # steps a retry interval of the outage must show

pytestmark = pytest.mark.slow  # trains through two outages of the real server: minutes


def write_params(path: Path, steps: int, checkpoint_every: int = CHECKPOINT_EVERY) -> None:
    import yaml

    section = tiny_section("pretrain", {"experiment": EXPERIMENT, "steps": steps, "log_every_steps": 1,
                                        "checkpoint_every_steps": checkpoint_every, "checkpoint_every_epochs": 0,
                                        "val_examples": 8})
    path.write_text(yaml.safe_dump({"pretrain": section}), encoding="utf-8")


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict:
    data = tmp_path_factory.mktemp("records")
    return {"train": write_records(data / "train", 32, "multi", seed=1),
            "val": write_records(data / "val", 8, "multi", num_shards=1, seed=2)}


def start_training(team_server, records: dict, lab: Path, **env) -> subprocess.Popen:
    command = [sys.executable, str(REPO / "pipelines" / "pretrain.py"), "--train", str(records["train"]),
               "--val", str(records["val"]), "--out", "out", "--params", "params.yaml"]
    env = {**team_server.client_env(RESEARCHER), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **env}
    with (lab / "train.log").open("ab") as log:
        return subprocess.Popen(command, cwd=lab, env=env, stdout=log, stderr=subprocess.STDOUT)


def saved_step(lab: Path) -> int:
    latest = tf.train.latest_checkpoint(str(lab / "out" / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def wait_for_step(lab: Path, process: subprocess.Popen, step: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while saved_step(lab) < step:
        assert process.poll() is None, (lab / "train.log").read_text()[-3000:]
        assert time.monotonic() < deadline, f"no checkpoint at step {step} in {timeout_s} s"
        time.sleep(0.2)


def assert_logged_once(client, lab: Path, steps: int, checkpoint_every: int = CHECKPOINT_EVERY) -> None:
    """Every metric step once, and a finished checkpoint LoggedModel at every checkpoint step."""
    run_id = json.loads((lab / "out" / "summary.json").read_text())["run_id"]
    for key in ("loss", "learning_rate", "images_per_s"):
        logged = sorted(m.step for m in client.get_metric_history(run_id, key))
        assert logged == list(range(1, steps + 1)), (key, logged)
    checkpoints = find_checkpoints(run_id)
    assert [int(m.tags[STEP_TAG]) for m in checkpoints] == list(range(checkpoint_every, steps + 1, checkpoint_every))
    assert all(str(m.status).endswith("READY") for m in checkpoints)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert not (lab / "out" / "tracking-outbox").exists()


def logged_step(lab: Path) -> int:
    """The last training step the run's console shows (one line a step: `log_every_steps` is 1)."""
    found = re.findall(r" step (\d+)/\d+ loss ", (lab / "train.log").read_text(errors="replace"))
    return int(found[-1]) if found else 0


def pace(lab: Path, process: subprocess.Popen, until: float, line: str | None = None) -> list[int]:
    """Steps made in each sender retry interval up to `until` (or until the console shows `line`): training
    runs in every interval until it has made `PACE_STEPS` more steps, then is held (SIGSTOP) for the rest
    of it, so that the outage costs a few dozen steps whatever the machine's speed, not thousands to
    deliver afterwards. Returns with training running."""
    made = []
    while time.monotonic() < until:
        now, before = time.monotonic(), logged_step(lab)
        window_end = until if until - now < 2 * RETRY_EVERY_S else now + RETRY_EVERY_S  # 5 to 10 s each
        while logged_step(lab) < before + PACE_STEPS and time.monotonic() < window_end:
            assert process.poll() is None, (lab / "train.log").read_text()[-3000:]
            if line is not None and line in (lab / "train.log").read_text(errors="replace"):
                return made
            time.sleep(0.05)
        process.send_signal(signal.SIGSTOP)
        made.append(logged_step(lab) - before)
        time.sleep(max(0.0, window_end - time.monotonic()))
        process.send_signal(signal.SIGCONT)
    return made


def test_training_goes_on_through_a_30_second_outage(team_server, records, researcher, tmp_path):
    steps, every = 200, 50  # training goes on past the outage, while the backlog drains
    write_params(tmp_path / "params.yaml", steps, every)
    process = start_training(team_server, records, tmp_path)
    try:
        wait_for_step(tmp_path, process, every)
        process.send_signal(signal.SIGSTOP)  # held while the server shuts down (seconds), as while it boots
        try:
            team_server.stop()
        finally:
            process.send_signal(signal.SIGCONT)
        back_at = time.monotonic() + OUTAGE_S
        stopped_at = saved_step(tmp_path)
        # A checkpoint kept during the outage, then a few steps in every retry interval to its end.
        wait_for_step(tmp_path, process, stopped_at + every, timeout_s=OUTAGE_S)
        made = pace(tmp_path, process, back_at)
        during = saved_step(tmp_path)
        # Training pauses while the server boots (seconds when idle, minutes on a loaded machine), so that
        # it is still running when the server is back, whatever the boot took.
        process.send_signal(signal.SIGSTOP)
        try:
            team_server.start(team_server.root / "team.yaml")
        finally:
            process.send_signal(signal.SIGCONT)
        # Paced again until the sender's next retry finds the server, so that steps are left for the drain.
        pace(tmp_path, process, time.monotonic() + 300, "tracking server answers again")
        assert during < steps, f"training ended during the outage: {steps} steps are too few here"
        assert process.wait(timeout=1800) == 0, (tmp_path / "train.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
        if team_server.process.poll() is not None:
            team_server.start(team_server.root / "team.yaml")
    assert during >= stopped_at + every, f"training stood still: step {stopped_at} -> {during}"
    assert all(made), f"training stood still in a retry interval of the outage: steps in each {made}"
    log = (tmp_path / "train.log").read_text()
    assert "tracking server unreachable" in log
    assert_logged_once(researcher, tmp_path, steps, every)
    assert count_steps_while_draining(log) >= 1, "training stood still while the backlog drained"


def count_steps_while_draining(log: str) -> int:
    """Training steps finished between the server's return and the end of the backlog's delivery."""
    start, end = log.index("tracking server answers again"), log.index("tracking outbox drained")
    return len(re.findall(r" step \d+/\d+ loss ", log[start:end]))


def test_a_run_killed_while_its_backlog_drains_delivers_it_when_resumed(team_server, records, researcher,
                                                                         tmp_path):
    steps = 100  # the outage keeps 40 or more of them, and their checkpoints: seconds of draining to cut into
    write_params(tmp_path / "params.yaml", steps)
    process = start_training(team_server, records, tmp_path)
    try:
        wait_for_step(tmp_path, process, CHECKPOINT_EVERY)
        team_server.stop()
        wait_for_step(tmp_path, process, min(saved_step(tmp_path) + 2 * CHECKPOINT_EVERY, steps))  # kept meanwhile
        team_server.start(team_server.root / "team.yaml")
        deadline = time.monotonic() + 300
        while "tracking server answers again" not in (tmp_path / "train.log").read_text():
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "train.log").read_text()[-3000:]
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)  # in the middle of the drain
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        if team_server.process.poll() is not None:
            team_server.start(team_server.root / "team.yaml")
    assert "tracking outbox drained" not in (tmp_path / "train.log").read_text()
    assert (tmp_path / "out" / "tracking-outbox" / "outbox.jsonl").is_file()

    again = start_training(team_server, records, tmp_path)
    assert again.wait(timeout=900) == 0, (tmp_path / "train.log").read_text()[-3000:]
    assert_logged_once(researcher, tmp_path, steps)


def test_a_server_that_stays_away_stops_the_run_and_the_same_command_resumes(team_server, records, researcher,
                                                                              tmp_path):
    steps = 60
    write_params(tmp_path / "params.yaml", steps)
    process = start_training(team_server, records, tmp_path, MLIMAGES_TRACKING_OUTAGE_S=str(OUTAGE_LIMIT_S))
    try:
        wait_for_step(tmp_path, process, CHECKPOINT_EVERY)
        team_server.stop()
        stopped = time.monotonic()
        code = process.wait(timeout=300)
        waited_s = time.monotonic() - stopped
    finally:
        if process.poll() is None:
            process.kill()
        team_server.start(team_server.root / "team.yaml")
    log = (tmp_path / "train.log").read_text()
    assert code == 5, log[-3000:]
    errors = [line for line in log.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "tracking server has not answered for" in errors[0], errors
    assert "same command" in errors[0]
    assert "Traceback" not in log
    assert waited_s < OUTAGE_LIMIT_S + 120, waited_s  # the limit, plus the steps and one retry interval around it
    assert saved_step(tmp_path) > CHECKPOINT_EVERY - 1 and (tmp_path / "out" / "tracking-outbox").is_dir()

    again = start_training(team_server, records, tmp_path)
    assert again.wait(timeout=900) == 0, (tmp_path / "train.log").read_text()[-3000:]
    assert_logged_once(researcher, tmp_path, steps)
