import pytest
import yaml

from bumphunt.config import default_config_text, load_config, load_yaml, set_by_path, signal_masses
from bumphunt.errors import ConfigError
from bumphunt.kinematics import Beams

from .bad_inputs import pattern


def _write(tmp_path, config):
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_default_config_is_valid_and_complete():
    config = load_config()
    assert config["beam"]["e_minus_energy"] == 7.0
    masses = signal_masses(config)
    # default grid: 0.175-10.375 GeV in 50 MeV steps
    assert masses[0] == pytest.approx(0.175) and masses[-1] == pytest.approx(10.375) and len(masses) == 205
    assert load_config(None) == yaml.safe_load(default_config_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["beam"].pop("e_plus_energy"), "config error: missing key 'beam.e_plus_energy'"),
        (lambda c: c.pop("luminosity"), "config error: missing key 'luminosity'"),
        (
            lambda c: c["beam"].update(e_plus_energie=4.0),
            "config error: unknown key 'beam.e_plus_energie' (did you mean 'e_plus_energy'?)",
        ),
        (lambda c: c.update(lumi=1), "config error: unknown key 'lumi'"),
        (lambda c: c.update(luminosity=-1.0), "config error at 'luminosity': -1.0 is less than or equal"),
        (
            lambda c: c["detector"].update(resolution="cms"),
            "config error at 'detector.resolution': 'cms' is not one of",
        ),
        (
            lambda c: c["simulation"]["signal"]["masses"].update(stop=11.0),
            "config error at 'simulation.signal.masses.stop': 11.0 GeV is not below sqrt(s)",
        ),
        (
            lambda c: c["detector"].update(theta_min_deg=160.0),
            "config error at 'detector.theta_min_deg': must be below",
        ),
        (
            lambda c: c["detector"]["tracking"].update(theta_min_deg=160.0),
            "config error at 'detector.tracking.theta_min_deg': must be below",
        ),
        (
            lambda c: c["beam"].update(isr="yes"),
            "config error at 'beam.isr': 'yes' is not of type 'boolean'",
        ),
        (
            lambda c: c["simulation"]["backgrounds"]["ggg"].update(events="many"),
            "config error at 'simulation.backgrounds.ggg.events': 'many' is not of type 'integer'",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path, mutate, message):
    config = load_config()
    mutate(config)
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, config))
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_overrides_and_their_errors():
    config = load_config(None, {"simulation.signal.events_per_mass": 10, "seed": 3})
    assert config["simulation"]["signal"]["events_per_mass"] == 10 and config["seed"] == 3
    with pytest.raises(ConfigError, match="config error: unknown key 'simulation.signal.events_per_masss' in override"):
        load_config(None, {"simulation.signal.events_per_masss": 10})
    with pytest.raises(ConfigError, match="config error: unknown key 'simulatio'"):
        load_config(None, {"simulatio.signal.events_per_mass": 10})


def test_unreadable_or_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("beam: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(bad)


def test_documented_keys_match_the_schema():
    from pathlib import Path

    from bumphunt.config import schema_table_markdown

    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    assert schema_table_markdown() in doc
    assert default_config_text().rstrip() in doc


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("luminosity", float("nan")),
        ("luminosity", float("inf")),
        ("beam.crossing_angle", float("nan")),
        ("scan.inject.events", float("inf")),
        ("scan.global_level", float("inf")),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_key(tmp_path, key, value):
    """NaN passes every bound of the schema (nan > 0 is False): each is refused by name, from a
    file (``.nan``, ``.inf``) and from an override."""
    config = load_config()
    set_by_path(config, key, value)
    expected = pattern("config-non-finite", setting=key, value=str(value))
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, config))
    with pytest.raises(ConfigError, match=expected):
        load_config(None, {key: value})


@pytest.mark.parametrize(("start", "stop"), [(2.0, 2.0), (4.0, 1.5)])
def test_scan_range_must_be_ordered(start, stop):
    with pytest.raises(ConfigError, match=pattern("config-scan-range", start=start, stop=stop)):
        load_config(None, {"scan.start": start, "scan.stop": stop})


@pytest.mark.parametrize("stop", [10.6, 12.0])
def test_scan_range_must_stay_below_sqrt_s(stop):
    sqrt_s = f"{Beams.from_config(load_config()).sqrt_s:.4f}"
    with pytest.raises(ConfigError, match=pattern("config-scan-beyond-sqrt-s", stop=stop, sqrt_s=sqrt_s)):
        load_config(None, {"scan.stop": stop})


def test_zero_signal_events_are_refused():
    with pytest.raises(ConfigError, match=pattern("config-no-signal-events")):
        load_config(None, {"simulation.signal.events_per_mass": 0})
    assert load_config(None, {"simulation.signal.events_per_mass": 1})["simulation"]["signal"]["events_per_mass"] == 1


def test_yaml_numbers_with_exponents_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads 1e3 as a string; bumphunt reads it as YAML 1.2 does."""
    assert load_yaml("[1e3, 2.5e-3, 1e-3, .5E3, +2e4, -1e+2, 1.0e+3, 12, 0.5, 1e3x, '1e3']") == [
        1000.0, 0.0025, 0.001, 500.0, 20000.0, -100.0, 1000.0, 12, 0.5, "1e3x", "1e3",
    ]  # fmt: skip
    text = default_config_text()
    for old, new in [
        ("luminosity: 445.0", "luminosity: 1e3"),
        ("coupling: 1.0e-3", "coupling: 1e-3"),
        ("events_per_mass: 20000", "events_per_mass: 2e4"),
        ("ggg:\n      events: 1000000", "ggg:\n      events: 1E6"),
    ]:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "exponents.yaml"
    path.write_text(text)
    config = load_config(path)
    assert config["luminosity"] == 1000.0 and config["simulation"]["signal"]["coupling"] == 1e-3
    # whole numbers where the schema asks for an integer come back as ints
    events = config["simulation"]["signal"]["events_per_mass"], config["simulation"]["backgrounds"]["ggg"]["events"]
    assert events == (20000, 1000000) and all(type(n) is int for n in events)
    with pytest.raises(ConfigError, match="config error at 'simulation.signal.events_per_mass': 2.5 is not of type"):
        load_config(None, {"simulation.signal.events_per_mass": 2.5})
