import numpy as np
import pytest

from bumphunt.cuts import branches_used, evaluate_cut
from bumphunt.errors import ConfigError

BRANCHES = {
    "fit_status": np.array([0, 0, 1, 0]),
    "fit_pvalue": np.array([0.5, 1e-4, np.nan, 0.02]),
    "m_ggg": np.array([10.5, 10.6, 9.0, 10.0]),
    "photon_E": np.ones((4, 3)),
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("", [True, True, True, True]),
        ("fit_status == 0", [True, True, False, True]),
        ("fit_status == 0 and fit_pvalue > 0.001", [True, False, False, True]),
        ("not fit_status == 0 or m_ggg < 10.2", [False, False, True, True]),
        ("10.1 < m_ggg <= 10.6", [True, True, False, False]),
        ("abs(m_ggg - 10.55) < 0.1 * 2", [True, True, False, False]),
    ],
)
def test_cuts(expression, expected):
    assert evaluate_cut(expression, BRANCHES, 4).tolist() == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("fit_status ==", "not a valid expression"),
        ("chi2 < 3", "no branch 'chi2'"),
        ("photon_E > 1", "not one value per event"),
        ("__import__('os').system('true')", "is not allowed in a cut"),
        ("m_ggg.sum() > 1", "is not allowed in a cut"),
    ],
)
def test_bad_cuts_are_config_errors(expression, message):
    with pytest.raises(ConfigError, match=message):
        evaluate_cut(expression, BRANCHES, 4)


def test_branches_used():
    assert branches_used("fit_status == 0 and abs(m_ggg) < 3") == {"fit_status", "m_ggg"}
    assert branches_used("  ") == set()
