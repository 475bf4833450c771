"""One way for every trainer to turn its options dataclass into command-line flags.

Defaults live in the dataclass, named settings in a ``PROFILES`` dict, and any flag given on
the command line wins: ``--hidden-dim 256``, ``--tie-weights`` / ``--no-tie-weights``. One
boolean convention for all scripts, so a flag learned on one trainer works on the next.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any, TypeVar

Config = TypeVar("Config")


@dataclass
class RunOptions:
    """How a training run runs, whatever it trains: a trainer's options dataclass subclasses
    this and adds what its model and recipe depend on."""

    threads: int | None = None  # torch threads; None keeps torch's default
    device: str = "cpu"
    precision: str = "auto"  # auto: bf16 autocast where the CPU has native bf16, else fp32
    progress: bool = True  # a progress bar on stderr
    profile: str = "default"  # the named settings applied before the flags (`parse_options`)


Options = TypeVar("Options", bound=RunOptions)

_TYPES = {
    "int": int,
    "int | None": int,
    "float": float,
    "float | None": float,
    "str": str,
    "str | None": str,
}


def field_defaults(config_class: type[Any]) -> dict[str, Any]:
    """A dataclass's declared defaults by field name: a trainer's options take a model's
    hyper-parameter defaults from its config class, their one home."""
    return {item.name: item.default for item in fields(config_class) if item.default is not MISSING}


def config_from(options: Any, config_class: type[Config], **given: Any) -> Config:
    """``config_class`` built from the options' fields of the same names, plus ``given``: a
    model's hyper-parameters are named alike in its trainer's options and its config."""
    names = {item.name for item in fields(config_class)} - set(given)
    return config_class(**{n: getattr(options, n) for n in names if hasattr(options, n)}, **given)


def parse_options(
    defaults: Options,
    profiles: Mapping[str, Mapping[str, Any]],
    argv: Sequence[str] | None = None,
    description: str | None = None,
) -> Options:
    """``defaults``, then ``--profile``'s settings, then every flag given on the command line;
    the options' ``profile`` records which profile was chosen."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=sorted(profiles), default="default")
    for item in fields(defaults):
        if item.name == "profile":
            continue
        flag = "--" + item.name.replace("_", "-")
        default = getattr(defaults, item.name)
        if str(item.type) == "bool":
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=f"({default})"
            )
        else:
            kind = _TYPES.get(str(item.type), str)
            parser.add_argument(flag, type=kind, default=None, help=f"({default})")
    args = vars(parser.parse_args(argv))
    profile = args.pop("profile")
    options = replace(defaults, **profiles[profile], profile=profile)
    return replace(options, **{k: v for k, v in args.items() if v is not None})


def run(main: Callable[[], Any]) -> None:
    """A command's entry point: a missing-data error is one line, not a traceback."""
    from training.data import DataError

    try:
        main()
    except DataError as error:
        sys.exit(f"error: {error}")
