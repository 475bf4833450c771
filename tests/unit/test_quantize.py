"""`quantize: auto`, what the archives pack: int8 only where this CPU makes it the faster path,
and only for models that have an int8 form; fp32 everywhere else."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from models import quantize
from models.artifact import save_artifact
from models.classifier import ClassifierConfig, RecurrentClassifier
from models.classifier_predictor import ClassifierPredictor, classifier_quantize
from models.generation import Generator
from models.int8_classifier import Int8Classifier
from models.int8_linear import Int8Linear
from models.language_model import LMConfig, RecurrentLM
from tests.unit.tiny_sentiment import SENTENCES
from training.tokenizer import train_tokenizer

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads /proc/cpuinfo")
def test_int8_counts_as_fast_exactly_where_the_cpu_has_avx512_vnni():
    assert quantize.int8_is_fast() == ("avx512_vnni" in cpu_flags())


@pytest.mark.parametrize("fast", [True, False])
def test_auto_is_int8_only_on_a_cpu_whose_int8_is_fast_and_for_a_model_that_has_int8(
    monkeypatch, fast
):
    monkeypatch.setattr(quantize, "int8_is_fast", lambda: fast)
    assert quantize.resolve_quantize("auto", CPU) == ("int8" if fast else None)
    assert quantize.resolve_quantize("auto", CUDA) is None
    assert quantize.resolve_quantize("auto", CPU, int8_available=False) is None
    # Asked for by name, int8 and fp32 are what was asked, whatever the machine.
    assert quantize.resolve_quantize("int8", CPU) == "int8"
    for off in (None, "", "none"):
        assert quantize.resolve_quantize(off, CPU) is None


def test_a_misspelt_setting_is_refused_by_name():
    with pytest.raises(ValueError, match="'int4'"):
        quantize.resolve_quantize("int4", CPU)


@pytest.mark.parametrize("fast", [True, False])
def test_the_lm_decodes_in_the_precision_auto_chose(monkeypatch, fast):
    monkeypatch.setattr(quantize, "int8_is_fast", lambda: fast)
    torch.manual_seed(0)
    config = LMConfig(vocab_size=30, embed_dim=8, hidden_dim=8, num_layers=1, dropout=0.0)
    generator = Generator(RecurrentLM(config), tokenizer=None, quantize="auto")
    assert generator.quantize == ("int8" if fast else None)
    assert isinstance(generator.step.head, Int8Linear) is fast


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("fast", [True, False])
def test_a_classifier_is_int8_under_auto_only_where_fast_and_never_as_a_gru(
    monkeypatch, tmp_path, cell, fast
):
    """The int8 classifier has LSTM cells only: under ``auto`` a GRU classifier loads in fp32
    instead of failing to load."""
    monkeypatch.setattr(quantize, "int8_is_fast", lambda: fast)
    config = ClassifierConfig(vocab_size=40, embed_dim=4, hidden_dim=6, cell=cell)
    save_artifact(
        tmp_path / "model",
        kind="sentiment",
        model_config=asdict(config),
        state_dict=RecurrentClassifier(config).state_dict(),
        tokenizer_file=train_tokenizer(SENTENCES, tmp_path / "tok", vocab_size=40),
    )
    predictor = ClassifierPredictor.from_artifact(tmp_path / "model", quantize="auto")
    assert isinstance(predictor.model, Int8Classifier) is (fast and cell == "lstm")
    assert len(predictor.predict(["a fine film", ""])) == 2
    # What `make bench` labels the served classifier's mode with agrees with what loaded.
    served = classifier_quantize("auto", cell, torch.device("cpu"))
    assert (served == "int8") is isinstance(predictor.model, Int8Classifier)
