"""Both storage backends keep the same promises: atomic writes, scratch copies that go away,
ranged reads, listing; the S3 one against a real S3-protocol server (moto's)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.stack import S3Server, free_port
from jobs.errors import StorageMisconfigured, StorageUnavailable
from jobs.settings import Settings
from jobs.storage import LocalStorage, ObjectStorage, Storage, open_storage


@pytest.fixture
def storage(storage_url: str, tmp_path: Path) -> Storage:
    return open_storage(Settings(data_dir=tmp_path / "data", storage_url=storage_url))


def _scratch_files(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(".part")]


def test_writing_is_atomic_and_ranges_read_back(storage: Storage, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 5000
    with storage.writing("out/a.wav") as tmp:
        assert not storage.exists("out/a.wav")
        tmp.write_bytes(blob)
    assert storage.exists("out/a.wav")
    assert storage.size("out/a.wav") == len(blob)
    assert b"".join(storage.chunks("out/a.wav")) == blob
    assert b"".join(storage.chunks("out/a.wav", 10, 20)) == blob[10:20]
    assert b"".join(storage.chunks("out/a.wav", len(blob) - 5)) == blob[-5:]
    assert [o.key for o in storage.list("out/")] == ["out/a.wav"]
    assert _scratch_files(tmp_path) == []


def test_a_failed_write_leaves_nothing(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), storage.writing("out/b.wav") as tmp:
        tmp.write_bytes(b"x" * 1000)
        raise RuntimeError("the job failed half-way")
    # A streamed multipart write (two 8 MiB parts sent before the error) is aborted too.
    with pytest.raises(RuntimeError), storage.open_writer("out/c.wav") as out:
        out.write(b"y" * (17 << 20))
        raise RuntimeError("the client went away")
    assert not storage.exists("out/b.wav")
    assert not storage.exists("out/c.wav")
    assert list(storage.list()) == []
    assert _scratch_files(tmp_path) == []


def test_streaming_writer_appears_at_the_end(storage: Storage) -> None:
    with storage.open_writer("in/d.wav") as out:
        for _ in range(3):
            out.write(b"z" * (4 << 20))
        assert not storage.exists("in/d.wav")
    assert storage.size("in/d.wav") == 12 << 20


def test_local_copy_is_removed_and_delete_is_idempotent(storage: Storage, tmp_path: Path) -> None:
    with storage.scratch(".wav") as tmp:
        tmp.write_bytes(b"RIFF" * 100)
        storage.adopt(tmp, "in/e.wav")
    with storage.local_copy("in/e.wav") as path:
        assert path.read_bytes() == b"RIFF" * 100
    if isinstance(storage, ObjectStorage):
        assert not path.exists()
    else:
        assert path == storage.path("in/e.wav")
    assert _scratch_files(tmp_path) == []
    storage.delete("in/e.wav")
    storage.delete("in/e.wav")
    assert not storage.exists("in/e.wav")
    with pytest.raises(FileNotFoundError), storage.local_copy("in/e.wav"):
        pass


def test_keys_are_checked(storage: Storage) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.exists("../etc/passwd")


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(StorageMisconfigured, match=r"gs://b/p.*s3://bucket/prefix"):
        open_storage(Settings(storage_url="gs://b/p"))


def test_missing_bucket_is_a_configuration_error(s3_server: S3Server) -> None:
    with pytest.raises(StorageMisconfigured, match="bucket of s3://no-such-bucket/x"):
        open_storage(Settings(storage_url="s3://no-such-bucket/x")).check()


def _closed_port_holding_403() -> int:
    """A closed port whose number contains "403": once read as refused credentials."""
    for port in range(24030, 24040):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 24030-24039")


@pytest.mark.parametrize("port", [free_port, _closed_port_holding_403])
def test_unreachable_store(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, port: Callable[[], int]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port()}")
    monkeypatch.setenv("AWS_MAX_RETRIES", "1")
    with pytest.raises(StorageUnavailable, match="s3://some-bucket is not reachable"):
        open_storage(Settings(storage_url="s3://some-bucket")).check()


def test_local_storage_is_the_default(tmp_path: Path) -> None:
    storage = open_storage(Settings(data_dir=tmp_path))
    assert isinstance(storage, LocalStorage)
    assert storage.location == str((tmp_path / "storage").resolve())
    storage.check()


def test_outputs_are_assembled_in_place_only_in_a_folder_of_one_node(
    storage: Storage, tmp_path: Path
) -> None:
    """A split job's parts write into one file only where every writer is on this node."""
    path = storage.assembly("out/job.wav")
    if isinstance(storage, ObjectStorage):
        assert path is None  # each node has its own scratch folder
        return
    assert path is not None and path.parent == storage.path("out/job.wav").parent
    assert path.name.endswith(".part")  # never listed as an object, swept when stale
    path.write_bytes(b"half an output")
    assert [o.key for o in storage.list()] == []
    shared = LocalStorage(tmp_path / "mount", shared=True)
    assert shared.assembly("out/job.wav") is None  # not every mount takes several writers
