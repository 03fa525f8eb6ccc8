"""The device-profile directory: schema validation, journal crash-safety, disk-full writes, the lock."""

import errno
import json
import subprocess
import sys
import textwrap

import pytest

from hwnas.errors import ProfileError
from hwnas.profiles import DeviceProfile
from hwnas.profiles import journal as journal_mod
from hwnas.profiles.lock import ProfileLock
from hwnas.profiles.schema import SCHEMA_VERSION, ProfileRow, model_row_key
from hwnas.types import DeviceSpec, LatencyStats, Measurement, ReferenceRatio

SPEC = DeviceSpec("test-cpu", "onnxruntime", "1.0", threads=1)


def _row(i: int, space: str = "tiny-mbv3", ratio: float | None = None, latency_ms: float | None = None) -> ProfileRow:
    stats = LatencyStats(1.1 + i, 1.0 + i, 1.0 + i, 1.2 + i, 1.1 + i, 0.01, 10, 5)
    m = Measurement(f"a{i}", "sha", SPEC.id(), stats, ReferenceRatio(2.0 + i if ratio is None else ratio, 0.5, 0.01, 6,
                                                                        "ref-medium"))
    ident = {"row_key": model_row_key(f"arch{i}", SPEC.id()), "space": space, "kind": "random", "arch": f"a{i}",
             "arch_key": f"arch{i}", "resolution": 28, "macs": 1000 + i, "params": 10, "repeat": 0}
    return ProfileRow("models", ident, m, 1.0 + i if latency_ms is None else latency_ms, 0,
                      {"runtime_graph": json.dumps({"kernels": []}), "unstable": False})


@pytest.fixture
def prof(tmp_path):
    p = DeviceProfile.create(tmp_path / "prof", "onnxruntime-cpu", SPEC, {"cpu": "test"}, {"graph_optimization": "all"})
    with p.writing():
        p.register_space("tiny-mbv3", {"samples": 3, "op_keys": ["k1"]})
        p.update_meta(reference={"primary": "ref-medium", "ms": {"ref-medium": 0.5}})
        for i in range(3):
            assert p.add_row(_row(i))
    return p


def test_create_open_roundtrip(prof):
    p = DeviceProfile.open(prof.root)
    assert p.spec == SPEC and p.device_name == "onnxruntime-cpu" and p.spaces == ["tiny-mbv3"]
    assert p.reference_ms == 0.5 and p.host == {"cpu": "test"}
    df = p.models_df()
    assert len(df) == 3 and list(df["latency_ms"]) == [1.0, 2.0, 3.0]
    assert df["energy_mj"].isna().all() and str(df["macs"].dtype) == "Int64"
    assert (prof.root / "models.parquet").exists() and not (prof.root / "models.journal.jsonl").exists()
    assert len(p.models_df(kinds=["reference"])) == 0 and len(p.ops_df()) == 0


def test_rows_are_never_overwritten(prof):
    with prof.writing():
        assert prof.add_row(_row(0, latency_ms=99.0)) is False
    assert DeviceProfile.open(prof.root).models_df()["latency_ms"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ProfileError, match="writing"):
        prof.add_row(_row(7))
    with pytest.raises(ProfileError, match="already holds a device profile"):
        DeviceProfile.create(prof.root, "onnxruntime-cpu", SPEC, {})


def test_a_bare_name_opens_the_shipped_profile_unless_a_path_of_that_name_exists(tmp_path, monkeypatch):
    from hwnas.profiles.profile import SHIPPED_DIR

    name = sorted(d.name for d in SHIPPED_DIR.iterdir() if (d / "device.json").is_file())[0]
    monkeypatch.chdir(tmp_path)
    shipped = DeviceProfile.open(name)
    assert shipped.root == SHIPPED_DIR / name and shipped.shipped
    with pytest.raises(ProfileError, match=f"name a shipped one \\(.*{name}"):
        DeviceProfile.open("no-such-profile")
    (tmp_path / name).mkdir()  # a local directory of that name wins (and is not a profile)
    with pytest.raises(ProfileError, match="not a hwnas device profile"):
        DeviceProfile.open(name)


def test_open_refuses_foreign_corrupt_and_other_schemas(tmp_path, prof):
    with pytest.raises(ProfileError, match="No device profile at .*hwnas profile --space"):
        DeviceProfile.open(tmp_path / "missing")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(ProfileError, match="not a hwnas device profile \\(no device.json\\)"):
        DeviceProfile.open(foreign)
    with pytest.raises(ProfileError, match="not an empty directory"):
        DeviceProfile.create(foreign, "onnxruntime-cpu", SPEC, {})
    meta_path = prof.root / "device.json"
    good = meta_path.read_text()
    for text, pattern in [
        ("{not json", "corrupt"),
        (json.dumps({"format": "something-else"}), "not a hwnas device profile"),
        (json.dumps({**json.loads(good), "schema_version": SCHEMA_VERSION + 1}), "newer .* upgrade hwnas"),
        (json.dumps({**json.loads(good), "schema_version": SCHEMA_VERSION - 1}), "old schema .* profile the device again"),
        (json.dumps({k: v for k, v in json.loads(good).items() if k != "spec"}), "lacks \\['spec'\\]"),
    ]:
        meta_path.write_text(text)
        with pytest.raises(ProfileError, match=pattern):
            DeviceProfile.open(prof.root)
    meta_path.write_text(good)
    (prof.root / "models.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(ProfileError, match="not readable Parquet"):
        DeviceProfile.open(prof.root).models_df()


def test_space_and_target_checks(prof):
    with pytest.raises(ProfileError, match="not made for space 'fmnist-mbv3' \\(it has: tiny-mbv3\\).*--space fmnist-mbv3"):
        prof.check_space("fmnist-mbv3")
    with prof.writing():
        prof.update_meta(energy={"meter": None, "why": "no RAPL here"})
    with pytest.raises(ProfileError, match="no 'energy_mj' values .*why: no RAPL here"):
        prof.check_target("energy_mj", "tiny-mbv3")
    with pytest.raises(ProfileError, match="Unknown target"):
        prof.check_target("watts", "tiny-mbv3")
    assert prof.check_target("latency_ms", "tiny-mbv3") == "latency_ms"


def test_torn_journal_line_is_skipped_then_cut(prof):
    jp = journal_mod.journal_path(prof.root, "models")
    journal_mod.append_row(jp, _row(3).record())  # as a writer does between compactions
    with open(jp, "ab") as fh:  # ... and then it is killed in the middle of the next line
        fh.write(b'{"row_key": "half-writ')
    assert len(DeviceProfile.open(prof.root).models_df()) == 4
    with prof.writing():  # the next writer cuts the torn line before appending
        assert jp.read_bytes().endswith(b"\n")
        prof.add_row(_row(4))
    assert sorted(DeviceProfile.open(prof.root).models_df()["arch"]) == ["a0", "a1", "a2", "a3", "a4"]


def test_crash_between_compaction_and_journal_removal_is_replayed_once(prof):
    """Compaction writes the Parquet file, then removes the journal: a crash in between leaves rows in
    both. Readers and the next compaction keep each row once."""
    jp = journal_mod.journal_path(prof.root, "models")
    for i in range(3):  # already in models.parquet
        journal_mod.append_row(jp, _row(i).record())
    journal_mod.append_row(jp, _row(3).record())
    df = DeviceProfile.open(prof.root).models_df()
    assert len(df) == 4 and df["row_key"].is_unique
    with prof.writing():
        assert prof.n_rows("models") == 4
        assert prof.add_row(_row(2)) is False
    assert not jp.exists()
    import pandas as pd

    stored = pd.read_parquet(prof.root / "models.parquet")
    assert len(stored) == 4 and stored["row_key"].is_unique


def test_corrupt_middle_journal_line_names_the_file(prof):
    jp = journal_mod.journal_path(prof.root, "models")
    jp.write_text(json.dumps(_row(5).record()) + "\n{garbage\n" + json.dumps(_row(6).record()) + "\n")
    with pytest.raises(ProfileError, match="models.journal.jsonl' is corrupt at line 2"):
        DeviceProfile.open(prof.root).models_df()


def test_disk_full_mid_row_loses_nothing_stored(prof, monkeypatch):
    real_write = journal_mod.os.write

    def full_disk(fd, data):  # half the line reaches the disk, then ENOSPC
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    with prof.writing():
        prof.add_row(_row(3))
        size = journal_mod.journal_path(prof.root, "models").stat().st_size
        monkeypatch.setattr(journal_mod.os, "write", full_disk)
        with pytest.raises(ProfileError, match="No space left on device.*The 4 rows stored before are intact"):
            prof.add_row(_row(4))
        monkeypatch.setattr(journal_mod.os, "write", real_write)
        assert journal_mod.journal_path(prof.root, "models").stat().st_size == size  # half line rolled back
        prof.add_row(_row(5))  # the next row appends cleanly

        def no_space(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(journal_mod, "atomic_write_bytes", no_space)
        with pytest.raises(ProfileError, match="rows stay in 'models.journal.jsonl' and are not lost"):
            prof.compact()
        monkeypatch.undo()
    assert sorted(DeviceProfile.open(prof.root).models_df()["arch"]) == ["a0", "a1", "a2", "a3", "a5"]


def test_lock_keeps_a_second_writer_out(tmp_path, prof):
    code = textwrap.dedent(f"""
        import sys, time
        from hwnas.profiles.lock import ProfileLock
        with ProfileLock({str(prof.root)!r}, "test holder"):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ProfileError, match=f"Another process is writing .*pid {holder.pid}.*test holder"):
            with prof.writing():
                pass
        out = subprocess.run([sys.executable, "-m", "hwnas.cli", "profile", "--space", "tiny-mbv3", "--out",
                              str(prof.root)], capture_output=True, text=True)
        assert out.returncode == 2 and "Another process is writing" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    with ProfileLock(prof.root):  # released when the holder exits
        pass


def test_merge_rescales_to_the_destination_reference(tmp_path, prof):
    from hwnas.profiles import merge_profiles

    other = DeviceProfile.create(tmp_path / "other", "onnxruntime-cpu", SPEC, {"cpu": "test"})
    with other.writing():
        other.register_space("fmnist-mbv3", {"samples": 1, "op_keys": []})
        other.update_meta(reference={"primary": "ref-medium", "ms": {"ref-medium": 0.25}})
        other.add_row(_row(10, "fmnist-mbv3", ratio=4.0, latency_ms=1.0))
        other.add_row(_row(0))  # already in the destination: kept as it is there
    added = merge_profiles(prof.root, other.root)
    assert added == {"models": 1, "ops": 0}
    merged = DeviceProfile.open(prof.root)
    assert merged.spaces == ["fmnist-mbv3", "tiny-mbv3"]
    row = merged.models_df("fmnist-mbv3").iloc[0]
    assert row["latency_ms"] == pytest.approx(4.0 * 0.5)  # ratio x the destination's canonical latency
    assert merged.models_df("tiny-mbv3")["latency_ms"].tolist() == [1.0, 2.0, 3.0]
    foreign = DeviceProfile.create(tmp_path / "foreign", "onnxruntime-cpu", DeviceSpec("other-cpu", "onnxruntime", "1.0"), {})
    with pytest.raises(ProfileError, match="different device settings"):
        merge_profiles(prof.root, foreign.root)
