"""Archives cut short (the rest of the archive cases are tests/test_download.py's, reused by the
table): a truncated zip or tar.gz is one DataError line saying so, and leaves the previous data/raw."""

from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import pytest

from artshift.config import DownloadParams
from artshift.data.sources import fetch_dataset
from artshift.errors import DataError

MEMBERS = {f"set/{domain}/{i}.png": np.random.default_rng(i).bytes(4000) for domain in ("photos", "paintings")
           for i in range(3)}


def packed(kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in MEMBERS.items():
                archive.writestr(name, data)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in MEMBERS.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize("keep", [0.002, 0.3, 0.6, 0.95])
def test_a_truncated_archive_is_one_line_and_keeps_the_old_data(tmp_path, kind, keep):
    """Archives: truncated zip or tar.gz"""
    data = packed(kind)
    archive = tmp_path / f"set.{kind}"
    archive.write_bytes(data[: max(int(len(data) * keep), 12)])  # 12 bytes: past the zip/gzip signature
    raw = tmp_path / "raw"
    (raw / "photos").mkdir(parents=True)
    (raw / "photos" / "old.png").write_bytes(b"previous data")
    with pytest.raises(DataError) as excinfo:
        fetch_dataset(DownloadParams(source="local", path=str(archive)), 0, raw, tmp_path / "dl")
    assert str(excinfo.value).startswith(f"{archive.name}: truncated or damaged archive (")
    assert "\n" not in str(excinfo.value)
    assert [p.name for p in raw.rglob("*") if p.is_file()] == ["old.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", archive.name]
