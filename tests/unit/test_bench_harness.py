"""What `make bench` reads from a server's own logs."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import server_percentiles


def access_line(method: str, path: str, milliseconds: int) -> str:
    """A line as TorchServe 0.12's access log writes it."""
    return (
        f'2026-12-02T22:21:47,001 - /127.0.0.1:50884 "{method} {path} HTTP/1.1" 200 '
        f"{milliseconds}\n"
    )


def test_percentiles_read_only_the_named_path_and_its_own_milliseconds(tmp_path: Path) -> None:
    lines = [access_line("GET", "/models/sentiment", 240)]
    lines += [access_line("POST", "/predictions/sentiment", ms) for ms in range(1, 101)]
    lines += [access_line("POST", "/predictions/lm", 900)]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "access_log.log").write_text("".join(lines))
    # 100 requests taking 1..100 ms: the median is the 51st, the p99 the 100th; the GET
    # (240 ms) and the other model's POST (900 ms) are not counted.
    assert server_percentiles(tmp_path, "/predictions/sentiment", (0.5, 0.99)) == [51, 100]
    assert server_percentiles(tmp_path, "/predictions/other", (0.5,)) == []
