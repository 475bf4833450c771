"""KServe deployment files: the manifests parse as the InferenceServices we mean, and the
layout script writes the storage folder KServe's TorchServe predictor expects, with per-model
settings that are exactly those of handlers/<model>/model-config.yaml. (Never applied to a cluster
here; tests/integration/test_kserve_layout.py starts TorchServe on the generated config.)"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import yaml

from deploy.kserve.layout import SNAPSHOT_SETTINGS, lay_out
from handlers import registry

ROOT = Path(__file__).resolve().parents[2]
KSERVE = ROOT / "deploy" / "kserve"
MODELS = ("sentiment", "lm")
SCALE_METRICS = {"cpu", "memory", "concurrency", "rps"}  # KServe v1beta1's scaleMetric values


def model_config(model: str) -> dict:
    return yaml.safe_load(registry.get(model).config.read_text())


def fake_archive(store: Path, model: str, version: str = "1.0") -> Path:
    """A .mar holding only what the layout reads: the manifest and the packed model config."""
    store.mkdir(parents=True, exist_ok=True)
    config_name = registry.get(model).config.name
    manifest = {"model": {"modelName": model, "modelVersion": version, "configFile": config_name}}
    with zipfile.ZipFile(store / f"{model}.mar", "w") as mar:
        mar.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        mar.writestr(config_name, registry.get(model).config.read_text())
    return store / f"{model}.mar"


def properties(path: Path) -> dict[str, str]:
    """A .properties file as KServe's wrapper reads it; a repeated key would be ambiguous."""
    result: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert key.strip() not in result, f"{key} set twice"
            result[key.strip()] = value.strip()
    return result


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    for model in MODELS:
        fake_archive(tmp_path / "model_store", model)
    return lay_out(tmp_path / "model_store", tmp_path / "kserve")


def test_layout_is_the_tree_kserve_mounts(storage):
    tree = sorted(str(p.relative_to(storage)) for p in storage.rglob("*") if p.is_file())
    assert tree == ["config/config.properties", "model-store/lm.mar", "model-store/sentiment.mar"]


def test_config_has_kserve_addresses_and_our_limits(storage):
    config = properties(storage / "config" / "config.properties")
    assert config["inference_address"].endswith(":8085")
    assert config["management_address"] == config["inference_address"]
    assert config["metrics_address"] == "http://0.0.0.0:8082"
    assert config["grpc_inference_port"] == "7070"
    assert config["enable_metrics_api"] == "true"
    assert config["metrics_format"] == "prometheus"
    assert config["model_store"] == "/mnt/models/model-store"
    assert int(config["number_of_netty_threads"]) > 0
    assert int(config["job_queue_size"]) > 0
    # The KServe wrapper sends no key, so keys are off: TorchServe must stay on loopback.
    assert config["disable_token_authorization"] == "true"
    assert config["inference_address"].startswith("http://127.0.0.1:")
    assert config["enable_model_api"] == "false"
    assert "load_models" not in config  # the snapshot decides what loads
    assert "enable_envvars_config" not in config  # no KServe envelope around our bodies


def test_snapshot_names_both_models_with_their_serving_config(storage):
    snapshot = json.loads(properties(storage / "config" / "config.properties")["model_snapshot"])
    assert snapshot["modelCount"] == 2
    assert set(snapshot["models"]) == set(MODELS)  # the names KServe's wrapper will route
    for model in MODELS:
        entry = snapshot["models"][model]["1.0"]
        assert entry["marName"] == f"{model}.mar" and entry["defaultVersion"] is True
        expected = model_config(model)
        assert {key: entry[key] for key in SNAPSHOT_SETTINGS} == {
            key: expected[key] for key in SNAPSHOT_SETTINGS
        }


def test_a_model_left_out_leaves_no_stale_archive(storage, tmp_path):
    lay_out(tmp_path / "model_store", storage, models=("sentiment",))
    assert [p.name for p in (storage / "model-store").iterdir()] == ["sentiment.mar"]
    snapshot = json.loads(properties(storage / "config" / "config.properties")["model_snapshot"])
    assert list(snapshot["models"]) == ["sentiment"]


def test_missing_archive_is_named(tmp_path):
    fake_archive(tmp_path / "model_store", "sentiment")
    with pytest.raises(FileNotFoundError, match=r"lm\.mar"):
        lay_out(tmp_path / "model_store", tmp_path / "kserve")


def manifests() -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in KSERVE.glob("inferenceservice-*.yaml")}


def test_manifests_are_torchserve_inference_services_that_autoscale():
    found = manifests()
    assert set(found) == {"inferenceservice-cpu", "inferenceservice-gpu"}
    for name, manifest in found.items():
        assert manifest["apiVersion"] == "serving.kserve.io/v1beta1", name
        assert manifest["kind"] == "InferenceService", name
        predictor = manifest["spec"]["predictor"]
        model = predictor["model"]
        assert model["modelFormat"]["name"] == "pytorch", name
        assert model["protocolVersion"] == "v1", name
        assert model["storageUri"].split("://")[0] in ("pvc", "s3", "gs"), name
        assert 1 <= predictor["minReplicas"] < predictor["maxReplicas"], name
        assert predictor["scaleMetric"] in SCALE_METRICS, name
        assert predictor["scaleTarget"] > 0, name
        assert predictor["timeout"] >= model_config("lm")["responseTimeout"], name


def test_only_the_gpu_variant_asks_for_a_gpu():
    found = manifests()
    gpu = found["inferenceservice-gpu"]["spec"]["predictor"]["model"]
    cpu = found["inferenceservice-cpu"]["spec"]["predictor"]["model"]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
    assert gpu["image"].endswith("-gpu") and not cpu["image"].endswith("-gpu")
