import pytest
import torch

from artshift.config import TrainParams
from artshift.models import build_method
from artshift.models.cut import CUT
from artshift.models.networks import PatchDiscriminator, PatchSampler, ResnetGenerator


@pytest.mark.parametrize("size", [(32, 32), (48, 64)])
def test_generator_keeps_shape_and_range(size):
    g = ResnetGenerator(ngf=8, n_blocks=2)
    x = torch.rand(2, 3, *size) * 2 - 1
    y = g(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_generator_features_match_declared_channels():
    g = ResnetGenerator(ngf=8, n_blocks=6)
    layers = [0, 4, 8, 11, 14]
    feats = g.encode(torch.zeros(1, 3, 32, 32), layers)
    assert [f.shape[1] for f in feats] == g.feature_channels(layers) == [3, 16, 32, 32, 32]
    assert [f.shape[-1] for f in feats] == [38, 16, 8, 8, 8]


def test_patch_discriminator_70px_grid():
    d = PatchDiscriminator(ndf=8)
    assert d(torch.zeros(1, 3, 128, 128)).shape == (1, 1, 14, 14)
    assert d(torch.zeros(2, 3, 256, 256)).shape == (2, 1, 30, 30)


def test_patch_sampler_reuses_positions_and_normalises():
    sampler = PatchSampler([3, 16], dim=32)
    feats = [torch.randn(2, 3, 8, 8), torch.randn(2, 16, 4, 4)]
    out, ids = sampler(feats, num_patches=10, rng=torch.Generator().manual_seed(0))
    assert [o.shape for o in out] == [(2, 10, 32), (2, 10, 32)]
    assert torch.allclose(out[0].norm(dim=-1), torch.ones(2, 10))
    again, ids2 = sampler(feats, num_patches=10, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(ids, ids2))
    assert torch.allclose(again[1], out[1])


def test_cut_losses_are_finite_and_train_g():
    cfg = TrainParams(ngf=8, ndf=8, n_blocks=2, nce_layers=[0, 4, 8], num_patches=16)
    model = CUT(cfg, image_size=32)
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    fakes = model.generate(a, b, torch.Generator().manual_seed(0))
    assert fakes["fake_b"].shape == a.shape and fakes["idt_b"].shape == b.shape
    terms = model.g_losses(a, b, fakes, torch.Generator().manual_seed(0))
    assert set(terms) == {"g_gan", "nce", "nce_idt", "g_total"}
    terms["g_total"].backward()
    assert all(torch.isfinite(t) for t in terms.values())
    assert model.G.layers[1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("gan_loss", ["vanilla", "lsgan", "hinge", "wgan"])
def test_discriminator_terms_with_stabilisers(gan_loss):
    cfg = TrainParams(ngf=8, ndf=8, n_blocks=2, nce_layers=[0, 4, 8], num_patches=16, gan_loss=gan_loss,
                      r1_gamma=1.0, diffaugment=["color", "translation", "cutout"], spectral_norm=True)
    model = CUT(cfg, image_size=32)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    fakes = model.generate(a, b, torch.Generator().manual_seed(0))
    terms = model.d_losses(a, b, fakes, torch.Generator().manual_seed(0))
    assert {"d_adv", "d_real", "d_fake", "r1", "d_total"} <= set(terms)
    assert ("gp" in terms) == (gan_loss == "wgan")
    terms["d_total"].backward()
    assert all(torch.isfinite(t) for t in terms.values())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.D.parameters())


@pytest.mark.parametrize(("overrides", "lambda_nce", "nce_idt", "outputs"), [
    ({}, 10.0, False, {"fake_b"}),  # FastCUT's own defaults
    ({"lambda_nce": None, "nce_idt": None}, 10.0, False, {"fake_b"}),  # null: the method's default
    ({"lambda_nce": 2.0, "nce_idt": True}, 2.0, True, {"fake_b", "idt_b"}),  # explicit values win
])
def test_fastcut_defaults_can_be_overridden(overrides, lambda_nce, nce_idt, outputs):
    cfg = TrainParams(method="fastcut", ngf=8, ndf=8, n_blocks=2, nce_layers=[0, 4, 8], num_patches=16, **overrides)
    assert (cfg.lambda_nce, cfg.nce_idt) == (lambda_nce, nce_idt)
    model = build_method(cfg, image_size=32)
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    fakes = model.generate(a, b, torch.Generator())
    assert set(fakes) == outputs
    terms = model.g_losses(a, b, fakes, torch.Generator().manual_seed(0))
    nce = terms["nce"] if not nce_idt else 0.5 * (terms["nce"] + terms["nce_idt"])
    assert torch.allclose(terms["g_total"], terms["g_gan"] + lambda_nce * nce)
