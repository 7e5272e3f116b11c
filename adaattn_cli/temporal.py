"""How stable a stylised clip is over time, and how much style it keeps (bench/temporal.py reports both).

warping_error: optical flow is measured on the *input* frames (OpenCV DIS), each output frame is warped onto the
next with it, and the two are compared where the flow is trustworthy (forward-backward consistent, not leaving
the image). A flicker-free stylisation that follows the motion scores close to the input clip's own error.

style_loss_of_frames: the global style loss (mean/std of relu1_1..relu5_1) of each output frame against the
style image, averaged: a method must not buy its stability by dropping the style (style_loss_by_layer: its
per-layer terms).
Frames are uint8 RGB arrays [H, W, 3], as video_io reads them.

StaticHold: the streaming filter `adaattn video --hold` applies to the stylised frames, so that the parts of a
scene that do not move stop flickering. FrameRefiner: `adaattn video --refine`, the image refinement made steady
from frame to frame with the same test of what is still.
"""

from __future__ import annotations

import itertools
from typing import Iterable

import numpy as np
import torch

from .errors import AdaattnError
from .refine import Carried

STYLE_LAYERS = (1, 2, 3, 4, 5)


def _cv2():
    try:
        import cv2
    except ImportError:
        raise AdaattnError(
            "the temporal metric needs OpenCV for optical flow: pip install opencv-python-headless (or adaattn[flow])"
        ) from None
    return cv2


def warping_error(input_frames: Iterable[np.ndarray], output_frames: Iterable[np.ndarray]) -> float:
    """Mean over consecutive pairs of |warp(output_t) - output_t+1| (RGB in [0, 1]) over the valid pixels of t+1."""
    cv2 = _cv2()
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    errors, previous = [], None
    for source, output in itertools.zip_longest(input_frames, output_frames):
        if source is None or output is None:
            raise ValueError("warping_error needs as many output frames as input frames")
        if output.shape != source.shape:
            raise ValueError(f"output frame {output.shape} and input frame {source.shape} differ in size")
        grey, output = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY), output.astype(np.float32) / 255
        if previous is not None:
            previous_grey, previous_output = previous
            forward = flow.calc(previous_grey, grey, None)  # t -> t+1, on the grid of t
            backward = flow.calc(grey, previous_grey, None)  # t+1 -> t, on the grid of t+1
            valid = _consistent(backward, forward)
            if valid.any():
                warped = _warp(previous_output, backward)  # output t seen from frame t+1
                errors.append(float(np.abs(warped - output)[valid].mean()))
        previous = grey, output
    if not errors:
        raise ValueError("warping_error needs at least two frames with trackable motion")
    return float(np.mean(errors))


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warping: result(x) = image(x + flow(x))."""
    cv2 = _cv2()
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _consistent(flow: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """Pixels whose flow, followed there and back, returns home (the standard occlusion test of Sundaram et al.
    2010: |f + r(x + f)|^2 < 0.01 (|f|^2 + |r(x + f)|^2) + 0.5) and whose target lies inside the image."""
    height, width = flow.shape[:2]
    returned = _warp(reverse, flow)  # r(x + f(x))
    mismatch = np.square(flow + returned).sum(-1)
    magnitude = np.square(flow).sum(-1) + np.square(returned).sum(-1)
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    target_x, target_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    inside = (target_x >= 0) & (target_x <= width - 1) & (target_y >= 0) & (target_y <= height - 1)
    return (mismatch < 0.01 * magnitude + 0.5) & inside


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


class StaticHold:
    """Keeps each output pixel where its input has not changed, so that still parts of a scene stop flickering.

    A stylised pixel changes from frame to frame even where the scene is still: the attention and the content
    normalisation see the whole frame, and compression noise is amplified. Per pixel, d = |input - reference|
    (mean over RGB, 3x3 box) compares the frame with the input the held output was made from; the output becomes
    m * held + (1 - m) * new, with m = 1 up to d = threshold / 2 and falling linearly to 0 at d = threshold (in
    [0, 1]), and the reference moves the same way. So a pixel whose input changed by no more than noise keeps its
    stylisation, anything that moves or changes more is stylised anew, and a slow drift (light, a slow pan) adds
    up against the reference until it is refreshed. Scene cuts refresh everything. Held pixels are earlier
    stylisations, blended only in the band between threshold / 2 and threshold, so the texture is not averaged
    away; no optical flow, so nothing is dragged along.

    Call it on consecutive batches of frames, in order: inputs and outputs are [B, 3, H, W] in [0, 1].
    """

    def __init__(self, threshold: float):
        if not threshold > 0:
            raise ValueError(f"the hold threshold must be positive, got {threshold}")
        self.threshold = threshold
        self.reference: torch.Tensor | None = None  # input the held output depicts, [1, 3, H, W]
        self.held: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        if inputs.shape != outputs.shape:
            raise ValueError(f"inputs {tuple(inputs.shape)} and outputs {tuple(outputs.shape)} differ")
        inputs, outputs = inputs.float(), outputs.float()
        result = torch.empty_like(outputs)
        for index in range(len(outputs)):
            frame, new = inputs[index : index + 1], outputs[index : index + 1]
            if self.held is None or self.held.shape != new.shape:
                self.reference, self.held = frame.clone(), new.clone()  # not views of the caller's tensors
            else:
                keep = stillness(frame, self.reference, self.threshold)
                self.held = torch.lerp(new, self.held, keep)
                self.reference = torch.lerp(frame, self.reference, keep)
            result[index] = self.held[0]
        return result


def stillness(frame: torch.Tensor, reference: torch.Tensor, threshold: float) -> torch.Tensor:
    """[1, 1, H, W] in [0, 1]: 1 where `frame` differs from `reference` ([1, 3, H, W]) by at most threshold / 2
    (mean over RGB, 3x3 box), 0 from threshold on, linear in between."""
    import torch.nn.functional as F

    change = (frame - reference).abs().mean(1, keepdim=True)
    change = F.avg_pool2d(F.pad(change, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return (2 - 2 * change / threshold).clamp_(0, 1)


class FrameRefiner:
    """Refines stylised video frames (`adaattn video --refine N`) without making them flicker.

    Refining each frame on its own would paint each one anew (Ruder et al. 2016 saw the same with optimisation-based
    video stylisation). Here a frame takes over the previous refined frame wherever it shows the same thing:
    - where the input is still (`stillness`, the hold's test), the previous refined pixel is kept exactly;
    - with OpenCV installed, elsewhere the previous refined frame is carried along the optical flow between the
      input frames (DIS) wherever the flow is forward-backward consistent; those pixels start there, a temporal
      term keeps them there, and they take only `carried_step` of each step, so the texture follows the motion
      instead of being repainted (occlusions and pixels entering the picture are painted anew, as an image);
    - the rest starts from the model's frame, as an image does.
    All N steps run at the frame's working size; the first frame (and a new size) is refined like an image with
    `first_steps` steps, since still regions keep its look.

    Call it on consecutive batches of frames, in order: inputs and stylised frames are [B, 3, H, W] in [0, 1].
    """

    def __init__(
        self,
        stylizer,
        style,
        *,
        steps: int,
        threshold: float,
        alpha: float = 1.0,
        seed: int = 0,
        first_steps: int | None = None,
        carried_step: float = 0.1,
        use_flow: bool = True,
    ):
        if not threshold > 0:
            raise ValueError(f"the stillness threshold must be positive, got {threshold}")
        self.stylizer, self.style, self.steps, self.threshold = stylizer, style, steps, threshold
        self.first_steps = 3 * steps if first_steps is None else first_steps
        self.alpha, self.seed, self.carried_step = alpha, seed, carried_step
        self.flow = _flow_estimator() if use_flow else None
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None  # (input, refined output), [1, 3, H, W]

    def __call__(self, inputs: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        refined = []
        for frame, picture in zip(inputs.float().cpu(), stylized.float().cpu()):
            frame, picture = frame[None], picture[None]
            carried = None
            if self.previous is not None and self.previous[0].shape == frame.shape:
                carried = self._carried(*self.previous, frame)
            steps = self.steps if carried is not None else self.first_steps
            output = self.stylizer.refine(
                frame[0], picture[0], [self.style], steps=steps, alpha=self.alpha, seed=self.seed, previous=carried
            )[None]
            self.previous = (frame, output)
            refined.append(output)
        return torch.cat(refined)

    def _carried(self, last_input: torch.Tensor, last_output: torch.Tensor, frame: torch.Tensor) -> Carried:
        still = stillness(frame, last_input, self.threshold)
        if self.flow is None:
            return Carried(last_output, still, 1 - still)
        cv2 = _cv2()

        def grey(image: torch.Tensor) -> np.ndarray:
            return cv2.cvtColor(image[0].permute(1, 2, 0).mul(255).round().byte().numpy(), cv2.COLOR_RGB2GRAY)

        before, now = grey(last_input), grey(frame)
        backward = self.flow.calc(now, before, None)  # this frame -> the previous one, on this frame's grid
        forward = self.flow.calc(before, now, None)
        tracked = torch.from_numpy(_consistent(backward, forward).astype(np.float32))[None, None]
        # kept exactly only where nothing moves either: a flat region sliding past is tracked, not frozen
        resting = torch.from_numpy((np.square(backward).sum(-1) < 0.25).astype(np.float32))[None, None]
        still = still * resting
        warped = torch.from_numpy(_warp(last_output[0].permute(1, 2, 0).numpy(), backward)).permute(2, 0, 1)[None]
        picture = torch.lerp(warped, last_output, still)  # still pixels exactly, not resampled
        weight = torch.maximum(tracked, still)
        step_scale = (1 - still) * (1 - tracked * (1 - self.carried_step))
        return Carried(picture, weight, step_scale)


def _flow_estimator():
    """OpenCV's DIS optical flow, or None without OpenCV."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
