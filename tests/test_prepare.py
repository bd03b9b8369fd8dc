import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from artshift.data.prepare import MANIFEST_COLUMNS, SKIPPED_COLUMNS, prepare_dataset
from artshift.errors import DataError
from artshift.files import sha256_file

SIZE, MIN_SIZE = 32, 64


def picture(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A distinct random RGB picture per seed."""
    width, height = size
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def fill(folder, n: int, first_seed: int, names=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = names[i] if names else f"img_{i:03d}.png"
        picture(first_seed + i, (96 + i, 80 + 2 * i)).save(folder / name)


def run(raw, out, seed: int = 0, test_fraction: float = 0.25) -> dict:
    return prepare_dataset(raw, out, SIZE, test_fraction, MIN_SIZE, seed)


@pytest.fixture
def raw(tmp_path):
    """6 good photos plus a duplicate, a truncated file, a text file and a too-small image; 6 paintings."""
    root = tmp_path / "raw"
    fill(root / "photos", 6, 0)
    fill(root / "paintings", 6, 100)
    photos = root / "photos"
    picture(0, (96, 80)).save(photos / "zz_copy_of_first.bmp")  # same pixels, other format
    data = (photos / "img_001.png").read_bytes()
    (photos / "nested").mkdir()
    (photos / "nested" / "broken.png").write_bytes(data[: len(data) // 2])
    (photos / "readme.txt").write_text("not an image")
    picture(7, (200, 40)).save(photos / "thin.png")
    return root


def test_counts_skips_and_duplicates(raw, tmp_path):
    summary = run(raw, tmp_path / "out")
    assert summary["counts"] == {"train": {"photos": 4, "paintings": 4}, "test": {"photos": 2, "paintings": 2}}
    assert (summary["n_files"], summary["n_images"], summary["n_skipped"], summary["n_duplicates"]) == (16, 12, 3, 1)
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv").set_index("source")
    assert list(skipped.reset_index().columns) == SKIPPED_COLUMNS
    reasons = skipped["reason"].to_dict()
    assert reasons["photos/zz_copy_of_first.bmp"] == "duplicate of photos/img_000.png"
    assert reasons["photos/nested/broken.png"].startswith("truncated image file")
    assert reasons["photos/readme.txt"].startswith("not a supported image")
    assert reasons["photos/thin.png"] == "too small (200x40, shorter side below min_size=64)"
    assert set(skipped["domain"]) == {"photos"}


def test_manifest_and_outputs(raw, tmp_path):
    out = tmp_path / "out"
    summary = run(raw, out)
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert manifest.equals(manifest.sort_values(["split", "domain", "file"], ignore_index=True))
    assert summary["manifest_sha256"] == sha256_file(out / "manifest.csv")
    for row in manifest.itertuples():
        assert row.file == f"{row.split}/{row.domain}/{row.sha256[:16]}.png"
        assert Image.open(out / row.file).size == (SIZE, SIZE)
        assert row.source.startswith(f"{row.domain}/img_")
    first = manifest.set_index("source").loc["photos/img_000.png"]
    assert (first.width, first.height) == (96, 80)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted([*manifest["file"], "manifest.csv", "skipped.csv"])
    assert not (out / ".staging").exists()


def test_reruns_are_byte_identical(raw, tmp_path):
    first, second = run(raw, tmp_path / "a"), run(raw, tmp_path / "b")
    assert first == second
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (tmp_path / "b" / "manifest.csv").read_bytes()
    assert (tmp_path / "a" / "skipped.csv").read_bytes() == (tmp_path / "b" / "skipped.csv").read_bytes()


def test_split_depends_on_content_not_names(tmp_path):
    fill(tmp_path / "raw/photos", 10, 0)
    fill(tmp_path / "raw/paintings", 10, 100)
    names = [f"{name}.png" for name in np.random.default_rng(3).permutation([f"x{i}" for i in range(10)])]
    fill(tmp_path / "renamed/photos", 10, 0, names=names)
    fill(tmp_path / "renamed/paintings", 10, 100, names=names[::-1])
    split = {}
    for name in ("raw", "renamed"):
        run(tmp_path / name, tmp_path / f"out_{name}")
        manifest = pd.read_csv(tmp_path / f"out_{name}" / "manifest.csv")
        split[name] = dict(zip(manifest["sha256"], manifest["split"]))
    assert split["raw"] == split["renamed"]


def test_another_seed_gives_another_split(tmp_path):
    fill(tmp_path / "raw/photos", 20, 0)
    fill(tmp_path / "raw/paintings", 20, 100)
    tests = []
    for seed in (0, 1):
        run(tmp_path / "raw", tmp_path / f"out{seed}", seed=seed, test_fraction=0.3)
        manifest = pd.read_csv(tmp_path / f"out{seed}" / "manifest.csv")
        tests.append(set(manifest.loc[manifest["split"] == "test", "sha256"]))
        assert len(tests[-1]) == 12
    assert tests[0] != tests[1]


@pytest.mark.parametrize(("n", "fraction", "n_test"), [(1, 0.5, 0), (2, 0.01, 1), (3, 0.99, 2), (10, 0.15, 2)])
def test_test_share_keeps_both_splits(tmp_path, n, fraction, n_test):
    fill(tmp_path / "raw/photos", n, 0)
    fill(tmp_path / "raw/paintings", n, 100)
    summary = run(tmp_path / "raw", tmp_path / "out", test_fraction=fraction)
    assert summary["counts"]["test"] == {"photos": n_test, "paintings": n_test}
    assert summary["counts"]["train"] == {"photos": n - n_test, "paintings": n - n_test}


def test_nothing_skipped_still_writes_skipped_csv(tmp_path):
    fill(tmp_path / "raw/photos", 2, 0)
    fill(tmp_path / "raw/paintings", 2, 100)
    run(tmp_path / "raw", tmp_path / "out")
    assert (tmp_path / "out" / "skipped.csv").read_text() == "source,domain,reason\n"


def test_no_usable_paintings_is_a_data_error_and_keeps_the_old_output(raw, tmp_path):
    out = tmp_path / "out"
    run(raw, out)
    before = (out / "manifest.csv").read_bytes()
    shutil.rmtree(raw / "paintings")
    (raw / "paintings").mkdir()
    (raw / "paintings" / "notes.txt").write_text("nothing here")
    expected = (r"no usable paintings in .*paintings \(1 files skipped, "
                r"first: paintings/notes.txt: not a supported image")
    with pytest.raises(DataError, match=expected):
        run(raw, out)
    assert (out / "manifest.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_empty_or_missing_domain_folder(tmp_path):
    fill(tmp_path / "raw/photos", 2, 0)
    with pytest.raises(DataError, match="paintings not found"):
        run(tmp_path / "raw", tmp_path / "out")
    (tmp_path / "raw/paintings").mkdir()
    with pytest.raises(DataError, match=r"no usable paintings .*\(folder is empty\)"):
        run(tmp_path / "raw", tmp_path / "out")
