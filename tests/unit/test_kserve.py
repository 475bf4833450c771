"""deploy/kserve/: our own ServingRuntime and the InferenceServices that use it are valid
KServe resources, checked offline against KServe's CRD schemas of release v0.20.0
(tests/data/kserve-crds-v0.20.0/SOURCE.md), and they start our entrypoint the way we mean:
the right models, the right port, one LM replica for sessions. (Never applied to a cluster.)
"""

from __future__ import annotations

import copy
import gzip
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from handlers import registry
from serving.entrypoint import config_from_env
from serving.lifecycle import DRAIN_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
KSERVE = ROOT / "deploy" / "kserve"
CRDS = ROOT / "tests" / "data" / "kserve-crds-v0.20.0"
MANIFESTS = sorted(KSERVE.glob("*.yaml"))
IMAGE_ENV = {"RNN_SERVE_HOST": "0.0.0.0"}  # what the Dockerfile sets (ENV)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def closed(schema: Any) -> Any:
    """``schema`` with unknown fields refused wherever Kubernetes would prune them: a typo such
    as `minReplica` must fail here (as `kubectl apply --validate=strict` fails), not vanish."""
    if isinstance(schema, dict):
        schema = {key: closed(value) for key, value in schema.items()}
        if schema.pop("x-kubernetes-int-or-string", False):
            schema.pop("type", None)
            schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in schema and "additionalProperties" not in schema and not preserve:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    return schema


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the closed OpenAPI v3 schema KServe's CRD declares for it."""
    schemas = {}
    for path in CRDS.glob("*.yaml.gz"):
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # 2 MB of schema: the C parser
        crd = yaml.load(gzip.decompress(path.read_bytes()), Loader=loader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = closed(version["schema"]["openAPIV3Schema"])
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def kserve_documents() -> list[dict[str, Any]]:
    return [
        doc
        for path in MANIFESTS
        for doc in documents(path)
        if doc["apiVersion"].startswith("serving.kserve.io/")
    ]


def validate(doc: dict[str, Any]) -> None:
    schema = crd_schemas()[(doc["apiVersion"], doc["kind"])]
    jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)


def inference_services(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in documents(path) if doc["kind"] == "InferenceService"]


def runtime() -> dict[str, Any]:
    (doc,) = documents(KSERVE / "servingruntime.yaml")
    return doc


def container_env(service: dict[str, Any]) -> dict[str, str]:
    """The environment our entrypoint sees: image, runtime container, then the service's own
    (KServe merges the predictor's model container over the runtime's)."""
    env = dict(IMAGE_ENV)
    for source in (runtime()["spec"]["containers"][0], service["spec"]["predictor"]["model"]):
        env |= {item["name"]: item["value"] for item in source.get("env", [])}
    return env


def test_the_crd_schemas_are_kserves_pinned_release():
    assert set(crd_schemas()) >= {
        ("serving.kserve.io/v1alpha1", "ServingRuntime"),
        ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
        ("serving.kserve.io/v1beta1", "InferenceService"),
    }


@pytest.mark.parametrize(
    "doc", kserve_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_every_kserve_manifest_validates_against_kserves_schema(doc):
    validate(doc)


def test_the_validation_refuses_a_misspelt_or_mistyped_field():
    """The check above can fail: KServe's schema, closed, catches what a reviewer might miss."""
    (service, *_) = inference_services(KSERVE / "inferenceservice-cpu.yaml")
    typo = copy.deepcopy(service)
    typo["spec"]["predictor"]["minReplica"] = typo["spec"]["predictor"].pop("minReplicas")
    with pytest.raises(jsonschema.ValidationError, match="minReplica"):
        validate(typo)
    wrong_type = copy.deepcopy(service)
    wrong_type["spec"]["predictor"]["maxReplicas"] = "eight"
    with pytest.raises(jsonschema.ValidationError):
        validate(wrong_type)


def test_every_service_runs_our_runtime_not_kserve_torchserve():
    ours = runtime()
    assert ours["kind"] in ("ServingRuntime", "ClusterServingRuntime")
    formats = {f["name"] for f in ours["spec"]["supportedModelFormats"]}
    for path in (KSERVE / "inferenceservice-cpu.yaml", KSERVE / "inferenceservice-gpu.yaml"):
        for service in inference_services(path):
            model = service["spec"]["predictor"]["model"]
            assert model["runtime"] == ours["metadata"]["name"]
            assert model["modelFormat"]["name"] in formats
    parsed = yaml.safe_dump([doc for path in MANIFESTS for doc in documents(path)])
    assert "kserve-torchserve" not in parsed and "pytorch" not in parsed


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_each_registered_model_is_served_once_on_the_entrypoints_port(variant):
    port = runtime()["spec"]["containers"][0]["ports"][0]["containerPort"]
    served = []
    for service in inference_services(KSERVE / f"inferenceservice-{variant}.yaml"):
        config = config_from_env(container_env(service))
        assert config.inference_port == port  # the port KServe routes to
        assert config.host == "0.0.0.0" and not config.auth  # keys move to the ingress
        served += config.models
    assert sorted(served) == sorted(registry.names())


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_the_lm_keeps_one_replica_so_sessions_find_their_worker(variant):
    """Sessions live in one worker and nothing routes a follow-up back to it
    (docs/serving.md, "Sessions and scale-out"): the LM must not scale out; the classifier may."""
    for service in inference_services(KSERVE / f"inferenceservice-{variant}.yaml"):
        predictor = service["spec"]["predictor"]
        models = config_from_env(container_env(service)).models
        if "lm" in models:
            assert predictor["minReplicas"] == predictor["maxReplicas"] == 1
        else:
            assert predictor["maxReplicas"] > 1 and predictor["scaleMetric"] == "concurrency"
        # A pod is killed only after the drain has had its time (docs/operations.md).
        assert predictor["terminationGracePeriodSeconds"] > DRAIN_TIMEOUT


def test_only_inference_and_metrics_ports_are_reachable():
    (policy,) = [
        doc
        for doc in documents(KSERVE / "inferenceservice-cpu.yaml")
        if doc["kind"] == "NetworkPolicy"
    ]
    config = config_from_env(IMAGE_ENV)
    allowed = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert config.inference_port in allowed and config.metrics_port in allowed
    assert not allowed & {
        config.management_port,
        config.grpc_inference_port,
        config.grpc_management_port,
    }
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for variant in ("cpu", "gpu"):
        for service in inference_services(KSERVE / f"inferenceservice-{variant}.yaml"):
            assert selector.items() <= service["spec"]["predictor"]["labels"].items()
