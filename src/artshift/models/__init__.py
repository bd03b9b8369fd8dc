"""The method registry: ``train.method`` name → the class that implements it.

This table is the only list of methods: ``config`` takes the allowed ``train.method`` values,
each method's parameter defaults and its parameter checks from it, and :func:`build_method`
builds from it. Adding a method is one module in this package and one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from artshift.models.adain import AdaIN, AdaINGenerator
from artshift.models.cut import CUT, FastCUT
from artshift.models.cyclegan import CycleGAN
from artshift.models.dcgan import DCGAN
from artshift.models.gan import GANMethod
from artshift.models.networks import GENERATORS as _NETWORK_GENERATORS

if TYPE_CHECKING:
    from artshift.config import TrainParams

METHODS: dict[str, type[GANMethod]] = {"cut": CUT, "fastcut": FastCUT, "cyclegan": CycleGAN, "dcgan": DCGAN,
                                        "adain": AdaIN}
# Every generator class by name, to rebuild a saved generator (:func:`artshift.checkpoint.load_generator`):
# those of ``networks`` and those defined beside their method.
GENERATORS: dict[str, type[torch.nn.Module]] = _NETWORK_GENERATORS | {AdaINGenerator.__name__: AdaINGenerator}


def build_method(cfg: TrainParams, image_size: int) -> GANMethod:
    """The method named by ``train.method``, with freshly initialised networks for ``image_size`` px images."""
    return METHODS[cfg.method](cfg, image_size)
