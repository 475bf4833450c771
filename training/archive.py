"""Pack a trained artifact into a TorchServe model archive (.mar) with torch-model-archiver.

    python -m training.archive sentiment --artifact artifacts/sentiment --export model_store

The archive holds the artifact (config.json, weights.pt, tokenizer.model), the handler, the
`models/` and `handlers/` packages it imports, and `serving/<name>-config.yaml` (batch size,
workers, threads: the per-model serving settings live in that one file).
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

from models import atomic
from models.artifact import ARTIFACT_FILES

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = {"sentiment": "handlers/sentiment_handler.py", "lm": "handlers/lm_handler.py"}
PACKAGES = ("models", "handlers")


def model_config_path(name: str) -> Path:
    return ROOT / "serving" / f"{name}-config.yaml"


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
            shutil.copytree(
                ROOT / package, staging / package, ignore=shutil.ignore_patterns("__pycache__")
            )
        archiver = Path(sys.executable).parent / "torch-model-archiver"
        command = [
            str(archiver),
            "--model-name",
            name,
            "--version",
            version,
            "--handler",
            str(ROOT / HANDLERS[name]),
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
    """The handler's ``quantize`` setting packed in a .mar: how the server runs the model."""
    return (archive_info(archive)[1].get("handler") or {}).get("quantize")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("name", choices=sorted(HANDLERS))
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--export", default="model_store")
    parser.add_argument("--config-file", default=None)
    args = parser.parse_args()
    print(build_archive(args.name, args.artifact, args.export, args.config_file))


if __name__ == "__main__":
    main()
