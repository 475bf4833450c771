"""A language model with a subword (unigram, byte-fallback) tokenizer through a real
TorchServe: the default LM's kind of vocabulary, which the shared character-level tiny model
never exercises. Served answers must equal the archive run in-process, UTF-8 included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models.generation import GenerationRequest, Generator
from serving.client import generate_stream
from training.archive import build_archive

from .conftest import ROOT, archived_generator, launch

pytestmark = pytest.mark.integration

VOCAB = 400  # the smallest lossless unigram vocabulary is 324 pieces (bytes included)


@pytest.fixture(scope="module")
def subword_store(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("subword")
    command = [sys.executable, "-m", "training.train_lm", "--profile", "tiny"]
    command += ["--vocab-size", str(VOCAB), "--out", str(base / "lm")]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    build_archive("lm", base / "lm", base / "store")
    return base / "store"


@pytest.fixture(scope="module")
def subword_server(subword_store, tmp_path_factory):
    yield from launch(subword_store, tmp_path_factory.mktemp("server"), models=("lm",))


@pytest.fixture(scope="module")
def reference(subword_store, tmp_path_factory) -> Generator:
    generator = archived_generator(subword_store / "lm.mar", tmp_path_factory.mktemp("unpacked"))
    assert generator.tokenizer.vocab_size == VOCAB
    return generator


CASES = [
    {"prompt": "ROMEO:", "max_new_tokens": 40, "temperature": 1.2, "seed": 1},
    {"prompt": "Ein Grüß 🙂 — «ça»", "max_new_tokens": 40, "temperature": 1.0, "seed": 2},
    {"prompt": "KING:", "max_new_tokens": 40, "temperature": 0.8, "top_k": 20, "seed": 3},
]


@pytest.mark.parametrize("case", CASES, ids=["ascii", "utf8-prompt", "top-k"])
def test_served_subword_answers_equal_the_archive_in_process(subword_server, reference, case):
    reply = subword_server.post("lm", json=case)
    assert reply.status_code == 200, reply.text
    expected = reference.generate([GenerationRequest(**case)])[0]
    assert reply.json()["text"] == expected.text
    assert reply.json()["generated_tokens"] == expected.generated_tokens
    chunks = list(generate_stream(subword_server.connection, case))
    assert "".join(c["text"] for c in chunks) == expected.text
