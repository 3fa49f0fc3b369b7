import numpy as np
import pytest
import uproot
from click.testing import CliRunner
from numpy.testing import assert_array_equal

from bumphunt.cli import main
from bumphunt.errors import NtupleError
from bumphunt.ntuple import (
    BRANCHES,
    Branch,
    NtupleWriter,
    branch_table_markdown,
    check_branches,
    friend_fingerprint,
    iterate_ntuple,
    num_entries,
    read_metadata,
    read_ntuple,
)

from .bad_inputs import message, pattern


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


def _written(tmp_path, n=3000):
    path = tmp_path / "sample.root"
    with NtupleWriter(path) as writer:
        writer.extend(_random_events(np.random.default_rng(3), n))
        writer.metadata = {"sample": "test"}
    return path


def _basket_data(path, branch):
    """(start, stop) byte offsets of the compressed data of the first basket of ``branch``."""
    with uproot.open(path) as file:
        ttree = file["events"]
        seek, nbytes = int(ttree[branch].member("fBasketSeek")[0]), int(ttree[branch].member("fBasketBytes")[0])
        basket = ttree[branch].basket(0)
        keylen, objlen = basket.member("fKeylen"), basket.member("fObjlen")
    assert nbytes - keylen < objlen, "the basket must be stored compressed"
    return seek + keylen, seek + nbytes


def _readers(path):
    """Every reader of bumphunt.ntuple, reading everything it reads."""
    return {
        "read_ntuple": lambda: read_ntuple(path),
        "iterate_ntuple": lambda: list(iterate_ntuple(path, step_size=1000)),
        "check_branches": lambda: check_branches(path, ["weight"]),
        "num_entries": lambda: num_entries(path),
        "read_metadata": lambda: read_metadata(path),
    }


def test_baskets_are_compressed_with_a_checksum(tmp_path):
    path = _written(tmp_path)
    with uproot.open(path) as file:
        assert file.file.fCompress == 100 * uproot.const.kZSTD + 1
        for branch in file["events"].branches:
            assert branch.compressed_bytes < branch.uncompressed_bytes, branch.name
    start, stop = _basket_data(path, "photon_E")
    frame = path.read_bytes()[start + 9 : stop]  # after ROOT's 9-byte block header: a zstd frame
    assert frame[:4] == b"\x28\xb5\x2f\xfd" and frame[4] & 0x04, "zstd frame with its content checksum flag"


def test_truncated_file_is_refused_by_every_reader(tmp_path):
    path = _written(tmp_path)
    content = path.read_bytes()
    truncated = tmp_path / "truncated.root"
    for size in (len(content) // 2, len(content) - 1, 200):
        truncated.write_bytes(content[:size])
        expected = pattern("ntuple-truncated", path=truncated, size=size, expected=len(content))
        for reader in _readers(truncated).values():
            with pytest.raises(NtupleError, match=expected):
                reader()


def test_corrupted_basket_is_refused_naming_the_branch(tmp_path):
    path = _written(tmp_path)
    start, stop = _basket_data(path, "photon_theta")
    content = bytearray(path.read_bytes())
    middle = (start + stop) // 2
    content[middle : middle + 4] = bytes(b ^ 0x5A for b in content[middle : middle + 4])
    corrupted = tmp_path / "corrupted.root"
    corrupted.write_bytes(content)
    expected = pattern("ntuple-corrupted", path=corrupted, branch="photon_theta")
    with pytest.raises(NtupleError, match=expected):
        read_ntuple(corrupted)
    with pytest.raises(NtupleError, match=expected):
        list(iterate_ntuple(corrupted, ["weight", "photon_theta"], step_size=1000))
    # the other branches and the structure are intact
    assert num_entries(corrupted) == 3000 and read_metadata(corrupted) == read_metadata(path)
    assert_array_equal(read_ntuple(corrupted, ["photon_phi"])["photon_phi"], read_ntuple(path)["photon_phi"])


def test_damaged_files_stop_the_cli_on_one_line(tmp_path):
    path = _written(tmp_path)
    content = path.read_bytes()
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(content[:-1000])
    start, stop = _basket_data(path, "photon_E")
    corrupted = tmp_path / "corrupted.root"
    corrupted.write_bytes(content[: (start + stop) // 2] + b"\0\1\2\3" + content[(start + stop) // 2 + 4 :])
    for source, expected in [
        (truncated, message("ntuple-truncated", path=truncated, size=len(content) - 1000, expected=len(content))),
        (corrupted, message("ntuple-corrupted", path=corrupted, branch="photon_E")),
    ]:
        output = tmp_path / f"fit_{source.name}"
        result = CliRunner().invoke(main, ["kinfit", str(source), "-o", str(output), "-q"], prog_name="bumphunt")
        assert result.exit_code == 2, result.output
        assert result.output == f"bumphunt: {expected}\n"
        assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
            "corrupted.root",
            "sample.root",
            "truncated.root",
        ]


def _friend(tmp_path, main, scores, fingerprint=None):
    path = tmp_path / "friend.root"
    with NtupleWriter(path, {"score": Branch("float32", (), "", "a score")}) as writer:
        writer.extend({"score": scores})
        writer.metadata = {"friend_of": fingerprint or friend_fingerprint(main)}
    return path


def test_friend_branches_read_alongside_the_main_ntuple(tmp_path):
    main = _written(tmp_path, n=2500)
    scores = np.random.default_rng(5).random(2500).astype(np.float32)
    friend = _friend(tmp_path, main, scores)
    data = read_ntuple(main, ["event_id", "score"], friends=[friend])
    assert_array_equal(data["score"], scores)
    assert_array_equal(data["event_id"], read_ntuple(main, ["event_id"])["event_id"])
    chunks = list(iterate_ntuple(main, ["score", "m_ggg"], step_size=1000, friends=[friend]))
    assert [len(c["score"]) for c in chunks] == [len(c["m_ggg"]) for c in chunks] == [1000, 1000, 500]
    assert_array_equal(np.concatenate([c["score"] for c in chunks]), scores)
    # branches of the main ntuple never come from a friend; a friend is opened only when needed
    assert set(read_ntuple(main, ["m_ggg"], friends=[tmp_path / "absent.root"])) == {"m_ggg"}


def test_stale_or_missing_friend_branches_are_refused(tmp_path):
    main = _written(tmp_path, n=2000)
    stale = dict(friend_fingerprint(main), metadata_sha256="0" * 64)
    friend = _friend(tmp_path, main, np.zeros(2000, np.float32), fingerprint=stale)
    with pytest.raises(NtupleError, match="made from another version of"):
        read_ntuple(main, ["score"], friends=[friend])
    with pytest.raises(NtupleError, match="lacks branch.*punzi_score.*nor do its friends"):
        list(iterate_ntuple(main, ["punzi_score"], friends=[friend]))
