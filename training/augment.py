"""Perturbed copies of the training sentences for the teacher to label (Tang et al. 2019).

A copy of a sentence has some words masked, some swapped for a near neighbour in GloVe space,
and is sometimes cut to a short n-gram. Neighbours in GloVe space are often antonyms (``good``
and ``bad`` sit close), so a swap can flip the sentiment: the teacher's label on the copy says
so, which is exactly what a student trained on 6,920 sentences has not seen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

MASK_RATE = 0.1
SWAP_RATE = 0.1
NGRAM_RATE = 0.25
NGRAM_MAX = 5
NEIGHBOURS = 8


@dataclass
class Copy:
    """One perturbed sentence: student token ids and the text the teacher reads."""

    ids: list[int]
    text: str


def nearest_words(vectors: torch.Tensor, candidates: Sequence[int], k: int = NEIGHBOURS):
    """For each row id in ``candidates``, its ``k`` nearest other candidates by cosine."""
    index = torch.tensor(list(candidates))
    unit = torch.nn.functional.normalize(vectors[index].float(), dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-2.0)
    top = similarity.topk(k, dim=1).indices
    return {int(index[i]): index[top[i]].tolist() for i in range(len(index))}


def perturbed_copies(
    sentences: Sequence[list[int]],
    words: Sequence[str],
    neighbours: dict[int, list[int]],
    copies: int,
    seed: int,
    unk_id: int = 1,
    mask_text: str = "[MASK]",
) -> list[Copy]:
    """``copies`` perturbed versions of each sentence (word ids), distinct from the original."""
    rng = random.Random(seed)
    out: list[Copy] = []
    for sentence in sentences:
        made = 0
        for _ in range(copies * 3):  # a few tries for copies that differ from the sentence
            if made == copies:
                break
            ids, text = [], []
            for token in sentence:
                roll = rng.random()
                if roll < MASK_RATE:
                    ids.append(unk_id)
                    text.append(mask_text)
                elif roll < MASK_RATE + SWAP_RATE and token in neighbours:
                    swapped = rng.choice(neighbours[token])
                    ids.append(swapped)
                    text.append(words[swapped])
                else:
                    ids.append(token)
                    text.append(words[token])
            if rng.random() < NGRAM_RATE and len(ids) > 1:
                n = rng.randint(1, min(NGRAM_MAX, len(ids)))
                start = rng.randint(0, len(ids) - n)
                ids, text = ids[start : start + n], text[start : start + n]
            if ids != list(sentence):
                out.append(Copy(ids, " ".join(text)))
                made += 1
    return out
