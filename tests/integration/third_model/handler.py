"""TorchServe handler of the topic model: a GRU classifier served by the same predictor as
sentiment (`models.classifier_predictor`), every text of a batch in one forward pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from handlers.base import BatchHandler
from handlers.topic.api import parse_topic
from models.classifier_predictor import ClassifierPredictor


class TopicHandler(BatchHandler):
    def load(self, model_dir: str, device: torch.device, options: dict[str, Any]) -> None:
        self.predictor = ClassifierPredictor.from_artifact(model_dir, device=device)

    def parse(self, body: Any) -> str:
        return parse_topic(body)

    def infer(self, requests: Sequence[str], indices: Sequence[int]) -> list[Any]:
        return self.predictor.predict(list(requests))
