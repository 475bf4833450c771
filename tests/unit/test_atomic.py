"""Interrupted writes leave the old file or none, never half of a new one (issue #16)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from models import artifact
from training import archive


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_an_interrupted_save_keeps_the_previous_weights(tmp_path, monkeypatch):
    tokenizer = tmp_path / "tok.model"
    tokenizer.write_text("vocabulary")
    out = tmp_path / "artifact"
    artifact.save_artifact(out, "lm", {"n": 1}, {"w": torch.ones(2)}, tokenizer)
    before = (out / artifact.WEIGHTS_FILE).read_bytes()

    def dies_mid_write(obj, path):
        Path(path).write_bytes(b"half a pickle")
        raise KeyboardInterrupt

    monkeypatch.setattr(artifact.torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        artifact.save_artifact(out, "lm", {"n": 2}, {"w": torch.zeros(2)}, tokenizer)
    assert (out / artifact.WEIGHTS_FILE).read_bytes() == before
    assert files(out) == set(artifact.ARTIFACT_FILES), "no partial file may stay behind"


def test_a_failed_archive_build_leaves_no_archive_behind(tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    source = tmp_path / "artifact"
    source.mkdir()
    for name in artifact.ARTIFACT_FILES:
        (source / name).write_text("x")

    def archiver_dies(command, **kwargs):
        export = Path(command[command.index("--export-path") + 1])
        (export / "lm.mar").write_bytes(b"PK truncated")
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(archive.subprocess, "run", archiver_dies)
    with pytest.raises(subprocess.CalledProcessError):
        archive.build_archive("lm", source, store)
    assert files(store) == set()
    (store / "lm.mar").write_bytes(b"the old archive")
    with pytest.raises(subprocess.CalledProcessError):
        archive.build_archive("lm", source, store)
    assert files(store) == {"lm.mar"} and (store / "lm.mar").read_bytes() == b"the old archive"
