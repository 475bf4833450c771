"""Raw user text is read the way SST-2 was tokenised, and the word vocabulary round-trips."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from models.text import PAD, UNK, WordTokenizer, is_word_vocabulary, ptb_tokens


@pytest.mark.parametrize(
    ("raw", "treebank"),
    [
        ("it's great", "it 's great"),
        ("It's GREAT!", "it 's great !"),
        (
            "I don't like it, and I can't say I won't.",
            "i do n't like it , and i ca n't say i wo n't .",
        ),
        ("the film (sadly) isn't worth it", "the film -lrb- sadly -rrb- is n't worth it"),
        ("they're here; we've seen it... I'd go", "they 're here ; we 've seen it ... i 'd go"),
        ('he said "wow" -- really', "he said `` wow '' -- really"),
        ("it\u2019s \u201cfine\u201d", "it 's `` fine ''"),
    ],
)
def test_raw_text_reads_like_the_treebank_spelling(raw: str, treebank: str) -> None:
    assert ptb_tokens(raw) == ptb_tokens(treebank)


def test_treebank_sentences_pass_through_unchanged() -> None:
    data = Path(os.environ.get("DATA_DIR", "../shared/data")) / "sst2_glue_phrases" / "dev.tsv"
    with data.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    same = sum(ptb_tokens(sentence) == sentence.split() for sentence, _ in rows)
    assert same / len(rows) > 0.99  # the rest: initials such as "j." and "***"


def test_unknown_hyphenated_words_are_read_as_their_parts() -> None:
    tokenizer = WordTokenizer([PAD, UNK, "well", "-", "crafted", "self-indulgent"])
    assert tokenizer.tokens("a well-crafted , self-indulgent film") == [
        "a",
        "well",
        "-",
        "crafted",
        ",",
        "self-indulgent",
        "film",
    ]
    assert tokenizer.encode("well-crafted twaddle-filled") == [2, 3, 4, 1]


def test_word_vocabulary_round_trips_through_its_file(tmp_path: Path) -> None:
    tokenizer = WordTokenizer([PAD, UNK, "it", "'s", "caf\u00e9"])
    path = tokenizer.save(tmp_path / "tokenizer.model")
    assert is_word_vocabulary(path)
    loaded = WordTokenizer.load(path)
    assert loaded.words == tokenizer.words
    assert loaded.encode("It's caf\u00e9 !") == [2, 3, 4, 1]
    assert (loaded.pad_id, loaded.unk_id, loaded.vocab_size) == (0, 1, 5)


def test_a_vocabulary_must_start_with_pad_and_unknown() -> None:
    with pytest.raises(ValueError, match="starts with"):
        WordTokenizer(["it", PAD, UNK])
