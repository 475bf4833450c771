"""A small client for TorchServe's gRPC inference API (the same models, the same bodies).

    from serving.grpc_client import GrpcClient
    with GrpcClient.from_run_dir() as client:          # the server of runs/server, its key
        client.ping()                                  # {"status": "Healthy"}
        json.loads(client.predict("sentiment", b'{"text": "a gripping , funny movie"}'))
        json.loads(client.predict("lm", b'{"prompt": "KING:", "max_new_tokens": 8}'))

Why generated at first use: TorchServe ships its .proto files inside its jar, so the stubs are
compiled from that jar (with grpc_tools.protoc, into a cache folder keyed by the proto text and
the protobuf/grpc versions) instead of being committed: they always match the installed
TorchServe, and no generated code lives in the repository.

How TorchServe 0.12 authenticates gRPC (frontend GRPCInterceptor): every call of the
inference service, Ping included, must carry the metadata ``authorization: Bearer <inference
key>`` (the same key as HTTP); otherwise the call is closed with PERMISSION_DENIED before it
reaches a model.

What arrives how: the body goes to the handler as the input named "body", as over HTTP. A
status our handler sets (a 400 with our JSON error) does NOT become a gRPC status: TorchServe's
gRPC job drops it and answers OK with the JSON error body, so read the body's "code". Only
errors of TorchServe itself arrive as gRPC statuses, raised here as `GrpcError` (an unknown
model or a full queue: INTERNAL, not NOT_FOUND or UNAVAILABLE).

What TorchServe 0.12's gRPC API cannot do with our models (its GRPCJob, measured):
- a chunked answer ends after its first chunk (Predictions answers OK with what it got). Our
  LM sends a non-streamed answer whole, however many handler calls it takes
  (handlers/continuous.py `withhold`), so generation works; an empty answer, which would be
  what is left of a chunked one, is raised as DATA_LOSS.
- StreamPredictions fails every answer that is not a stream (a NullPointerException in the
  frontend: "Worker died", and TorchServe restarts the worker, failing its whole batch), and
  drops real streams after their first chunk (GRPCJob.isOpen answers isCancelled). So this
  client does not offer it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import zipfile
from functools import cache
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import grpc
from google.protobuf import empty_pb2

from serving.connection import REPLY_TIMEOUT_S, Connection
from serving.server_config import DEFAULT_RUN_DIR, ServerError

ROOT = Path(__file__).resolve().parent.parent
STUBS_ENV = "RNN_SERVE_GRPC_STUBS"  # where the generated stubs go (default: runs/grpc-stubs)
DEFAULT_STUBS_DIR = ROOT / "runs" / "grpc-stubs"
PACKAGE = "torchserve_grpc"  # the generated modules' package: no clash with other inference_pb2
PROTO = "inference.proto"
INPUT_NAME = "body"  # what our handlers read (handlers/torchserve.py request_body), as over HTTP


class GrpcError(Exception):
    """A gRPC call failed: ``code`` is the grpc.StatusCode, ``details`` TorchServe's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"gRPC {code.name}: {details}")
        self.code = code
        self.details = details


def torchserve_jar() -> Path:
    """The frontend jar of the installed TorchServe, which holds proto/inference.proto."""
    spec = importlib.util.find_spec("ts")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("TorchServe (package ts) is not installed: no gRPC protos to compile")
    jar = Path(next(iter(spec.submodule_search_locations))) / "frontend" / "model-server.jar"
    if not jar.exists():
        raise ServerError(f"no TorchServe frontend jar at {jar}")
    return jar


def _includes() -> list[str]:
    """Folders protoc needs for the imports of inference.proto: google/protobuf/empty.proto
    (shipped with grpc_tools) and google/rpc/status.proto (googleapis-common-protos)."""
    import google.rpc
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    common = Path(next(iter(google.rpc.__path__))).parent.parent
    return [str(well_known), str(common)]


def _cache_key(proto: bytes) -> str:
    """Stubs depend on the proto text and on the generator and runtime versions."""
    from google import protobuf

    digest = hashlib.sha256(proto)
    digest.update(f"{protobuf.__version__} {grpc.__version__}".encode())
    return digest.hexdigest()[:16]


def _compile(proto: bytes, into: Path) -> None:
    """Run protoc on ``proto`` into a scratch folder, then move it to ``into`` in one rename,
    so processes that start together never import half-written stubs."""
    from grpc_tools import protoc

    into.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".stubs-", dir=into.parent))
    try:
        package = scratch / PACKAGE
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / PROTO).write_bytes(proto)
        args = ["protoc", f"-I{scratch}", *(f"-I{path}" for path in _includes())]
        args += [f"--python_out={scratch}", f"--grpc_python_out={scratch}"]
        if protoc.main([*args, f"{PACKAGE}/{PROTO}"]) != 0:
            raise ServerError(f"protoc could not compile TorchServe's {PROTO}")
        try:
            scratch.rename(into)
        except OSError:  # another process got there first: its stubs are the same
            if not (into / PACKAGE).exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@cache
def stubs() -> tuple[ModuleType, ModuleType]:
    """The generated (inference_pb2, inference_pb2_grpc) modules, compiled on first use."""
    with zipfile.ZipFile(torchserve_jar()) as jar:
        proto = jar.read(f"proto/{PROTO}")
    base = Path(os.environ.get(STUBS_ENV) or DEFAULT_STUBS_DIR)
    folder = base / _cache_key(proto)
    if not (folder / PACKAGE / "inference_pb2_grpc.py").exists():
        _compile(proto, folder)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # the _grpc module imports its package by name
    messages = importlib.import_module(f"{PACKAGE}.inference_pb2")
    services = importlib.import_module(f"{PACKAGE}.inference_pb2_grpc")
    return messages, services


class GrpcClient:
    """TorchServe's gRPC inference API on one channel, with the inference key as metadata.

    One client (one channel, one HTTP/2 connection) per thread is what the benchmark uses; a
    channel may also be shared between threads."""

    def __init__(
        self, address: str, key: str | None = None, timeout: float = REPLY_TIMEOUT_S
    ) -> None:
        self.messages, services = stubs()
        self.address = address
        self.timeout = timeout
        self.metadata = (("authorization", f"Bearer {key}"),) if key else ()
        self.channel = grpc.insecure_channel(address)
        self.stub = services.InferenceAPIsServiceStub(self.channel)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path = DEFAULT_RUN_DIR, **kwargs: Any) -> GrpcClient:
        """The server started from ``run_dir``: its gRPC address and (when auth is on) its
        key, found as the HTTP client finds them."""
        connection = Connection.from_run_dir(run_dir)
        return cls(connection.grpc_address, connection.inference_key, **kwargs)

    def ping(self) -> dict[str, Any]:
        """TorchServe's health, as the HTTP /ping JSON ({"status": "Healthy", ...})."""
        reply = self._call(self.stub.Ping, empty_pb2.Empty())
        return json.loads(reply.health)

    def predict(self, model: str, body: bytes) -> bytes:
        """The model's answer to ``body`` (Predictions), or our JSON error (also with gRPC OK).

        Raises DATA_LOSS for an empty answer: our handlers never send one, it would be what is
        left of a chunked answer that TorchServe 0.12 cut after its first chunk."""
        answer = self._call(self.stub.Predictions, self._request(model, body)).prediction
        if not answer:
            raise GrpcError(
                grpc.StatusCode.DATA_LOSS,
                f"{model} answered OK with an empty body: TorchServe 0.12's gRPC API ends a "
                "chunked answer after its first chunk; use HTTP for it",
            )
        return answer

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _request(self, model: str, body: bytes) -> Any:
        return self.messages.PredictionsRequest(model_name=model, input={INPUT_NAME: body})

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, metadata=self.metadata, timeout=self.timeout)
        except grpc.RpcError as error:
            raise _typed(error) from error


def _typed(error: grpc.RpcError) -> GrpcError:
    """grpc's RpcError (also a Call) as our exception with its status code and details."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return GrpcError(code, details or "")
