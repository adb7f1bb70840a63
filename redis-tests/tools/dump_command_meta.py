#!/usr/bin/env python3
"""Dump a real redis-server's command metadata (COMMAND and COMMAND DOCS) as
the JSON file Strata's command table is built from.

Usage: dump_command_meta.py PORT > src/commands/redis-commands.json

The output maps each command name to {"info": <COMMAND INFO row>, "docs":
<COMMAND DOCS entry>}, exactly as redis-cli --json prints them, so that
Strata answers COMMAND INFO / COMMAND DOCS with Redis's own metadata.
"""
import json
import subprocess
import sys


def cli(port, *args):
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "--json", *args],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def main():
    port = int(sys.argv[1])
    version = subprocess.run(["redis-cli", "-p", str(port), "INFO", "server"],
                             check=True, capture_output=True, text=True).stdout
    infos = cli(port, "COMMAND")
    docs = cli(port, "COMMAND", "DOCS")
    table = {}
    for row in sorted(infos, key=lambda r: r[0]):
        name = row[0]
        table[name] = {"info": row, "docs": docs.get(name, {})}
    redis_version = [l.strip() for l in version.splitlines() if l.startswith("redis_version:")][0]
    json.dump({"source": redis_version, "commands": table}, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
