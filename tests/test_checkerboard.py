import pytest
import torch

from artshift.metrics.checkerboard import checkerboard_scores, checkerboard_share, nyquist_mask
from artshift.models.networks import ResnetGenerator, init_weights

SIZE = 64


def _grid() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(SIZE, dtype=torch.float64), torch.arange(SIZE, dtype=torch.float64),
                          indexing="ij")


def checkerboard() -> torch.Tensor:
    y, x = _grid()
    return ((-1.0) ** (x + y)).expand(1, 3, SIZE, SIZE)


def smooth() -> torch.Tensor:
    """A soft diagonal wave with a blob: natural-image-like, nothing near Nyquist."""
    y, x = _grid()
    luma = 0.6 * torch.sin((x + 0.5 * y) / 9.0) + 0.3 * torch.exp(-((x - 20) ** 2 + (y - 40) ** 2) / 200.0)
    return luma.expand(1, 3, SIZE, SIZE)


def test_pure_checkerboard_is_all_nyquist_and_smooth_image_none():
    assert checkerboard_share(checkerboard()).item() == pytest.approx(1.0, abs=1e-4)
    assert checkerboard_share(smooth()).item() < 1e-6


def test_share_grows_with_artefact_strength():
    shares = [checkerboard_share(smooth() + a * checkerboard()).item() for a in (0.0, 0.01, 0.05, 0.2)]
    assert shares == sorted(shares) and shares[1] > 1e3 * shares[0]


def test_vertical_and_horizontal_stripes_of_period_two_count():
    y, x = _grid()
    for stripes in ((-1.0) ** x, (-1.0) ** y):
        assert checkerboard_share(stripes.expand(1, 3, SIZE, SIZE)).item() == pytest.approx(1.0, abs=1e-4)


def test_mask_covers_the_three_points_with_wraparound():
    mask = nyquist_mask(SIZE, SIZE, radius=1 / 16)
    half = SIZE // 2  # fftfreq index of -0.5 cycles/pixel
    assert mask[half, 0] and mask[0, half] and mask[half, half]
    assert mask[half - 3, 0] and mask[half + 3, 0]  # both sides of the wrap at ±0.5
    assert not mask[0, 0] and not mask[SIZE // 4, SIZE // 4]


def test_scores_relative_to_photos():
    photos = smooth() + 0.01 * checkerboard()
    same = checkerboard_scores(photos, photos)
    assert same["checkerboard_vs_photo"] == pytest.approx(1.0)
    worse = checkerboard_scores(photos + 0.1 * checkerboard(), photos)
    assert worse["checkerboard_vs_photo"] > 10
    assert checkerboard_scores(photos, None).keys() == {"checkerboard"}


@pytest.mark.parametrize("seed", [0, 1])
def test_transposed_convs_leave_a_checkerboard_antialiased_layers_do_not(seed):
    """Even untrained, the stride-2 transposed-conv generator stamps a 2-pixel grid on its output."""
    photos = smooth().float().repeat(2, 1, 1, 1)
    ratios = {}
    for antialias in (False, True):
        torch.manual_seed(seed)
        generator = ResnetGenerator(ngf=8, n_blocks=2, antialias=antialias)
        init_weights(generator)
        with torch.no_grad():
            ratios[antialias] = checkerboard_scores(generator(photos), photos)["checkerboard_vs_photo"]
    assert ratios[False] > 100 * ratios[True]
