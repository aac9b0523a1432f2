"""The command line the Meta-LoRA jobs share: `--params` (settings, scale, device), `--records` (every
metrics.json the job writes, as the rule names them) and `--threads`.

A job checks its `--records` against the runs its settings imply, so a rule and the config cannot
silently disagree about which runs exist.
"""

from __future__ import annotations

import argparse
import json

import torch


def parser(description: str, records: str) -> argparse.ArgumentParser:
    """The shared arguments; a script adds its own (model, method) before `parse`."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=json.loads, required=True, help="JSON: the experiment's settings, scale and device")
    p.add_argument("--records", nargs="+", required=True, help=records)
    p.add_argument("--threads", type=int, default=1)
    return p


def parse(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def check_records(args: argparse.Namespace, expected: set[str], grid: str) -> None:
    if expected != set(args.records):
        raise SystemExit(f"the output paths do not match {grid}")
