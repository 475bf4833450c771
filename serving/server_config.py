"""What one TorchServe instance is: its folders, ports and models, and the config.properties
rendered for it from the template serving/config.properties.

    config = ServerConfig.on_free_ports(run_dir=Path("runs/mine"), auth=False)
    config.render()  # the text serving.lifecycle.start writes into the run folder

The connection (serving/connection.py) and the lifecycle (serving/lifecycle.py) build on it;
it knows nothing of a running server beyond whether its ports are free.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers import registry

ROOT = Path(__file__).resolve().parent.parent
CONFIG_TEMPLATE = ROOT / "serving" / "config.properties"
DEFAULT_RUN_DIR = ROOT / "runs" / "server"
DEFAULT_MODEL_STORE = ROOT / "model_store"  # where `make models` puts the archives
DEFAULT_MODELS = registry.names()  # every model handlers/registry.py declares
# The ports a server binds itself, named as ServerConfig's fields (workers' ports come later).
PORT_ROLES = (
    "inference_port",
    "management_port",
    "metrics_port",
    "grpc_inference_port",
    "grpc_management_port",
)
PORT_FIELDS = (*PORT_ROLES, "initial_worker_port")  # and the first worker's (each takes the next)


class ServerError(RuntimeError):
    """The server did not come up, or is not there.

    Defined here, at the bottom of the three server modules, because each of them raises it:
    a taken port, a missing state file, a start-up that failed."""


@dataclass
class ServerConfig:
    """Where and how one TorchServe instance runs. Defaults are the documented ones."""

    model_store: Path = DEFAULT_MODEL_STORE
    run_dir: Path = DEFAULT_RUN_DIR
    host: str = "127.0.0.1"
    inference_port: int = 8080
    management_port: int = 8081
    metrics_port: int = 8082
    grpc_inference_port: int = 7070
    grpc_management_port: int = 7071
    initial_worker_port: int = 9000
    auth: bool = True
    models: tuple[str, ...] = DEFAULT_MODELS
    job_queue_size: int = 100
    token_expiration_min: int = 5_256_000
    netty_threads: int = 2
    overrides: dict[str, str] = field(default_factory=dict)  # extra config.properties lines

    @classmethod
    def on_free_ports(cls, **settings: Any) -> ServerConfig:
        """A config whose six ports are free right now (tests and benchmarks run side by side
        with a user's server)."""
        ports = free_ports(len(PORT_FIELDS))
        return cls(**dict(zip(PORT_FIELDS, ports, strict=True)), **settings)

    @classmethod
    def from_arguments(cls, args: Any, **settings: Any) -> ServerConfig:
        """A config from `add_server_arguments`' flags (and ``--run-dir``), plus ``settings``."""
        return cls(
            model_store=args.model_store,
            run_dir=args.run_dir,
            **{role: getattr(args, role) for role in PORT_ROLES},
            initial_worker_port=args.worker_port,
            auth=args.auth == "on",
            **settings,
        )

    def ports(self) -> dict[str, int]:
        """Every port of the instance by its field's name: its own and the first worker's."""
        return {name: getattr(self, name) for name in PORT_FIELDS}

    def render(self) -> str:
        text = CONFIG_TEMPLATE.read_text().format(
            host=self.host,
            **self.ports(),
            model_store=Path(self.model_store).resolve(),
            load_models=",".join(f"{m}={m}.mar" for m in self.models),
            disable_token_authorization=str(not self.auth).lower(),
            token_expiration_min=self.token_expiration_min,
            job_queue_size=self.job_queue_size,
            netty_threads=self.netty_threads,
        )
        extra = "".join(f"{key}={value}\n" for key, value in self.overrides.items())
        return text + extra


def free_ports(count: int) -> list[int]:
    """Ports the kernel considers free right now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def check_ports(config: ServerConfig) -> None:
    """Name a port that is already taken before TorchServe fails on it less clearly."""
    for role in PORT_ROLES:
        port = getattr(config, role)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((config.host, port))
            except OSError as exc:
                what = role.removesuffix("_port").replace("_", " ")
                raise ServerError(
                    f"port {port} ({what}) on {config.host} is already in use ({exc.strerror}): "
                    "stop what holds it or choose another port"
                ) from exc


def add_server_arguments(parser: Any) -> None:
    """The flags that say where a server's archives are and where it listens (`make serve`'s
    and `make loadtest`'s); `ServerConfig.from_arguments` reads them back."""
    parser.add_argument("--model-store", type=Path, default=ServerConfig.model_store)
    for role in PORT_ROLES:  # --inference-port ... --grpc-management-port
        flag = "--" + role.replace("_", "-")
        parser.add_argument(flag, type=int, default=getattr(ServerConfig, role))
    parser.add_argument(
        "--worker-port",
        type=int,
        default=ServerConfig.initial_worker_port,
        help="the first worker's socket number (each worker takes the next)",
    )
    parser.add_argument("--auth", choices=("on", "off"), default="on")
