"""The jobs benchmark's statistics: percentiles, the throughput summary, the added-time
figures and the soak's counts of lost and duplicated results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.jobs import JobTimes, added_time, percentile, soak_verdict, summarize, table


@pytest.mark.parametrize("q", [0, 5, 50, 95, 100])
def test_percentile_matches_numpy(q):
    values = [3.0, 1.0, 7.5, 2.0, 10.0, 4.0]
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_percentile_of_one_and_none():
    assert percentile([2.5], 95) == 2.5
    assert math.isnan(percentile([], 50))


def test_summarize_throughput_waits_and_ends():
    times = [JobTimes(submitted=100.0 + i, created=100.1 + i, started=101.0 + 2 * i, finished=102.0 + 2 * i)
             for i in range(4)]
    summary = summarize(times)
    # first submit at 100, last finish at 108: 4 songs in 8 s
    assert summary["songs"] == 4 and summary["span_s"] == 8.0 and summary["songs_per_hour"] == 1800.0
    waits = [0.9, 1.9, 2.9, 3.9]
    ends = [2.0, 3.0, 4.0, 5.0]
    assert summary["queue_wait_p50_s"] == pytest.approx(np.percentile(waits, 50), abs=1e-3)
    assert summary["queue_wait_p95_s"] == pytest.approx(np.percentile(waits, 95), abs=1e-3)
    assert summary["end_to_end_p50_s"] == pytest.approx(np.percentile(ends, 50))
    assert summary["end_to_end_p95_s"] == pytest.approx(np.percentile(ends, 95))
    assert summarize([]) == {"songs": 0}


def test_added_time_uses_medians():
    figures = added_time([11.0, 10.5, 30.0], [10.0, 10.0, 9.0], [0.4, 0.5, 9.0])
    assert figures["median_jobs_s"] == 11.0 and figures["median_in_process_s"] == 10.0
    assert figures["added"] == pytest.approx(0.1) and figures["outside_share"] == pytest.approx(0.05)


def _stems(job: str) -> list[dict]:
    return [{"name": name, "key": f"results/{job}/{name}.wav", "sha256": f"{job}-{name}"} for name in ("a", "b")]


def _case():
    accepted = {"k1": "j1", "k2": "j2"}
    jobs = [{"id": "j1", "key": "k1", "status": "SUCCEEDED", "stems": {"a": "j1-a", "b": "j1-b"}},
            {"id": "j2", "key": "k2", "status": "SUCCEEDED", "stems": {"a": "j2-a", "b": "j2-b"}}]
    results = [{"job_id": "j1", "result_key": "r1", "stems": _stems("j1")},
               {"job_id": "j2", "result_key": "r2", "stems": _stems("j2")}]
    stored = {s["key"]: s["sha256"] for r in results for s in r["stems"]}
    return accepted, jobs, results, stored


def test_soak_verdict_clean_run():
    accepted, jobs, results, stored = _case()
    verdict = soak_verdict(accepted, jobs, results, stored.get)
    assert verdict["accepted"] == 2 and verdict["lost"] == 0 and verdict["duplicated"] == 0 and verdict["failed"] == 0


def test_soak_verdict_counts_lost_jobs():
    accepted, jobs, results, stored = _case()
    jobs[1]["status"] = "QUEUED"
    assert soak_verdict(accepted, jobs, results, stored.get)["lost"] == 1
    jobs[1]["status"] = "FAILED"
    verdict = soak_verdict(accepted, jobs, results, stored.get)
    assert verdict["lost"] == 1 and verdict["failed"] == 1
    assert soak_verdict({**accepted, "k3": "j3"}, jobs[:1], results, stored.get)["lost"] == 2  # one gone, one failed


def test_soak_verdict_counts_each_kind_of_duplicate():
    accepted, jobs, results, stored = _case()
    # a second job for the same idempotency key, with its own result
    extra = dict(jobs[0], id="j9")
    more = [*results, {"job_id": "j9", "result_key": "r9", "stems": _stems("j1")}]
    verdict = soak_verdict(accepted, [*jobs, extra], more, stored.get)
    assert verdict["extra_jobs"] == 1 and verdict["foreign_results"] == 1 and verdict["duplicated"] == 2
    # one job that wrote two results
    twice = [*results, {"job_id": "j1", "result_key": "r1b", "stems": _stems("j1")}]
    assert soak_verdict(accepted, jobs, twice, stored.get)["extra_results"] == 1
    # a stored stem that is not what the job reports (two attempts mixed)
    stored["results/j2/b.wav"] = "other"
    verdict = soak_verdict(accepted, jobs, results, stored.get)
    assert verdict["mismatched_results"] == 1 and verdict["duplicated"] == 1 and verdict["lost"] == 0


def test_table_fills_missing_columns():
    rows = table([{"part": "a", "x": 1}, {"part": "b", "y": {"1": 2}}])
    assert rows == [{"part": "a", "x": 1, "y": "-"}, {"part": "b", "x": "-", "y": '{"1": 2}'}]
