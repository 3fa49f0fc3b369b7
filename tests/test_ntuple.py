import numpy as np
import pytest
import uproot
from numpy.testing import assert_array_equal

from bumphunt.errors import NtupleError
from bumphunt.ntuple import (
    BRANCHES,
    NtupleWriter,
    branch_table_markdown,
    iterate_ntuple,
    num_entries,
    read_metadata,
    read_ntuple,
)


def _random_events(rng, n):
    chunk = {}
    for name, branch in BRANCHES.items():
        shape = (n, *branch.shape)
        if branch.dtype.startswith("int"):
            chunk[name] = rng.integers(-5, 1000, shape).astype(branch.dtype)
        else:
            chunk[name] = rng.normal(size=shape).astype(branch.dtype)
    chunk["gen_mass"][::7] = np.nan
    return chunk


def test_round_trip_preserves_every_branch(tmp_path):
    rng = np.random.default_rng(0)
    chunks = [_random_events(rng, n) for n in (1000, 0, 2500)]
    path = tmp_path / "sample.root"
    with NtupleWriter(path) as writer:
        for chunk in chunks:
            writer.extend(chunk)
        writer.metadata = {"sample": "test", "n_generated": 3500}
    assert writer.entries == 3500 == num_entries(path)
    data = read_ntuple(path)
    assert set(data) == set(BRANCHES)
    for name, branch in BRANCHES.items():
        expected = np.concatenate([c[name] for c in chunks])
        assert data[name].dtype == np.dtype(branch.dtype)
        assert_array_equal(data[name], expected)
    assert read_metadata(path) == {"ntuple_version": 1, "sample": "test", "n_generated": 3500}
    # ROOT sees fixed-size array branches
    with uproot.open(path) as file:
        assert file["events"]["photon_cov"].typename == "float[3][6]"
    pieces = list(iterate_ntuple(path, ["photon_E", "weight"], step_size=1000))
    assert [len(p["weight"]) for p in pieces] == [1000, 1000, 1000, 500]
    assert_array_equal(np.concatenate([p["photon_E"] for p in pieces]), data["photon_E"])


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "sample.root"
    rng = np.random.default_rng(1)
    with pytest.raises(RuntimeError, match="interrupted"):
        with NtupleWriter(path) as writer:
            writer.extend(_random_events(rng, 100))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_chunks(tmp_path):
    rng = np.random.default_rng(2)
    with NtupleWriter(tmp_path / "x.root") as writer:
        chunk = _random_events(rng, 10)
        del chunk["weight"]
        with pytest.raises(ValueError, match=r"missing \['weight'\]"):
            writer.extend(chunk)
        chunk = _random_events(rng, 10)
        chunk["photon_E"] = chunk["photon_E"][:, :2]
        with pytest.raises(ValueError, match="branch photon_E: shape"):
            writer.extend(chunk)


def test_reader_errors_name_what_is_missing(tmp_path):
    with pytest.raises(NtupleError, match="nothing.root: no such file"):
        read_ntuple(tmp_path / "nothing.root")
    not_root = tmp_path / "text.root"
    not_root.write_text("hello")
    with pytest.raises(NtupleError, match="not a readable ROOT file"):
        read_ntuple(not_root)
    path = tmp_path / "partial.root"
    with uproot.recreate(path) as file:
        file["events"] = {"photon_E": np.ones((3, 3)), "weight": np.ones(3)}
        file["other"] = {"x": np.ones(2)}
    with pytest.raises(NtupleError, match="lacks branch\\(es\\) photon_theta, photon_cov"):
        read_ntuple(path, ["photon_E", "photon_theta", "photon_cov"])
    with pytest.raises(NtupleError, match="lacks branch\\(es\\) photon_phi"):
        next(iterate_ntuple(path, ["photon_phi"]))
    with pytest.raises(NtupleError, match="no tree 'missing' \\(found: events, other\\)"):
        read_ntuple(path, tree="missing")
    with pytest.raises(NtupleError, match="no 'metadata' object"):
        read_metadata(path)


def test_documented_schema_lists_every_branch():
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "ntuple.md").read_text()
    assert branch_table_markdown() in doc
