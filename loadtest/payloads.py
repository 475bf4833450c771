"""What the load-test users send: real sentences and prompts, and a mix of sampling settings.

Kept apart from the locustfile (which imports Locust, and with it gevent's monkey-patching) so
that the benchmark's raw decode loop can generate exactly the requests Locust sends.
"""

from __future__ import annotations

import functools
import os
import random
from typing import Any

PROMPT_MAX_CHARS = 300
FALLBACK_SENTENCES = (
    "a gripping , funny movie",
    "the plot is thin and the jokes fall flat",
    "an ambitious , often beautiful film that never quite comes together",
    "it 's a dull , lifeless affair",
    "one of the most moving films of the year",
)
FALLBACK_PROMPTS = ("ROMEO:\n", "JULIET:\n", "First Citizen:\n", "KING HENRY VI:\n", "To be")


def env_lengths() -> list[int]:
    return [int(n) for n in os.environ.get("LOADTEST_MAX_NEW_TOKENS", "16,64,128").split(",")]


def quiet_datasets() -> None:
    """No progress bars from `datasets` in the middle of Locust's output."""
    import datasets

    datasets.disable_progress_bars()


@functools.cache
def sentences() -> list[str]:
    """SST-2 dev sentences: lengths a sentiment client really sends."""
    try:
        from training.data import load_sentiment

        quiet_datasets()
        found = [s for s in load_sentiment("sst2")["dev"]["sentence"] if s]
    except Exception:  # no data folder and no network: still load the server
        found = []
    return found or list(FALLBACK_SENTENCES)


@functools.cache
def prompts() -> list[str]:
    """One to three whole lines of Tiny Shakespeare's validation part, from a line start."""
    try:
        from training.data import load_text, split_text

        quiet_datasets()
        _, validation = split_text(load_text("tinyshakespeare"))
    except Exception:
        return list(FALLBACK_PROMPTS)
    lines = validation.split("\n")
    found = []
    for start in range(1, len(lines) - 3, 3):
        take = lines[start : start + 1 + start % 3]
        prompt = "\n".join(take) + "\n"
        if take[0].strip() and len(prompt) <= PROMPT_MAX_CHARS:
            found.append(prompt)
    return found or list(FALLBACK_PROMPTS)


def generation_payload(rng: random.Random) -> dict[str, Any]:
    """A mix of sampling settings, lengths and seeds, as different clients would send."""
    return {
        "prompt": rng.choice(prompts()),
        "max_new_tokens": rng.choice(env_lengths()),
        "temperature": rng.choice((0.0, 0.7, 0.8, 1.0, 1.2)),
        "top_k": rng.choice((0, 0, 20, 50)),
        "top_p": rng.choice((1.0, 1.0, 0.9, 0.95)),
        "seed": rng.choice((None, rng.randrange(2**31))),
        # Stop strings that the load test's texts actually contain, or none.
        "stop": rng.choice(([], [], [".\n"], ["ROMEO:", "JULIET:"])),
    }


TURN_PROMPTS = ("\nROMEO:\n", "\nJULIET:\n", "\nFirst Citizen:\n", "\nKING HENRY VI:\n")


def conversation_turns(rng: random.Random, turns: tuple[int, int] = (2, 5)) -> list[dict[str, Any]]:
    """A conversation: a first request with a real prompt, then follow-ups that add only a new
    speaker's name (what a session saves resending)."""
    first = {**generation_payload(rng), "stop": ["\n\n"]}
    count = rng.randint(*turns)
    follow_ups = [
        {**generation_payload(rng), "prompt": rng.choice(TURN_PROMPTS), "stop": ["\n\n"]}
        for _ in range(count - 1)
    ]
    return [first, *follow_ups]
