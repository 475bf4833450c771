"""serving/grpc_client.py without a server: the stubs compile from TorchServe's jar, and a
failed call becomes a GrpcError with its status (the integration tests use a real server)."""

from __future__ import annotations

import zipfile

import grpc
import pytest

from serving import grpc_client
from serving.grpc_client import GrpcClient, GrpcError
from serving.server_config import free_ports


def test_the_installed_jar_holds_the_inference_proto():
    with zipfile.ZipFile(grpc_client.torchserve_jar()) as jar:
        proto = jar.read(f"proto/{grpc_client.PROTO}").decode()
    assert "service InferenceAPIsService" in proto and "rpc Predictions" in proto


def test_stubs_compile_into_a_fresh_folder(tmp_path):
    with zipfile.ZipFile(grpc_client.torchserve_jar()) as jar:
        proto = jar.read(f"proto/{grpc_client.PROTO}")
    folder = tmp_path / grpc_client._cache_key(proto)
    grpc_client._compile(proto, folder)
    generated = folder / grpc_client.PACKAGE
    assert (generated / "inference_pb2.py").exists()
    assert "InferenceAPIsServiceStub" in (generated / "inference_pb2_grpc.py").read_text()
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no scratch folder left
    grpc_client._compile(proto, folder)  # a second process finding it there is fine


def test_the_cache_key_follows_the_proto():
    assert grpc_client._cache_key(b"a") != grpc_client._cache_key(b"b")
    assert grpc_client._cache_key(b"a") == grpc_client._cache_key(b"a")


def test_the_request_carries_the_body_under_the_name_our_handlers_read():
    client = GrpcClient("127.0.0.1:1", key="k")
    request = client._request("sentiment", b'{"text": "hi"}')
    assert request.model_name == "sentiment"
    assert dict(request.input) == {"body": b'{"text": "hi"}'}
    assert client.metadata == (("authorization", "Bearer k"),)
    assert GrpcClient("127.0.0.1:1").metadata == ()


def test_no_server_is_a_typed_unavailable_error():
    (port,) = free_ports(1)
    client = GrpcClient(f"127.0.0.1:{port}", key="k", timeout=5)
    with client, pytest.raises(GrpcError) as failed:
        client.predict("sentiment", b"{}")
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE
    assert str(failed.value).startswith("gRPC UNAVAILABLE:")
