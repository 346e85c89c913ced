"""How big each benchmark runs: the full run, and ``--smoke`` (seconds, for tests)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "SMOKE", "Sizes"]


@dataclass(frozen=True)
class Sizes:
    startup_runs: int  # spawns of each server
    throughput_deltas: int  # deltas per stream
    throughput_rounds: int  # rounds of every contender, alternated
    paced_deltas: int  # deltas per stream at 100 deltas/s
    paced_rounds: int
    flat_deltas: int  # deltas per stream, flat out, with timestamps
    flat_rounds: int
    failover_runs: int
    streams: int  # concurrent streams
    concurrent_deltas: int  # deltas per concurrent stream
    concurrent_rounds: int
    smoke: bool = False
    goodput_pools: tuple[int, ...] = (1, 3, 10)  # keys in the pool, K
    goodput_loads: tuple[float, ...] = (0.5, 0.9, 1.1, 1.5)  # offered load, × capacity
    goodput_seconds: float = 4.0  # arrivals come for this long, per run (two periods)
    goodput_rounds: int = 1  # runs of each (K, load, contender), alternated
    goodput_period: float = 2.0  # the providers' minute, scaled: every limit is per this


FULL = Sizes(
    startup_runs=21,
    throughput_deltas=20_000,
    throughput_rounds=5,
    paced_deltas=400,
    paced_rounds=4,
    flat_deltas=20_000,
    flat_rounds=4,
    failover_runs=41,
    streams=100,
    concurrent_deltas=300,
    concurrent_rounds=3,
)

SMOKE = Sizes(
    startup_runs=1,
    throughput_deltas=200,
    throughput_rounds=1,
    paced_deltas=10,
    paced_rounds=1,
    flat_deltas=200,
    flat_rounds=1,
    failover_runs=2,
    streams=10,
    concurrent_deltas=20,
    concurrent_rounds=1,
    smoke=True,
    goodput_pools=(2,),
    goodput_loads=(0.5, 1.5),
    goodput_seconds=0.5,
    goodput_period=0.5,
)
