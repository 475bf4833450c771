"""Train sentencepiece tokenizers on training text only.

python -m training.tokenizer --source sst2 --vocab-size 8000 --out artifacts/tok/sst2
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm


def train_tokenizer(
    texts: Iterable[str],
    out_prefix: str | Path,
    vocab_size: int,
    model_type: str = "unigram",
    lossless: bool = False,
) -> Path:
    """Train and write ``<out_prefix>.model``; returns its path.

    ``lossless=True`` is for language modelling: no normalisation, whitespace (newlines too)
    kept as pieces and byte fallback, so ``decode(encode(text)) == text`` for any UTF-8 text and
    nats per character can be computed over the original characters.
    """
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    options: dict = dict(
        sentence_iterator=iter(texts),
        model_prefix=str(out_prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        num_threads=2,
        minloglevel=2,
        train_extremely_large_corpus=False,
    )
    if lossless:
        options.update(
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            allow_whitespace_only_pieces=True,
            split_by_whitespace=False,
            byte_fallback=True,
            max_sentence_length=1 << 20,
            user_defined_symbols=["\n"],
        )
    else:
        options.update(hard_vocab_limit=False)
    spm.SentencePieceTrainer.train(**options)
    return out_prefix.with_suffix(".model")


def _main() -> None:
    from training.data import load_sentiment

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", default="sst2")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--out", default="artifacts/tok/sst2")
    args = parser.parse_args()
    sentences = load_sentiment(args.source)["train"]["sentence"]
    path = train_tokenizer(sentences, args.out, args.vocab_size)
    print(f"wrote {path}")


if __name__ == "__main__":
    _main()
