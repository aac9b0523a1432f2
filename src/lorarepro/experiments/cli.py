"""The command line every experiment script shares:

    python -m lorarepro.experiments.<paper>.<script> --params '<json>' --root results [--inputs ...]

`--params` carries the experiment's resolved settings (config `common` merged with the scale's
block, plus `scale` and `device`); outputs go to run folders under `--root` (records.run_dir).
"""

from __future__ import annotations

import argparse
import json


def parse_args(description: str, *, inputs: bool = False, outputs: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="JSON object of resolved settings")
    parser.add_argument("--root", default="results", help="folder that holds results/<paper>/...")
    if inputs:
        parser.add_argument("--inputs", nargs="+", default=[])
    if outputs:
        parser.add_argument("--outputs", nargs="+", default=[])
    return parser.parse_args()


def parse_paths(description: str, *flags: str, argv=None) -> argparse.Namespace:
    """`--params` (JSON, parsed) and one required path or name per flag: the command line of a script
    that reads and writes named files rather than run folders."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="JSON object of resolved settings")
    for flag in flags:
        parser.add_argument(flag, required=True)
    return parser.parse_args(argv)


def resolve_device(requested: str) -> str:
    """`auto` is CUDA when a GPU is visible, else CPU."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested
