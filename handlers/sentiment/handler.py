"""TorchServe handler for the sentiment classifier: every text of a batch in one forward pass.

Archived by `python -m training.archive sentiment`; the unpacked archive holds the model
artifact plus the models/ and handlers/ packages this file imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from handlers.base import BatchHandler
from handlers.sentiment.api import SentimentRequest, parse_sentiment
from models.classifier_predictor import ClassifierPredictor


class SentimentHandler(BatchHandler):
    def load(self, model_dir: str, device: torch.device, options: dict[str, Any]) -> None:
        quantize = options.get("quantize") if device.type == "cpu" else None
        self.predictor = ClassifierPredictor.from_artifact(
            model_dir, device=device, quantize=quantize
        )

    def parse(self, body: Any) -> SentimentRequest:
        return parse_sentiment(body)

    def infer(self, requests: Sequence[SentimentRequest], indices: Sequence[int]) -> list[Any]:
        texts = [text for request in requests for text in request.texts]
        predictions = iter(self.predictor.predict(texts))
        answers: list[Any] = []
        for request in requests:
            own = [next(predictions) for _ in request.texts]
            if request.explain:
                self._add_explanations(request.texts, own)
            answers.append(own if request.many else own[0])
        return answers

    def _add_explanations(self, texts: list[str], predictions: list[dict[str, Any]]) -> None:
        from models.gates import explain_sentiment

        for text, prediction in zip(texts, predictions, strict=True):
            prediction["explanation"] = explain_sentiment(self.predictor, text, layer=0)


# TorchServe looks for a module-level class or `handle` function; the class is enough.
