"""The allowed values of every enumerated parameter, declared once.

``config`` validates ``params.yaml`` against these types; the code that implements a choice
reads the same type (``typing.get_args``) instead of keeping its own list. This module
imports nothing from the project, so every stage can depend on it without depending on the
code behind the choices. (The list of training methods is the registry in
:mod:`artshift.models`: a method is a class, so the table of classes is the list.)
"""

from typing import Literal

Source = Literal["embedded", "url", "local"]  # download.source: see artshift.data.sources
GanLoss = Literal["vanilla", "lsgan", "hinge", "wgan"]  # train.gan_loss: see artshift.losses
DiffAugmentPolicy = Literal["color", "translation", "cutout"]  # train.diffaugment: see artshift.augment
ResizeMode = Literal["pytorch-fid", "clean-fid"]  # evaluate.resize: see artshift.metrics.features
FidMethod = Literal["eigh", "sqrtm"]  # evaluate.fid_method: see artshift.metrics.fid
Precision = Literal["fp32", "bf16", "fp16"]  # train.precision: see artshift.device
