import pytest
import torch

from adaattn_cli import functional as fn


def test_mean_std_matches_definition():
    x = torch.randn(2, 3, 5, 7)
    mean, std = fn.mean_std(x)
    flat = x.flatten(2)
    assert torch.allclose(mean.flatten(), flat.mean(2).flatten())
    assert torch.allclose(std.flatten(), (flat.var(2, unbiased=True) + 1e-5).sqrt().flatten())


def test_mean_std_is_finite_for_dead_channels():
    mean, std = fn.mean_std(torch.zeros(1, 4, 3, 3))
    assert torch.isfinite(fn.mean_variance_norm(torch.zeros(1, 4, 3, 3))).all()
    assert (std > 0).all() and (mean == 0).all()


def test_weighted_mean_std_is_mean_std_for_equal_weights_and_a_region_s_own_statistics():
    x = torch.randn(2, 3, 5, 7)
    for level in (1.0, 0.3):  # equal weights of any size: the whole map's statistics
        mean, std = fn.weighted_mean_std(x, torch.full((1, 1, 5, 7), level))
        assert torch.allclose(mean, fn.mean_std(x)[0], atol=1e-6) and torch.allclose(std, fn.mean_std(x)[1], atol=1e-6)
    region = torch.zeros(1, 1, 5, 7)
    region[..., :3] = 1
    mean, std = fn.weighted_mean_std(x, region)
    own_mean, own_std = fn.mean_std(x[..., :3])
    assert torch.allclose(mean, own_mean, atol=1e-6) and torch.allclose(std, own_std, atol=1e-6)


def test_adain_formula():
    content, style = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 5, 3) * 3 + 1
    cm, cs = fn.mean_std(content)
    sm, ss = fn.mean_std(style)
    expected = ss * (content - cm) / cs + sm
    assert torch.allclose(fn.adain(content, style), expected, atol=1e-6)
    out_mean, out_std = fn.mean_std(fn.adain(content, style))
    assert torch.allclose(out_mean, sm, atol=1e-5) and torch.allclose(out_std, ss, atol=1e-3)


@pytest.mark.parametrize("mode", ["softmax", "cosine"])
def test_chunked_attention_equals_full(mode):
    generator = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 301, 16, generator=generator), torch.randn(2, 16, 97, generator=generator)
    value = torch.randn(2, 97, 8, generator=generator)
    full = fn.attention_mean_std(query, key, value, mode=mode, logit_budget=None)
    for budget in (1, 97 * 2 * 7, 97 * 2 * 64):
        chunked = fn.attention_mean_std(query, key, value, mode=mode, logit_budget=budget)
        for a, b in zip(full, chunked):
            # fp32 rounding only: one-row chunks take another BLAS kernel (torch 2.14: 3e-5 on the std, which
            # amplifies the rounding of E[V^2] - M^2)
            assert torch.allclose(a, b, atol=1e-4, rtol=0)
    plain = fn.attention_output(query, key, value, logit_budget=None)
    assert torch.allclose(plain, fn.attention_output(query, key, value, logit_budget=500), atol=1e-5)


def test_concentrated_softmax_rows_are_summed_over_their_top_weights_and_equal_the_dense_moments(monkeypatch):
    """CPU inference sums rows whose weight is all but SPARSE_TOLERANCE in their top SPARSE_TOP_K over those only;
    rows that are not (here every other one) take the dense product: within the tolerance of dense attention."""
    generator = torch.Generator().manual_seed(0)
    query, key = torch.randn(1, 300, 16, generator=generator), torch.randn(1, 16, 500, generator=generator)
    query[:, ::2] *= 20  # nearly one-hot rows; the others spread over many keys
    value, bias = torch.randn(1, 500, 8, generator=generator), torch.randn(1, 1, 500, generator=generator)
    calls = []
    sparse_moments = fn._sparse_moments
    monkeypatch.setattr(fn, "_sparse_moments", lambda *args: calls.append(sparse_moments(*args)) or calls[-1])
    with torch.enable_grad():  # training: dense
        dense = fn.attention_mean_std(query, key, value, logit_bias=bias)
    assert not calls
    with torch.no_grad():
        sparse = fn.attention_mean_std(query, key, value, logit_bias=bias, logit_budget=500 * 100)  # 3 chunks
    assert len(calls) == 3 and 0.4 < calls[0][1] < 0.6  # every chunk, half the rows sparse
    weights = torch.softmax(query @ key + bias, dim=-1)
    assert (weights[0, ::2].topk(fn.SPARSE_TOP_K).values.sum(-1) > 1 - 1e-5).all()
    # the weight left out (at most the tolerance) moves each moment by at most that times the values' (squared) range
    spread = float(value.max() - value.min())
    assert torch.allclose(sparse[0], dense[0], atol=fn.SPARSE_TOLERANCE * spread)
    assert torch.allclose(sparse[1] ** 2, dense[1] ** 2, atol=fn.SPARSE_TOLERANCE * spread**2)


def test_a_first_chunk_of_spread_softmax_rows_keeps_the_call_dense(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    query, key, value = torch.randn(1, 300, 16, generator=generator), torch.randn(1, 16, 500, generator=generator), torch.randn(1, 500, 8)
    calls = []
    sparse_moments = fn._sparse_moments
    monkeypatch.setattr(fn, "_sparse_moments", lambda *args: calls.append(sparse_moments(*args)) or calls[-1])
    with torch.no_grad():
        spread = fn.attention_mean_std(query * 0.1, key, value, logit_budget=500 * 100)
    assert len(calls) == 1 and calls[0][1] < 0.5
    exact = torch.softmax(0.1 * query @ key, dim=-1) @ value
    assert torch.allclose(spread[0], exact, atol=1e-5)


def test_attention_moments_against_explicit_formula():
    query, key, value = torch.randn(1, 5, 4), torch.randn(1, 4, 6), torch.randn(1, 6, 3)
    weights = torch.softmax(query @ key, dim=-1)
    mean, std = fn.attention_mean_std(query, key, value)
    assert torch.allclose(mean, weights @ value, atol=1e-6)
    variance = weights @ value**2 - (weights @ value) ** 2
    assert torch.allclose(std, variance.clamp_min(fn.VAR_FLOOR).sqrt(), atol=1e-5)


def test_cosine_weights_are_normalised_and_nonnegative():
    weights = fn.attention_weights(torch.randn(1, 7, 5), torch.randn(1, 5, 9), "cosine")
    assert (weights >= 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(1, 7), atol=1e-4)


def test_std_is_finite_where_variance_vanishes():
    # identical values at every style position: E[V^2] == M^2 exactly, sqrt(0) would give inf gradients
    query = torch.randn(1, 4, 3, requires_grad=True)
    key = torch.randn(1, 3, 6)
    value = torch.ones(1, 6, 2) * 0.7
    mean, std = fn.attention_mean_std(query, key, value)
    assert torch.isfinite(std).all() and (std > 0).all()
    (mean.sum() + std.sum()).backward()
    assert torch.isfinite(query.grad).all()


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown attention mode"):
        fn.attention_weights(torch.randn(1, 2, 2), torch.randn(1, 2, 2), "dot")


def test_coral_matches_colour_statistics():
    generator = torch.Generator().manual_seed(3)
    source = torch.rand(3, 32, 32, generator=generator) * 0.5
    target = torch.rand(3, 16, 16, generator=generator) * torch.tensor([0.2, 0.6, 0.3]).view(3, 1, 1) + 0.2
    out = fn.coral(source, target)
    assert torch.allclose(out.reshape(3, -1).mean(1), target.reshape(3, -1).mean(1), atol=0.02)


def test_match_mean_colour_moves_each_styles_share_of_the_picture_and_leaves_the_rest():
    generator = torch.Generator().manual_seed(4)
    pictures = torch.rand(2, 3, 16, 20, generator=generator) * 0.4 + 0.3  # far from 0 and 1: no clipping
    colour = torch.tensor([0.6, 0.4, 0.3])
    full = fn.match_mean_colour(pictures, [(colour, 1.0)])
    assert torch.allclose(full.mean(dim=(2, 3)), colour.expand(2, 3), atol=1e-6)  # each picture of the batch
    assert torch.allclose(full - pictures, (full - pictures)[..., :1, :1].expand_as(pictures), atol=1e-6)  # one shift each
    half = fn.match_mean_colour(pictures, [(colour, 0.5)])  # alpha 0.5: half the way
    assert torch.allclose(half.mean(dim=(2, 3)), (pictures.mean(dim=(2, 3)) + colour) / 2, atol=1e-6)
    left = torch.zeros(1, 1, 16, 20)
    left[..., :8] = 1
    masked = fn.match_mean_colour(pictures, [(colour, left), (torch.tensor([0.2, 0.2, 0.2]), 0.0 * left)])
    shift = masked - pictures
    assert torch.allclose(shift[..., :4], shift[..., :1, :1].expand_as(shift[..., :4]), atol=1e-6)  # one shift, inside
    assert shift[..., 12:].abs().max() < 1e-3  # outside the mask: the content's own statistics (3 sigma from the edge)
    assert (shift[..., 7] - shift[..., 8]).abs().max() < 0.5 * shift[..., 0].abs().max()  # no step at the mask's edge
    assert (masked[..., :8].mean(dim=(2, 3)) - colour).abs().max() < 0.03  # the region takes (about) the style's colour
    assert fn.mean_colour(pictures[0], left[0, 0]).allclose(pictures[0, :, :, :8].mean(dim=(1, 2)))


def test_colour_transform_gives_the_target_mean_and_covariance():
    torch.manual_seed(0)
    source = torch.rand(3, 20, 30, dtype=torch.float64) * 0.5
    target = torch.rand(3, 10, 10, dtype=torch.float64).pow(2)
    matrix, offset = fn.colour_transform(source, target)
    mapped = matrix @ source.reshape(3, -1) + offset
    assert torch.allclose(mapped.mean(1), target.reshape(3, -1).mean(1), atol=1e-9)
    assert torch.allclose(torch.cov(mapped), torch.cov(target.reshape(3, -1)), atol=1e-4)  # the 1e-5 ridge


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_gaussian_blur_is_a_normalised_reflected_gaussian(sigma):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 24, 31, dtype=torch.float64)
    radius = int(3 * sigma + 0.5)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    kernel = torch.outer(taps, taps) / taps.sum() ** 2
    padded = torch.nn.functional.pad(images, (radius,) * 4, mode="reflect")
    expected = torch.nn.functional.conv2d(padded, kernel.expand(3, 1, -1, -1), groups=3)
    assert torch.allclose(fn.gaussian_blur(images, sigma), expected, atol=1e-12)
    flat = torch.full((1, 3, 40, 50), 0.3, dtype=torch.float64)
    assert torch.allclose(fn.gaussian_blur(flat, 9.0), flat, atol=1e-12)  # reduced-resolution path keeps constants


def test_recolouring_moves_the_colour_field_and_keeps_the_detail():
    torch.manual_seed(0)
    images = 0.4 + 0.1 * torch.rand(1, 3, 32, 32, dtype=torch.float64)
    identity, zero = torch.eye(3, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)
    assert torch.allclose(fn.recolour_low_frequencies(images, identity, zero, 4.0), images, atol=1e-12)
    matrix, offset = 0.5 * identity, torch.tensor([[0.1], [0.2], [0.3]], dtype=torch.float64)
    out = fn.recolour_low_frequencies(images, matrix, offset, 4.0)
    # the mean colour follows the map, while the detail (image minus its blur) is unchanged
    assert torch.allclose(out.mean((2, 3)), (matrix @ images.mean((2, 3)).T + offset).T, atol=2e-3)
    detail = lambda x: x - fn.gaussian_blur(x, 4.0)  # noqa: E731
    assert (detail(out) - detail(images)).abs().max() < 0.02


def test_folded_query_attention_equals_the_projected_query():
    """At inference AdaAttN moves its query projection into the style's keys: same block output, and the
    fold follows the weights when they change."""
    from adaattn_cli.attention import AdaAttN

    torch.manual_seed(0)
    block = AdaAttN(value_channels=6, key_channels=10, max_style_positions=None).double()
    block.matmul_dtype = torch.float64  # so that the two are compared to fp64 rounding
    for conv in (block.query, block.key, block.value):
        torch.nn.init.normal_(conv.weight, 0.0, 0.3)
        torch.nn.init.normal_(conv.bias, 0.0, 1.0)
    content, content_key = torch.randn(2, 6, 5, 7, dtype=torch.float64), torch.randn(2, 10, 5, 7, dtype=torch.float64)
    style, style_key = torch.randn(1, 6, 4, 3, dtype=torch.float64), torch.randn(1, 10, 4, 3, dtype=torch.float64)

    def outputs():
        projected = block(content, content_key, block.memorize(style, style_key))  # grad enabled: no fold
        with torch.no_grad():
            memory = block.memorize(style, style_key)
            folded = block(content, content_key, memory)
        assert memory.logit_bias is not None and projected.requires_grad
        return projected.detach(), folded

    projected, folded = outputs()
    assert torch.allclose(folded, projected, atol=1e-10)
    with torch.no_grad():
        block.query.weight.mul_(2)  # an optimiser step or a load_state_dict
        block.key.bias.add_(1)
    projected_after, folded_after = outputs()
    assert torch.allclose(folded_after, projected_after, atol=1e-10) and not torch.allclose(projected_after, projected)
    with torch.inference_mode():  # weights made in inference mode (no version counter) fold too
        inference_block = AdaAttN(value_channels=6, key_channels=10, max_style_positions=None).double()
        inference_block.load_state_dict(block.state_dict())
        inference_block.matmul_dtype = torch.float64
        assert inference_block.query.weight.is_inference()
        assert torch.allclose(inference_block(content, content_key, inference_block.memorize(style, style_key)), folded_after, atol=1e-10)


def test_a_logit_bias_needs_softmax_attention():
    query, key, value = torch.randn(1, 3, 4), torch.randn(1, 4, 5), torch.randn(1, 5, 2)
    with pytest.raises(ValueError, match="softmax"):
        fn.attention_mean_std(query, key, value, mode="cosine", logit_bias=torch.zeros(1, 1, 5))
