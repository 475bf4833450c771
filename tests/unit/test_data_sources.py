"""training.data without the data folder: the HuggingFace hub is the fallback (README), its
splits mapped onto ours; pointed at a folder or offline, the missing folder is the error at
once. The hub call is replaced here: no test touches the network."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from training import data


@pytest.fixture
def no_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No DATA_DIR, online, and run from a folder whose ../shared/data does not exist."""
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    here = tmp_path / "checkout"
    here.mkdir()
    monkeypatch.chdir(here)
    return here


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`datasets.load_dataset` answering two hub ids from memory; the ids asked for."""
    asked: list[str] = []
    sst2 = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"idx": [0, 1], "sentence": [" a gem ", "dull "], "label": [1, 0]}
            ),
            "validation": datasets.Dataset.from_dict(
                {"idx": [0], "sentence": ["fine "], "label": [1]}
            ),
            "test": datasets.Dataset.from_dict({"idx": [0], "sentence": ["?"], "label": [-1]}),
        }
    )
    shakespeare = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict({"text": [text]})
            for split, text in (
                ("train", "First Citizen:\n"),
                ("validation", "ROMEO:\n"),
                ("test", "KING:\n"),
            )
        }
    )
    answers = {"stanfordnlp/sst2": sst2, "karpathy/tiny_shakespeare": shakespeare}

    def load_dataset(path: str, *args, **kwargs) -> datasets.DatasetDict:
        asked.append(path)
        if path not in answers:
            raise ConnectionError(f"no such hub dataset here: {path}")
        return answers[path]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return asked


def test_sentiment_falls_back_to_the_hub_with_our_splits_and_no_test_split(no_data_folder, hub):
    loaded = data.load_sentiment("sst2")
    assert hub == ["stanfordnlp/sst2"]
    assert set(loaded) == {"train", "dev"}, "the held-back test split must not come along"
    assert loaded["train"]["sentence"] == ["a gem", "dull"]
    assert loaded["train"]["label"] == [1, 0]
    assert loaded["dev"]["sentence"] == ["fine"] and loaded["dev"]["label"] == [1]
    assert loaded["train"].column_names == ["sentence", "label"]


def test_text_falls_back_to_the_hub_every_split_in_order(no_data_folder, hub):
    assert data.load_text("tinyshakespeare") == "First Citizen:\nROMEO:\nKING:\n"
    assert hub == ["karpathy/tiny_shakespeare"]


def test_a_hub_failure_is_one_clear_error_naming_the_folder_and_the_id(no_data_folder, hub):
    with pytest.raises(data.DataError, match=r"no folder 'nosuch'.*hub dataset 'nosuch'"):
        data.load_text("nosuch")


@pytest.mark.parametrize("setting", ["DATA_DIR", "HF_HUB_OFFLINE"])
def test_pointed_at_a_folder_or_offline_the_missing_folder_is_the_error(
    no_data_folder, hub, monkeypatch, setting
):
    monkeypatch.setenv(setting, str(no_data_folder) if setting == "DATA_DIR" else "1")
    with pytest.raises(data.DataError, match="set DATA_DIR"):
        data.load_sentiment("sst2")
    assert hub == [], "the hub must not be tried"
