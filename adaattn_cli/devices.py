"""Devices and processes: the device and precision of a run, and the CPU settings for inference.

Shared by inference (api.Stylizer, the CLI, the benches) and training (training.Trainer).
"""

from __future__ import annotations

import ctypes
import re
import sys
from pathlib import Path

import torch

from .errors import BadInputError, SettingError


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SettingError("{device} cuda: no CUDA GPU is available")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SettingError("{device} mps: Apple MPS is not available")
    if device not in ("cpu", "cuda", "mps") and not re.fullmatch(r"cuda:\d+", device):
        raise BadInputError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    if device.startswith("cuda:"):  # checked here: torch only fails at the first tensor moved there
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(device[5:]) >= count:
            have = f"GPUs cuda:0 to cuda:{count - 1}" if count > 1 else "one GPU, cuda:0" if count else "no CUDA GPU"
            raise SettingError(f"{{device}} {device}: no such GPU; this machine has {have}")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """bf16 where it is measured faster (CUDA with bf16, CPUs with avx512_bf16/AMX; bench/), else fp32."""
    if precision in ("fp32", "bf16"):
        return precision
    if precision != "auto":
        raise BadInputError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "fp32"
        return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"
    return "fp32"


def tune_cpu_for_inference() -> None:
    """Process-wide CPU settings for inference (the CLI and the benches call this once).

    Subnormal floats change nothing visible in an image but make x86 convolutions several times slower.
    glibc hands every freed block above its mmap threshold back to the OS, so each large intermediate
    tensor is page-faulted in again: keeping freed memory in the heap takes a good part off the time of a video
    frame (bench/video_speed.py; see docs/performance.md). Blocks over 32 MiB are still returned, so the peak
    memory does not change.
    """
    torch.set_flush_denormal(True)
    if sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):  # not glibc
            return
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        mallopt(m_mmap_threshold, 32 << 20)
        mallopt(m_trim_threshold, 1 << 30)
        mallopt(m_top_pad, 64 << 20)
