"""benchmarks/http_load.py's helpers: the offered load and the medians it reports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# Loaded by path: benchmarks/ on sys.path would shadow modules named build, run...
_SPEC = importlib.util.spec_from_file_location(
    "http_load", Path(__file__).resolve().parent.parent / "benchmarks" / "http_load.py")
http_load = importlib.util.module_from_spec(_SPEC)
sys.modules["http_load"] = http_load  # dataclasses look their module up
_SPEC.loader.exec_module(http_load)


def test_rate_pause_offers_about_the_rate_over_all_connections():
    assert http_load.rate_delay_ms(1000, 10_000) == 100  # 1,000 connections x 10 requests/s
    assert http_load.rate_delay_ms(32, 1_000) == 32
    assert http_load.rate_delay_ms(10, 1e9) == 1  # never a zero pause (wrk would not pause at all)


def test_the_median_round_carries_the_median_cpu_of_every_round():
    rounds = [http_load.Result("x", "wrk", rps=rps, cpu_us_per_request=cpu)
              for rps, cpu in ((100.0, 9.0), (300.0, 30.0), (200.0, 11.0))]
    middle = http_load.median_result(rounds)
    assert middle.rps == 200.0  # the round with the median requests/s, its latencies with it
    assert middle.cpu_us_per_request == 11.0  # the median of 9, 30, 11
    assert middle.extra["rounds_cpu_us_per_request"] == [9.0, 30.0, 11.0]
    assert middle.extra["rounds_rps"] == [100, 300, 200]


@pytest.mark.parametrize("argv", [["--rate", "0"], ["--rate", "100", "--tool", "trio"]])
def test_a_rate_needs_wrk_and_a_positive_value(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        http_load.main(argv + ["--targets", "h11"])
    assert exit_.value.code == 2 and "--rate needs wrk" in capsys.readouterr().err
