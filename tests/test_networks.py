import pytest
import torch

from artshift.config import TrainParams
from artshift.models import build_method
from artshift.models.cut import CUT
from artshift.models.networks import BlurDownsample, PatchDiscriminator, PatchSampler, ResnetGenerator, _blur_upsample


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("size", [(32, 32), (48, 64)])
def test_generator_keeps_shape_and_range(size, antialias):
    g = ResnetGenerator(ngf=8, n_blocks=2, antialias=antialias)
    x = torch.rand(2, 3, *size) * 2 - 1
    y = g(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


@pytest.mark.parametrize(("antialias", "sides"), [(False, [38, 16, 8, 8, 8]), (True, [38, 32, 16, 8, 8])])
def test_generator_features_match_declared_channels(antialias, sides):
    """The same layer indices tap the same depths (padded input, both downsampling convs, 2nd and
    5th residual block) with and without anti-aliasing; anti-aliased convs run before the blur-pool."""
    g = ResnetGenerator(ngf=8, n_blocks=6, antialias=antialias)
    layers = [0, 4, 8, 11, 14]
    feats = g.encode(torch.zeros(1, 3, 32, 32), layers)
    assert [f.shape[1] for f in feats] == g.feature_channels(layers) == [3, 16, 32, 32, 32]
    assert [f.shape[-1] for f in feats] == sides


def test_antialiased_generator_has_no_transposed_or_strided_convs():
    g = ResnetGenerator(ngf=8, n_blocks=2, antialias=True)
    convs = [m for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert all(type(m) is torch.nn.Conv2d and m.stride == (1, 1) for m in convs)
    assert sum(isinstance(m, BlurDownsample) for m in g.modules()) == 2


@pytest.mark.parametrize("antialias", [False, True])
def test_patch_discriminator_70px_grid(antialias):
    d = PatchDiscriminator(ndf=8, antialias=antialias)
    assert d(torch.zeros(1, 3, 128, 128)).shape == (1, 1, 14, 14)
    assert d(torch.zeros(2, 3, 256, 256)).shape == (2, 1, 30, 30)


def test_blur_downsample_removes_the_2_pixel_period_and_keeps_flat_areas():
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(12.0), indexing="ij")
    blur = BlurDownsample(3)
    board = ((-1.0) ** (x + y)).expand(1, 3, 16, 12)
    assert blur(board).shape == (1, 3, 8, 6)
    assert blur(board).abs().max() < 1e-6  # [1, 3, 3, 1] has a zero at Nyquist; a stride-2 conv aliases it
    assert torch.allclose(blur(torch.full((1, 3, 16, 12), 0.3)), torch.full((1, 3, 8, 6), 0.3))


def test_blur_upsample_is_zero_insertion_then_the_1_3_3_1_filter():
    x = torch.randn(1, 2, 5, 7, dtype=torch.float64)
    up = _blur_upsample()(x)
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64) / 4  # sums to 2: the gain of ×2 upsampling
    kernel = torch.outer(taps, taps).expand(2, 1, 4, 4)
    stuffed = torch.zeros(1, 2, 10, 14, dtype=torch.float64)
    stuffed[..., ::2, ::2] = x
    reference = torch.nn.functional.conv2d(torch.nn.functional.pad(stuffed, (2, 1, 2, 1)), kernel, groups=2)
    assert torch.allclose(up[..., 1:-1, 1:-1], reference[..., 1:-1, 1:-1])  # edges are clamped, not zero-padded


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
