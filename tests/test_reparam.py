import pytest
import torch
from torch import nn

from artshift.models.networks import DCGANGenerator, ResnetGenerator, init_weights
from artshift.models.reparam import BlockedLayoutUpsample, StridedOutputConv, SubpixelUpsample, reparameterise


@pytest.mark.parametrize("size", [(8, 8), (20, 36), (64, 48)])
def test_transposed_conv_equals_subpixel_form(size):
    torch.manual_seed(1)
    deconv = nn.ConvTranspose2d(6, 5, 3, stride=2, padding=1, output_padding=1)
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        torch.testing.assert_close(SubpixelUpsample(deconv)(x), deconv(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(8, 8), (20, 36)])
def test_output_conv_equals_strided_form(size):
    torch.manual_seed(2)
    pad, conv = nn.ReflectionPad2d(3), nn.Conv2d(4, 3, 7)
    x = torch.randn(2, 4, *size)
    with torch.no_grad():
        torch.testing.assert_close(StridedOutputConv(pad, conv)(x), conv(pad(x)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("int8", [False, True])
@pytest.mark.parametrize("antialias", [False, True])
def test_reparameterised_generator_matches_and_leaves_original_alone(int8, antialias):
    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=8, n_blocks=2, antialias=antialias)
    init_weights(generator, gain=0.2)
    generator.eval()
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    fast = reparameterise(generator, int8=int8)
    kinds = [type(layer) for layer in fast.layers]
    assert StridedOutputConv in kinds
    assert (nn.ConvTranspose2d in kinds) == (not antialias and not int8)
    assert kinds.count(BlockedLayoutUpsample) == (2 if antialias and not int8 else 0)
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(fast(x), generator(x), atol=1e-5, rtol=0)
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())


def test_other_networks_are_returned_unchanged():
    dcgan = DCGANGenerator(z_dim=4, ngf=4, image_size=8)
    assert reparameterise(dcgan, int8=True) is dcgan
