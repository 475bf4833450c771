"""Pack a trained artifact into a TorchServe model archive (.mar) with torch-model-archiver.

    python -m training.archive sentiment --artifact artifacts/sentiment --export model_store

The archive holds the artifact (config.json, weights.pt, tokenizer.model), the model's handler,
the `models/` and `handlers/` packages it imports (with its own model folder, not the others'),
and `handlers/<name>/model-config.yaml` (batch size, workers, threads: the per-model serving
settings live in that one file). Which models exist: `handlers/registry.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

from handlers import registry
from models import atomic
from models.artifact import ARTIFACT_FILES
from serving.server_config import DEFAULT_MODEL_STORE

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "handlers")


def model_config_path(name: str) -> Path:
    return registry.get(name).config


def _other_models(name: str):
    """A copytree filter: an archive carries its own model's handler folder, not the others'."""
    others = set(registry.names()) - {name}
    skip = shutil.ignore_patterns("__pycache__")

    def ignore(folder: str, entries: list[str]) -> set[str]:
        ignored = set(skip(folder, entries))
        if Path(folder).resolve() == registry.HANDLERS_DIR:
            ignored |= others & set(entries)
        return ignored

    return ignore


def build_archive(
    name: str,
    artifact_dir: str | Path,
    export_dir: str | Path,
    config_file: str | Path | None = None,
    version: str = "1.0",
) -> Path:
    """Write ``<export_dir>/<name>.mar`` and return its path (replacing an older one only once
    the new one is complete: the archiver writes into a hidden folder beside it)."""
    export_dir = Path(export_dir).resolve()
    export_dir.mkdir(parents=True, exist_ok=True)
    target = export_dir / f"{name}.mar"
    build_dir = atomic.partial_name(target)  # same file system as the target: atomic rename
    with tempfile.TemporaryDirectory(prefix=f"mar-{name}-") as scratch:
        staging = Path(scratch) / "extra"
        staging.mkdir()
        for file_name in ARTIFACT_FILES:
            shutil.copy2(Path(artifact_dir) / file_name, staging / file_name)
        for package in PACKAGES:
            shutil.copytree(ROOT / package, staging / package, ignore=_other_models(name))
        archiver = Path(sys.executable).parent / "torch-model-archiver"
        command = [
            str(archiver),
            "--model-name",
            name,
            "--version",
            version,
            "--handler",
            str(registry.get(name).handler),
            "--extra-files",
            str(staging),
            "--config-file",
            str(config_file or model_config_path(name)),
            "--export-path",
            str(build_dir),
            "--force",
        ]
        # The archiver stages files in $TMPDIR/<name>: a private TMPDIR keeps parallel
        # builds (tests, CI) from trampling each other.
        env = {**os.environ, "TMPDIR": scratch}
        try:
            build_dir.mkdir()
            subprocess.run(command, check=True, env=env, cwd=scratch)
            os.replace(build_dir / f"{name}.mar", target)
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)
    return target


def archive_info(archive: Path) -> tuple[str, dict[str, Any]]:
    """(version, model config) as packed in a .mar: what TorchServe will actually load."""
    with zipfile.ZipFile(archive) as mar:
        manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))["model"]
        config = yaml.safe_load(mar.read(manifest["configFile"])) or {}
    return str(manifest["modelVersion"]), config


def unpack_archive(archive: str | Path, into: str | Path) -> Path:
    """Extract a .mar (a zip) into ``into``: its artifact folder, loadable in-process."""
    with zipfile.ZipFile(archive) as mar:
        mar.extractall(into)
    return Path(into)


def packed_quantize(archive: Path) -> str | None:
    """The handler's ``quantize`` setting packed in a .mar (``auto``: the model loaders resolve it
    for this machine, as the server does; models/quantize.py)."""
    return (archive_info(archive)[1].get("handler") or {}).get("quantize")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("name", choices=registry.names())
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--export", default=DEFAULT_MODEL_STORE)
    parser.add_argument("--config-file", default=None)
    args = parser.parse_args()
    print(build_archive(args.name, args.artifact, args.export, args.config_file))


if __name__ == "__main__":
    main()
