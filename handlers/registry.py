"""The served models, one declaration each: the one list that the archive builder, the server,
the Makefile, the Dockerfile, the API docs, the load test (its users and scenarios), the
layout search (its candidates and what it counts), the benchmark (its table), the training
summary and the client read.

    python -m handlers.registry names            # sentiment lm (the Makefile and Dockerfile)
    python -m handlers.registry trainer lm       # training.train_lm

Everything else about a model is found by convention in its folder, ``handlers/<name>/``
(TorchServe's examples keep one folder per model the same way): ``handler.py`` (the handler
module, one class), ``api.py`` (its request fields), ``model-config.yaml`` (workers, batching,
the handler's options, packed into the archive) and ``README.md``. Adding a model is a folder
and one entry here, and nothing else (CONTRIBUTING.md, "A model";
tests/integration/test_third_model.py does it).

Plain Python with no imports beyond the standard library: the Makefile runs it with the
system interpreter before the virtualenv exists, and it ships harmlessly inside each archive.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HANDLERS_DIR = Path(__file__).resolve().parent
ARTIFACTS = "artifacts"  # trained models' folders, one per model (the Makefile's ARTIFACTS)


def artifact_folder(name: str) -> str:
    """Where model ``name``'s trainer writes its artifact unless told otherwise."""
    return f"{ARTIFACTS}/{name}"


@dataclass(frozen=True)
class Layout:
    """What `python -m benchmarks.layout --model <name>` tries: the served settings of
    model-config.yaml (workers, threads, batchSize, maxBatchDelay and the handler ``options``
    named here), then each of ``changes`` applied to them, under the load of ``scenario``
    (default: the model's first scenario), counting ``throughput`` per second."""

    changes: tuple[dict[str, Any], ...] = ({}, {"batchSize": 1})  # {}: as served
    options: tuple[str, ...] = ()  # handler options shown and varied beside the frontend's
    scenario: str | None = None
    throughput: str = "requests"  # or "tokens" (generated tokens per second)


@dataclass(frozen=True)
class Bench:
    """What `make bench` measures of a model: one table, planned by benchmarks/sections.py.

    ``kind`` "classification": the served requests/s under the load of the layout's scenario,
    batched and at batchSize 1, and p99 at about half that rate; held to the bare
    `ClassifierPredictor`'s rate in each quantize mode of ``ceilings`` where given (its
    accuracy on ``data``'s dev split beside them). ``kind`` "generation": the language model's
    tokens/s against its raw decode loops, on ``data``'s validation text."""

    kind: str = "classification"
    ceilings: tuple[str, ...] = ()  # "fp32", "int8": the bare predictor's rates it is held to
    data: str = ""  # a `training.data` source; "": the ceilings read the entry's examples
    data_name: str = ""  # how the tables name ``data`` ("SST-2")
    title: str = ""  # the table's title; default "<Kind> (<name>)"
    marker: str = ""  # the docs/benchmarks.md section it fills (bench:<marker>); "": none


@dataclass(frozen=True)
class ServedModel:
    """One model the service serves. ``name`` is its URL (``/predictions/<name>``), its
    archive (``<name>.mar``), its artifact folder (``artifacts/<name>``) and its folder here.

    Everything a tool needs of a model is declared here, with defaults that suit a model
    answering one JSON request with one JSON object: the load test sends it ``examples``
    through a generic Locust user unless ``load_users`` names its own classes."""

    name: str
    trainer: str  # module run as ``python -m <trainer> --profile P --out artifacts/<name>``
    # Locust user classes in loadtest/locustfile.py that call it; none: the locustfile makes
    # `<Name>User`, which posts ``examples`` and counts a 200 without ``answer_key`` failed.
    load_users: tuple[str, ...] = ()
    apis: tuple[str, ...] = ("api",)  # modules in its folder whose ENDPOINTS it serves
    # `make loadtest SCENARIO=<key>`: the user classes each scenario runs (default: one
    # scenario named after the model, with all its users) ...
    scenarios: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # ... and those of its users that join the "mixed" scenario (default: all of them).
    mixed: tuple[str, ...] | None = None
    examples: tuple[dict[str, Any], ...] = ()  # request bodies (generic user, client docs)
    answer_key: str = ""
    layout: Layout = Layout()
    bench: Bench = Bench()
    # `make models`' line for it: pieces formatted with its metrics.json (plus ``minutes``,
    # from ``seconds``); a piece naming a figure the file lacks is left out.
    summary: tuple[str, ...] = ("trained in {minutes:.1f} min",)

    @property
    def folder(self) -> Path:
        return HANDLERS_DIR / self.name

    @property
    def handler(self) -> Path:
        return self.folder / "handler.py"

    @property
    def config(self) -> Path:
        return self.folder / "model-config.yaml"

    @property
    def users(self) -> tuple[str, ...]:
        """Its Locust user classes: its own, or the generic one the locustfile makes."""
        return self.load_users or (generic_user(self.name),)

    @property
    def load_scenarios(self) -> dict[str, tuple[str, ...]]:
        return self.scenarios or {self.name: self.users}

    @property
    def mixed_users(self) -> tuple[str, ...]:
        return self.users if self.mixed is None else self.mixed

    @property
    def layout_scenario(self) -> str:
        return self.layout.scenario or next(iter(self.load_scenarios))

    def endpoints(self) -> list[Any]:
        """Its documented routes (`handlers.schema.Endpoint`), imported only when asked: the
        api modules need the models package, the rest of this file needs nothing."""
        modules = [importlib.import_module(f"handlers.{self.name}.{api}") for api in self.apis]
        return [endpoint for module in modules for endpoint in module.ENDPOINTS]


def generic_user(name: str) -> str:
    """The class name of the generic Locust user of model ``name``: ``topic`` -> TopicUser."""
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_")) + "User"


MODELS: tuple[ServedModel, ...] = (
    ServedModel(
        "sentiment",
        "training.train_sentiment",
        ("ClassifyUser",),
        scenarios={"classify": ("ClassifyUser",)},
        examples=({"text": "a gripping , funny movie"},),
        answer_key="label",
        layout=Layout(
            changes=(
                {},
                {"workers": 3},
                {"workers": 1},
                {"batchSize": 32},
                {"batchSize": 8, "maxBatchDelay": 2},
                {"maxBatchDelay": 1},
            )
        ),
        bench=Bench(
            ceilings=("fp32", "int8"), data="sst2", data_name="SST-2", marker="classification"
        ),
        summary=(
            "dev accuracy {dev_accuracy:.1%}",
            " (its teacher: {teacher_dev_accuracy:.1%})",
            ", trained in {minutes:.1f} min",
        ),
    ),
    ServedModel(
        "lm",
        "training.train_lm",
        ("GenerateUser", "StreamUser", "ConversationUser"),
        apis=("api", "openai_api", "tokenize_api"),
        scenarios={
            "generate": ("GenerateUser",),
            "stream": ("StreamUser",),
            "generation": ("GenerateUser", "StreamUser"),  # half of the users stream
            "conversation": ("ConversationUser",),
        },
        mixed=("GenerateUser", "StreamUser"),
        examples=({"prompt": "ROMEO:\n", "max_new_tokens": 32, "seed": 1},),
        answer_key="finish_reason",
        # Continuous batching: one worker (see handlers/lm/model-config.yaml); what is left to
        # choose is decoding ahead during the Java round trip or not, how many tokens per
        # handler call, a helper decode process or not and how many rows decode together.
        layout=Layout(
            changes=(
                {"step_ahead": False},
                {},
                {"tokens_per_call": 8},
                {"tokens_per_call": 32},
                {"decode_processes": 1},
                {"batchSize": 96},
            ),
            options=("tokens_per_call", "decode_processes", "step_ahead"),
            scenario="generation",
            throughput="tokens",
        ),
        bench=Bench(
            "generation",
            data="tinyshakespeare",
            title="Generation (language model)",
            marker="generation",
        ),
        summary=(
            "validation {val_nats_per_char:.4f} nats/char",
            ", trained in {train_minutes:.1f} min ({steps} steps)",
        ),
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
