"""Analysis configuration: one YAML file, validated against a schema shipped with bumphunt.

A configuration must be complete: start from the bundled default
(``bumphunt config show > my.yaml``) and edit it. Every problem is reported as a
:class:`ConfigError` whose one-line message names the offending key.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from .errors import ConfigError
from .kinematics import Beams
from .samples import analysis_samples
from .systematics import Systematics

DEFAULT_CONFIG_NAME = "default.yaml"


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads ``1e3``, ``1E-3`` or ``.5e3`` as numbers.

    PyYAML resolves plain scalars by YAML 1.1, whose floats need a dot and a signed exponent,
    so ``1e3`` would be the string ``"1e3"``; YAML 1.2 reads a number, and so does bumphunt,
    which reads every YAML text with this loader (:func:`load_yaml`).
    """


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text like ``yaml.safe_load``, with YAML 1.2 numbers (:class:`YamlLoader`)."""
    return yaml.load(text, Loader=YamlLoader)  # safe: a SafeLoader subclass


@cache
def schema() -> dict:
    """The JSON schema of an analysis configuration."""
    return json.loads(resources.files("bumphunt.schemas").joinpath("config.schema.json").read_text())


def default_config_text() -> str:
    """The bundled default configuration, as YAML text with its comments."""
    return resources.files("bumphunt.data").joinpath(DEFAULT_CONFIG_NAME).read_text()


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict:
    """Read, override and validate an analysis configuration.

    Parameters
    ----------
    path : str or Path, optional
        YAML file; the bundled default when None.
    overrides : dict, optional
        Values to set before validation, keyed by dotted paths such as
        ``"simulation.signal.events_per_mass"``.

    Returns
    -------
    dict
        The validated configuration.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, or a key is missing, unknown or invalid.
    """
    if path is None:
        text, source = default_config_text(), "default configuration"
    else:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as error:
            raise ConfigError(f"cannot read configuration {path}: {error.strerror or error}") from None
        source = str(path)
    try:
        config = load_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{source} must hold a mapping of keys, not {type(config).__name__}")
    for key, value in (overrides or {}).items():
        set_by_path(config, key, value)
    validate(config)
    return config


def set_by_path(config: dict, dotted_key: str, value: Any) -> None:
    """Set ``config["a"]["b"] = value`` for ``dotted_key = "a.b"``, refusing unknown keys."""
    *parents, leaf = dotted_key.split(".")
    node = config
    for depth, key in enumerate(parents):
        if not isinstance(node.get(key), dict):
            raise ConfigError(
                f"config error: unknown key '{'.'.join(parents[: depth + 1])}' in override {dotted_key!r}"
            )
        node = node[key]
    if leaf not in node:
        raise ConfigError(f"config error: unknown key '{dotted_key}' in override{_suggestion(leaf, node)}")
    node[leaf] = value


def validate(config: dict) -> None:
    """Check a configuration against the schema and the physics; raise :class:`ConfigError`.

    Whole numbers written as floats where the schema asks for an integer (``events: 2e4``)
    are made ints in place.
    """
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(
        validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    if errors:
        raise ConfigError(_describe(errors[0], config))
    _check_finite(config, "")
    _coerce_integers(config, schema())
    _check_semantics(config)


def _coerce_integers(node: dict, spec: dict) -> None:
    for key, sub in spec.get("properties", {}).items():
        value = node.get(key)
        if sub.get("type") == "integer" and isinstance(value, float):
            node[key] = int(value)  # the schema accepted it, so it is whole
        elif sub.get("type") == "object" and isinstance(value, dict):
            _coerce_integers(value, sub)


def _check_finite(node: Any, location: str) -> None:
    """Refuse NaN and infinities anywhere (they pass the schema's bounds: nan > 0 is False)."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_finite(value, f"{location}.{key}" if location else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_finite(value, f"{location}.{index}" if location else str(index))
    elif isinstance(node, numbers.Real) and not isinstance(node, bool) and not math.isfinite(node):
        raise ConfigError(f"config error at '{location}': {node} is not a finite number")


def _describe(error, config: dict) -> str:
    location = ".".join(str(p) for p in error.absolute_path)
    where = f"'{location}'" if location else "top level"
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        full = ".".join(filter(None, [location, missing[0]]))
        return f"config error: missing key '{full}'"
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        unknown = [key for key in error.instance if key not in allowed]
        full = ".".join(filter(None, [location, str(unknown[0])]))
        return f"config error: unknown key '{full}'{_suggestion(str(unknown[0]), allowed)}"
    return f"config error at {where}: {error.message}"


def _suggestion(key: str, candidates) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_semantics(config: dict) -> None:
    detector = config["detector"]
    if detector["theta_min_deg"] >= detector["theta_max_deg"]:
        raise ConfigError("config error at 'detector.theta_min_deg': must be below detector.theta_max_deg")
    tracking = detector["tracking"]
    if tracking["theta_min_deg"] >= tracking["theta_max_deg"]:
        raise ConfigError(
            "config error at 'detector.tracking.theta_min_deg': must be below detector.tracking.theta_max_deg"
        )
    Systematics.from_config(config["systematics"])  # repeated names, unordered size tables
    preselection = config["preselection"]
    if preselection["m_ggg_min"] >= preselection["m_ggg_max"]:
        raise ConfigError("config error at 'preselection.m_ggg_min': must be below preselection.m_ggg_max")
    masses = config["simulation"]["signal"]["masses"]
    if masses["start"] > masses["stop"]:
        raise ConfigError("config error at 'simulation.signal.masses.start': must not exceed masses.stop")
    sqrt_s = Beams.from_config(config).sqrt_s
    if masses["stop"] >= sqrt_s:
        raise ConfigError(
            f"config error at 'simulation.signal.masses.stop': {masses['stop']} GeV "
            f"is not below sqrt(s) = {sqrt_s:.4f} GeV"
        )
    _check_samples(config)
    if config["simulation"]["signal"]["events_per_mass"] == 0 and not config.get("samples"):
        raise ConfigError(
            "config error at 'simulation.signal.events_per_mass': no signal events, so no signal shapes "
            "to fit and no limits to set (simulate some, e.g. 2000 per mass)"
        )
    scan = config["scan"]
    if scan["start"] >= scan["stop"]:
        raise ConfigError(
            f"config error at 'scan.start': {scan['start']} GeV is not below scan.stop = {scan['stop']} GeV"
        )
    if scan["stop"] >= sqrt_s:
        raise ConfigError(f"config error at 'scan.stop': {scan['stop']} GeV is not below sqrt(s) = {sqrt_s:.4f} GeV")
    count = config["count"]
    if count["start"] > count["stop"]:
        raise ConfigError(
            f"config error at 'count.start': {count['start']} GeV is above count.stop = {count['stop']} GeV"
        )


def _check_samples(config: dict) -> None:
    """One signal sample and at most one data sample; each sample readable as described."""
    if not config.get("samples"):
        if config.get("unblind"):
            raise ConfigError("config error at 'unblind': there is no data to unblind (no sample has role data)")
        return
    samples = analysis_samples(config)
    roles = [sample.role for sample in samples.values()]
    if roles.count("signal") != 1:
        raise ConfigError(
            f"config error at 'samples': needs exactly one sample of role signal, found {roles.count('signal')}"
        )
    if roles.count("data") > 1:
        raise ConfigError(f"config error at 'samples': at most one sample of role data, found {roles.count('data')}")
    if config.get("unblind") and "data" not in roles:
        raise ConfigError("config error at 'unblind': there is no data to unblind (no sample has role data)")


def signal_masses(config: dict) -> np.ndarray:
    """The generated ALP mass grid (GeV), ``stop`` included, rounded to 1 keV."""
    grid = config["simulation"]["signal"]["masses"]
    n_steps = int(np.floor((grid["stop"] - grid["start"]) / grid["step"] + 1e-9))
    return np.round(grid["start"] + grid["step"] * np.arange(n_steps + 1), 6)


def schema_table_markdown() -> str:
    """Every configuration key with its type and description, as a Markdown table."""
    lines = ["| key | type | description |", "| --- | --- | --- |"]

    def walk(node: dict, prefix: str) -> None:
        for key, spec in node.get("properties", {}).items():
            path = f"{prefix}.{key}" if prefix else key
            kind = spec.get("type") or " or ".join(map(repr, spec.get("enum", [])))
            if "anyOf" in spec:
                kind = " or ".join(str(a.get("type") or repr(a.get("const"))) for a in spec["anyOf"])
            lines.append(f"| `{path}` | {kind} | {spec.get('description', '')} |")
            if spec.get("type") == "object":
                walk(spec, path)

    walk(schema(), "")
    return "\n".join(lines)
