"""Batched text generation: one decode loop for many requests, each with its own parameters.

    python -m models.generation --artifact artifacts/lm --prompt "ROMEO:" --temperature 0.8

Guarantees (tested in tests/unit/test_generation.py):
- prompts of different lengths are prefilled with packed sequences, so no padding reaches a
  row's state: a row's state equals the state it would have alone;
- a row's randomness comes from its own generator seeded by the request, one uniform per
  token, so a seeded request yields the same text alone or in any batch;
- rows leave the loop as soon as they finish (length or stop string) and the batch shrinks;
- streamed text (``on_text``) holds back any tail that could still become a stop string, so
  the chunks always concatenate to the final text.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

from models.artifact import load_artifact
from models.language_model import DecodeStep, LMConfig, RecurrentLM, State
from models.sampling import draw_uniforms, row_generator, sample
from models.tokenizer import Tokenizer

OnText = Callable[[int, str], None]
REPLACEMENT = "\ufffd"
UTF8_TAIL = 4  # characters at the end of the text that a new byte token can still change


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


@dataclass
class GenerationResult:
    text: str
    generated_tokens: int
    finish_reason: str  # "length" or "stop"


class _Row:
    """Book-keeping of one request inside the loop: its tokens, text and stream position."""

    def __init__(self, request: GenerationRequest, device: torch.device) -> None:
        self.request = request
        seed = request.seed if request.seed is not None else secrets.randbits(63)
        self.generator = row_generator(seed)
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0  # characters already handed to on_text
        self.finish_reason: str | None = None

    def add(self, token: int, tokenizer: Tokenizer) -> None:
        self.ids.append(token)
        previous = len(self.text)
        self.text = tokenizer.decode(self.ids)
        stops = self.request.stop
        if stops:
            # Only a stop string overlapping the new text can be new (the last few characters
            # may have changed too: bytes completing a UTF-8 character).
            start = max(0, previous - max(len(s) for s in stops) - UTF8_TAIL)
            hits = [i for i in (self.text.find(s, start) for s in stops) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.finish_reason = "stop"
                return
        if len(self.ids) >= self.request.max_new_tokens:
            self.finish_reason = "length"

    def streamable(self) -> str:
        """New text that can no longer turn into a stop string, marked as sent."""
        end = len(self.text)
        if self.finish_reason is None:
            # An incomplete UTF-8 character decodes as U+FFFD until its last byte arrives, and
            # a tail that starts a stop string may still be cut: neither is final yet.
            end = min(
                end - _held_back(self.text, self.request.stop), len(self.text.rstrip(REPLACEMENT))
            )
        chunk = self.text[self.sent : end]
        self.sent = max(self.sent, end)
        return chunk


def _held_back(text: str, stops: list[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class Generator:
    """Owns a language model, its tokenizer and the fast decode step."""

    def __init__(
        self,
        model: RecurrentLM,
        tokenizer: Tokenizer,
        device: torch.device | str = "cpu",
        quantize: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        self.config: LMConfig = model.config
        self.step = DecodeStep(self.model).to(self.device).eval()
        if quantize == "int8":
            from torch.ao.quantization import quantize_dynamic

            self.model = quantize_dynamic(
                self.model, {torch.nn.LSTM, torch.nn.GRU, torch.nn.Linear}
            )
            self.step = quantize_dynamic(self.step, {torch.nn.Linear}, dtype=torch.qint8)
        elif quantize:
            raise ValueError(f"unknown quantization {quantize!r}")

    @classmethod
    def from_artifact(
        cls, directory: str | Path, device: torch.device | str = "cpu", quantize: str | None = None
    ) -> Generator:
        artifact = load_artifact(directory)
        model = RecurrentLM(LMConfig(**artifact.model))
        model.load_state_dict(artifact.state_dict)
        return cls(model, artifact.tokenizer, device, quantize)

    @torch.inference_mode()
    def prefill(self, prompts: list[list[int]]) -> tuple[torch.Tensor, State]:
        """Run every prompt through the RNN at once (packed): next-token logits and states."""
        sequences = [torch.tensor(p, dtype=torch.long, device=self.device) for p in prompts]
        packed = pack_sequence(sequences, enforce_sorted=False)
        embedded = packed._replace(data=self.model.embedding(packed.data))
        outputs, state = self.model.run_rnn(embedded, None)
        padded, lengths = pad_packed_sequence(outputs, batch_first=True)
        rows = torch.arange(len(prompts), device=self.device)
        last = padded[rows, lengths.to(self.device) - 1]
        return self.model.head(last), state

    @torch.inference_mode()
    def generate(
        self, requests: list[GenerationRequest], on_text: OnText | None = None
    ) -> list[GenerationResult]:
        if not requests:
            return []
        rows = [_Row(r, self.device) for r in requests]
        prompts = [self.tokenizer.encode(r.prompt) or [self.tokenizer.unk_id] for r in requests]
        logits, state = self.prefill(prompts)
        active = list(range(len(rows)))
        params = _row_parameters(requests, self.device)
        while active:
            index = torch.tensor(active, device=self.device)
            uniforms = draw_uniforms([rows[i].generator for i in active]).to(self.device)
            tokens = sample(logits, *(p[index] for p in params), uniforms)
            still = []
            for position, (row_index, token) in enumerate(
                zip(active, tokens.tolist(), strict=True)
            ):
                row = rows[row_index]
                row.add(token, self.tokenizer)
                if on_text is not None:
                    chunk = row.streamable()
                    if chunk:
                        on_text(row_index, chunk)
                if row.finish_reason is None:
                    still.append(position)
            if not still:
                break
            if len(still) < len(active):  # finished rows leave the batch
                keep = torch.tensor(still, device=self.device)
                tokens = tokens[keep]
                state = tuple(s[:, keep] for s in state)
                active = [active[p] for p in still]
            logits, state = self.step(tokens, state)
        return [
            GenerationResult(row.text, len(row.ids), row.finish_reason or "length") for row in rows
        ]


def _row_parameters(requests: list[GenerationRequest], device: torch.device) -> list[torch.Tensor]:
    """Per-row sampling parameters as tensors, indexed by row number."""
    return [
        torch.tensor([r.temperature for r in requests], device=device),
        torch.tensor([r.top_k for r in requests], dtype=torch.long, device=device),
        torch.tensor([r.top_p for r in requests], device=device),
    ]


def _main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--artifact", default="artifacts/lm")
    parser.add_argument("--prompt", default="ROMEO:")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quantize", default=None)
    args = parser.parse_args()
    generator = Generator.from_artifact(args.artifact, quantize=args.quantize)
    request = GenerationRequest(
        args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed
    )
    print(args.prompt + generator.generate([request])[0].text)


if __name__ == "__main__":
    _main()
