"""Parses a /metrics body (stdin) with prometheus_client's text-format parser, the one
Python's Prometheus client ships, and prints every sample as JSON for tests/metrics.rs.
A body the parser rejects makes it exit non-zero with the parser's error."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append(
            {
                "family": family.name,
                "type": family.type,
                "name": sample.name,
                "labels": sample.labels,
                "value": sample.value,
            }
        )
json.dump(samples, sys.stdout)
