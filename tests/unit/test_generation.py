"""Batched decoding: same answers alone or batched, stop strings, lengths, streaming."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.generation import GenerationRequest, Generator
from models.language_model import LMConfig, RecurrentLM
from models.requests import Row
from models.tokenizer import Tokenizer
from tests.text_pieces import printable_piece
from training.data import load_text
from training.train_lm import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    text = load_text("tinyshakespeare")[:50_000]
    return build_tokenizer(text, 0, tmp_path_factory.mktemp("tok") / "char")


@pytest.fixture(
    scope="module",
    params=[("lstm", None), ("gru", None), ("lstm", "int8"), ("gru", "int8")],
    ids=["lstm", "gru", "lstm-int8", "gru-int8"],
)
def generator(request, tokenizer) -> Generator:
    cell, quantize = request.param
    torch.manual_seed(0)
    config = LMConfig(
        vocab_size=tokenizer.vocab_size,
        embed_dim=16,
        hidden_dim=32,
        num_layers=2,
        dropout=0.0,
        cell=cell,
    )
    model = RecurrentLM(config)
    # Sharpen the random model a little so greedy and sampled text differ visibly.
    model.head.weight.data *= 4
    return Generator(model, tokenizer, quantize=quantize)


SEEDED = GenerationRequest("ROMEO:", max_new_tokens=30, temperature=1.0, top_p=0.9, seed=42)
OTHERS = [
    GenerationRequest("A", 5, 0.5, seed=1),
    GenerationRequest("To be, or not to be, that is the question", 50, 1.5, top_k=5, seed=2),
    GenerationRequest("First Citizen:\n", 12, 0.0),
    GenerationRequest("KING", 40, 1.0),
    GenerationRequest("x", 1, 0.7, seed=3),
]


UNFILTERED = GenerationRequest("ROMEO:", max_new_tokens=30, temperature=1.0, seed=43)


@pytest.mark.parametrize("seeded", [SEEDED, UNFILTERED], ids=["top_p", "plain"])
def test_seeded_request_is_identical_alone_and_in_any_batch(generator, seeded):
    alone = generator.generate([seeded])[0]
    assert alone.generated_tokens == 30
    for size in (2, 4, 6):
        batch = OTHERS[: size - 1]
        for position in (0, len(batch)):
            requests = [*batch[:position], seeded, *batch[position:]]
            assert generator.generate(requests)[position] == alone


def test_prompt_state_does_not_depend_on_batch_mates(generator, tokenizer):
    prompts = [tokenizer.encode(r.prompt) for r in [SEEDED, *OTHERS]]
    batch_logits, batch_state = generator.prefill(prompts)
    for row, prompt in enumerate(prompts):
        logits, state = generator.prefill([prompt])
        assert torch.equal(batch_logits[row], logits[0])
        for ours, alone in zip(batch_state, state, strict=True):
            assert torch.equal(ours[:, row], alone[:, 0])


def test_greedy_is_deterministic(generator):
    request = GenerationRequest("JULIET:", 25, temperature=0.0)
    assert generator.generate([request]) == generator.generate([request, *OTHERS])[:1]


def test_max_new_tokens_and_length_finish(generator):
    results = generator.generate([GenerationRequest("A", n, 1.0, seed=n) for n in (1, 7, 19)])
    assert [r.generated_tokens for r in results] == [1, 7, 19]
    assert {r.finish_reason for r in results} == {"length"}


def test_stop_string_truncates_and_finishes(generator):
    free = generator.generate([GenerationRequest("ROMEO:", 60, 1.0, seed=9)])[0].text
    stop = printable_piece(free, 15, 2)
    result = generator.generate([GenerationRequest("ROMEO:", 60, 1.0, seed=9, stop=[stop])])[0]
    assert result.finish_reason == "stop"
    assert result.text == free[: free.index(stop)]
    assert result.generated_tokens < 60


def test_streamed_chunks_concatenate_to_the_final_text(generator):
    free = generator.generate([GenerationRequest("ROMEO:", 60, 1.0, seed=11)])[0].text
    requests = [
        GenerationRequest("ROMEO:", 60, 1.0, seed=11),
        GenerationRequest("ROMEO:", 60, 1.0, seed=11, stop=[printable_piece(free, 25, 3), "zzz"]),
        *OTHERS,
    ]
    chunks: dict[int, list[str]] = {}
    results = generator.generate(
        requests, on_text=lambda row, text: chunks.setdefault(row, []).append(text)
    )
    for row, result in enumerate(results):
        assert "".join(chunks.get(row, [])) == result.text, (row, chunks.get(row))
    assert len(chunks[0]) > 1
    assert results[1].finish_reason == "stop"


@pytest.mark.parametrize(
    "bad", [dict(max_new_tokens=0), dict(temperature=-1.0), dict(top_k=-1), dict(top_p=0.0)]
)
def test_out_of_range_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        GenerationRequest("ROMEO:", **{"max_new_tokens": 5, **bad})


def test_empty_stop_strings_are_ignored(generator):
    plain = GenerationRequest("ROMEO:", 20, 1.0, seed=5)
    with_empty = GenerationRequest("ROMEO:", 20, 1.0, seed=5, stop=[""])
    assert generator.generate([with_empty]) == generator.generate([plain])


def test_a_stop_string_in_the_prompt_does_not_stop(generator):
    plain = generator.generate([GenerationRequest("ROMEO:", 10, 1.0, seed=5)])[0]
    assert "ROMEO" not in plain.text
    stopped = generator.generate([GenerationRequest("ROMEO:", 10, 1.0, seed=5, stop=["ROMEO"])])
    assert stopped[0] == plain


def test_unseeded_requests_draw_fresh_seeds(generator):
    request = GenerationRequest("ROMEO:", 40, 2.0)
    assert generator.generate([request]) != generator.generate([request])


def test_streaming_holds_back_unfinished_characters_and_stop_prefixes(tokenizer):
    """Byte pieces of one character, and a stop string split across tokens."""
    text = "h\u00e9 \U0001f642 wor world"
    ids = tokenizer.encode(text)
    assert any(tokenizer.id_to_piece(i).startswith("<0x") for i in ids)  # byte fallback used
    row = Row(GenerationRequest("x", len(ids) + 5, 1.0, seed=0, stop=["world"]))
    chunks = []
    for token in ids:
        row.add(token, tokenizer)
        chunks.append(row.streamable())
        assert "\ufffd" not in chunks[-1]
        if row.finish_reason:
            break
    assert row.finish_reason == "stop"
    assert row.text == "h\u00e9 \U0001f642 wor "
    assert "".join(chunks) == row.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_generation_matches_cpu_greedy(generator, tokenizer):
    if generator.quantize:
        pytest.skip("int8 is CPU-only")
    model = RecurrentLM(generator.config)
    model.load_state_dict(generator.model.state_dict())
    on_gpu = Generator(model, tokenizer, device="cuda")
    greedy = GenerationRequest("JULIET:", 25, temperature=0.0)
    assert on_gpu.generate([greedy]) == generator.generate([greedy])
    assert on_gpu.generate([SEEDED, *OTHERS])[0] == on_gpu.generate([SEEDED])[0]


def test_artifact_round_trip(tmp_path: Path, generator, tokenizer):
    from models.artifact import save_artifact

    model = generator.model
    save_artifact(tmp_path, "lm", model.config.as_dict(), model.state_dict(), tokenizer.model_file)
    loaded = Generator.from_artifact(tmp_path, quantize=generator.quantize)
    assert loaded.generate([SEEDED]) == generator.generate([SEEDED])
