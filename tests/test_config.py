import pytest
import yaml

from bumphunt.config import default_config_text, load_config, signal_masses
from bumphunt.errors import ConfigError


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
