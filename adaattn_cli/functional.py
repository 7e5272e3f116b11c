"""Pure tensor maths shared by the models and the losses: statistics, normalisation, attention.

Everything here is stateless: tensors in, tensors out, no device or RNG choices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Variance epsilon of the reference implementations (AdaIN, SANet, AdaAttN all add it before the sqrt).
STD_EPS = 1e-5
# Floor of the attention variance E[V^2] - M^2: sqrt at 0 has an infinite gradient, and the HED
# encoder's relu5_1 has channels that are always zero, so the variance really does reach 0.
VAR_FLOOR = 1e-6
# Budget of attention logits computed at once (elements): 2**22 fp32 logits = 16 MiB. Measured
# (bench/stylize_speed.py): chunks that fit in cache make the matmul+softmax+matmul ~20 % faster than 2**24.
DEFAULT_LOGIT_BUDGET = 2**22


def version_stamp(*tensors: torch.Tensor) -> tuple:
    """Changes when any tensor gets new storage or an in-place update: the key of caches derived from weights."""
    return tuple((t.data_ptr(), 0 if t.is_inference() else t._version) for t in tensors)  # inference tensors have no version


def mean_std(features: torch.Tensor, eps: float = STD_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std over all positions of [B, C, *spatial]; std is sqrt(unbiased var + eps)."""
    # Two passes in fp32 rather than torch.var_mean: 2-3x faster on CPU (var_mean's Welford loop does not
    # vectorise over channels_last maps) and, for bf16 maps, exact to fp32 instead of bf16 accumulation.
    # The fp32 copy first: a bf16 - fp32 subtraction takes TensorIterator's unvectorised casting loop (2x slower).
    flat = features.flatten(2).float()
    mean = flat.mean(dim=2, keepdim=True)
    var = (flat - mean).square_().sum(dim=2, keepdim=True) / max(1, flat.shape[2] - 1)
    shape = features.shape[:2] + (1,) * (features.dim() - 2)
    return mean.view(shape).to(features.dtype), (var + eps).sqrt().view(shape).to(features.dtype)


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


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling with stride 2 and ceil mode, for non-negative maps (the encoder pools ReLU outputs).

    Without autograd it is the maximum of the four strided sub-grids: F.max_pool2d on CPU also writes an int64
    index map (4x the bytes of a bf16 output), which made the encoder's first pool ~20-30 ms instead of ~4 ms
    at 512². Odd sides get a zero row/column, which is what ceil mode's partial windows give for x >= 0.
    With autograd it is F.max_pool2d (its backward needs the indices).
    """
    if x.requires_grad:
        return F.max_pool2d(x, 2, 2, ceil_mode=True)
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
    top = torch.maximum(x[..., ::2, ::2], x[..., ::2, 1::2])
    return torch.maximum(top, torch.maximum(x[..., 1::2, ::2], x[..., 1::2, 1::2]), out=top)


def conv3x3_reflect(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 3x3 convolution of x padded by one reflected pixel, without building the padded copy.

    The zero-padded convolution is fused inside oneDNN/cuDNN; the reflected border only adds terms to the
    outermost output rows and columns, computed here from x's second and second-to-last rows and columns.
    Equal to F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias) up to rounding; ~1.3x faster on
    CPU (the pad is a full copy, and a slow one for channels_last tensors).
    """
    out = F.conv2d(x, weight, bias, padding=1)
    width = x.shape[-1]
    rows = x[:, :, [1, -2]][..., [1, *range(width), width - 2]]  # padded rows -1 and H, corners included
    cols = x[:, :, :, [1, -2]]  # padded columns -1 and W (their corners belong to the rows)
    out[:, :, :1] += F.conv2d(rows[:, :, :1], weight[:, :, :1])
    out[:, :, -1:] += F.conv2d(rows[:, :, 1:], weight[:, :, 2:])
    out[:, :, :, :1] += F.conv2d(cols[..., :1], weight[..., :1], padding=(1, 0))
    out[:, :, :, -1:] += F.conv2d(cols[..., 1:], weight[..., 2:], padding=(1, 0))
    return out


# Winograd F(2x2, 3x3) (Lavin & Gray, 2016): a 2x2 output tile of a 3x3 conv from its 4x4 input tile d is
# A^T [(G w G^T) * (B^T d B)] A, 16 multiplies per tile and channel pair instead of 36. The transforms below
# only add and halve, so in exact arithmetic the result is the convolution itself.
_WINOGRAD_G = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# Measured on the 2-core CPU (bf16, channels_last, 512² image): 512->512 at 64x64 44 -> 29 ms, 256->256 at
# 128x128 44 -> 34 ms; with fewer than 256 channels the transforms cost more than the multiplies saved.
WINOGRAD_MIN_CHANNELS = 256
# Tile rows per band: the band's transformed input and products (elements) stay in cache; 2**21-2**22 measured best.
WINOGRAD_BAND_BUDGET = 2**22


def winograd_pays(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether conv3x3 should run as Winograd: bf16 CPU inference of a wide layer (GPUs have cuDNN's own)."""
    return (
        not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.bfloat16
        and min(weight.shape[0], weight.shape[1]) >= WINOGRAD_MIN_CHANNELS
    )


def winograd_kernel(weight: torch.Tensor) -> torch.Tensor:
    """[O, I, 3, 3] -> G w G^T as [16, I, O] (tile position, in, out), computed in fp32, stored in weight's dtype."""
    precision = torch.promote_types(weight.dtype, torch.float32)
    g = _WINOGRAD_G.to(weight.device, precision)
    kernel = torch.einsum("ak,oikl,bl->abio", g, weight.to(precision), g)
    return kernel.reshape(16, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


def _padded_nhwc(x: torch.Tensor, reflect: bool) -> torch.Tensor:
    """x padded by one pixel (zeros or reflected), plus a zero row / column for odd sides, as [B, H', W', C]."""
    batch, channels, height, width = x.shape
    padded = x.new_empty(batch, height + 2 + height % 2, width + 2 + width % 2, channels)  # only the border is set below
    padded[:, 1 : height + 1, 1 : width + 1] = x.permute(0, 2, 3, 1)
    if reflect:
        padded[:, 0] = padded[:, 2]
        padded[:, height + 1] = padded[:, height - 1]
        padded[:, :, 0] = padded[:, :, 2]  # corners included
        padded[:, :, width + 1] = padded[:, :, width - 1]
    else:
        padded[:, [0, height + 1]] = 0
        padded[:, :, [0, width + 1]] = 0
    padded[:, height + 2 :] = 0  # the extra row / column of odd sides (after the reflection, which copies into them)
    padded[:, :, width + 2 :] = 0
    return padded


def _tile_transform(d: list[torch.Tensor], out: torch.Tensor) -> None:
    """B^T along one axis of the 4x4 tiles: out[0..3] = d0 - d2, d1 + d2, d2 - d1, d1 - d3."""
    torch.sub(d[0], d[2], out=out[0])
    torch.add(d[1], d[2], out=out[1])
    torch.sub(d[2], d[1], out=out[2])
    torch.sub(d[1], d[3], out=out[3])


def _output_transform(m: torch.Tensor, out: torch.Tensor) -> None:
    """A^T along the first axis: out[0] = m0 + m1 + m2, out[1] = m1 - m2 - m3."""
    torch.add(m[0], m[1], out=out[0]).add_(m[2])
    torch.sub(m[1], m[2], out=out[1]).sub_(m[3])


def winograd_conv3x3(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, *, reflect: bool = False) -> torch.Tensor:
    """3x3 conv with one pixel of zero (or reflected) padding, by Winograd F(2x2, 3x3); kernel = winograd_kernel(w).

    2.25x fewer multiply-adds than the direct conv; the transforms are additions over the image, done per band
    of tile rows so that they run in cache. Equal to the direct conv up to rounding (in bf16 about twice its
    rounding error: the transformed tiles are rounded once more). Returns a channels_last [B, O, H, W] tensor.
    """
    batch, channels, height, width = x.shape
    out_channels = kernel.shape[-1]
    padded = _padded_nhwc(x, reflect)
    tile_rows, tile_cols = (height + 1) // 2, (width + 1) // 2
    out = x.new_empty(batch, tile_rows, 2, tile_cols, 2, out_channels)
    band = max(1, min(tile_rows, WINOGRAD_BAND_BUDGET // (16 * batch * tile_cols * max(channels, out_channels))))
    rows_t = x.new_empty(4, batch, band, padded.shape[2], channels)  # B^T d: the row transform
    tiles = x.new_empty(4, 4, batch, band, tile_cols, channels)  # B^T d B
    sums = x.new_empty(2, 4, batch, band, tile_cols, out_channels)  # A^T M
    for start in range(0, tile_rows, band):
        count = min(band, tile_rows - start)
        rows = rows_t[:, :, :count]
        _tile_transform([padded[:, 2 * start + r : 2 * (start + count) + r : 2] for r in range(4)], rows)
        transformed = tiles[:, :, :, :count]
        _tile_transform([rows[:, :, :, q : q + 2 * tile_cols : 2] for q in range(4)], transformed.transpose(0, 1))
        m = torch.bmm(transformed.reshape(16, -1, channels), kernel).view(4, 4, batch, count, tile_cols, out_channels)
        p = sums[:, :, :, :count]
        _output_transform(m, p)
        if bias is not None:
            p[:, 1] += bias  # A^T adds p[:, 1] to all four outputs of a tile with weight +1
        _output_transform(p.transpose(0, 1), out[:, start : start + count].permute(4, 2, 0, 1, 3, 5))  # [b, a, B, rows, cols, O]
    out = out.view(batch, 2 * tile_rows, 2 * tile_cols, out_channels)[:, :height, :width]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


# Nearest x2 upsampling followed by a 3x3 tap: output row 2i+a reads input rows i-1+a+t, t = 0, 1, with
# these sums of the kernel's rows (a = 0: w0 | w1+w2; a = 1: w0+w1 | w2). The same holds for columns.
_PHASE_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def upsample_conv3x3_phases(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The four output phases of conv3x3_reflect(nearest x2 upsampling of x), not yet interleaved.

    Returns y [B, 4 * C_out, H + 1, W + 1] with out[:, o, 2i + a, 2j + b] = y[:, (2a + b) * C_out + o, i + a, j + b]
    (interleave_phases builds out). Each phase is a 2x2 convolution of x itself, at 16 instead of 36 multiply-adds
    per 2x2 output block and channel pair (2.25x fewer); the four run as one convolution with 4x the output
    channels. Reflecting the upsampled image by one pixel reads the same input pixel as replicating x by one,
    hence the replicate pad.
    """
    out_channels = weight.shape[0]
    taps = _PHASE_TAPS.to(weight)
    phases = torch.einsum("atk,bsl,oikl->aboits", taps, taps, weight).reshape(4 * out_channels, weight.shape[1], 2, 2)
    phase_bias = None if bias is None else bias.repeat(4)
    # replicate pad by concatenation: keeps channels_last, where F.pad(mode="replicate") is a slow copy
    padded = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
    padded = torch.cat([padded[..., :1], padded, padded[..., -1:]], dim=3)
    return F.conv2d(padded, phases, phase_bias)


def interleave_phases(y: torch.Tensor) -> torch.Tensor:
    """[B, 4 * C, H + 1, W + 1] phases (upsample_conv3x3_phases) -> [B, C, 2H, 2W], in y's memory format.

    Four strided slice copies: measured ~3x faster than one copy of a 6-d strided view at 512² x 64 channels
    (bf16 channels_last), and no slower at the smaller maps."""
    batch, channels, height, width = y.shape[0], y.shape[1] // 4, y.shape[2] - 1, y.shape[3] - 1
    out = torch.empty(batch, channels, 2 * height, 2 * width, dtype=y.dtype, device=y.device, memory_format=_memory_format(y))
    for index, (a, b) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[:, :, a::2, b::2] = y[:, index * channels : (index + 1) * channels, a : a + height, b : b + width]
    return out


def upsample_conv3x3_reflect(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv3x3_reflect(nearest x2 upsampling of x) without the upsampled copy (see upsample_conv3x3_phases)."""
    return interleave_phases(upsample_conv3x3_phases(x, weight, bias))


# Where a 3x3 tap of the interleaved image lands in the phases: for output row parity p and kernel row k
# (offset k - 1), input phase a and 2x2 window row r (rows i, i + 1 of the phase map) — the same for columns.
_PHASE_WINDOW = torch.zeros(2, 3, 2, 2)
for _p in range(2):
    for _k in range(3):
        _t = _p + _k - 1  # row 2i + t of the interleaved image relative to row 2i
        _PHASE_WINDOW[_p, _k, _t % 2, int(_t >= 1)] = 1.0


def phases_conv3x3_reflect(y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv3x3_reflect(interleave_phases(y)) without building the interleaved map (inference only).

    Every output pixel 2i + p reads rows i and i + 1 of the phase maps (which phase depends on p and the tap),
    so the 3x3 conv of the interleaved image is one 2x2 conv of y with 4x the output channels, pixel-shuffled
    afterwards. The reflected border reads the phase rows and columns that the interleaving never uses (row 0
    of the odd-row phases, row H of the even-row ones, likewise columns): they are overwritten in y with the
    rows and columns the reflection means. For a decoder's last layers this skips the 4x bigger interleaved
    copy (64 channels at full size) and a 3-channel conv that runs far below the machine's speed.
    """
    channels = y.shape[1] // 4
    groups = y.unflatten(1, (2, 2, channels))  # [B, a, b, C, H + 1, W + 1], a view of y
    groups[:, 1, :, :, 0] = groups[:, 1, :, :, 1]
    groups[:, 0, :, :, -1] = groups[:, 0, :, :, -2]
    groups[:, :, 1, :, :, 0] = groups[:, :, 1, :, :, 1]
    groups[:, :, 0, :, :, -1] = groups[:, :, 0, :, :, -2]
    window = _PHASE_WINDOW.to(weight)
    kernel = torch.einsum("pkar,qlbs,ockl->opqabcrs", window, window, weight).reshape(4 * weight.shape[0], 4 * channels, 2, 2)
    return F.pixel_shuffle(F.conv2d(y, kernel, None if bias is None else bias.repeat_interleave(4)), 2)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


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


def attention_weights(query: torch.Tensor, key: torch.Tensor, mode: str, logit_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Attention of every query row over the key positions: [B, n_q, d] x [B, d, n_k] -> [B, n_q, n_k].

    softmax: the AdaAttN paper's, without a 1/sqrt(d) temperature; logit_bias [B, 1, n_k] is added to every row.
    cosine: the video variant, s = relu(cos + 1), rows normalised to sum 1; smooth in the features,
    so small frame-to-frame changes give small changes of the weights.
    """
    if mode == "softmax":
        return torch.softmax(torch.bmm(query, key) if logit_bias is None else torch.baddbmm(logit_bias, query, key), dim=-1)
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
    exact and the peak memory is chunk x n_k instead of n_q x n_k.
    matmul_dtype: float32 (exact; training) or bfloat16 (the fast inference path: about half the time,
    outputs within bf16 tolerance, see bench/stylize_speed.py). The moments are always combined in fp32.
    """
    if logit_bias is not None and mode != "softmax":
        raise ValueError("a logit bias needs softmax attention")
    # Not autocast's choice: E[V^2] - M^2 cancels badly in low precision. Centring V first (the variance
    # is shift-invariant) keeps the two moments small, which makes the subtraction well conditioned.
    with torch.autocast(query.device.type, enabled=False):
        # row-major key: the GEMM on a transposed view (channels_last features give one) is ~15 % slower
        query, key, value = query.to(matmul_dtype), key.to(matmul_dtype).contiguous(), value.float()
        logit_bias = None if logit_bias is None else logit_bias.to(matmul_dtype)
        channels = value.shape[-1]
        centre = value.mean(dim=1, keepdim=True)
        shifted = value - centre
        value_and_square = torch.cat([shifted, shifted * shifted], dim=-1).to(matmul_dtype)  # one matmul, both moments
        rows = _chunk_rows(query.shape[1], key.shape[2], query.shape[0], logit_budget)
        means, stds = [], []
        if mode == "cosine":  # normalise the keys once, not per chunk
            key = unit(key, dim=1)
        for chunk in query.split(rows, dim=1) if logit_budget is not None else (query,):  # one piece: ONNX export
            if mode == "cosine":
                # the row normalisation of attention_weights is applied to the [n_q, 2C] moments instead of
                # the [n_q, n_k] weights: the same result, one pass less over the big matrix
                scores = cosine_scores(unit(chunk, dim=2), key)
                total = scores.sum(dim=-1, keepdim=True, dtype=torch.float32) + 1e-5
                moments = torch.bmm(scores, value_and_square).float() / total
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
