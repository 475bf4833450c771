"""One line per trained model: the quality it reached and what it cost (read from metrics.json).

python -m training.summary            # what `make models` prints at the end
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def describe(name: str, metrics: dict) -> str:
    if "dev_accuracy" in metrics:
        teacher = metrics.get("teacher_dev_accuracy")
        extra = f" (its teacher: {teacher:.1%})" if teacher is not None else ""
        return (
            f"{name}: dev accuracy {metrics['dev_accuracy']:.1%}{extra}, "
            f"trained in {metrics['seconds'] / 60:.1f} min"
        )
    return (
        f"{name}: validation {metrics['val_nats_per_char']:.4f} nats/char, "
        f"trained in {metrics['train_minutes']:.1f} min ({metrics['steps']} steps)"
    )


def main(folder: str = "artifacts") -> None:
    for path in sorted(Path(folder).glob("*/metrics.json")):
        print(describe(path.parent.name, json.loads(path.read_text())))


if __name__ == "__main__":
    main(*sys.argv[1:])
