"""The served models, one declaration each: the one list that the archive builder, the server,
the Makefile, the Dockerfile, the API docs and the load tests read.

    python -m handlers.registry names            # sentiment lm (the Makefile and Dockerfile)
    python -m handlers.registry trainer lm       # training.train_lm

Everything else about a model is found by convention in its folder, ``handlers/<name>/``
(TorchServe's examples keep one folder per model the same way): ``handler.py`` (the handler
module, one class), ``api.py`` (its request fields), ``model-config.yaml`` (workers, batching,
the handler's options, packed into the archive) and ``README.md``. Adding a model is a folder
and one line here (CONTRIBUTING.md, "A model").

Plain Python with no imports beyond the standard library: the Makefile runs it with the
system interpreter before the virtualenv exists, and it ships harmlessly inside each archive.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HANDLERS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ServedModel:
    """One model the service serves. ``name`` is its URL (``/predictions/<name>``), its
    archive (``<name>.mar``), its artifact folder (``artifacts/<name>``) and its folder here."""

    name: str
    trainer: str  # module run as ``python -m <trainer> --profile P --out artifacts/<name>``
    load_users: tuple[str, ...]  # Locust user classes in loadtest/locustfile.py that call it
    apis: tuple[str, ...] = ("api",)  # modules in its folder whose ENDPOINTS it serves

    @property
    def folder(self) -> Path:
        return HANDLERS_DIR / self.name

    @property
    def handler(self) -> Path:
        return self.folder / "handler.py"

    @property
    def config(self) -> Path:
        return self.folder / "model-config.yaml"

    def endpoints(self) -> list[Any]:
        """Its documented routes (`handlers.schema.Endpoint`), imported only when asked: the
        api modules need the models package, the rest of this file needs nothing."""
        modules = [importlib.import_module(f"handlers.{self.name}.{api}") for api in self.apis]
        return [endpoint for module in modules for endpoint in module.ENDPOINTS]


MODELS: tuple[ServedModel, ...] = (
    ServedModel("sentiment", "training.train_sentiment", ("ClassifyUser",)),
    ServedModel(
        "lm",
        "training.train_lm",
        ("GenerateUser", "StreamUser", "ConversationUser"),
        apis=("api", "openai_api", "tokenize_api"),
    ),
)


def names() -> tuple[str, ...]:
    return tuple(model.name for model in MODELS)


def get(name: str) -> ServedModel:
    for model in MODELS:
        if model.name == name:
            return model
    raise KeyError(f"no served model {name!r}: choose one of {', '.join(names())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("names", "trainer"))
    parser.add_argument("name", nargs="?")
    args = parser.parse_args()
    if args.what == "names":
        print(" ".join(names()))
    else:
        if args.name is None:
            parser.error("trainer needs a model name")
        print(get(args.name).trainer)


if __name__ == "__main__":
    main()
