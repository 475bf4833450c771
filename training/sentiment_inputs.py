"""What the sentiment student reads: its tokenizer, its starting embeddings, the teacher's soft
labels on the transfer set (the training phrases plus perturbed copies of the sentences), and
the training rows with both kinds of target (`training_targets`).

Kept apart from the training loop so that every source of signal (pretrained vectors, the
teacher, augmentation) is one function that can be switched off by a flag and measured.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from models.text import WordTokenizer
from models.tokenizer import Tokenizer
from training.teacher import TEACHER_RECIPE
from training.tokenizer import train_tokenizer

AnyTokenizer = Tokenizer | WordTokenizer

MAX_TOKENS = 128  # training texts are cut to this many tokens (SST-2 has none longer)


@dataclass
class Reader:
    """A tokenizer, the file that holds it, and initial embedding rows (None: random)."""

    tokenizer: AnyTokenizer
    file: Path
    embeddings: torch.Tensor | None
    facts: dict[str, Any]


def make_reader(options: Any, texts: Sequence[str], scratch: Path) -> Reader:
    """Words with GloVe rows (``--tokenizer words``) or sentencepiece pieces from scratch."""
    if options.tokenizer != "words":
        file = train_tokenizer(
            texts, scratch / "tokenizer", options.vocab_size, model_type=options.tokenizer
        )
        return Reader(Tokenizer(file, lowercase=True), file, None, {})
    from training.pretrained import GLOVE_DIM, build_vocabulary, embedding_rows, load_glove

    glove_words, vectors = load_glove() if options.pretrained == "glove" else ([], None)
    tokenizer = build_vocabulary(texts, glove_words, options.extra_words)
    file = tokenizer.save(scratch / "tokenizer.model")
    if options.pretrained != "glove":
        return Reader(tokenizer, file, None, {})
    if options.embed_dim != GLOVE_DIM:
        raise ValueError(f"GloVe vectors have {GLOVE_DIM} dimensions: use --embed-dim {GLOVE_DIM}")
    rows, facts = embedding_rows(tokenizer, glove_words, vectors, options.seed)
    return Reader(tokenizer, file, rows, facts)


@dataclass
class TransferSet:
    """Extra training rows with no gold label, and teacher logits for every row (phrases first,
    then the extra rows)."""

    extra_rows: list[list[int]]
    logits: torch.Tensor
    facts: dict[str, Any]
    word_vectors: torch.Tensor | None = None  # [V, teacher_vectors] rows to append, or None


def teacher_transfer_set(
    options: Any,
    reader: Reader,
    phrases: Sequence[str],
    sentences: Sequence[str],
    sentence_labels: Sequence[int],
    dev_sentences: Sequence[str],
) -> TransferSet:
    """Fine-tune the teacher on the training sentences, then label the phrases and
    ``options.augment_copies`` perturbed copies of each sentence. Cached by content where
    ``options.teacher_cache`` names a folder (experiments rerun the student, not the teacher).
    With ``options.teacher_phrase_share`` below 1 the teacher labels only a seeded sample of
    the phrases (a budget's lever); the others get NaN logits and train on gold alone."""
    from training.augment import nearest_words, perturbed_copies

    started = time.perf_counter()
    tokenizer = reader.tokenizer
    copies: list = []
    if options.augment_copies > 0:
        if not isinstance(tokenizer, WordTokenizer) or reader.embeddings is None:
            raise ValueError(
                "augmentation swaps words by GloVe neighbours: needs --tokenizer words"
            )
        sentence_ids = tokenizer.encode_batch(sentences)
        trained = sorted({i for row in sentence_ids for i in row if i > 1})
        neighbours = nearest_words(reader.embeddings, trained)
        copies = perturbed_copies(
            sentence_ids, tokenizer.words, neighbours, options.augment_copies, options.seed
        )
    labelled = labelled_phrase_rows(len(phrases), options.teacher_phrase_share, options.seed)
    texts = [phrases[i] for i in labelled] + [c.text for c in copies]
    words = list(tokenizer.words) if options.teacher_vectors > 0 else []
    vectors = [f"teacher vectors: {options.teacher_vectors}", *words] if words else []
    key = _cache_key(options, sentences, [*texts, *vectors])
    cached = Path(options.teacher_cache) / f"{key}.pt" if options.teacher_cache else None
    if cached is not None and cached.exists():
        stored = torch.load(cached, weights_only=True)
    else:
        stored = _run_teacher(options, texts, words, sentences, sentence_labels, dev_sentences)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as handle:
                torch.save(stored, handle)
            Path(handle.name).replace(cached)
    logits = stored["logits"]
    if len(labelled) < len(phrases):  # unlabelled phrases: NaN logits (gold labels only)
        logits = torch.full((len(phrases) + len(copies), 2), float("nan"))
        logits[labelled] = stored["logits"][: len(labelled)]
        logits[len(phrases) :] = stored["logits"][len(labelled) :]
    facts = {
        **json.loads(stored["facts"]),
        "transfer_rows": len(texts),
        "teacher_labelled_phrases": len(labelled),
        "augmented_rows": len(copies),
        "transfer_seconds": round(time.perf_counter() - started, 1),
    }
    return TransferSet([c.ids for c in copies], logits, facts, stored.get("vectors"))


def labelled_phrase_rows(phrases: int, share: float, seed: int) -> list[int]:
    """The phrase rows the teacher labels: all of them, or a seeded sample (in row order)."""
    if share >= 1:
        return list(range(phrases))
    count = max(0, min(phrases, round(phrases * share)))
    return sorted(random.Random(seed).sample(range(phrases), count))


def with_teacher_vectors(reader: Reader, vectors: torch.Tensor) -> Reader:
    """The reader's embedding rows widened by the teacher's word vectors, at GloVe's spread
    (the archive then carries ``embed_dim`` + ``teacher_vectors`` columns; serving is unchanged)."""
    if reader.embeddings is None:
        raise ValueError("--teacher-vectors widens the GloVe rows: needs --tokenizer words")
    scaled = vectors * reader.embeddings[2:].std()
    scaled[reader.tokenizer.pad_id] = 0.0
    return replace(reader, embeddings=torch.cat([reader.embeddings, scaled], dim=1))


def _run_teacher(options, texts, words, sentences, labels, dev_sentences) -> dict[str, Any]:
    """The teacher's logits on ``texts`` and, for ``words``, its reduced word vectors."""
    from training.teacher import Teacher, fine_tune, teacher_logits, word_vectors

    started = time.perf_counter()
    key = _cache_key(options, sentences, [])
    stored = Path(options.teacher_cache) / f"teacher-{key}.pt" if options.teacher_cache else None
    if stored is not None and stored.exists():
        teacher = Teacher()
        teacher.load_state_dict(torch.load(stored, weights_only=True))
        teacher.eval()
    else:
        teacher = fine_tune(
            sentences,
            labels,
            options.teacher_epochs,
            options.teacher_lr,
            seed=options.seed,
            progress=options.progress,
        )
        if stored is not None:
            stored.parent.mkdir(parents=True, exist_ok=True)
            torch.save(teacher.state_dict(), stored)
    tuned = time.perf_counter() - started
    dev_logits = teacher_logits(teacher, dev_sentences, progress=False)
    logits = teacher_logits(teacher, texts, progress=options.progress)
    stored: dict[str, Any] = {"logits": logits}
    if words:
        stored["vectors"] = word_vectors(
            teacher, words, options.teacher_vectors, progress=options.progress
        )
    facts = {
        "teacher_minutes": round(tuned / 60, 2),
        "teacher_label_minutes": round((time.perf_counter() - started - tuned) / 60, 2),
        "teacher_dev_predictions": dev_logits.argmax(1).tolist(),
    }
    return {**stored, "facts": json.dumps(facts)}


def _cache_key(options: Any, sentences: Sequence[str], texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    settings = (
        TEACHER_RECIPE,
        options.teacher_epochs,
        options.teacher_lr,
        options.seed,
        options.teacher_source,
    )
    digest.update(json.dumps(settings).encode())
    for text in (*sentences, "\0", *texts):
        digest.update(text.encode() + b"\n")
    return digest.hexdigest()[:20]


@dataclass
class Targets:
    """Training rows with their gold labels (-1: none) and teacher logits (NaN: none)."""

    rows: list[list[int]]
    gold: torch.Tensor
    soft: torch.Tensor


def student_texts(tokenizer: AnyTokenizer, texts: Sequence[str]) -> Targets:
    """``texts`` as training rows with both kinds of target (placeholder values): the full
    cost of a student step, for measuring its rate."""
    rows = [r[:MAX_TOKENS] for r in tokenizer.encode_batch(texts)]
    return Targets(rows, torch.zeros(len(rows), dtype=torch.long), torch.zeros(len(rows), 2))


def training_targets(
    tokenizer: AnyTokenizer, train_split: Any, transfer: TransferSet | None
) -> Targets:
    """The training split's rows with their gold labels, then (with a teacher) the transfer
    set's extra rows, which have only the teacher's logits."""
    rows = [r[:MAX_TOKENS] for r in tokenizer.encode_batch(train_split["sentence"])]
    gold = list(train_split["label"])
    soft = torch.full((len(rows), 2), float("nan"))
    if transfer is not None:
        rows += [r[:MAX_TOKENS] for r in transfer.extra_rows]
        gold += [-1] * len(transfer.extra_rows)
        soft = transfer.logits
    return Targets(rows, torch.tensor(gold), soft)
