"""A thin wrapper over a trained sentencepiece model, shared by training and serving."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import sentencepiece as spm


class Tokenizer:
    """Text <-> token ids. ``lowercase`` mirrors how the training text was cased (SST-2 is)."""

    def __init__(self, model_file: str | Path, lowercase: bool = False) -> None:
        self.model_file = Path(model_file)
        self.lowercase = lowercase
        self._sp = spm.SentencePieceProcessor(model_file=str(model_file))

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def pad_id(self) -> int:
        # Trained with pad_id=0 so padding rows can use a zero embedding index.
        return max(self._sp.pad_id(), 0)

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text.lower() if self.lowercase else text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._sp.encode([t.lower() if self.lowercase else t for t in texts])

    def decode(self, ids: list[int]) -> str:
        if len(ids) == 1 and 0 <= ids[0] < len(self._alone):
            return self._alone[ids[0]]
        return self._sp.decode(ids)

    @cached_property
    def _alone(self) -> list[str]:
        """Each id decoded alone, once: generation decodes token by token, and a call into
        sentencepiece per token and row was a tenth of a decode step (cProfile of
        `DecodeLoop.step` at 32 rows)."""
        return [self._sp.decode([token]) for token in range(self.vocab_size)]

    def id_to_piece(self, token_id: int) -> str:
        return self._sp.id_to_piece(token_id)
