"""Batched text generation: one decode loop for many requests, each with its own parameters.

    python -m models.generation --artifact artifacts/lm --prompt "ROMEO:" --temperature 0.8

`Generator.generate(requests, on_text)` decodes a list of requests to the end; a server uses
the same loop step by step (`models.decode_loop.DecodeLoop`, continuous batching), so that
requests join and leave it between steps.

Guarantees (tested in tests/unit/test_generation.py and test_decode_loop.py):
- every row of a batch, prompt included, is computed by `DecodeStep` with no arithmetic that
  mixes rows (see models/decode_step.py): each row reads its prompt one token per step,
  beside the other rows' tokens, so there is no padding, and a seeded request gets exactly
  the same text alone or in any batch (bitwise: int8 always, fp32 on CPU; on CUDA, cuBLAS
  may sum a row differently at another batch size, so there the logits agree to float
  tolerance and a sampled token can differ only when its uniform lies within that distance
  of a CDF boundary); sampling itself always runs on the CPU, row by row;
- a row's randomness is one uniform per token from its own generator, seeded by the request
  (or by a fresh random seed when the request has none);
- rows leave the loop as soon as they finish (length or stop string) and the batch shrinks;
- stop strings: generation ends when the generated text contains one; the text returned ends
  just before it (the stop string is not included, as in vLLM and the OpenAI API); the
  prompt is never searched; empty stop strings are ignored;
- streamed text (``on_text``) is final: text is decoded incrementally and a tail that is an
  unfinished UTF-8 character or could still become a stop string is held back, so the chunks
  of a row always concatenate to its final text.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from models.artifact import load_artifact
from models.decode_loop import DecodeLoop
from models.decode_step import DecodeStep
from models.language_model import LMConfig, RecurrentLM, State
from models.quantize import resolve_quantize
from models.requests import GenerationRequest, GenerationResult
from models.tokenizer import Tokenizer

__all__ = ["GenerationRequest", "GenerationResult", "Generator"]

OnText = Callable[[int, str], None]


class Generator:
    """Owns a language model, its tokenizer and the decode step that serves it.

    ``quantize="int8"`` (CPU only; recommended there) runs every matrix product in int8 with
    per-row activation scales: faster than fp32 on a CPU (`make bench`, `python -m
    benchmarks.decode`) at the same validation loss (`python -m training.evaluate_lm
    --compare-int8`). ``None`` is fp32, the reference (and the mode for CUDA). ``"auto"`` is
    int8 where the CPU makes it the faster, what the served archive packs (models/quantize.py).
    """

    def __init__(
        self,
        model: RecurrentLM,
        tokenizer: Tokenizer,
        device: torch.device | str = "cpu",
        quantize: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        quantize = resolve_quantize(quantize, self.device)
        if quantize and self.device.type != "cpu":
            raise ValueError("int8 decoding is for CPU; use fp32 (quantize=None) on CUDA")
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        self.config: LMConfig = model.config
        self.quantize = quantize
        self.step = DecodeStep(self.model, quantize=quantize).eval()

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
        """Next-token logits [B, V] and states for token prompts of any lengths (each >= 1),
        all read at once with per-row masks (the decode loop reads prompts step by step
        instead, beside the running rows)."""
        lengths = torch.tensor([len(p) for p in prompts], device=self.device)
        ids = torch.zeros(len(prompts), int(lengths.max()), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        return self.step.prefill(ids.to(self.device), lengths)

    def generate(
        self, requests: list[GenerationRequest], on_text: OnText | None = None
    ) -> list[GenerationResult]:
        """Decode all ``requests`` in one loop; ``on_text(row, text)`` gets each row's new
        final text as it is produced (rows numbered as in ``requests``). A row that fails
        raises (a server uses `DecodeLoop` directly, where a failure ends only its row)."""
        loop = DecodeLoop(self.step, self.tokenizer)
        for row, request in enumerate(requests):
            loop.add(row, request)
        results: dict[int, GenerationResult] = {}
        while loop:
            for row, update in loop.step().items():
                if update.error:
                    raise RuntimeError(f"row {row}: {update.error}")
                if on_text is not None and update.text:
                    on_text(row, update.text)
                if update.result is not None:
                    results[row] = update.result
        return [results[row] for row in range(len(requests))]


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
    parser.add_argument("--stop", action="append", default=[])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quantize", choices=("auto", "int8", "none"), default="auto")
    args = parser.parse_args()
    quantize = None if args.quantize == "none" or args.device != "cpu" else args.quantize
    generator = Generator.from_artifact(args.artifact, args.device, quantize)
    request = GenerationRequest(
        args.prompt,
        args.max_new_tokens,
        args.temperature,
        args.top_k,
        args.top_p,
        args.seed,
        args.stop,
    )
    print(args.prompt, end="", flush=True)
    result = generator.generate([request], on_text=lambda _, text: print(text, end="", flush=True))
    print(f"\n[{result[0].generated_tokens} tokens, finish_reason={result[0].finish_reason}]")


if __name__ == "__main__":
    _main()
