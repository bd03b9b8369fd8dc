"""The unpaired stream read from disk: seeded per sample, split across processes, resumable."""

import pytest
import torch

from artshift.data.dataset import StreamSampler, UnpairedStream, center_crop, image_files, unpaired_loader
from artshift.errors import DataError
from artshift.images import load_rgb, to_tensor
from conftest import write_processed


def _stream(root, crop=16, seed=0):
    data = write_processed(root, per_folder=5, size=32)
    return UnpairedStream(image_files(data / "train" / "photos"), image_files(data / "train" / "paintings"), crop,
                          seed), data


def test_a_sample_depends_on_seed_and_index_only(tmp_path):
    stream, _ = _stream(tmp_path)
    photo, painting = stream[7]
    assert photo.shape == painting.shape == (3, 16, 16)
    assert torch.equal(stream[7][0], photo) and torch.equal(stream[7][1], painting)  # any order, any worker
    assert not torch.equal(stream[8][0], photo)
    other_seed = UnpairedStream(stream.photos, stream.paintings, 16, seed=1)
    assert not torch.equal(other_seed[7][0], photo)


def test_crops_are_windows_of_the_stored_images_and_flip(tmp_path):
    stream, _ = _stream(tmp_path, crop=16)
    stored = [to_tensor(load_rgb(path)) for path in stream.photos]
    flipped = 0
    for index in range(40):
        crop = stream[index][0]
        windows = [(image[:, t:t + 16, s:s + 16], image[:, t:t + 16, s:s + 16].flip(-1))
                   for image in stored for t in range(17) for s in range(17)]
        plain = any(torch.equal(crop, window) for window, _ in windows)
        mirrored = any(torch.equal(crop, window) for _, window in windows)
        assert plain or mirrored
        flipped += not plain
    assert 8 < flipped < 32  # about half of the 40 samples are flipped


def test_sampler_shards_each_global_batch_across_processes():
    def first_steps(sampler, steps):
        ids = iter(sampler)
        return [next(ids) for _ in range(steps * sampler.batch_size)]

    single = first_steps(StreamSampler(start_step=3, batch_size=4), 2)
    rank0, rank1 = (first_steps(StreamSampler(start_step=3, batch_size=2, rank=r, world=2), 2) for r in (0, 1))
    assert single == [12, 13, 14, 15, 16, 17, 18, 19]
    assert rank0 == [12, 13, 16, 17] and rank1 == [14, 15, 18, 19]  # together: the single process's batches


def test_workers_and_resume_read_the_same_batches(tmp_path):
    _, data = _stream(tmp_path)
    args = (data / "train" / "photos", data / "train" / "paintings", 16, 2, 0)
    in_process = iter(unpaired_loader(*args))
    batches = [next(in_process) for _ in range(4)]
    with_workers = iter(unpaired_loader(*args, num_workers=2))
    for expected in batches:
        assert all(torch.equal(a, b) for a, b in zip(next(with_workers), expected))
    resumed = iter(unpaired_loader(*args, start_step=2))
    assert all(torch.equal(a, b) for a, b in zip(next(resumed), batches[2]))


def test_crops_larger_than_the_stored_images_are_refused(tmp_path):
    _, data = _stream(tmp_path)
    with pytest.raises(DataError, match=r"photos: images are 32x32, smaller than the 64 px training crops"):
        unpaired_loader(data / "train" / "photos", data / "train" / "paintings", 64, 1, 0)


def test_center_crop_takes_the_middle():
    image = torch.arange(36.0).reshape(1, 6, 6)
    assert torch.equal(center_crop(image, 2), image[:, 2:4, 2:4])
