"""Every goal of `make bench`, in one place: a row of the bench tables carries its goal as a
typed field (`benchmarks.results.Goal`), and bench.md, docs/benchmarks.md and the README's
headline judge the row's figure against it. A goal changes here, and nowhere else.
"""

from __future__ import annotations

from benchmarks.results import Goal

# Classification (sentiment)
HALF_SATURATION_P99 = Goal("<=", 50, "ms")  # p99 latency at about half the saturated rate
SERVED_VS_FP32_CEILING = Goal(">=", 0.9)  # served /s against the bare fp32 predictor's
BATCHED_VS_BATCH1 = Goal(">=", 3)  # served /s at the served batchSize against batchSize 1
CLASSIFY_PER_CORE = Goal(">=", 0.8)  # served/s per server core / bare predictor's per core

# Generation (language model)
SERVED_VS_RAW_LOOP = Goal(">=", 0.9)  # served tok/s at 64 streams against the best raw loop's
GENERATE_PER_CORE = Goal(">=", 0.85)  # served tok/s per server core / best raw loop's
SERVED_VS_TEXTBOOK = Goal(">=", 40, "x")  # served tok/s at 64 streams / the textbook loop's
STREAM_TOKEN_MS = Goal("<=", 1, "ms")  # a lone stream's time per token after the first
FIRST_CHUNK_MS = Goal("<=", 20, "ms")  # a lone request's time to its first chunk
SESSION_FLAT = Goal("<=", 1.2, "x", "flat")  # a follow-up's first chunk, longest / shortest history
