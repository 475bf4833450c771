"""The int8 classifier: a text's logits are bit-identical alone and in any batch, and close to
the fp32 model's."""

from __future__ import annotations

import pytest
import torch

from models.classifier import POOLINGS, ClassifierConfig, RecurrentClassifier
from models.int8_classifier import Int8Classifier

VOCAB = 50
# Batch sizes on both sides of every row-count rule of int8 GEMMs (CUDA wants > 16 rows; CPU
# has none) and of ATen's 32-float vector chunks.
LENGTHS = {
    1: [9],
    3: [4, 1, 11],
    8: [7, 1, 12, 3, 12, 5, 9, 2],
    17: [3, 14, 1, 8, 8, 20, 2, 5, 11, 6, 19, 4, 1, 9, 13, 7, 10],
    40: [(7 * i) % 23 + 1 for i in range(40)],
}


def tiny_model(
    pooling: str = "max_last",
    hidden: int = 16,
    bidirectional: bool = True,
    cell: str = "lstm",
    gain: float | None = None,
) -> RecurrentClassifier:
    """A random 2-layer classifier. Its logits are tiny (~0.1); ``gain`` scales the recurrent
    weights by that much and the output layer by 30, so that logits span several units and,
    with gain > 1, gates saturate, as in a trained model."""
    torch.manual_seed(0)
    config = ClassifierConfig(
        vocab_size=VOCAB,
        embed_dim=8,
        hidden_dim=hidden,
        num_layers=2,
        bidirectional=bidirectional,
        cell=cell,
        pooling=pooling,
    )
    model = RecurrentClassifier(config).eval()
    if gain is not None:
        with torch.no_grad():
            for name, parameter in model.rnn.named_parameters():
                if name.startswith("weight"):
                    parameter.mul_(gain)
            model.output.weight.mul_(30)
    return model


def mixed_batch(lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.int64)
    for i, length in enumerate(lengths):
        ids[i, :length] = torch.randint(1, VOCAB, (length,), generator=generator)
    return ids, torch.tensor(lengths)


def assert_batched_equals_alone(model: Int8Classifier, lengths: list[int]) -> None:
    ids, lengths_t = mixed_batch(lengths)
    batched = model(ids, lengths_t)
    for row, length in enumerate(lengths):
        alone = model(ids[row : row + 1, :length], lengths_t[row : row + 1])
        assert torch.equal(batched[row : row + 1], alone), f"row {row} (length {length})"


@pytest.fixture(autouse=True)
def one_thread():
    """Exactness is promised on one thread (see models/int8_classifier.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("batch", sorted(LENGTHS))
def test_batched_logits_equal_one_by_one_exactly(batch: int) -> None:
    assert_batched_equals_alone(Int8Classifier(tiny_model()), LENGTHS[batch])


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_every_pooling_is_batch_invariant(pooling: str, bidirectional: bool) -> None:
    model = Int8Classifier(tiny_model(pooling, bidirectional=bidirectional))
    assert_batched_equals_alone(model, LENGTHS[17])


@pytest.mark.parametrize("hidden", [12, 20])
def test_hidden_sizes_off_the_vector_width_stay_exact(hidden: int) -> None:
    # Unpadded, these sizes put some elements in the scalar tail of ATen's sigmoid loop, at
    # positions that depend on the batch size, and batched logits changed in the last bit.
    model = Int8Classifier(tiny_model(hidden=hidden))
    assert model.hidden % 32 == 0
    assert_batched_equals_alone(model, LENGTHS[17])


def test_extra_padding_columns_do_not_change_logits() -> None:
    model = Int8Classifier(tiny_model("max_mean"))
    ids, lengths = mixed_batch(LENGTHS[8])
    padded = torch.cat([ids, torch.full((8, 30), 7, dtype=torch.int64)], dim=1)
    assert torch.equal(model(ids, lengths), model(padded, lengths))


@pytest.mark.parametrize("pooling", POOLINGS)
def test_int8_logits_are_close_to_fp32(pooling: str) -> None:
    ids, lengths = mixed_batch(LENGTHS[40])
    for gain, tolerance in ((1.0, 0.01), (3.0, 0.03)):
        fp32 = tiny_model(pooling, gain=gain)
        with torch.inference_mode():
            expected = fp32(ids, lengths)
        got = Int8Classifier(fp32)(ids, lengths)
        scale = float(expected.abs().max())
        assert scale > 1.0
        assert float((got - expected).abs().max()) <= tolerance * scale
        agree = (got.argmax(dim=1) == expected.argmax(dim=1)).float().mean()
        assert agree >= 0.95


def test_gru_is_refused_with_a_clear_error() -> None:
    with pytest.raises(NotImplementedError, match="LSTM cells only"):
        Int8Classifier(tiny_model(cell="gru"))


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 8, 9, 15, 16, 17, 33])
def test_int_mm_takes_any_row_count_on_cpu(rows: int) -> None:
    # CUDA's torch._int_mm wants > 16 rows and inner sizes that are multiples of 8; the CPU
    # kernel has no such rule (torch 2.13), so small batches need no zero rows here.
    generator = torch.Generator().manual_seed(rows)
    a = torch.randint(-127, 128, (rows, 13), dtype=torch.int8, generator=generator)
    b = torch.randint(-127, 128, (48, 13), dtype=torch.int8, generator=generator)
    assert torch.equal(torch._int_mm(a, b.t()), a.int() @ b.t().int())
