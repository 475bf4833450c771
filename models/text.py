"""Read raw user text the way SST-2 was tokenised, and a word-level tokenizer over it.

SST-2 is lowercased and Penn-Treebank tokenised (``it 's``, ``does n't``, ``-lrb-``), and so
are the GloVe vectors the classifier starts from. A user writes ``it's`` and ``(great)``: the
served model must see the same tokens training saw, so serving splits raw text the PTB way.
Already tokenised text passes through unchanged (``it 's`` stays ``it 's``), so training and
serving share this one function.

    python -m models.text "It's not (that) great, isn't it?"
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

PAD, UNK = "<pad>", "<unk>"
# PTB's spellings of brackets; GloVe 6B and the GLUE copy of SST-2 use the bare characters.
BRACKETS = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}"}
_CONTRACTION = re.compile(r"(?i)\b(\w+)(n't|'s|'re|'ve|'m|'ll|'d)\b")
_IRREGULAR = {"can't": "ca n't", "won't": "wo n't", "cannot": "can not", "ain't": "ai n't"}
_QUOTE_OPEN = re.compile(r'(^|[\s(\[{])"')
# A token: a PTB quote, an ellipsis or dash run, a clitic, an abbreviation, a word (letters
# of any script, digits, inner hyphens, apostrophes and periods), or one symbol.
_TOKEN = re.compile(
    r"``|''|\.\.\.+|--+|n't|'(?:s|re|ve|m|ll|d)\b|'(?:em|n'?|\d\ds?)\b"
    r"|(?:\w\.){2,}|(?:mr|mrs|ms|dr|st|jr|vs|etc)\."
    r"|\w+(?:[-'./,:]\w+)*|[^\s\w]"
)


def ptb_tokens(text: str) -> list[str]:
    """Lowercased PTB-style tokens of ``text``; idempotent on SST-2's own sentences."""
    text = text.lower().replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    for spelt, char in BRACKETS.items():
        text = text.replace(spelt, f" {char} ")
    for word, split in _IRREGULAR.items():
        text = re.sub(rf"\b{re.escape(word)}\b", split, text)
    text = _CONTRACTION.sub(lambda m: f"{m.group(1)} {m.group(2)}", text)
    text = _QUOTE_OPEN.sub(r"\1 `` ", text).replace('"', " '' ")
    return _TOKEN.findall(text)


class WordTokenizer:
    """Words -> ids over a fixed vocabulary (id 0 pad, id 1 unknown); the classifier's reader.

    Same interface as the sentencepiece `models.tokenizer.Tokenizer`. A hyphenated word that
    is not in the vocabulary is read as its parts where they are (``well-crafted`` -> ``well``
    ``-`` ``crafted``), which pretrained vectors cover far more often than the compound.
    """

    def __init__(self, words: Sequence[str], model_file: str | Path | None = None) -> None:
        if list(words[:2]) != [PAD, UNK]:
            raise ValueError(f"a word vocabulary starts with {PAD!r}, {UNK!r}")
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("a word vocabulary holds each word once")
        self.model_file = Path(model_file) if model_file else None

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["words"], path)

    def save(self, path: str | Path) -> Path:
        payload = {"type": "words", "normalise": "ptb", "words": self.words}
        Path(path).write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")
        return Path(path)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def tokens(self, text: str) -> list[str]:
        """The vocabulary's view of ``text``: PTB tokens, unknown compounds split at hyphens."""
        out: list[str] = []
        for token in ptb_tokens(text):
            if token in self.index or "-" not in token:
                out.append(token)
                continue
            parts = [p for p in re.split(r"(-)", token) if p]
            out.extend(parts if all(p in self.index for p in parts) else [token])
        return out

    def encode(self, text: str) -> list[int]:
        return [self.index.get(token, 1) for token in self.tokens(text)]

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[i] for i in ids if i != 0)

    def id_to_piece(self, token_id: int) -> str:
        return self.words[token_id]


def is_word_vocabulary(path: str | Path) -> bool:
    """True for a `WordTokenizer` file (JSON), False for a sentencepiece model (protobuf)."""
    with open(path, "rb") as handle:
        return handle.read(1) == b"{"


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(" ".join(ptb_tokens(argument)))
