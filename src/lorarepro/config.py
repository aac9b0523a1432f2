"""Configuration: validate config.yaml against the JSON schema (filling defaults) and resolve one
experiment's settings for the chosen scale.

An experiment block in config.yaml looks like
    fig1a:
      common:  {m: 1000, r: 20}      # shared by every scale
      smoke:   {m: 60}               # overrides for `scale: smoke`
      default: {}
      paper:   {}
and `experiment_settings(config, "nora", "fig1a")` returns common deep-merged with the active scale.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCALES = ("smoke", "default", "paper")
PAPERS = ("meta_lora", "ntk_lora", "lora_one", "nora", "deep_lora")
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"


class ConfigError(ValueError):
    """A config value is wrong; the message names the key and what is allowed."""


def load_schema(schema_dir: Path = SCHEMA_DIR) -> tuple[dict, Registry]:
    """The top-level schema and a registry of every schema file it may $ref (by file name)."""
    resources = []
    for path in sorted(schema_dir.rglob("*.schema.yaml")):
        doc = yaml.safe_load(path.read_text())
        # A `$schema` key would make jsonschema switch to its stock validator inside $refs and
        # lose default-filling; every file is draft 2020-12, which the registry assumes.
        doc.pop("$schema", None)
        resources.append((path.relative_to(schema_dir).as_posix(), Resource.from_contents(doc, default_specification=DRAFT202012)))
    registry = Registry().with_resources(resources)
    return registry["config.schema.yaml"].contents, registry


def _extend_with_defaults(validator_class):
    """A validator that also fills `default:` values into the instance (objects created as needed)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _extend_with_defaults(jsonschema.Draft202012Validator)


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"config key {path}: unknown key(s) {unknown}; allowed keys are {allowed}"
    if error.validator == "enum":
        return f"config key {path}: {error.instance!r} is not allowed; allowed values are {error.validator_value}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        inner = sorted(error.context, key=lambda e: len(list(e.absolute_path)), reverse=True)[0]
        return _describe(inner) if list(inner.absolute_path) else f"config key {path}: {error.message}"
    return f"config key {path}: {error.message}"


def validate_config(config: dict, schema_dir: Path = SCHEMA_DIR) -> dict:
    """Validate `config` in place (filling defaults); raise ConfigError listing every problem."""
    schema, registry = load_schema(schema_dir)
    validator = _Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {_describe(e)}" for e in errors)
        raise ConfigError(f"config.yaml is invalid ({len(errors)} problem(s)); nothing was run:\n{lines}")
    for paper in PAPERS:
        for experiment in config.get(paper, {}).get("experiments", {}):
            check_settings(experiment_settings(config, paper, experiment), f"{paper}.experiments.{experiment}")
    return config


def deep_merge(base: Mapping, override: Mapping) -> dict:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def experiment_settings(config: Mapping, paper: str, experiment: str, scale: str | None = None) -> dict:
    """Settings of one experiment at the active (or given) scale: `common` merged with the scale block."""
    scale = scale or config["scale"]
    try:
        block = config[paper]["experiments"][experiment]
    except KeyError as err:
        raise ConfigError(f"config has no experiment {paper}.experiments.{experiment}") from err
    return deep_merge(block.get("common", {}), block.get(scale, {}))


def seeds_of(settings: Mapping) -> list[int]:
    """`seeds: 5` means seeds 0..4; a list is taken as given."""
    seeds = settings.get("seeds", 1)
    return list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]


def check_settings(settings: Mapping, where: str) -> None:
    """Cross-field checks a JSON schema cannot express, shared by every paper."""
    rank, dims = settings.get("r"), [settings.get(k) for k in ("m", "n", "d") if isinstance(settings.get(k), int)]
    if isinstance(rank, int) and dims and rank > min(dims):
        raise ConfigError(f"config key {where}: rank r={rank} exceeds the matrix dimension {min(dims)}")
    for key in ("ranks",):
        for r in settings.get(key, []) or []:
            if dims and r > min(dims):
                raise ConfigError(f"config key {where}.{key}: rank {r} exceeds the matrix dimension {min(dims)}")


def format_setting(values: Mapping[str, Any], keys: Iterable[str] | None = None) -> str:
    """A stable folder name for a setting, e.g. `eta=0.5_xi=1` (floats in short repr, keys sorted)."""
    keys = sorted(values) if keys is None else list(keys)
    parts = []
    for k in keys:
        v = values[k]
        if isinstance(v, float):
            v = f"{v:g}"
        parts.append(f"{k}={v}")
    return "_".join(parts) or "base"
