"""Where tensors live and in which precision the networks run: resolved once from params.

``auto`` means CUDA when ``torch.cuda.is_available()``, else the CPU. Precision ``bf16`` and
``fp16`` run the forward passes under ``torch.autocast`` (bf16 works on the CPU too); ``fp16``
also needs loss scaling (:func:`grad_scaler`) so that small gradients do not underflow.
"""

from __future__ import annotations

import contextlib
import re

import torch

from artshift.errors import ParamsError

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def is_device_spec(spec: str) -> bool:
    """True for the values a ``device`` param accepts: auto, cpu, cuda, cuda:N."""
    return _DEVICE.fullmatch(spec) is not None


def resolve_device(spec: str, key: str) -> torch.device:
    """The device named by param ``key`` (value ``spec``); asking for a GPU that is not there is
    a :class:`ParamsError` naming the key."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ParamsError(f"{key}: {spec} requested but no CUDA GPU is available (torch.cuda.is_available() "
                              "is False); use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ParamsError(f"{key}: {spec} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The mixed-precision context for forward passes: a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (dynamic scale, state saved in checkpoints); disabled, and so a
    pass-through, for fp32 and bf16."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
