"""TorchServe handler for the language model: one decode loop for the whole batch, streaming.

Streaming rows get their text as it is produced through TorchServe's intermediate responses,
one JSON object per chunk followed by a newline (NDJSON), so any HTTP client can split them;
the last chunk carries `finish_reason` and `generated_tokens`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
from ts.handler_utils.utils import send_intermediate_predict_response

from handlers.base import BatchHandler
from handlers.lm_api import LMRequest, parse_generation
from models.generation import GenerationResult, Generator

METRIC_GENERATED_TOKENS = "GeneratedTokens"


def chunk(payload: dict[str, Any]) -> str:
    return json.dumps(payload) + "\n"


class LMHandler(BatchHandler):
    def load(self, model_dir: str, device: torch.device, options: dict[str, Any]) -> None:
        quantize = options.get("quantize") if device.type == "cpu" else None
        self.generator = Generator.from_artifact(model_dir, device=device, quantize=quantize)

    def parse(self, body: Any) -> LMRequest:
        return parse_generation(body)

    def infer(self, requests: Sequence[LMRequest], indices: Sequence[int]) -> list[Any]:
        streaming = {row: indices[row] for row, request in enumerate(requests) if request.stream}
        sent = {row: "" for row in streaming}

        def on_text(row: int, text: str) -> None:
            if row in streaming and text:
                sent[row] += text
                self._send_chunk(streaming[row], {"text": text})

        results = self.generator.generate(
            [request.generation for request in requests], on_text=on_text if streaming else None
        )
        self.add_counter(METRIC_GENERATED_TOKENS, sum(r.generated_tokens for r in results))
        return [
            self._final(result, sent[row]) if row in streaming else self._answer(result)
            for row, result in enumerate(results)
        ]

    def _send_chunk(self, index: int, payload: dict[str, Any]) -> None:
        request_id = self.context.get_request_id(index)
        send_intermediate_predict_response(
            {index: chunk(payload)}, {index: request_id}, "Intermediate response", 200, self.context
        )

    @staticmethod
    def _answer(result: GenerationResult) -> dict[str, Any]:
        return {
            "text": result.text,
            "generated_tokens": result.generated_tokens,
            "finish_reason": result.finish_reason,
        }

    @staticmethod
    def _final(result: GenerationResult, already_sent: str) -> str:
        """The stream's last chunk: whatever text was not sent yet, and how it ended."""
        rest = result.text[len(already_sent) :] if result.text.startswith(already_sent) else ""
        return chunk({**LMHandler._answer(result), "text": rest})
