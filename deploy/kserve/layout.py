"""Lay out the storage folder that KServe's TorchServe predictor reads, from our archives.

    python -m deploy.kserve.layout --model-store model_store --out runs/kserve
    # then upload it as the InferenceService's storageUri, e.g.
    #   gsutil -m cp -r runs/kserve/* gs://BUCKET/rnn-serve/     (or copy it into the PVC)

KServe mounts storageUri at /mnt/models and starts TorchServe with
`--model-store /mnt/models/model-store --ts-config /mnt/models/config/config.properties`, so the
folder is `config/config.properties` + `model-store/<name>.mar`. Its KServe wrapper (the process
KServe routes to, on port 8080) reads the model names from `model_snapshot` and forwards each
request to TorchServe on port 8085 of the same container.

The config is our own serving/config.properties rendered by serving.server_config (same queue
bound, request limits, no model-registration API), changed only where KServe needs it:

- TorchServe on 8085 (inference and management), bound to loopback by default: the wrapper is
  in the same container, and it sends no keys, so token authorization must be off here and
  nothing outside the container may reach these APIs. `--bind 0.0.0.0` is KServe's sample.
  Access control moves to the cluster (ingress / mesh authorization in front of the wrapper).
- Metrics on 0.0.0.0:8082 in Prometheus format, for the cluster's scraper.
- `model_snapshot` instead of `load_models`: per model, workers, batchSize, maxBatchDelay and
  responseTimeout come from the model config packed inside each archive
  (handlers/<name>/model-config.yaml when it was built), and the version from the archive's
  manifest, so they cannot drift.
- No `enable_envvars_config`: KServe's TS_SERVICE_ENVELOPE then stays unused and our handlers
  get the JSON body the client sent (batching across requests keeps working); clients POST
  our usual body to /v1/models/<name>:predict.
"""

from __future__ import annotations

import argparse
import json
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from serving.server_config import DEFAULT_MODELS, ROOT, ServerConfig
from training.archive import archive_info

MOUNT = Path("/mnt/models")  # where KServe's storage initializer puts storageUri
CONFIG_DIR = "config"
STORE_DIR = "model-store"
TORCHSERVE_PORT = 8085  # the KServe wrapper takes 8080 and forwards here
METRICS_PORT = 8082
GRPC_INFERENCE_PORT = 7070
GRPC_MANAGEMENT_PORT = 7071
# Per-model settings TorchServe takes from a snapshot entry (names as in the model config).
SNAPSHOT_SETTINGS = ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout")


def model_snapshot(archives: Mapping[str, Path]) -> dict[str, Any]:
    """TorchServe's snapshot JSON for ``archives`` ({model name: .mar path})."""
    models = {}
    for name, archive in archives.items():
        version, config = archive_info(archive)
        missing = [key for key in SNAPSHOT_SETTINGS if key not in config]
        if missing:
            raise ValueError(f"{archive}: its model config lacks {missing}")
        entry = {"defaultVersion": True, "marName": archive.name}
        entry.update({key: config[key] for key in SNAPSHOT_SETTINGS})
        models[name] = {version: entry}
    return {"name": "startup.cfg", "modelCount": len(models), "models": models}


def kserve_properties(snapshot: Mapping[str, Any], bind: str = "127.0.0.1") -> str:
    """Our config.properties, re-addressed for KServe's container (see module docstring)."""
    rendered = ServerConfig(
        host=bind,
        inference_port=TORCHSERVE_PORT,
        management_port=TORCHSERVE_PORT,
        metrics_port=METRICS_PORT,
        grpc_inference_port=GRPC_INFERENCE_PORT,
        grpc_management_port=GRPC_MANAGEMENT_PORT,
        model_store=MOUNT / STORE_DIR,
        auth=False,  # the KServe wrapper cannot send keys
        models=tuple(snapshot["models"]),
    ).render()
    header = (
        "# Written by deploy/kserve/layout.py for KServe's TorchServe predictor: regenerate it\n"
        "# rather than editing. Token authorization is off because the KServe wrapper sends no\n"
        "# keys; TorchServe's APIs are bound to the container's loopback unless --bind said not.\n"
    )
    return header + set_properties(
        rendered,
        {
            "metrics_address": f"http://0.0.0.0:{METRICS_PORT}",
            "load_models": None,  # the snapshot names the models and their settings
            "enable_metrics_api": "true",
            "metrics_format": "prometheus",
            "model_snapshot": json.dumps(snapshot, separators=(",", ":")),
        },
    )


def set_properties(text: str, updates: Mapping[str, str | None]) -> str:
    """``text`` (a .properties file) with keys replaced, removed (None) or appended."""
    lines, seen = [], set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in updates:
            seen.add(key)
            if updates[key] is not None:
                lines.append(f"{key}={updates[key]}")
            continue
        lines.append(line)
    lines += [f"{k}={v}" for k, v in updates.items() if k not in seen and v is not None]
    return "\n".join(lines) + "\n"


def lay_out(
    model_store: Path,
    out: Path,
    models: Sequence[str] = DEFAULT_MODELS,
    bind: str = "127.0.0.1",
) -> Path:
    """Write ``out/config/config.properties`` and ``out/model-store/<model>.mar``; return out.

    Both sub-folders are regenerated whole, so a model dropped from ``models`` leaves no
    stale archive behind for KServe to mount.
    """
    archives = {name: Path(model_store) / f"{name}.mar" for name in models}
    missing = [str(path) for path in archives.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"no archive {', '.join(missing)}: run `make models` first")
    snapshot = model_snapshot(archives)
    out = Path(out)
    for folder in (CONFIG_DIR, STORE_DIR):
        shutil.rmtree(out / folder, ignore_errors=True)
        (out / folder).mkdir(parents=True)
    for archive in archives.values():
        shutil.copy2(archive, out / STORE_DIR / archive.name)
    (out / CONFIG_DIR / "config.properties").write_text(kserve_properties(snapshot, bind))
    return out


def _main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model-store", type=Path, default=ROOT / "model_store")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "kserve")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--bind", default="127.0.0.1", help="TorchServe's address in the pod")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    try:
        out = lay_out(args.model_store, args.out, models, args.bind)
    except (FileNotFoundError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise SystemExit(f"error: {exc}") from None
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(path)


if __name__ == "__main__":
    _main()
