"""Join the per-paper claim checks into results/scorecard.csv.

    python -m lorarepro.report.scorecard results/scorecard.csv results/*/claims.csv
"""

from __future__ import annotations

import argparse

import pandas as pd

from lorarepro.report.claims import SCORECARD_COLUMNS, write_csv


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output")
    parser.add_argument("claims", nargs="+")
    args = parser.parse_args(argv)
    table = pd.concat([pd.read_csv(p, dtype={"paper_value": str}) for p in args.claims], ignore_index=True)
    write_csv(table[SCORECARD_COLUMNS], args.output)
    print(table.groupby(["paper", "verdict"]).size().to_string())


if __name__ == "__main__":
    main()
