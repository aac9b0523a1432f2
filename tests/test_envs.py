"""The conda environments, checked without conda: they parse, use conda-forge, pin exactly the
versions of requirements/lock.txt, install the package, and every code-running rule names one."""

from __future__ import annotations

import re

import pytest
import yaml

ENVS = ["cpu", "gpu", "report"]


def lock_versions(repo_root) -> dict[str, str]:
    pins = {}
    for line in (repo_root / "requirements" / "lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


@pytest.mark.parametrize("env", ENVS)
def test_env_file_pins_match_the_lock(repo_root, env):
    spec = yaml.safe_load((repo_root / "envs" / f"{env}.yaml").read_text())
    assert spec["channels"] == ["conda-forge", "nodefaults"]
    deps = spec["dependencies"]
    assert "python =3.11" in deps and "pip" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    pins = dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", p).groups() for p in pip if not p.startswith("-"))
    lock = lock_versions(repo_root)
    assert pins["torch"] == lock["torch"] == "2.13.0"
    for name, version in pins.items():
        assert lock[name.lower().replace("_", "-")] == version, name
    post_deploy = (repo_root / "envs" / f"{env}.post-deploy.sh").read_text()
    assert "pip install --no-deps ." in post_deploy
    if env != "report":
        assert "-r requirements/assets.txt" in post_deploy and "papermill" not in pins
    else:
        assert {"papermill", "nbconvert", "ipykernel"} <= set(pins)


def test_lock_pins_the_cpu_torch_and_the_workflow_stack(repo_root):
    lock = lock_versions(repo_root)
    for name in ["torch", "transformers", "peft", "datasets", "snakemake", "snakemake-executor-plugin-slurm",
                 "papermill", "seaborn"]:
        assert name in lock, name
    assets = (repo_root / "requirements" / "assets.txt").read_text()
    assert len(re.findall(r"==\S+ --hash=sha256:[0-9a-f]{64}", assets)) == 5


def test_every_code_running_rule_names_a_conda_env(repo_root):
    """A rule with `shell:` must also have `conda:` (target-only rules have neither)."""
    for path in sorted((repo_root / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule |    rule:)", path.read_text()):
            if "shell:" in block or "script:" in block:
                assert "conda:" in block, f"{path.name}: {block.splitlines()[0]}"
