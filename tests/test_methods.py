"""CycleGAN, DCGAN and what all methods share: pool, networks, losses, and short real trainings."""

import logging

import pytest
import torch

from artshift import checkpoint
from artshift.config import TrainParams, parse_params
from artshift.data.dataset import load_folder
from artshift.errors import ParamsError
from artshift.generator_io import GeneratorInput
from artshift.metrics.diversity import collapse_warning, mean_pairwise_distance
from artshift.models.cyclegan import CycleGAN, HistoryPool
from artshift.models.dcgan import DCGAN
from artshift.models.networks import DCGANDiscriminator, DCGANGenerator, MinibatchStd
from artshift.train import TrainState, fixed_inputs, train, watch_samples
from conftest import write_processed

TINY = {"ngf": 8, "ndf": 8, "n_blocks": 2, "nce_layers": [0, 4, 8], "num_patches": 16}


def _images(n, value):
    return torch.full((n, 3, 4, 4), float(value))


def test_history_pool_fills_then_swaps_half_the_time():
    pool = HistoryPool(size=3)
    g = torch.Generator().manual_seed(0)
    first = pool(_images(3, 1), g)
    assert torch.equal(first, _images(3, 1)) and len(pool.images) == 3  # filling: returned as is
    returned_old = 0
    for value in range(2, 202):
        out = pool(_images(1, value), g)[0]
        assert out[0, 0, 0] == value or out[0, 0, 0] < value  # the new image or an older one
        returned_old += int(out[0, 0, 0] < value)
        assert any(img[0, 0, 0] == value for img in pool.images) == (out[0, 0, 0] < value)
    assert 70 < returned_old < 130  # about half of 200
    assert len(pool.images) == 3


def test_history_pool_state_round_trips_and_size_zero_passes_through():
    g = torch.Generator().manual_seed(1)
    pool = HistoryPool(size=2)
    pool(_images(2, 5), g)
    restored = HistoryPool(size=2)
    restored.load_state_dict(pool.state_dict())
    assert [torch.equal(a, b) for a, b in zip(pool.images, restored.images)] == [True, True]
    fresh = _images(2, 9)
    assert HistoryPool(size=0)(fresh, g) is fresh


@pytest.mark.parametrize("size", [8, 32, 64])
def test_dcgan_networks_shapes(size):
    g, d = DCGANGenerator(z_dim=16, ngf=8, image_size=size), DCGANDiscriminator(ndf=8, image_size=size)
    images = g(torch.randn(3, 16))
    assert images.shape == (3, 3, size, size) and images.abs().max() <= 1
    assert d(images).shape == (3, 1, 1, 1)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())


def test_minibatch_std_channel_measures_each_groups_spread():
    same = torch.randn(1, 5, 4, 4).expand(8, 5, 4, 4)
    out = MinibatchStd()(same)
    assert out.shape == (8, 6, 4, 4) and torch.equal(out[:, :5], same)
    assert out[:, 5].max() < 1e-3  # a collapsed batch: no spread
    varied = MinibatchStd()(torch.randn(6, 5, 4, 4))  # 6 images: groups of 3 (the largest divisor <= 4)
    spread = varied[:, 5, 0, 0]
    assert (spread > 0.3).all() and torch.equal(spread[:2], spread[2:4]) and torch.equal(spread[:2], spread[4:])
    reference = torch.randn(6, 5, 4, 4)
    groups = reference.reshape(3, 2, 5, 4, 4)  # image i is in group i mod 2
    expected = groups.std(dim=0, unbiased=False).mean(dim=(1, 2, 3))
    assert torch.allclose(MinibatchStd()(reference)[:, 5, 0, 0], expected.repeat(3), atol=1e-6)


def test_dcgan_discriminator_with_minibatch_std_scores_each_image():
    d = DCGANDiscriminator(ndf=8, image_size=16, minibatch_std=True)
    assert d(torch.randn(4, 3, 16, 16)).shape == (4, 1, 1, 1)


def test_dcgan_rejects_sizes_it_cannot_reach():
    with pytest.raises(ParamsError, match=r"^train.crop_size: .*power of two.*got 48 "):
        DCGAN(TrainParams(method="dcgan", batch_size=2, **TINY), image_size=48)
    with pytest.raises(ParamsError, match=r"train.batch_size: dcgan uses batch norm and needs >= 2, got 1"):
        parse_params({"train": {"method": "dcgan", "batch_size": 1}})


def test_cyclegan_objectives():
    torch.manual_seed(0)
    model = CycleGAN(TrainParams(method="cyclegan", pool_size=4, **TINY), image_size=16)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    fakes = model.generate(a, b, g)
    assert set(fakes) == {"fake_b", "fake_a", "rec_a", "rec_b", "idt_a", "idt_b"}
    d_terms = model.d_losses(a, b, fakes, g)
    assert torch.allclose(d_terms["d_total"], d_terms["d_adv"] + d_terms["d_adv_a"])
    assert len(model.pool_a.images) == len(model.pool_b.images) == 2
    terms = model.g_losses(a, b, fakes, g)
    assert torch.allclose(terms["cycle_a"], (fakes["rec_a"] - a).abs().mean())
    expected = (terms["g_gan"] + terms["g_gan_a"] + 10 * (terms["cycle_a"] + terms["cycle_b"])
                + 5 * (terms["idt_a"] + terms["idt_b"]))
    assert torch.allclose(terms["g_total"], expected)
    terms["g_total"].backward()
    assert all(net.layers[1].weight.grad.abs().sum() > 0 for net in (model.G, model.G_BA))
    names = {name.split(".")[0] for name, _ in model.named_parameters()}
    assert names == {"G", "G_BA", "D"}
    assert {id(p) for p in model.generator_parameters()} == {id(p) for p in [*model.G.parameters(),
                                                                            *model.G_BA.parameters()]}


def test_mean_pairwise_distance_and_collapse_warning():
    images = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2), torch.full((1, 2, 2), 3.0)])
    # RMS distances: |0-1| = 1, |0-3| = 3, |1-3| = 2; mean over the 3 pairs = 2
    assert mean_pairwise_distance(images) == pytest.approx(2.0)
    assert mean_pairwise_distance(images[[0, 0, 0]]) == 0
    assert collapse_warning(0.05, 0.5, 0.2).startswith("possible mode collapse: sample diversity 0.0500 is 10%")
    assert collapse_warning(0.2, 0.5, 0.2) is None


def test_constant_generator_triggers_the_collapse_warning(caplog):
    constant = torch.nn.Sequential(torch.nn.Linear(4, 3 * 8 * 8), torch.nn.Unflatten(1, (3, 8, 8)))
    torch.nn.init.zeros_(constant[0].weight)
    constant.takes = GeneratorInput.NOISE
    with caplog.at_level(logging.WARNING, logger="artshift.train"):
        assert watch_samples(constant, (torch.randn(5, 4),), 0.4, 0.2, step=7, run=None) == 0
    assert "step 7: possible mode collapse" in caplog.text


def _gap_to_paintings(generator, inputs, paintings):
    with torch.no_grad():
        return float((generator.eval()(*inputs).mean() - paintings.mean()).abs())


@pytest.mark.parametrize("method,extra,kept", [
    ("cut", {}, 0.5), ("fastcut", {"steps": 160}, 0.8), ("cyclegan", {"pool_size": 4}, 0.5),
    ("dcgan", {"batch_size": 4, "z_dim": 8}, 0.5),
])
def test_short_training_moves_outputs_toward_the_paintings(tmp_path, method, extra, kept):
    """Photos are dark and paintings bright: after a few dozen steps G's outputs must be brighter,
    their brightness gap to the paintings at most ``kept`` of what it was. FastCUT's λ_NCE of 10
    holds its anti-aliased generator to the photo for longer, by an amount that depends on the
    CPU's float kernels: at 80 steps the gap kept was under half on a Xeon and 80% on an AMD EPYC
    (72% there at 160 steps)."""
    data = write_processed(tmp_path, per_folder=4)
    params = parse_params({"seed": 0, "preprocess": {"load_size": 32},
                           "train": {**TINY, "method": method, "steps": 40, "lr": 0.001, "log_every": 40,
                                     "sample_every": 40, "checkpoint_every": 40, "n_samples": 4, **extra}})
    paintings, photos = load_folder(data / "train" / "paintings"), load_folder(data / "test" / "photos")
    state = TrainState.create(params, torch.Generator().manual_seed(0), image_size=32)
    inputs = fixed_inputs(state.model, photos, seed=0)
    before = _gap_to_paintings(state.model.G, inputs, paintings)
    train(params, data, tmp_path / "checkpoints", tmp_path / "generator.pt")
    generator, record = checkpoint.load_generator(tmp_path / "generator.pt")
    assert record["method"] == method and record["network"] == type(state.model.G).__name__
    after = _gap_to_paintings(generator, inputs, paintings)
    assert after < kept * before, (before, after)
