"""A batch-invariant int8 twin of `RecurrentClassifier` (LSTM only), for serving on CPU.

    python -m benchmarks.classifier_int8 --artifact artifacts/sentiment   # speed and accuracy

`quantize_dynamic` scales activations per *tensor*, so a text's probabilities depend on its
batch mates, which serving forbids (a user must not learn who else was in the batch). Here
every product is an `Int8Linear` (models/int8_linear.py): int8 weights with one scale per
output row, activations quantised per row (per token for the input projections) or with a
fixed scale (the recurrence's hidden state, whose range is fixed), and exact int32 sums
(`torch._int_mm`), so each row's numbers depend on that row alone. Everything else is per row
too: texts are packed as in
`pack_padded_sequence` (a finished text drops out of the later steps, padding is never
computed), the backward direction reads each text mirrored within its own length, and the
output layer is a per-row multiply-and-sum (a BLAS GEMM picks its summation order by row
count).

Exactness also needs the element-wise kernels to treat every element alike. ATen's sigmoid
computes the last (< 32) elements of a contiguous loop with a scalar formula that differs from
its AVX-512 one in the last bit, and which elements fall there depends on the batch size (with
hidden 12, 32 to 57 of 85 texts changed when batched). So hidden units are padded with
zero-weight units up to a multiple of `LANE` (a padded unit stays exactly 0): every per-step
tensor then holds a multiple of 32 floats per row and no element is ever in a tail. That
holds on one thread at any batch size. With several threads ATen splits an op over 32768
elements between threads at points that need not be multiples of 32 (per step, over 21 texts
at hidden 192), so there exactness is likely but not promised.

Speed: each layer's input projection is one GEMM over all valid tokens for both directions;
each step is one int8 GEMM per direction on the texts still running and 11 element-wise ops
(3 quantise the hidden state, 1 adds the recurrent product to the input gates, 7 are the
cell's in `_gate_step`), both directions in one iteration. tanh is avoided (ATen's CPU tanh
is several times slower than its sigmoid:
`python -m timeit -s "import torch; x = torch.randn(16, 768)" "torch.tanh(x)"`, then the same
with `torch.sigmoid`): tanh(z) = 2*sigmoid(2z) - 1, with the factors of two folded exactly
into the weights, the cell state kept doubled and the hidden state halved (see `_gate_step`).
How much faster than the served fp32 model this runs, at what accuracy, is measured on SST-2
dev by `python -m benchmarks.classifier_int8`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from models.classifier import RecurrentClassifier
from models.int8_linear import Int8Linear

# Floats per vectorised chunk of ATen's element-wise loops (two AVX-512 vectors): hidden units
# are padded to a multiple of it so that no element ever takes the scalar tail path.
LANE = 32
# Integer levels per unit of the halved hidden state, whose range is [-1/2, 1/2]: 254 maps it
# onto int8's [-127, 127].
HIDDEN_LEVELS = 254.0


def _padded(size: int) -> int:
    return -(-size // LANE) * LANE


def _pad_rows(weight: torch.Tensor, hidden: int, padded: int, blocks: int) -> torch.Tensor:
    """Each of ``blocks`` consecutive row blocks of ``hidden`` rows, zero-padded to ``padded``."""
    parts = weight.reshape(blocks, hidden, *weight.shape[1:])
    grown = parts.new_zeros(blocks, padded, *weight.shape[1:])
    grown[:, :hidden] = parts
    return grown.reshape(blocks * padded, *weight.shape[1:])


def _pad_columns(weight: torch.Tensor, hidden: int, padded: int) -> torch.Tensor:
    """Column blocks of ``hidden`` (one per direction or pooled piece) zero-padded likewise."""
    return _pad_rows(weight.t(), hidden, padded, weight.shape[1] // hidden).t()


def _mirror(batch_sizes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """For each position of a packed sequence (``lengths`` sorted, descending), the packed
    index of the same text's token at time length - 1 - t: reverses every text in place."""
    offsets = torch.cumsum(batch_sizes, 0) - batch_sizes
    time = torch.arange(batch_sizes.shape[0])[:, None]
    mirrored = (lengths - 1 - time).clamp(min=0)
    return (offsets[mirrored] + torch.arange(lengths.shape[0]))[time < lengths]


def _int8(weight: torch.Tensor, bias: torch.Tensor | None) -> Int8Linear:
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    linear.weight.data.copy_(weight)
    if bias is not None:
        linear.bias.data.copy_(bias)
    return Int8Linear(linear)


class Int8Classifier(nn.Module):
    """`RecurrentClassifier` (eval mode) with int8 products whose answers never depend on the
    batch: ``forward(ids, lengths)`` equals, bit for bit, the same texts run one by one.

    Built from a trained model; only LSTM cells (the GRU's reset gate would need its own fused
    step, not written yet).
    """

    def __init__(self, model: RecurrentClassifier) -> None:
        super().__init__()
        config = model.config
        if config.cell != "lstm":
            raise NotImplementedError(
                f"Int8Classifier supports LSTM cells only, not {config.cell!r}: serve a GRU "
                "classifier in fp32"
            )
        self.config = config
        self.float_model = model  # gate inspection reads its fp32 weights
        self.directions = model.directions
        self.hidden = _padded(config.hidden_dim)
        embedding = model.embedding.weight.detach().float().cpu().clone()
        self.embedding = nn.Embedding.from_pretrained(embedding)
        self.inputs = nn.ModuleList()  # per layer: all directions' input projections
        self.recurrent = nn.ModuleList()  # per layer: one hidden projection per direction
        for layer in range(config.num_layers):
            projections = [self._direction(model.rnn, layer, d) for d in range(self.directions)]
            w_ih = torch.cat([p[0] for p in projections])
            self.inputs.append(_int8(w_ih, torch.cat([p[2] for p in projections])))
            self.recurrent.append(nn.ModuleList(_int8(p[1], None) for p in projections))
        # Pooled features are halved hidden states in the padded layout (see `_gate_step`).
        head = model.output.weight.detach().float().cpu()
        weight = 2 * _pad_columns(head, config.hidden_dim, self.hidden)
        self.register_buffer("head_weight", weight.contiguous())
        self.register_buffer("head_bias", model.output.bias.detach().float().cpu().clone())

    def _direction(
        self, rnn: nn.LSTM, layer: int, direction: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One direction's (input weight, hidden weight, bias), padded and rescaled.

        The g gate's rows are doubled (tanh via sigmoid); the hidden weight and the input
        weight of upper layers are doubled because they receive half hidden states. All
        scalings are powers of two, so they are exact and `Int8Linear` quantises the same
        integers as it would for the original weights.
        """
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        hidden, padded = self.config.hidden_dim, self.hidden
        w_ih = getattr(rnn, f"weight_ih{suffix}").detach().float().cpu()
        w_hh = getattr(rnn, f"weight_hh{suffix}").detach().float().cpu()
        bias = getattr(rnn, f"bias_ih{suffix}") + getattr(rnn, f"bias_hh{suffix}")
        bias = bias.detach().float().cpu()
        if layer > 0:
            w_ih = 2 * _pad_columns(w_ih, hidden, padded)
        w_hh = 2 * _pad_columns(w_hh, hidden, padded)
        gate_scale = torch.tensor([1.0, 1.0, 2.0, 1.0])  # PyTorch's gate order: i, f, g, o
        rows = gate_scale.repeat_interleave(padded)[:, None]
        return (
            _pad_rows(w_ih, hidden, padded, 4) * rows,
            _pad_rows(w_hh, hidden, padded, 4) * rows,
            (_pad_rows(bias[:, None], hidden, padded, 4) * rows)[:, 0],
        )

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``ids`` [B, T] right-padded, ``lengths`` [B] (each >= 1) -> logits [B, C]."""
        lengths = lengths.to("cpu", torch.int64)
        packed = pack_padded_sequence(ids.cpu(), lengths, batch_first=True, enforce_sorted=False)
        sizes = packed.batch_sizes.tolist()
        reverse = None
        if self.directions == 2:
            reverse = _mirror(packed.batch_sizes, lengths[packed.sorted_indices])
        x = self.embedding(packed.data)  # [N, E]: the valid tokens, time-major
        for inputs, recurrent in zip(self.inputs, self.recurrent, strict=True):
            gates = inputs(x).view(x.shape[0], self.directions, -1)
            if reverse is not None:
                gates[:, 1] = gates[:, 1].index_select(0, reverse)
            outputs = self._recur(gates.split(sizes), recurrent)
            if reverse is not None:
                outputs[:, 1] = outputs[:, 1].index_select(0, reverse)
            x = outputs.view(x.shape[0], -1)
        return self._head(self._pool(packed._replace(data=x), lengths))

    def _recur(self, steps: tuple[torch.Tensor, ...], recurrent: nn.ModuleList) -> torch.Tensor:
        """Run one layer (all directions at once) over the packed input gates, step t holding
        [n_t, D, 4H'] for the n_t texts still running; returns packed halved hidden states.

        As in a PackedSequence, rows are sorted by length, so the texts still running at a
        step are a prefix: finished texts simply drop out. The halved hidden state lies in
        [-1/2, 1/2] (see `_gate_step`), so it is quantised with one fixed scale, 1/254: a
        trained model's states nearly fill that range (per-row scales, which cost four more
        element-wise ops a step, moved no dev label: `python -m benchmarks.classifier_int8`),
        and a fixed scale depends on nothing else in the batch. One direction's GEMM at a
        time writes into one int32 buffer whose views are only re-cut when the row count
        changes.
        """
        weights = [linear.weight.t() for linear in recurrent]
        scale = torch.stack([linear.weight_scale for linear in recurrent]) / HIDDEN_LEVELS
        batch = steps[0].shape[0]
        products = torch.empty(len(weights), batch, scale.shape[1], dtype=torch.int32)
        h, cell = self._gate_step(steps[0], steps[0].new_zeros(batch, self.directions, self.hidden))
        outputs, rows = [h], 0
        for x in steps[1:]:
            if x.shape[0] != rows:
                rows = x.shape[0]
                h, cell = h[:rows], cell[:rows]
                targets = list(zip(weights, products[:, :rows], strict=True))
                combined = products[:, :rows].transpose(0, 1)  # [n, D, 4H']
            quantized = h.mul(HIDDEN_LEVELS).round_().to(torch.int8)
            for direction, (weight, target) in enumerate(targets):
                torch._int_mm(quantized[:, direction], weight, out=target)
            h, cell = self._gate_step(torch.addcmul(x, combined, scale), cell)
            outputs.append(h)
        return torch.cat(outputs)

    @staticmethod
    def _gate_step(gates: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The LSTM cell with sigmoids only, in place on ``gates`` and ``cell`` (both spent);
        ``cell`` holds 2c and the new hidden state is h/2.

        With s = sigmoid(2 z_g) (rows doubled in the weights) tanh(z_g) = 2s - 1, so
        2c' = f*2c + 4is - 2i; and h = o*tanh(c') = o*(2*sigmoid(2c') - 1), so
        h/2 = o*(sigmoid(2c') - 1/2). The halving is undone exactly by doubled weights.
        """
        i, f, g, o = gates.sigmoid_().chunk(4, dim=-1)
        cell = cell.mul_(f).addcmul_(i, g, value=4).sub_(i, alpha=2)
        return torch.sigmoid(cell).sub_(0.5).mul_(o), cell

    def _pool(self, packed: PackedSequence, lengths: torch.Tensor) -> torch.Tensor:
        """`RecurrentClassifier`'s pooling of the top layer's packed outputs [N, D*H'], in the
        texts' original order; each piece reads a text's own steps only."""
        pooling, batch = self.config.pooling, lengths.shape[0]
        pieces = []
        if pooling in ("last", "max_last"):
            # Forward: the state at the last token; backward: the state at the first token.
            offsets = torch.cumsum(packed.batch_sizes, 0) - packed.batch_sizes
            rows = packed.unsorted_indices  # each text's row within every step
            final = packed.data[offsets[lengths - 1] + rows].view(batch, self.directions, -1)
            if self.directions == 2:
                final[:, 1] = packed.data[rows].view(batch, 2, -1)[:, 1]
            pieces.append(final.view(batch, -1))
        if pooling in ("max", "max_last", "max_mean"):
            padded, _ = pad_packed_sequence(packed, padding_value=float("-inf"))
            pieces.append(padded.amax(dim=0))
        if pooling in ("mean", "max_mean"):
            # Zero steps padded at the end leave ATen's sum over time bit-identical (it sums
            # time in fixed blocks from the first step; checked on 1,500 random (length,
            # padded length) pairs up to 512): a text's sum does not depend on its mates.
            padded, _ = pad_packed_sequence(packed)
            pieces.append(padded.sum(dim=0) / lengths[:, None].to(padded.dtype))
        return torch.cat(pieces, dim=-1)

    def _head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits [B, C] as a per-row multiply-and-sum: no GEMM kernel choice by row count."""
        return (features[:, None, :] * self.head_weight).sum(dim=-1) + self.head_bias
