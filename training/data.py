"""Data loading through HuggingFace `datasets`, from a local data directory or the hub.

Every loader takes a *source*: either a folder name under ``DATA_DIR`` (the layout of
``../shared/data``: ``sst2/``, ``sst2_glue_phrases/``, ``tinyshakespeare/``), a path to such a
folder, or a hub dataset id for users who are online. Local folders win, so tests and CI never
touch the network.

    python -m training.data sst2            # prints split sizes and one example
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import datasets

DEFAULT_DATA_DIR = "../shared/data"

# Hub ids used when no local folder of that name exists.
HUB_SENTIMENT = {"sst2": "stanfordnlp/sst2", "sst2_glue_phrases": "stanfordnlp/sst2"}
HUB_TEXT = {"tinyshakespeare": "karpathy/tiny_shakespeare"}

# Our split names -> file names in a local sentiment folder. The test split is deliberately
# absent: it is kept back to judge the models and must never be trained or tuned on.
SENTIMENT_SPLITS = {"train": "train.tsv", "dev": "dev.tsv"}
LABELS = ("negative", "positive")

# nanoGPT's split of Tiny Shakespeare: first 90% of characters for training, the rest validation.
TRAIN_FRACTION = 0.9


def data_dir() -> Path:
    """The data directory: ``$DATA_DIR`` if set, else the documented default."""
    return Path(os.environ.get("DATA_DIR", DEFAULT_DATA_DIR))


class DataError(RuntimeError):
    """The data named cannot be found here (and not fetched): said in one line."""


def _local_folder(source: str) -> Path | None:
    for candidate in (Path(source), data_dir() / source):
        if candidate.is_dir():
            return candidate
    return None


def _from_hub(source: str, hub_id: str) -> datasets.DatasetDict:
    """A hub dataset, unless the user pointed DATA_DIR somewhere or is offline: then the missing
    folder is the error, at once (the hub would be tried with retries for half a minute)."""
    holds = "*.txt files" if source in HUB_TEXT else "train.tsv and dev.tsv (sentence, label)"
    where = f"no folder {source!r} (holding {holds}) in DATA_DIR={data_dir()}"
    if "DATA_DIR" in os.environ or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise DataError(f"{where}; set DATA_DIR to the folder that holds it (see README)")
    try:
        return datasets.load_dataset(hub_id)
    except Exception as exc:  # offline, unknown id, hub down: all mean "not here"
        raise DataError(
            f"{where}, and the hub dataset {hub_id!r} could not be fetched "
            f"({type(exc).__name__}); set DATA_DIR to the data folder"
        ) from exc


def load_sentiment(source: str = "sst2") -> datasets.DatasetDict:
    """Sentence/label pairs with splits ``train`` and ``dev`` (label 0 negative, 1 positive).

    Local TSVs are read with quoting off (``quoting=3``): SST-2 contains bare ``"`` characters
    that default CSV quoting would silently merge into neighbouring rows.
    """
    folder = _local_folder(source)
    if folder is not None:
        files = {split: str(folder / name) for split, name in SENTIMENT_SPLITS.items()}
        loaded = datasets.load_dataset(
            "csv", data_files=files, delimiter="\t", quoting=csv.QUOTE_NONE
        )
    else:
        hub = _from_hub(source, HUB_SENTIMENT.get(source, source))
        loaded = datasets.DatasetDict({"train": hub["train"], "dev": hub["validation"]})
    return datasets.DatasetDict(
        {
            split: ds.select_columns(["sentence", "label"]).map(
                lambda row: {"sentence": row["sentence"].strip()}
            )
            for split, ds in loaded.items()
        }
    )


def load_text(source: str = "tinyshakespeare") -> str:
    """The whole corpus as one string, byte for byte (no line stripping)."""
    folder = _local_folder(source)
    if folder is not None:
        files = sorted(str(p) for p in folder.glob("*.txt"))
        ds = datasets.load_dataset("text", data_files={"train": files}, sample_by="document")
        return "".join(ds["train"]["text"])
    hub = _from_hub(source, HUB_TEXT.get(source, source))
    return "".join("".join(hub[split]["text"]) for split in ("train", "validation", "test"))


def split_text(text: str, train_fraction: float = TRAIN_FRACTION) -> tuple[str, str]:
    """Split by characters: first ``train_fraction`` for training, the rest for validation."""
    cut = int(len(text) * train_fraction)
    return text[:cut], text[cut:]


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "sst2"
    if name in HUB_TEXT:
        train, val = split_text(load_text(name))
        print(f"{name}: train {len(train):,} chars, validation {len(val):,} chars")
    else:
        dsd = load_sentiment(name)
        for split, ds in dsd.items():
            print(f"{split}: {len(ds):,} rows, e.g. {ds[0]}")
