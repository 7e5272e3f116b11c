"""The filters `adaattn video` runs on stylised frames so that they do not flicker (video.stylize_frames applies them).

StaticHold (`--hold`): the parts of a scene that do not move keep their stylisation. FrameRefiner (`--refine N`):
the image refinement made steady from frame to frame, with the same test of what is still (`stillness`) and the
optical flow of the input frames. Both keep state across calls: give them the clip's frames in order. How steady
the result is, is measured by video_metrics.
"""

from __future__ import annotations

import numpy as np
import torch

from . import optical_flow
from .refine import Carried, start_blur


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
            if self.held is None or self.reference is None or self.held.shape != new.shape:  # the two are set together
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
    All N steps run at the frame's working size; the first frame (and a new size) is refined like an image, with the
    budget `first_steps` (refine.plan; 6N: at N = 8 about an image's --refine 50), since still regions keep its look.

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
        self.first_steps = 6 * steps if first_steps is None else first_steps
        self.blur = start_blur(self.first_steps, stylizer.refiner.settings)  # every frame's start as the first's
        self.alpha, self.seed, self.carried_step = alpha, seed, carried_step
        self.flow = optical_flow.estimator() if use_flow else None
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
            return Carried(last_output, still, 1 - still, self.blur)

        def grey(image: torch.Tensor) -> np.ndarray:
            return optical_flow.grey(image[0].permute(1, 2, 0).mul(255).round().byte().numpy())

        before, now = grey(last_input), grey(frame)
        backward = self.flow.calc(now, before, None)  # this frame -> the previous one, on this frame's grid
        forward = self.flow.calc(before, now, None)
        tracked = torch.from_numpy(optical_flow.consistent(backward, forward).astype(np.float32))[None, None]
        # kept exactly only where nothing moves either: a flat region sliding past is tracked, not frozen
        resting = torch.from_numpy((np.square(backward).sum(-1) < 0.25).astype(np.float32))[None, None]
        still = still * resting
        warped = torch.from_numpy(optical_flow.warp(last_output[0].permute(1, 2, 0).numpy(), backward)).permute(2, 0, 1)[None]
        picture = torch.lerp(warped, last_output, still)  # still pixels exactly, not resampled
        weight = torch.maximum(tracked, still)
        step_scale = (1 - still) * (1 - tracked * (1 - self.carried_step))
        return Carried(picture, weight, step_scale, self.blur)
