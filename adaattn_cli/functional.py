"""Pure tensor maths: statistics, normalisation, attention, colour and image warping.

Shared by the models, the losses, the training data and the video pipeline. Everything here is stateless:
tensors in, tensors out, no device or RNG choices. The fast convolution kernels are in kernels.py.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

# Variance epsilon of the reference implementations (AdaIN, SANet, AdaAttN all add it before the sqrt).
STD_EPS = 1e-5
# Floor of the attention variance E[V^2] - M^2: sqrt at 0 has an infinite gradient, and the HED
# encoder's relu5_1 has channels that are always zero, so the variance really does reach 0.
VAR_FLOOR = 1e-6
# Budget of attention logits computed at once (elements): 2**22 fp32 logits = 16 MiB. Chunks that fit in cache
# make the matmul+softmax+matmul faster than bigger ones (bench/stylize_speed.py; see docs/performance.md).
DEFAULT_LOGIT_BUDGET = 2**22
# A trained AdaAttN's softmax is nearly one-hot at relu4_1 and relu5_1 (1-3 of 4,096 style positions carry all but
# 1e-5 of a query's weight; docs/performance.md): at inference on the CPU the moments are then summed over each
# row's top SPARSE_TOP_K weights only, and a row whose weight outside them could exceed SPARSE_TOLERANCE takes the
# dense product. Whether a call tries it is decided on its first chunk of rows: most of them must pass.
SPARSE_TOP_K = 32
SPARSE_TOLERANCE = 1e-5


def sum_terms(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """The sum of (loss) terms, at least one. Not the builtin sum: it starts from the int 0, so that no terms would
    sum to 0, not to a tensor (nor to a loss that backpropagates); here they are an error."""
    iterator = iter(terms)
    total = next(iterator, None)
    if total is None:
        raise ValueError("nothing to sum: no terms (a loss with no layers?)")
    for term in iterator:
        total = total + term
    return total


def mean_std(features: torch.Tensor, eps: float = STD_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std over all positions of [B, C, *spatial]; std is sqrt(unbiased var + eps)."""
    # Two passes in fp32 rather than torch.var_mean: faster on CPU (var_mean's Welford loop does not vectorise
    # over channels_last maps) and, for bf16 maps, exact to fp32 instead of bf16 accumulation. The fp32 copy
    # first: a bf16 - fp32 subtraction takes TensorIterator's unvectorised casting loop (see docs/performance.md).
    flat = features.flatten(2).float()
    mean = flat.mean(dim=2, keepdim=True)
    var = (flat - mean).square_().sum(dim=2, keepdim=True) / max(1, flat.shape[2] - 1)
    shape = features.shape[:2] + (1,) * (features.dim() - 2)
    return mean.view(shape).to(features.dtype), (var + eps).sqrt().view(shape).to(features.dtype)


def weighted_mean_std(features: torch.Tensor, weight: torch.Tensor, eps: float = STD_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """mean_std over the positions of [B, C, H, W] weighted by `weight` [B or 1, 1, H, W] (>= 0).

    Equal weights give mean_std's estimates: the variance takes the reliability-weights correction,
    sum w / (sum w - sum w^2 / sum w), which is mean_std's n / (n - 1) when the weights are equal, whatever their size.
    """
    features = features.float()
    total = weight.sum(dim=(2, 3), keepdim=True).clamp_min(1e-8)
    mean = (features * weight).sum(dim=(2, 3), keepdim=True) / total
    spread = ((features - mean).square() * weight).sum(dim=(2, 3), keepdim=True)
    effective = (total - weight.square().sum(dim=(2, 3), keepdim=True) / total).clamp_min(1e-8)
    return mean, (spread / effective + eps).sqrt()


def mean_variance_norm(features: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Instance normalisation without affine parameters (the papers' Norm(.)).

    stats: (mean, std) to use instead of the map's own: the whole image's, when it is processed in tiles."""
    mean, std = mean_std(features) if stats is None else (t.to(features.dtype) for t in stats)
    return (features - mean) * std.reciprocal()


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y)."""
    style_mean, style_std = mean_std(style)
    return mean_variance_norm(content) * style_std + style_mean


def shallow_deep_key(features: list[torch.Tensor], stats: list | None = None, *, plain: bool = False) -> torch.Tensor:
    """AdaAttN key F^{1:x}: each shallower map resized (nearest, as the official code) to the deepest, normalised, concatenated.

    stats: per piece, the (mean, std) of mean_variance_norm (None: each piece's own).
    plain: resize with resize_nearest_gather (ONNX export) instead of F.interpolate; the same pixels."""
    size = features[-1].shape[-2:]
    resize = resize_nearest_gather if plain else lambda f, size: F.interpolate(f, size=size, mode="nearest")
    pieces = [f if f.shape[-2:] == size else resize(f, size) for f in features]
    stats = stats or [None] * len(pieces)
    return torch.cat([mean_variance_norm(p, s) for p, s in zip(pieces, stats)], dim=1)


def resize_nearest_gather(x: torch.Tensor, size) -> torch.Tensor:
    """F.interpolate(x, size, mode="nearest") as two index gathers, for ONNX export.

    PyTorch reads source row floor(i * s) with s = in / out in float32. ONNX's Resize computes i / (out / in)
    instead, which falls on the other side of a whole number when in / out is not a power of two (70 -> 18 rows:
    row 9 reads 35 in PyTorch, 34 in onnxruntime). Here the index is computed as PyTorch computes it."""
    for dim, out in zip((2, 3), size):
        length = x.shape[dim]
        scale = torch.full((), length, dtype=torch.float32, device=x.device) / out
        index = (torch.arange(out, device=x.device, dtype=torch.float32) * scale).floor().long().clamp_max(length - 1)
        x = x.index_select(dim, index)
    return x


def _chunk_rows(n_rows: int, n_cols: int, batch: int, budget: int | None) -> int:
    if budget is None:
        return n_rows
    return max(1, min(n_rows, budget // max(1, n_cols * batch)))


def unit(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x scaled to unit norm along `dim` (the cosine attention's normalisation, with its 1e-5)."""
    return x / (x.norm(dim=dim, keepdim=True) + 1e-5)


def cosine_scores(unit_query: torch.Tensor, unit_key: torch.Tensor) -> torch.Tensor:
    """relu(cos + 1) for unit query rows [B, n_q, d] and unit key columns [B, d, n_k], rows not yet normalised.

    The +1 is fused into the matmul (baddbmm) and the relu runs in place: one pass over the [n_q, n_k] scores.
    """
    one = torch.ones((), dtype=unit_query.dtype, device=unit_query.device)
    return torch.relu_(torch.baddbmm(one, unit_query, unit_key))


def _logits(query: torch.Tensor, key: torch.Tensor, logit_bias: torch.Tensor | None) -> torch.Tensor:
    return torch.bmm(query, key) if logit_bias is None else torch.baddbmm(logit_bias, query, key)


def _sparse_moments(logits: torch.Tensor, pairs: torch.Tensor, dense_pairs: torch.Tensor) -> tuple[torch.Tensor, float]:
    """softmax(logits) x pairs [B, n_k, 2C] over each row's top SPARSE_TOP_K logits, and the share of rows that
    took it; the other rows take the dense product with dense_pairs (pairs in the matmul's dtype)."""
    top, index = logits.topk(SPARSE_TOP_K, dim=-1)
    weights = torch.softmax(top.float(), dim=-1)
    # every dropped logit is at most the k-th, so the weight outside the top k is at most (n_k - k) times the k-th's
    outside = (logits.shape[-1] - SPARSE_TOP_K) * weights[..., -1]
    moments = torch.stack([F.embedding_bag(i, p, per_sample_weights=w, mode="sum") for i, p, w in zip(index, pairs, weights)])
    missed = outside > SPARSE_TOLERANCE
    for row_logits, row_moments, row_pairs, row_missed in zip(logits, moments, dense_pairs, missed):
        rows = row_missed.nonzero().squeeze(1)
        if rows.numel():
            row_moments[rows] = torch.mm(torch.softmax(row_logits[rows], dim=-1), row_pairs).float()
    return moments, 1.0 - float(missed.float().mean())


def attention_weights(query: torch.Tensor, key: torch.Tensor, mode: str, logit_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Attention of every query row over the key positions: [B, n_q, d] x [B, d, n_k] -> [B, n_q, n_k].

    softmax: the AdaAttN paper's, without a 1/sqrt(d) temperature; logit_bias [B, 1, n_k] is added to every row.
    cosine: the video variant, s = relu(cos + 1), rows normalised to sum 1; smooth in the features,
    so small frame-to-frame changes give small changes of the weights.
    """
    if mode == "softmax":
        return torch.softmax(_logits(query, key, logit_bias), dim=-1)
    if logit_bias is not None:
        raise ValueError("a logit bias needs softmax attention")
    if mode == "cosine":
        scores = cosine_scores(unit(query, dim=2), unit(key, dim=1))
        return scores / (scores.sum(dim=-1, keepdim=True) + 1e-5)
    raise ValueError(f"unknown attention mode {mode!r}; expected 'softmax' or 'cosine'")


def attention_mean_std(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    mode: str = "softmax",
    logit_bias: torch.Tensor | None = None,
    logit_budget: int | None = DEFAULT_LOGIT_BUDGET,
    var_floor: float = VAR_FLOOR,
    matmul_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention-weighted mean M = A V and std S = sqrt(max(A V^2 - M^2, floor)).

    query [B, n_q, d], key [B, d, n_k], value [B, n_k, C] -> mean, std [B, n_q, C]; logit_bias [B, 1, n_k] (softmax).
    Each row of A depends on its own query only, so the rows are computed in chunks: the result is
    exact and the peak memory is chunk x n_k instead of n_q x n_k. Softmax rows whose weight is all but
    SPARSE_TOLERANCE in their top SPARSE_TOP_K are summed over those only (CPU inference; _sparse_moments).
    matmul_dtype: float32 (exact; training) or bfloat16 (the fast inference path: about half the time,
    outputs within bf16 tolerance, see bench/stylize_speed.py). The moments are always combined in fp32.
    """
    if logit_bias is not None and mode != "softmax":
        raise ValueError("a logit bias needs softmax attention")
    # Not autocast's choice: E[V^2] - M^2 cancels badly in low precision. Centring V first (the variance
    # is shift-invariant) keeps the two moments small, which makes the subtraction well conditioned.
    with torch.autocast(query.device.type, enabled=False):
        # row-major key: the GEMM on a transposed view (channels_last features give one) is slower (docs/performance.md)
        query, key, value = query.to(matmul_dtype), key.to(matmul_dtype).contiguous(), value.float()
        logit_bias = None if logit_bias is None else logit_bias.to(matmul_dtype)
        channels = value.shape[-1]
        centre = value.mean(dim=1, keepdim=True)
        shifted = value - centre
        pairs = torch.cat([shifted, shifted * shifted], dim=-1)
        value_and_square = pairs.to(matmul_dtype)  # one matmul, both moments
        rows = _chunk_rows(query.shape[1], key.shape[2], query.shape[0], logit_budget)
        means: list[torch.Tensor] = []
        stds: list[torch.Tensor] = []
        if mode == "cosine":  # normalise the keys once, not per chunk
            key = unit(key, dim=1)
        # ONNX export (one piece), training and GPUs: dense
        sparse = (
            mode == "softmax"
            and logit_budget is not None
            and not torch.is_grad_enabled()
            and query.device.type == "cpu"
            and key.shape[2] > 4 * SPARSE_TOP_K  # with fewer keys the dense product costs about what top-k does
        )
        for chunk in query.split(rows, dim=1) if logit_budget is not None else (query,):
            if mode == "cosine":
                # the row normalisation of attention_weights is applied to the [n_q, 2C] moments instead of
                # the [n_q, n_k] weights: the same result, one pass less over the big matrix
                scores = cosine_scores(unit(chunk, dim=2), key)
                total = scores.sum(dim=-1, keepdim=True, dtype=torch.float32) + 1e-5
                moments = torch.bmm(scores, value_and_square).float() / total
            elif sparse:
                moments, share = _sparse_moments(_logits(chunk, key, logit_bias), pairs, value_and_square)
                if not means:  # the first chunk decides: most rows dense there, all dense from here on
                    sparse = share >= 0.5
            else:
                moments = torch.bmm(attention_weights(chunk, key, mode, logit_bias), value_and_square).float()
            mean, second = moments[..., :channels], moments[..., channels:]
            means.append(mean + centre)
            stds.append((second - mean * mean).clamp_min(var_floor).sqrt())
        return torch.cat(means, dim=1), torch.cat(stds, dim=1)


def attention_output(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    logit_budget: int | None = DEFAULT_LOGIT_BUDGET,
    matmul_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Plain softmax attention A V (SANet), chunked over query rows like attention_mean_std.

    matmul_dtype None keeps the inputs' dtype (autocast decides, as in training)."""
    dtype = value.dtype
    if matmul_dtype is not None:
        query, key, value = query.to(matmul_dtype), key.to(matmul_dtype), value.to(matmul_dtype)
    rows = _chunk_rows(query.shape[1], key.shape[2], query.shape[0], logit_budget)
    pieces = query.split(rows, dim=1) if logit_budget is not None else (query,)
    chunks = [torch.bmm(torch.softmax(torch.bmm(chunk, key), dim=-1), value) for chunk in pieces]
    return torch.cat(chunks, dim=1).to(dtype)


def colour_transform(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map x -> A x + b (A [3, 3], b [3, 1], fp64) that gives `source`'s colours [3, ...] the mean and
    covariance of `target`'s [3, ...]: whitening by cov_s^-1/2, colouring by cov_t^1/2 (CORAL)."""

    def stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = image.reshape(3, -1).double()
        mean = flat.mean(dim=1, keepdim=True)
        centred = flat - mean
        cov = centred @ centred.T / max(1, flat.shape[1] - 1) + eps * torch.eye(3, dtype=flat.dtype, device=flat.device)
        return mean, cov

    def matrix_power(matrix: torch.Tensor, power: float) -> torch.Tensor:
        eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
        return eigenvectors @ torch.diag(eigenvalues.clamp_min(eps) ** power) @ eigenvectors.T

    source_mean, source_cov = stats(source)
    target_mean, target_cov = stats(target)
    matrix = matrix_power(target_cov, 0.5) @ matrix_power(source_cov, -0.5)
    return matrix, target_mean - matrix @ source_mean


def coral(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Match the colour mean and covariance of `source` [3, H, W] to those of `target` [3, h, w].

    Used for --preserve-color: the style image is recoloured with the content's palette.
    """
    matrix, offset = colour_transform(source, target, eps)
    recoloured = matrix @ source.reshape(3, -1).double() + offset
    return recoloured.reshape(source.shape).to(source.dtype).clamp(0, 1)


def match_mean_colour(pictures: torch.Tensor, terms) -> torch.Tensor:
    """[B, 3, H, W] pictures whose mean colour, where each style applies, is moved to that style's: terms are
    (colour [3], weight) pairs, the weight a number or a map [1, 1, H, W] as the styles' mix gives them (alpha,
    blends, masks), so the share of the picture that keeps the content's own statistics is left alone.

    The model paints each region with the colours its attention finds in the painting, and its overall colour
    drifts from the painting's (a cast that was two thirds of its style loss; docs/training.md). One shift per
    style and picture moves the whole palette and keeps every stroke and edge; it is computed on the whole picture
    after the tiles are joined, so tiles get the same shift. A mask's map is blurred first (a Gaussian of 1/48 of
    the shorter side): the model blends styles at a quarter of the resolution and the decoder softens the seam, and
    a shift that changed at the mask's pixel edge would draw a line through the picture."""
    pictures = pictures.float()
    shifted = pictures
    sigma = max(1.0, min(pictures.shape[-2:]) / 48)
    for colour, weight in terms:
        colour = colour.to(pictures.device, torch.float32).view(1, 3, 1, 1)
        if isinstance(weight, torch.Tensor):
            weight = gaussian_blur(weight.to(pictures.device, torch.float32), sigma)
            current = (pictures * weight).sum(dim=(2, 3), keepdim=True) / weight.sum(dim=(2, 3), keepdim=True).clamp_min(1e-8)
        else:
            current = pictures.mean(dim=(2, 3), keepdim=True)
        shifted = shifted + weight * (colour - current)  # each style's shift measured on the model's picture
    return shifted.clamp(0, 1)


def mean_colour(image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The mean RGB [3] of an image [3, H, W], over the pixels of a mask [H, W] above 0.5 where given: the part of a
    painting a Style takes its positions from (attention.select_positions)."""
    if mask is None:
        return image.float().mean(dim=(1, 2))
    weight = (mask.to(image.device) > 0.5).float()
    return (image.float() * weight).sum(dim=(1, 2)) / weight.sum().clamp_min(1e-8)


def warp(images: torch.Tensor, motion: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """[B, C, H, W] resampled (bilinear) by [B, 2, 3] affine_grid matrices."""
    grid = F.affine_grid(motion.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] images, reflected borders. Large sigmas are blurred at a reduced
    resolution (area-downsampled to ~2 px per sigma, blurred, upsampled bilinearly): the result is smooth either way."""
    height, width = images.shape[-2:]
    factor = max(1, min(int(sigma // 2), height // 4, width // 4))
    small = F.avg_pool2d(images, factor, ceil_mode=True) if factor > 1 else images
    sigma = sigma / factor
    radius = max(1, min(int(3 * sigma + 0.5), small.shape[-2] - 1, small.shape[-1] - 1))
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    blurred = F.pad(small, (radius, radius, 0, 0), mode="reflect")
    blurred = F.conv2d(blurred, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    blurred = F.pad(blurred, (0, 0, radius, radius), mode="reflect")
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    if factor > 1:
        blurred = F.interpolate(blurred, size=(height, width), mode="bilinear", align_corners=False)
    return blurred


def recolour_low_frequencies(images: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor, sigma: float) -> torch.Tensor:
    """images + (A - I) blur(images) + b, clamped to [0, 1], for [B, 3, H, W] in [0, 1] and A, b of colour_transform.

    The colour map is applied to the low frequencies only (a Gaussian of `sigma` px): the colour field moves to the
    target palette while the detail, and its frame-to-frame changes, are not amplified."""
    change = (matrix - torch.eye(3, dtype=matrix.dtype, device=matrix.device)).to(images)
    low = gaussian_blur(images, sigma)
    correction = torch.einsum("oc,bchw->bohw", change, low) + offset.to(images).view(1, 3, 1, 1)
    return (images + correction).clamp_(0, 1)
