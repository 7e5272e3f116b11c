"""Optical flow between video frames (OpenCV's DIS), and warping along it: shared by the metrics and the refiner.

video_metrics.warping_error measures flicker along the flow of the input frames; video_filters.FrameRefiner carries
the previous refined frame along it. OpenCV is optional (adaattn[flow]): `estimator()` is None without it, and
the other helpers are only called by someone who holds an estimator.
"""

from __future__ import annotations

import numpy as np


def estimator():
    """OpenCV's DIS optical flow (medium preset), or None without OpenCV. flow = estimator().calc(a, b, None)
    gives, on the grid of grey frame a, where each pixel went in b: [H, W, 2] (dx, dy)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def grey(rgb: np.ndarray) -> np.ndarray:
    """A uint8 RGB frame [H, W, 3] as the grey frame [H, W] that the flow is measured on."""
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warping: result(x) = image(x + flow(x))."""
    import cv2

    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent(flow: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """Pixels whose flow, followed there and back, returns home (the standard occlusion test of Sundaram et al.
    2010: |f + r(x + f)|^2 < 0.01 (|f|^2 + |r(x + f)|^2) + 0.5) and whose target lies inside the image."""
    height, width = flow.shape[:2]
    returned = warp(reverse, flow)  # r(x + f(x))
    mismatch = np.square(flow + returned).sum(-1)
    magnitude = np.square(flow).sum(-1) + np.square(returned).sum(-1)
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    target_x, target_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    inside = (target_x >= 0) & (target_x <= width - 1) & (target_y >= 0) & (target_y <= height - 1)
    return (mismatch < 0.01 * magnitude + 0.5) & inside
