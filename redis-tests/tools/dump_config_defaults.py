#!/usr/bin/env python3
"""Dump a freshly started redis-server's CONFIG GET * as Strata's table of
Redis configuration parameters and their defaults (name TAB value per line).

Usage: dump_config_defaults.py PORT > src/config-defaults.tsv

Strata accepts and remembers every parameter Redis knows, so CONFIG GET/SET
from existing tools work; parameters it does not know are rejected as Redis
rejects them.
"""
import json
import subprocess
import sys

out = subprocess.run(
    ["redis-cli", "-p", sys.argv[1], "--json", "CONFIG", "GET", "*"],
    check=True, capture_output=True, text=True,
).stdout
for name, value in sorted(json.loads(out).items()):
    assert "\t" not in value and "\n" not in value, name
    print(f"{name}\t{value}")
