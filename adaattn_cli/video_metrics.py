"""How stable a stylised clip is over time, and how much style it keeps (bench/temporal.py reports both).

warping_error: optical flow is measured on the *input* frames (OpenCV DIS), each output frame is warped onto the
next with it, and the two are compared where the flow is trustworthy (forward-backward consistent, not leaving
the image). A flicker-free stylisation that follows the motion scores close to the input clip's own error.

style_loss_of_frames: the global style loss (mean/std of relu1_1..relu5_1) of each output frame against the
style image, averaged: a method must not buy its stability by dropping the style (style_loss_by_layer: its
per-layer terms).
Frames are uint8 RGB arrays [H, W, 3], as video_io reads them. Measuring only: the filters that `adaattn video`
applies are in video_filters.
"""

from __future__ import annotations

import itertools
from typing import Iterable

import numpy as np
import torch

from . import optical_flow
from .errors import AdaattnError

STYLE_LAYERS = (1, 2, 3, 4, 5)


def warping_error(input_frames: Iterable[np.ndarray], output_frames: Iterable[np.ndarray]) -> float:
    """Mean over consecutive pairs of |warp(output_t) - output_t+1| (RGB in [0, 1]) over the valid pixels of t+1."""
    flow = optical_flow.estimator()
    if flow is None:
        raise AdaattnError("the temporal metric needs OpenCV for optical flow: pip install opencv-python-headless (or adaattn[flow])")
    errors, previous = [], None
    for source, output in itertools.zip_longest(input_frames, output_frames):
        if source is None or output is None:
            raise ValueError("warping_error needs as many output frames as input frames")
        if output.shape != source.shape:
            raise ValueError(f"output frame {output.shape} and input frame {source.shape} differ in size")
        grey, output = optical_flow.grey(source), output.astype(np.float32) / 255
        if previous is not None:
            previous_grey, previous_output = previous
            forward = flow.calc(previous_grey, grey, None)  # t -> t+1, on the grid of t
            backward = flow.calc(grey, previous_grey, None)  # t+1 -> t, on the grid of t+1
            valid = optical_flow.consistent(backward, forward)
            if valid.any():
                warped = optical_flow.warp(previous_output, backward)  # output t seen from frame t+1
                errors.append(float(np.abs(warped - output)[valid].mean()))
        previous = grey, output
    if not errors:
        raise ValueError("warping_error needs at least two frames with trackable motion")
    return float(np.mean(errors))


def style_loss_of_frames(frames: Iterable[np.ndarray], style: torch.Tensor, encoder: torch.nn.Module) -> float:
    """Mean over frames of the global style loss against `style` [3, h, w] in [0, 1], with `encoder`
    (e.g. weights.load_encoder(), the bundled one, so that all methods are measured alike)."""
    return float(sum(style_loss_by_layer(frames, style, encoder)))


@torch.inference_mode()
def style_loss_by_layer(frames: Iterable[np.ndarray], style: torch.Tensor, encoder: torch.nn.Module) -> list[float]:
    """style_loss_of_frames split into its relu1_1..relu5_1 terms (they sum to it): which scale misses the style."""
    from .losses import global_style_loss

    device = next(encoder.parameters()).device
    style_features = encoder(style.reshape(1, 3, *style.shape[-2:]).to(device), max(STYLE_LAYERS))
    losses = []
    for frame in frames:
        image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float().div_(255).to(device)
        features = encoder(image, max(STYLE_LAYERS))
        losses.append([float(global_style_loss(features, style_features, (layer,))) for layer in STYLE_LAYERS])
    if not losses:
        raise ValueError("style_loss_of_frames needs at least one frame")
    return np.mean(losses, axis=0).tolist()
