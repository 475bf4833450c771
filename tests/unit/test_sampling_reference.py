"""The sampler and the int8 decode loop pick exactly the tokens an independent NumPy reference
picks from the same logits and uniforms (tests/sampling_reference.py, written from the
definitions of temperature, top-k and top-p)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.generation import GenerationRequest, Generator
from models.language_model import LMConfig, RecurrentLM
from models.sampling import HEAD, sample
from models.tokenizer import Tokenizer
from tests.sampling_reference import (
    SETTINGS,
    StepLogits,
    check_settings,
    reference_generation,
    reference_token,
)
from training.data import load_text
from training.train_lm import build_tokenizer


def test_every_row_of_a_mixed_batch_gets_the_reference_token():
    """Rows on every path of the sampler: greedy, unfiltered, top-k inside and beyond its
    ranked head, nuclei ending inside and beyond it, both filters at once."""
    rng = np.random.default_rng(0)
    rows, vocab = 600, 512
    # Peaked rows and flat ones: nuclei of one token and of hundreds.
    scales = rng.choice([0.3, 1.0, 3.0, 8.0], size=(rows, 1))
    logits = (rng.standard_normal((rows, vocab)) * scales).astype(np.float32)
    temperature = rng.choice([0.0, 0.3, 0.7, 1.0, 1.6], size=rows)
    top_k = rng.choice([0, 0, 1, 2, 5, HEAD - 1, HEAD, HEAD + 1, 300, vocab], size=rows)
    top_p = rng.choice([1.0, 1.0, 0.999, 0.95, 0.8, 0.5, 0.1, 1e-9], size=rows)
    uniforms = rng.random(rows)
    tokens = sample(
        torch.from_numpy(logits),
        torch.tensor(temperature, dtype=torch.float32),
        torch.tensor(top_k, dtype=torch.long),
        torch.tensor(top_p, dtype=torch.float32),
        torch.from_numpy(uniforms),
    ).tolist()
    expected = [
        reference_token(logits[i], temperature[i], top_k[i], float(np.float32(top_p[i])), u)
        for i, u in enumerate(uniforms)
    ]
    wrong = [i for i in range(rows) if tokens[i] != expected[i]]
    assert not wrong, [(temperature[i], top_k[i], top_p[i], tokens[i], expected[i]) for i in wrong]
    # The batch did reach past the head (a full sort) and stay inside it.
    assert len(set(expected)) > 100


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    text = load_text("tinyshakespeare")[:50_000]
    return build_tokenizer(text, 0, tmp_path_factory.mktemp("tok") / "char")


@pytest.fixture(scope="module")
def int8_generator(tokenizer) -> Generator:
    torch.manual_seed(0)
    config = LMConfig(
        vocab_size=tokenizer.vocab_size, embed_dim=16, hidden_dim=32, num_layers=2, dropout=0.0
    )
    model = RecurrentLM(config)
    model.head.weight.data *= 4  # sharper than random, so that the filters cut something
    return Generator(model, tokenizer, quantize="int8")


def test_the_int8_decode_loop_samples_what_the_reference_does(int8_generator):
    """Same prompt and seed under each setting: the loop's text is the reference's, and each
    setting changes or keeps the text where the reference says it must."""
    prompt, seed, length = "ROMEO:", 11, 40
    tokenizer = int8_generator.tokenizer
    served, expected = {}, {}
    for name, setting in SETTINGS.items():
        request = GenerationRequest(prompt, length, seed=seed, **setting)
        served[name] = int8_generator.generate([request])[0].text
        tokens = reference_generation(
            StepLogits(int8_generator), tokenizer.encode(prompt), length, seed=seed, **setting
        )
        expected[name] = tokenizer.decode(tokens)
    check_settings(served, expected)
