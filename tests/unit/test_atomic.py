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


@pytest.mark.parametrize("dies_in", ["tokenizer", "config", "weights"])
def test_an_interrupted_save_leaves_no_weights_for_make_to_take_as_finished(
    tmp_path, monkeypatch, dies_in
):
    """make keys on weights.pt: after an interrupted save it must be gone (make trains again),
    never the old weights beside a new tokenizer or config, nor half a new file."""
    old_tokenizer, new_tokenizer = tmp_path / "old.model", tmp_path / "new.model"
    old_tokenizer.write_text("old vocabulary")
    new_tokenizer.write_text("new vocabulary")
    out = tmp_path / "artifact"
    artifact.save_artifact(out, "lm", {"n": 1}, {"w": torch.ones(2)}, old_tokenizer)

    def dies(*args, **kwargs):
        if dies_in != "config":  # copyfile(source, target), torch.save(obj, target)
            Path(args[1]).write_bytes(b"half a file")
        raise KeyboardInterrupt

    steps = {
        "tokenizer": (artifact.shutil, "copyfile"),
        "config": (artifact.atomic, "write_text"),
        "weights": (artifact.torch, "save"),
    }
    monkeypatch.setattr(*steps[dies_in], dies)
    with pytest.raises(KeyboardInterrupt):
        artifact.save_artifact(out, "lm", {"n": 2}, {"w": torch.zeros(2)}, new_tokenizer)
    assert artifact.WEIGHTS_FILE not in files(out)
    assert files(out) <= set(artifact.ARTIFACT_FILES), "no partial file may stay behind"


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
