"""video_filters.StaticHold: still pixels keep their first stylisation, changed ones are stylised anew, drift adds up."""

import pytest
import torch

from adaattn_cli.video_filters import StaticHold


def still_scene_with_a_moving_square(count=6, size=32):
    """Inputs: a fixed random background with a bright square moving 4 px a frame; outputs: a different random
    'stylisation' every frame (pure flicker). [count, 3, size, size]."""
    generator = torch.Generator().manual_seed(0)
    background = torch.rand(1, 3, size, size, generator=generator) * 0.5
    inputs = background.repeat(count, 1, 1, 1)
    for t in range(count):
        inputs[t, :, 4:12, 4 * t : 4 * t + 8] = 1.0
    outputs = torch.rand(count, 3, size, size, generator=generator)
    return inputs, outputs


def test_still_pixels_are_held_and_moving_ones_are_new():
    inputs, outputs = still_scene_with_a_moving_square()
    held = StaticHold(0.015)(inputs, outputs)
    assert torch.equal(held[0], outputs[0])
    still = (slice(None), slice(20, 32), slice(None))  # rows the square never touches
    for t in range(1, len(held)):
        assert torch.allclose(held[t][still], outputs[0][still], atol=1e-6)  # no flicker at all
        uncovered = (slice(None), slice(5, 11), slice(4 * t + 5, 4 * t + 8))  # what the square moved onto: all new
        assert torch.allclose(held[t][uncovered], outputs[t][uncovered], atol=1e-6)


def test_chunks_in_order_equal_one_batch():
    inputs, outputs = still_scene_with_a_moving_square()
    whole = StaticHold(0.015)(inputs, outputs)
    hold = StaticHold(0.015)
    pieces = torch.cat([hold(inputs[i : i + 2], outputs[i : i + 2]) for i in range(0, len(inputs), 2)])
    assert torch.equal(whole, pieces)


def test_a_slow_drift_adds_up_until_it_is_refreshed():
    """Light rising by a quarter of the threshold a frame: each step alone is small, but the held output is
    compared with the input it was made from, so it follows within a few frames instead of freezing."""
    count, threshold = 12, 0.015
    inputs = torch.linspace(0, 11 * threshold / 4, count).view(count, 1, 1, 1).expand(count, 3, 8, 8).clone()
    outputs = inputs + 0.3  # a stylisation that follows the light
    held = StaticHold(threshold)(inputs, outputs)
    lag = (outputs - held)[:, 0, 4, 4]
    assert lag[-1] < threshold  # behind by less than the threshold, never frozen at the first frame's value
    assert held[-1, 0, 4, 4] - held[0, 0, 4, 4] > 11 * threshold / 4 - threshold  # it rose with the light


def test_a_new_frame_size_starts_over_and_bad_arguments_are_errors():
    hold = StaticHold(0.015)
    hold(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    assert torch.equal(hold(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)), torch.ones(1, 3, 4, 4))
    with pytest.raises(ValueError, match="differ"):
        hold(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="positive"):
        StaticHold(0)
