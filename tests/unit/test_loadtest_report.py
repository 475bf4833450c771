"""The load-test report: server means from two Prometheus scrapes, and the written report.

The scrapes below are in TorchServe 0.12's exposition format (trailing commas in the label
sets, HELP/TYPE lines for metrics without samples yet, host-level counters and gauges that
carry no model), and the CSVs in Locust 2.47's columns.
"""

from __future__ import annotations

import json

import pytest

from loadtest import metrics, report

BEFORE = """\
# HELP Requests2XX Torchserve prometheus counter metric with unit: Count
# TYPE Requests2XX counter
Requests2XX{Level="Host",Hostname="vm",} 40.0
# HELP GeneratedTokens Torchserve prometheus counter metric with unit: Count
# TYPE GeneratedTokens counter
# HELP PredictionTime Torchserve prometheus gauge metric with unit: ms
# TYPE PredictionTime gauge
PredictionTime{ModelName="sentiment",Level="Model",Hostname="vm",} 11.15
# HELP ts_inference_latency_microseconds Torchserve prometheus counter metric with unit: Microseconds
# TYPE ts_inference_latency_microseconds counter
ts_inference_latency_microseconds{model_name="sentiment",model_version="default",hostname="vm",} 50000.0
# HELP ts_queue_latency_microseconds Torchserve prometheus counter metric with unit: Microseconds
# TYPE ts_queue_latency_microseconds counter
ts_queue_latency_microseconds{model_name="sentiment",model_version="default",hostname="vm",} 10000.0
# HELP ts_inference_requests_total Torchserve prometheus counter metric with unit: Count
# TYPE ts_inference_requests_total counter
ts_inference_requests_total{model_name="sentiment",model_version="default",hostname="vm",} 10.0
# HELP HandlerBatches Torchserve prometheus counter metric with unit: Count
# TYPE HandlerBatches counter
HandlerBatches{ModelName="sentiment",Level="Model",Hostname="vm",} 5.0
# HELP HandlerBatchRequests Torchserve prometheus counter metric with unit: Count
# TYPE HandlerBatchRequests counter
HandlerBatchRequests{ModelName="sentiment",Level="Model",Hostname="vm",} 10.0
# HELP HandlerBatchLatencyMs Torchserve prometheus counter metric with unit: Milliseconds
# TYPE HandlerBatchLatencyMs counter
HandlerBatchLatencyMs{ModelName="sentiment",Level="Model",Hostname="vm",} 100.0
# HELP HandlerBadRequests Torchserve prometheus counter metric with unit: Count
# TYPE HandlerBadRequests counter
HandlerBadRequests{ModelName="sentiment",Level="Model",Hostname="vm",} 1.0
"""  # noqa: E501

# sentiment: 102 more arrived, 100 reached the handler (2 turned away by TorchServe), in 25
# batches; lm appeared during the run (a model's counters start when it first answers).
AFTER = """\
# HELP Requests2XX Torchserve prometheus counter metric with unit: Count
# TYPE Requests2XX counter
Requests2XX{Level="Host",Hostname="vm",} 9000.0
# HELP GeneratedTokens Torchserve prometheus counter metric with unit: Count
# TYPE GeneratedTokens counter
GeneratedTokens{ModelName="lm",Level="Model",Hostname="vm",} 1200.0
# HELP ts_inference_latency_microseconds Torchserve prometheus counter metric with unit: Microseconds
# TYPE ts_inference_latency_microseconds counter
ts_inference_latency_microseconds{model_name="sentiment",model_version="default",hostname="vm",} 1250000.0
ts_inference_latency_microseconds{model_name="lm",model_version="default",hostname="vm",} 4000000.0
# HELP ts_queue_latency_microseconds Torchserve prometheus counter metric with unit: Microseconds
# TYPE ts_queue_latency_microseconds counter
ts_queue_latency_microseconds{model_name="sentiment",model_version="default",hostname="vm",} 210000.0
ts_queue_latency_microseconds{model_name="lm",model_version="default",hostname="vm",} 1000000.0
# HELP ts_inference_requests_total Torchserve prometheus counter metric with unit: Count
# TYPE ts_inference_requests_total counter
ts_inference_requests_total{model_name="sentiment",model_version="default",hostname="vm",} 112.0
ts_inference_requests_total{model_name="lm",model_version="default",hostname="vm",} 8.0
# HELP HandlerBatches Torchserve prometheus counter metric with unit: Count
# TYPE HandlerBatches counter
HandlerBatches{ModelName="sentiment",Level="Model",Hostname="vm",} 30.0
HandlerBatches{ModelName="lm",Level="Model",Hostname="vm",} 2.0
# HELP HandlerBatchRequests Torchserve prometheus counter metric with unit: Count
# TYPE HandlerBatchRequests counter
HandlerBatchRequests{ModelName="sentiment",Level="Model",Hostname="vm",} 110.0
HandlerBatchRequests{ModelName="lm",Level="Model",Hostname="vm",} 8.0
# HELP HandlerBatchLatencyMs Torchserve prometheus counter metric with unit: Milliseconds
# TYPE HandlerBatchLatencyMs counter
HandlerBatchLatencyMs{ModelName="sentiment",Level="Model",Hostname="vm",} 600.0
HandlerBatchLatencyMs{ModelName="lm",Level="Model",Hostname="vm",} 2500.0
# HELP HandlerBadRequests Torchserve prometheus counter metric with unit: Count
# TYPE HandlerBadRequests counter
HandlerBadRequests{ModelName="sentiment",Level="Model",Hostname="vm",} 4.0
HandlerBadRequests{ModelName="lm",Level="Model",Hostname="vm",} 0.0
# HELP HandlerFailedRequests Torchserve prometheus counter metric with unit: Count
# TYPE HandlerFailedRequests counter
HandlerFailedRequests{ModelName="lm",Level="Model",Hostname="vm",} 1.0
"""  # noqa: E501

STATS_CSV = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
POST,/predictions/lm,12,1,57,55.1,21.3,138.2,226.0,1.5,0.12,57,60,81,81,94,140,140,140,140,140,140
POST,/predictions/sentiment,59,0,16,18.2,6.1,73.4,153.0,7.75,0.0,16,19,20,22,30,48,60,73,73,73,73
STREAM,lm first chunk,0,0,0,0.0,0,0,0.0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A
,Aggregated,71,1,20,39.4,6.1,138.2,102.4,9.25,0.12,20,25,36,60,94,130,140,140,140,140,140
"""  # noqa: E501

FAILURES_CSV = """\
Method,Name,Error,Occurrences,First Seen,Last Seen
POST,/predictions/lm,LocustBadStatusCode(code=503),1,2026-11-24T09:47:26Z,2026-11-24T09:47:26Z
"""

HISTORY_HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)


def history_csv(seconds: int = 8) -> str:
    rows = [HISTORY_HEADER, "1000,0,,Aggregated,0,0" + ",N/A" * 11 + ",0,0,0,0.0,0,0,0"]
    for t in range(1, seconds):
        lat = ",".join(["16"] * 11)
        rows.append(f"{1000 + t},4,POST,/predictions/sentiment,0,0,{lat},{8 * t},0,16,18,6,73,153")
        rows.append(f"{1000 + t},4,,Aggregated,{8.0:f},0,{lat},{8 * t},0,16,18,6,73,153")
    return "\n".join(rows) + "\n"


def by_model(loads: list[metrics.ModelLoad]) -> dict[str, metrics.ModelLoad]:
    return {load.model: load for load in loads}


def test_counters_are_read_per_model_and_gauges_and_host_counters_ignored():
    counters = metrics.parse_counters(AFTER)
    assert counters[("ts_inference_requests", "sentiment")] == 112.0
    assert counters[("HandlerBatches", "lm")] == 2.0
    assert not any(name in ("Requests2XX", "PredictionTime") for name, _ in counters)


def test_server_means_are_differences_of_sums_over_differences_of_counts():
    loads = by_model(
        metrics.summarize(metrics.parse_counters(BEFORE), metrics.parse_counters(AFTER), 60.0)
    )
    sentiment = loads["sentiment"]
    assert sentiment.requests == 102  # arrived, including the two turned away
    assert sentiment.handled == 100
    assert sentiment.batches == 25
    assert sentiment.mean_batch_size == pytest.approx(4.0)
    # latency sums are per request that reached the handler
    assert sentiment.mean_queue_ms == pytest.approx(200_000 / 100 / 1000)
    assert sentiment.mean_server_ms == pytest.approx(1_200_000 / 100 / 1000)
    assert sentiment.mean_inference_ms == pytest.approx(12.0 - 2.0)
    assert sentiment.mean_batch_latency_ms == pytest.approx(500 / 25)
    assert sentiment.bad_requests == 3
    assert sentiment.generated_tokens == 0
    lm = loads["lm"]  # no counters before: they count from zero
    assert lm.mean_batch_size == pytest.approx(4.0)
    assert lm.mean_queue_ms == pytest.approx(125.0)
    assert lm.mean_inference_ms == pytest.approx(375.0)
    assert lm.failed_requests == 1
    assert lm.tokens_per_s == pytest.approx(1200 / 60.0)


def test_a_restarted_server_counts_from_zero_instead_of_going_negative():
    before = {("HandlerBatches", "lm"): 50.0}
    assert metrics.deltas(before, {("HandlerBatches", "lm"): 7.0}) == {("HandlerBatches", "lm"): 7}


def test_models_without_traffic_are_left_out_and_empty_counts_give_no_mean():
    counters = metrics.parse_counters(AFTER)
    assert metrics.summarize(counters, counters, 10.0) == []
    # No handler counters (say, every request turned away): means fall back to arrivals, and
    # a ratio with nothing to divide by is "no figure", not zero or a crash.
    arrived = {("ts_inference_requests", "lm"): 4.0, ("ts_queue_latency_microseconds", "lm"): 8e3}
    load = metrics.summarize({}, arrived, 0.0)[0]
    assert load.mean_queue_ms == pytest.approx(2.0)
    assert (load.mean_batch_size, load.mean_batch_latency_ms, load.tokens_per_s) == (None,) * 3


def test_metric_names_match_what_the_handlers_emit():
    from handlers import torchserve as base
    from handlers.lm import handler as lm_handler

    assert metrics.BATCHES == base.METRIC_BATCHES
    assert metrics.BATCH_REQUESTS == base.METRIC_REQUESTS
    assert metrics.BATCH_LATENCY_MS == base.METRIC_LATENCY_MS
    assert metrics.BAD_REQUESTS == base.METRIC_BAD_REQUESTS
    assert metrics.FAILED_REQUESTS == base.METRIC_FAILED_REQUESTS
    assert metrics.GENERATED_TOKENS == lm_handler.METRIC_GENERATED_TOKENS
    assert metrics.SESSION_EVICTIONS == lm_handler.METRIC_SESSION_EVICTIONS
    assert metrics.ACTIVE_ROWS == lm_handler.METRIC_ACTIVE_ROWS
    assert metrics.ACTIVE_SESSIONS == lm_handler.METRIC_ACTIVE_SESSIONS


def run_folder(tmp_path, final: bool = True, history: bool = True):
    info = report.RunInfo(
        scenario="mixed",
        user_classes=["ClassifyUser", "GenerateUser"],
        users=4,
        spawn_rate=2.0,
        duration="60s",
        host="http://127.0.0.1:8080",
        server_started=True,
        started_at="2026-11-24T09:47:25",
        load_seconds=60.0,
        weights="classify=3,generate=1",
        locust_exit_code=1,
        cpu_count=2,
        load_average_before=[1.0, 0.5, 0.2],
        load_average_after=[2.5, 1.0, 0.4],
    )
    info.save(tmp_path)
    stats_name = report.FINAL_STATS if final else "_stats.csv"
    (tmp_path / f"{report.CSV_PREFIX}{stats_name}").write_text(STATS_CSV)
    (tmp_path / f"{report.CSV_PREFIX}_failures.csv").write_text(FAILURES_CSV)
    if history:
        (tmp_path / f"{report.CSV_PREFIX}_stats_history.csv").write_text(history_csv())
    (tmp_path / report.METRICS_BEFORE).write_text(BEFORE)
    (tmp_path / report.METRICS_AFTER).write_text(AFTER)
    return tmp_path


def table_row(text: str, first_cell: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_has_client_and_server_tables_failures_and_plot(tmp_path):
    path = report.write_report(run_folder(tmp_path, final=False))
    text = path.read_text()
    assert path == tmp_path / report.REPORT
    assert table_row(text, "POST /predictions/sentiment") == [
        "POST /predictions/sentiment", "59", "0", "7.75", "18.2", "16", "48", "73", "73"
    ]  # fmt: skip
    assert table_row(text, "STREAM lm first chunk")[5:8] == ["n/a", "n/a", "n/a"]
    assert table_row(text, "Aggregated")[1:3] == ["71", "1"]
    sentiment = table_row(text, "sentiment")
    assert sentiment[1:7] == ["102", "25", "4.00", "2.0", "10.0", "20.0"]
    lm = table_row(text, "lm")
    assert lm[-2:] == ["1,200", "20.0"]  # generated tokens and tokens/s
    assert "LocustBadStatusCode(code=503)" in text
    assert "2 CPU cores" in text and "2.5/1.0/0.4" in text
    png = tmp_path / report.PLOT
    assert f"]({report.PLOT})" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_final_statistics_win_over_locusts_periodic_file(tmp_path):
    run_folder(tmp_path)
    stale = STATS_CSV.replace("POST,/predictions/sentiment,59", "POST,/predictions/sentiment,50")
    (tmp_path / f"{report.CSV_PREFIX}_stats.csv").write_text(stale)
    text = report.write_report(tmp_path).read_text()
    assert table_row(text, "POST /predictions/sentiment")[1] == "59"


def test_report_without_history_or_failures_says_so(tmp_path):
    run_folder(tmp_path, history=False)
    (tmp_path / f"{report.CSV_PREFIX}_failures.csv").unlink()
    text = report.write_report(tmp_path).read_text()
    assert "## Failures\n\nNone." in text
    assert report.PLOT not in text
    assert not (tmp_path / report.PLOT).exists()


def test_run_info_round_trips_through_its_file(tmp_path):
    run_folder(tmp_path)
    info = report.RunInfo.load(tmp_path)
    assert json.loads((tmp_path / report.RUN_INFO).read_text())["users"] == info.users == 4
    assert report.first_history_timestamp(tmp_path / "locust_stats_history.csv") == 1000.0


def test_requests_cut_at_the_end_are_counted_by_name(tmp_path):
    run_folder(tmp_path)
    cut = {"STREAM lm whole stream": 3, "POST /predictions/lm": 1}
    (tmp_path / f"{report.CSV_PREFIX}{report.CUT}").write_text(json.dumps(cut))
    text = report.write_report(tmp_path).read_text()
    assert "4 request(s) were still running when the run ended and were cut" in text
    assert table_row(text, "STREAM lm whole stream") == ["STREAM lm whole stream", "3"]
    (tmp_path / f"{report.CSV_PREFIX}{report.CUT}").unlink()
    assert "Not recorded" in report.write_report(tmp_path).read_text()
