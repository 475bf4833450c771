"""Generation speed, every variant side by side in one run (the machine is noisy: compare
only figures from the same run).

    python -m benchmarks.decode --artifact artifacts/lm            # 2 threads, prints each round
    python -m benchmarks.decode --threads 1 --rounds 1 --tokens 64  # quicker

Prints markdown tables: the milliseconds of one decode step (`nn.LSTM` called on one token,
against `DecodeStep` in fp32 and int8; fp32 without its batch-invariant row blocks and
`quantize_dynamic` show what exactness costs) and tokens/s
summed over the streams: the textbook loop (`nn.LSTM` step + softmax + `torch.multinomial`,
one request at a time) against our engine at 1, 16 and 64 streams, fp32 and int8. Each
figure is the median of ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks.generation import engine_tokens_per_second, textbook_tokens_per_second
from docsgen.markdown import markdown_table
from models.decode_step import DecodeStep
from models.generation import Generator
from models.language_model import RecurrentLM, State, zero_state

STREAMS = (1, 16, 64)


def milliseconds(run: Callable[[], object], repeats: int) -> float:
    run()
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - started) / repeats * 1000


def nn_step(model: RecurrentLM) -> Callable[[torch.Tensor, State], object]:
    """The model's own RNN on one token (what the textbook loop calls every step)."""

    def run(ids: torch.Tensor, state: State) -> object:
        outputs, new_state = model.run_rnn(model.embedding(ids).unsqueeze(1), state)
        return model.head(outputs[:, -1]), new_state

    return run


@torch.inference_mode()
def step_times(model: RecurrentLM, repeats: int) -> dict[str, dict[int, float]]:
    from torch.ao.quantization import quantize_dynamic

    unblocked = DecodeStep(model)
    unblocked.row_blocks = {}
    variants = {
        "nn.LSTM one-token call + head, fp32": nn_step(model),
        "DecodeStep fp32 (one GEMM over [x, h], row blocks)": DecodeStep(model),
        "DecodeStep fp32 without row blocks (not batch-invariant)": unblocked,
        "DecodeStep int8 (per-row, torch._int_mm)": DecodeStep(model, quantize="int8"),
        "DecodeStep + quantize_dynamic (not batch-invariant)": quantize_dynamic(
            copy.deepcopy(DecodeStep(model)), {torch.nn.Linear}, dtype=torch.qint8
        ),
    }
    times: dict[str, dict[int, float]] = {name: {} for name in variants}
    for batch in STREAMS:
        ids = torch.randint(0, model.config.vocab_size, (batch,))
        state = tuple(s.uniform_(-0.5, 0.5) for s in zero_state(model.config, batch))
        for name, step in variants.items():
            times[name][batch] = milliseconds(lambda s=step, i=ids, h=state: s(i, h), repeats)
    return times


def generation_rates(artifact: str, tokens: int) -> dict[str, dict[int, float]]:
    rates: dict[str, dict[int, float]] = {}
    fp32 = Generator.from_artifact(artifact)
    prompt = fp32.tokenizer.encode("ROMEO:")
    rates["textbook loop, one request at a time"] = {
        1: textbook_tokens_per_second(fp32.model, prompt, tokens)
    }
    for name, quantize in (("engine fp32", None), ("engine int8", "int8")):
        generator = fp32 if quantize is None else Generator.from_artifact(artifact, quantize="int8")
        rates[name] = {s: engine_tokens_per_second(generator, s, tokens) for s in STREAMS}
    return rates


def median_of(rounds: list[dict[str, dict[int, float]]]) -> dict[str, dict[int, float]]:
    return {
        name: {b: statistics.median(r[name][b] for r in rounds) for b in rounds[0][name]}
        for name in rounds[0]
    }


def table(title: str, unit: str, figures: dict[str, dict[int, float]], digits: int) -> str:
    rows = [
        [name, *(f"{row[b]:,.{digits}f}" if b in row else "" for b in STREAMS)]
        for name, row in figures.items()
    ]
    header = ["variant", *(f"B={b}" for b in STREAMS)]
    return f"### {title}\n\n" + markdown_table(header, rows) + f"\n({unit})\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--artifact", default="artifacts/lm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=50, help="decode steps timed per figure")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = Generator.from_artifact(args.artifact).model
    steps, rates = [], []
    for round_number in range(args.rounds):
        print(f"round {round_number + 1}/{args.rounds}", flush=True)
        steps.append(step_times(model, args.repeats))
        rates.append(generation_rates(args.artifact, args.tokens))
    print(f"\n{torch.get_num_threads()} threads, torch {torch.__version__}, {args.artifact}\n")
    print(table("One decode step", "milliseconds per step, lower is better", median_of(steps), 2))
    generation = median_of(rates)
    print(table("Generation", "tokens/s summed over the streams", generation, 0))
    textbook = generation["textbook loop, one request at a time"][1]
    for name in ("engine fp32", "engine int8"):
        ratios = ", ".join(f"B={b}: {generation[name][b] / textbook:.1f}x" for b in STREAMS)
        print(f"{name} vs textbook loop: {ratios}")


if __name__ == "__main__":
    main()
