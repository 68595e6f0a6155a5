"""Paper benchmarks run through the product: Clotho, AudioCaps, MSR-VTT, ESC-50 and more.

``datasets`` parses each evaluation set as distributed; ``runner`` ingests its media with the
normal pipeline into a reusable index; ``evaluate`` runs the protocol (text queries through
the search layer, zero-shot classification of stored vectors); ``metrics`` is pure numpy;
``report`` holds the result record and the paper's numbers. ``bindsearch bench`` is the CLI.
Importing this package does not import torch; ``runner`` and ``evaluate`` do.
"""

from __future__ import annotations

from bindsearch.bench.report import PAPER, REPRODUCTION, BenchResult, MetricRow

__all__ = ["PAPER", "REPRODUCTION", "BenchResult", "MetricRow"]
