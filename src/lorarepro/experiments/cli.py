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


def job_parser(description: str) -> argparse.ArgumentParser:
    """The command line of a job that runs many engine runs of one task (train/job.py): settings JSON,
    task, threads and the folders of results and assets; scripts add their own flags."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="JSON object of resolved settings")
    parser.add_argument("--task", required=True)
    parser.add_argument("--root", default="results", help="folder that holds results/<paper>/...")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default="resources/data")
    parser.add_argument("--models-root", default="resources/models")
    return parser
