"""Analysis configuration: one YAML file, validated against a schema shipped with bumphunt.

A configuration must be complete: start from the bundled default
(``bumphunt config show > my.yaml``) and edit it. Every problem is reported as a
:class:`ConfigError` whose one-line message names the offending key.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import numbers
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from .errors import BumphuntError, ConfigError
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


#: The analyses bundled with bumphunt beside the default one: dotted keys set over a
#: configuration (``bumphunt run --analysis NAME``), by name.
BUNDLED_ANALYSES = {
    "quick": "the chain reduced to a smoke test (about a minute on two cores)",
    "run1": "Belle II Run 1: 362 fb^-1, the expected sensitivity",
}


def bundled_analysis(name: str | None) -> dict[str, Any]:
    """The dotted keys of the bundled analysis ``name`` (:data:`BUNDLED_ANALYSES`; none for None)."""
    if name is None:
        return {}
    if name not in BUNDLED_ANALYSES:
        raise ConfigError(f"no bundled analysis {name!r}; choose from {', '.join(BUNDLED_ANALYSES)}")
    return load_yaml(resources.files("bumphunt.data").joinpath(f"{name}.yaml").read_text()) or {}


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
    _check_schema(jsonschema.Draft202012Validator(schema()), config)
    _check_finite(config, "")
    _coerce_integers(config, schema())
    _check_semantics(config)


def validate_settings(section: str, values: Mapping[str, Any]) -> dict:
    """Check some settings of a configuration section as :func:`load_config` checks them.

    A public function that takes settings (``scan_spectrum(confidence_level=...)``, the
    counting model's ``tau``, the zfit model's window) passes them here under the
    configuration keys they stand for: the same JSON schema, the same check for NaN and
    infinities and the same semantic checks (``scan.start`` below ``scan.stop``, the
    systematic sources) as a configuration file or ``--set`` gets, with the same one-line
    message. Keys of the section that are not given are not required.

    Parameters
    ----------
    section : str
        The section the keys belong to: ``"scan"``, ``"count"``, ``"systematics"``, a dotted
        path such as ``"simulation.signal"``, or ``""`` for top-level keys (``luminosity``).
    values : mapping
        Settings by their key in ``section``.

    Returns
    -------
    dict
        The settings as :func:`load_config` holds them: numpy scalars and arrays as python
        numbers and lists, whole numbers given to an integer key as ints.

    Raises
    ------
    ConfigError
        An unknown key or an invalid value, e.g. ``config error at 'scan.confidence_level':
        1.5 is greater than or equal to the maximum of 1``.
    """
    path = [part for part in section.split(".") if part]
    spec = _section_schema(tuple(path))
    values = _plain(dict(values))
    instance: Any = values
    for part in reversed(path):
        instance = {part: instance}
    _check_schema(_partial_validator(tuple(path)), instance)
    _check_finite(values, ".".join(path))
    _coerce_integers(values, spec)
    _check_section(".".join(path), values)
    return values


def validate_arguments(function: str, values: Mapping[str, Any], properties: Mapping[str, dict]) -> dict:
    """Check arguments of a public function that stand for no configuration key (a starting
    yield, a mass) against JSON-schema ``properties``, in the words of the configuration's
    messages: ``{function}: argument '{name}': -5 is less than the minimum of 0``.

    Returns the values as python numbers; raises :class:`BumphuntError`.
    """
    values = _plain(dict(values))
    validator = jsonschema.Draft202012Validator({"type": "object", "properties": dict(properties)})
    for name, value in values.items():
        errors = list(validator.iter_errors({name: value}))
        if errors:
            raise BumphuntError(f"{function}: argument '{name}': {errors[0].message}")
        bad = _non_finite(value, name)
        if bad is not None:
            raise BumphuntError(f"{function}: argument '{bad[0]}': {bad[1]} is not a finite number")
    return values


@cache
def _section_schema(path: tuple[str, ...]) -> dict:
    spec = schema()
    for depth, part in enumerate(path):
        properties = spec.get("properties", {})
        if part not in properties or properties[part].get("type") != "object":
            raise ValueError(f"no configuration section {'.'.join(path[: depth + 1])!r}")
        spec = properties[part]
    return spec


@cache
def _partial_validator(path: tuple[str, ...]) -> jsonschema.Draft202012Validator:
    """The configuration's validator with no key required on the way to ``path`` and in it
    (the objects below, such as ``scan.inject``, keep theirs)."""
    partial = copy.deepcopy(schema())
    node = partial
    node.pop("required", None)
    for part in path:
        node = node["properties"][part]
        node.pop("required", None)
    return jsonschema.Draft202012Validator(partial)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, and tuples, as the python numbers and lists YAML gives."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _check_schema(validator, instance) -> None:
    """The first schema error (the shallowest, then by key), as :func:`_describe` words it."""
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    if errors:
        raise ConfigError(_describe(errors[0], instance))


def _coerce_integers(node: dict, spec: dict) -> None:
    for key, sub in spec.get("properties", {}).items():
        value = node.get(key)
        if sub.get("type") == "integer" and isinstance(value, float):
            node[key] = int(value)  # the schema accepted it, so it is whole
        elif sub.get("type") == "object" and isinstance(value, dict):
            _coerce_integers(value, sub)


def _check_finite(node: Any, location: str) -> None:
    """Refuse NaN and infinities anywhere (they pass the schema's bounds: nan > 0 is False)."""
    bad = _non_finite(node, location)
    if bad is not None:
        raise ConfigError(f"config error at '{bad[0]}': {bad[1]} is not a finite number")


def _non_finite(node: Any, location: str) -> tuple[str, float] | None:
    """The location and value of the first NaN or infinity in ``node``, None when there is none."""
    if isinstance(node, dict):
        items = ((f"{location}.{key}" if location else str(key), value) for key, value in node.items())
    elif isinstance(node, list):
        items = ((f"{location}.{index}" if location else str(index), value) for index, value in enumerate(node))
    elif isinstance(node, numbers.Real) and not isinstance(node, bool) and not math.isfinite(node):
        return location, node
    else:
        return None
    for where, value in items:
        bad = _non_finite(value, where)
        if bad is not None:
            return bad
    return None


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
    _check_section("systematics", config["systematics"])
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
    _check_section("scan", scan)
    if scan["stop"] >= sqrt_s:
        raise ConfigError(f"config error at 'scan.stop': {scan['stop']} GeV is not below sqrt(s) = {sqrt_s:.4f} GeV")
    _check_section("count", config["count"])


def _check_section(section: str, values: dict) -> None:
    """The semantic checks within one section that its own keys allow (what
    :func:`validate_settings` can check of a part of a configuration); a check whose keys
    are not all given is skipped."""
    if section == "systematics" and "sources" in values:
        Systematics.from_config(values)  # repeated names, unordered size tables
    elif section == "scan" and {"start", "stop"} <= values.keys():
        if values["start"] >= values["stop"]:
            raise ConfigError(
                f"config error at 'scan.start': {values['start']} GeV is not below scan.stop = {values['stop']} GeV"
            )
    elif section == "count" and {"start", "stop"} <= values.keys():
        if values["start"] > values["stop"]:
            raise ConfigError(
                f"config error at 'count.start': {values['start']} GeV is above count.stop = {values['stop']} GeV"
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
            kind = " or ".join(_kind(a) for a in spec["anyOf"]) if "anyOf" in spec else _kind(spec)
            lines.append(f"| `{path}` | {kind} | {spec.get('description', '')} |")
            if spec.get("type") == "object":
                walk(spec, path)

    walk(schema(), "")
    return "\n".join(lines)


def _kind(spec: dict) -> str:
    """The type of a schema node with the range a number must lie in: ``number in (0, 1)``,
    ``integer >= 0``, ``number > 0 or null``."""
    if "enum" in spec:
        return " or ".join(map(repr, spec["enum"]))
    if "const" in spec:
        return repr(spec["const"])
    types = spec.get("type", "any")
    types = [types] if isinstance(types, str) else list(types)
    low = ("(", spec["exclusiveMinimum"]) if "exclusiveMinimum" in spec else ("[", spec.get("minimum"))
    high = (")", spec["exclusiveMaximum"]) if "exclusiveMaximum" in spec else ("]", spec.get("maximum"))
    if low[1] is not None and high[1] is not None:
        bound = f" in {low[0]}{low[1]}, {high[1]}{high[0]}"
    elif low[1] is not None:
        bound = f" {'>' if low[0] == '(' else '>='} {low[1]}"
    elif high[1] is not None:
        bound = f" {'<' if high[0] == ')' else '<='} {high[1]}"
    else:
        bound = ""
    return " or ".join(f"{kind}{bound}" if kind in ("number", "integer") else kind for kind in types)
