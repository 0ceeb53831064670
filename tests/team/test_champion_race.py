"""Two evaluations finishing at the same moment, against the team server on PostgreSQL: `champion`
ends on the better version every time, and the model's champion tag names it. Even rounds race on a
new model (both create the alias at once), odd rounds on one model whose champion both want to replace."""

from __future__ import annotations

import logging
import threading

import pytest
import requests

from mlimages.tracking.champion import record_evaluation

from .team_server import EXPERIMENT, RESEARCHER

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MODEL = "race-champion"
METRIC = "top1_224"
ROUNDS = 12

pytestmark = pytest.mark.slow  # 24 concurrent evaluations through the real server: a few minutes on two cores


def make_source(team_server) -> tuple[str, str]:
    """A run holding a model folder: (run id, source URI) for the versions this test registers."""
    auth = (RESEARCHER, team_server.passwords[RESEARCHER])
    found = requests.get(f"{team_server.url}{API}/experiments/get-by-name", params={"experiment_name": EXPERIMENT},
                         auth=auth, timeout=60).json()
    run = requests.post(f"{team_server.url}{API}/runs/create", auth=auth, timeout=60,
                        json={"experiment_id": found["experiment"]["experiment_id"]}).json()["run"]["info"]
    path = run["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
    requests.put(f"{team_server.url}{ARTIFACTS}/{path}/model/MLmodel", data=b"flavors: {}\n", auth=auth,
                 timeout=60).raise_for_status()
    return run["run_id"], f"{run['artifact_uri']}/model"


class MoveCounter(logging.Handler):
    """Counts alias moves per version, to tell how many rounds really raced."""

    def __init__(self):
        super().__init__()
        self.moves: list[str] = []

    def emit(self, record):
        if "champion is now version" in record.getMessage():
            self.moves.append(str(record.args[1]))


def test_two_evaluations_at_once_leave_champion_on_the_better_version(team_server, researcher):
    run_id, source = make_source(team_server)
    researcher.create_registered_model(MODEL)
    for round_ in range(0, ROUNDS, 2):
        researcher.create_registered_model(f"{MODEL}-{round_}")
    counter = MoveCounter()
    logger = logging.getLogger("mlimages.tracking.champion")
    logger.addHandler(counter)
    level = logger.level
    logger.setLevel(logging.INFO)
    raced = 0
    try:
        for round_ in range(ROUNDS):
            model = MODEL if round_ % 2 else f"{MODEL}-{round_}"
            versions = [researcher.create_model_version(model, source, run_id).version for _ in range(2)]
            scores = [0.1 + 0.05 * round_, 0.12 + 0.05 * round_]  # the second better, both beat every earlier round
            if round_ % 2:
                scores.reverse()
            barrier, errors = threading.Barrier(2), []

            def evaluate(version, score):
                try:
                    barrier.wait(timeout=60)
                    record_evaluation(model, version, {METRIC: score}, "race", METRIC)
                except Exception as error:  # reported below, with the round
                    errors.append(error)

            threads = [threading.Thread(target=evaluate, args=pair) for pair in zip(versions, scores)]
            moves_before = len(counter.moves)
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=300)
            assert not errors, f"round {round_}: {errors}"
            better = versions[scores.index(max(scores))]
            champion = researcher.get_model_version_by_alias(model, "champion")
            assert str(champion.version) == str(better), f"round {round_}: champion {champion.version}, {scores}"
            shown = researcher.get_registered_model(model).tags["champion"]
            assert shown.startswith(f"v{better} "), f"round {round_}: the model says {shown}"
            raced += len(set(counter.moves[moves_before:])) > 1
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)
    print(f"{raced} of {ROUNDS} rounds had both evaluations move the alias")
