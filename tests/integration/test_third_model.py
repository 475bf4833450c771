"""A third model is one folder and one registry entry (CONTRIBUTING.md, "A model").

In a temporary copy of the repository (the files git knows), the test writes the folder
`handlers/topic/` (copied from tests/integration/third_model/: a tiny GRU classifier naming a
sentence's topic, with its own trainer, handler, field and model-config.yaml) and one entry in
`handlers/registry.py`, and changes nothing else. Then, as a contributor would: `make models`
trains and archives it (the two tiny models of this session are reused, not retrained) and
prints its summary line, `make serve` serves the three models, the topic model answers over
HTTP like the same archive run in-process, `make loadtest SCENARIO=topic` loads it with its
generic Locust user, and `python -m benchmarks.layout --model topic --list` knows it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loadtest import report
from models.classifier_predictor import ClassifierPredictor
from serving.client import Client
from serving.lifecycle import stop
from tests.integration.conftest import free_server_ports
from tests.integration.test_make_targets import MAKE_PORTS
from training.archive import unpack_archive

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make"),
]

ROOT = Path(__file__).resolve().parents[2]
FOLDER = Path(__file__).resolve().parent / "third_model"
# The one registry entry, written into the copy's MODELS exactly as a contributor would.
ENTRY = """    ServedModel(
        "topic",
        "handlers.topic.train",
        examples=({"text": "my dog saw a cat"}, {"text": "the team scored a goal"}),
        answer_key="label",
        summary=("dev accuracy {dev_accuracy:.1%}", ", trained in {minutes:.1f} min"),
    ),
"""
CLEAR = {"the cat chased a mouse": "animals", "bread and soup": "food", "a tennis match": "sport"}


def repository_copy(into: Path) -> Path:
    """The files git tracks (and new ones it does not ignore), with their times: no build
    output, no artifacts, no virtualenv."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def add_third_model(repo: Path) -> None:
    """One folder and one registry entry: the whole change."""
    shutil.copytree(FOLDER, repo / "handlers" / "topic")
    registry = repo / "handlers" / "registry.py"
    opening = "MODELS: tuple[ServedModel, ...] = (\n"
    text = registry.read_text()
    assert text.count(opening) == 1
    registry.write_text(text.replace(opening, opening + ENTRY))


def make(repo: Path, target: str, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = ["make", "--no-print-directory", "-C", str(repo), target]
    args += [f"{key}={value}" for key, value in settings.items()]
    return subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture
def repo(tiny_model_store: Path, tmp_path: Path) -> Path:
    if not (Path(sys.prefix) / ".installed").is_file():
        pytest.skip("needs the virtualenv made by `make setup`")
    repo = repository_copy(tmp_path / "repo")
    add_third_model(repo)
    for model in ("sentiment", "lm"):  # this session's tiny models: trained, not yet archived
        shutil.copytree(tiny_model_store.parent / model, repo / "artifacts" / model)
    return repo


def test_a_third_model_is_one_folder_and_one_registry_entry(repo: Path) -> None:
    ports = free_server_ports()
    settings = {
        "VENV": sys.prefix,  # the test's own virtualenv: `make setup` is not repeated
        "DATA_DIR": str(Path(os.environ.get("DATA_DIR", "../shared/data")).resolve()),
        "PROFILE": "tiny",
        **{MAKE_PORTS[role]: str(port) for role, port in ports.items()},
    }
    try:
        models = make(repo, "models", settings)
        assert models.returncode == 0, models.stdout[-3000:] + models.stderr[-3000:]
        store = repo / "model_store"
        assert {p.name for p in store.glob("*.mar")} == {"sentiment.mar", "lm.mar", "topic.mar"}
        assert "topic: dev accuracy" in models.stdout, models.stdout  # training.summary's line

        served = make(repo, "serve", settings)
        assert served.returncode == 0, served.stdout[-3000:] + served.stderr[-3000:]
        client = Client.from_run_dir(str(repo / "runs" / "server"))
        local = ClassifierPredictor.from_artifact(unpack_archive(store / "topic.mar", repo / "x"))
        for text, topic in CLEAR.items():
            answer = client.predict("topic", {"text": text})
            assert answer["label"] == topic == local.predict([text])[0]["label"], answer
        assert client.classify("a gripping , funny movie")["label"] in ("negative", "positive")

        load = {"SCENARIO": "topic", "USERS": "2", "SPAWN_RATE": "2", "DURATION": "4s"}
        loaded = make(repo, "loadtest", {**settings, **load})
        assert loaded.returncode == 0, loaded.stdout[-3000:] + loaded.stderr[-3000:]
        (out,) = (repo / "runs" / "loadtest").iterdir()
        stats = {row.name: row for row in report.read_endpoint_stats(report.stats_file(out))}
        assert stats["/predictions/topic"].requests > 0
        assert stats[report.AGGREGATED].failures == 0
        assert set(stats) == {"/predictions/topic", report.AGGREGATED}, "topic users only"

        layout = subprocess.run(
            [sys.executable, "-m", "benchmarks.layout", "--model", "topic", "--list"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        assert layout.returncode == 0, layout.stderr
        assert layout.stdout.startswith("0 workers 1, threads 1, batchSize 8, maxBatchDelay 5")
    finally:
        stop(repo / "runs" / "server")


def test_contributings_worked_example_is_this_tests_entry() -> None:
    """CONTRIBUTING.md, "A model", shows the entry this test adds, word for word."""
    shown = textwrap.indent(textwrap.dedent(ENTRY), " " * 5)
    assert shown in (ROOT / "CONTRIBUTING.md").read_text()
    assert "tests/integration/test_third_model.py" in (ROOT / "CONTRIBUTING.md").read_text()
