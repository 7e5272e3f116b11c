"""Fast kernels behind the conv layers: 2x2 pooling, reflected 3x3 convs, Winograd, fused upsampling.

Used by layers.py (the encoders' and decoders' conv layers), the encoder's pooling and the decoder's fused tail.

Each one equals the plain PyTorch operation it replaces up to rounding (tests/test_kernels.py); the fused decoder
tail runs at inference only, Winograd also through a frozen encoder under autograd, and models.use_plain_ops turns
them all off for ONNX export.
Why each pays, with the figures measured on the project's CPU: docs/performance.md, "Measurements behind the
code's choices".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling with stride 2 and ceil mode, for non-negative maps (the encoder pools ReLU outputs).

    Without autograd it is the maximum of the four strided sub-grids: F.max_pool2d on CPU also writes an int64
    index map (4x the bytes of a bf16 output), which made the encoder's first pool several times slower (see
    docs/performance.md). Odd sides get a zero row/column, which is what ceil mode's partial windows give for x >= 0.
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
    Equal to F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias) up to rounding, and faster on the
    CPU: the pad is a full copy, and a slow one for channels_last tensors (see docs/performance.md).
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


# Winograd F(m x m, 3x3) (Lavin & Gray, 2016): an m x m output tile of a 3x3 conv from its (m+2) x (m+2) input
# tile d is A^T [(G w G^T) * (B^T d B)] A, (m+2)^2 multiplies per tile and channel pair instead of 9 m^2. In exact
# arithmetic the result is the convolution itself. F(2x2) (16 for 36, 2.25x fewer) runs in bf16: its transforms
# only add, so they round no more than the conv does. F(4x4) (36 for 144, 4x fewer) runs in fp32: its transforms
# scale by up to 8 and G by 1/24, which bf16 tiles do not survive (~0.1 relative error) but fp32 does (~1e-5,
# docs/performance.md).
_WINOGRAD_G = {
    2: torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64),
    4: torch.tensor(
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        dtype=torch.float64,
    ),
}
# Per precision, the output tile side and the fewest input and output channels from which Winograd beats the direct
# conv (below them its transforms cost more than the multiplies saved; see docs/performance.md).
WINOGRAD_TILE = {torch.bfloat16: 2, torch.float32: 4}
WINOGRAD_MIN_CHANNELS = {torch.bfloat16: 256, torch.float32: 128}
# Tile rows per band: the band's transformed input and products (elements) stay in cache; 2**21-2**22 measured best.
WINOGRAD_BAND_BUDGET = 2**22


def winograd_tile(x: torch.Tensor, weight: torch.Tensor) -> int:
    """The output tile side of the Winograd scheme conv3x3 should run as, 0 for the direct conv: a bf16 or fp32
    CPU pass of a wide layer (GPUs have cuDNN's own) whose weights take no gradient (inference, or `--refine`'s
    frozen encoder: WinogradConv3x3 gives the input's gradient). Its rounding error stays within a few times the
    direct conv's (docs/performance.md)."""
    pays = (
        not (torch.is_grad_enabled() and weight.requires_grad)
        and x.device.type == "cpu"
        and x.dtype in WINOGRAD_TILE
        and min(weight.shape[0], weight.shape[1]) >= WINOGRAD_MIN_CHANNELS[x.dtype]
    )
    return WINOGRAD_TILE[x.dtype] if pays else 0


def winograd_kernel(weight: torch.Tensor, tile: int = 2) -> torch.Tensor:
    """[O, I, 3, 3] -> G w G^T as [(tile + 2)^2, I, O] (tile position, in, out), computed in fp64, stored in weight's
    dtype."""
    g = _WINOGRAD_G[tile].to(weight.device)
    kernel = torch.einsum("ak,oikl,bl->abio", g, weight.double(), g)
    return kernel.reshape((tile + 2) ** 2, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


def _padded_nhwc(x: torch.Tensor, reflect: bool, tile: int) -> torch.Tensor:
    """x padded by one pixel (zeros or reflected), plus zero rows / columns up to whole tiles, as [B, H', W', C]."""
    batch, channels, height, width = x.shape
    rows, cols = -(-height // tile) * tile, -(-width // tile) * tile
    padded = x.new_empty(batch, rows + 2, cols + 2, channels)  # only the border is set below
    padded[:, 1 : height + 1, 1 : width + 1] = x.permute(0, 2, 3, 1)
    if reflect:
        padded[:, 0] = padded[:, 2]
        padded[:, height + 1] = padded[:, height - 1]
        padded[:, :, 0] = padded[:, :, 2]  # corners included
        padded[:, :, width + 1] = padded[:, :, width - 1]
    else:
        padded[:, [0, height + 1]] = 0
        padded[:, :, [0, width + 1]] = 0
    padded[:, height + 2 :] = 0  # the rows / columns beyond the image (after the reflection, which copies into them)
    padded[:, :, width + 2 :] = 0
    return padded


def _input_transform_2(d: list[torch.Tensor], out: torch.Tensor) -> None:
    """B^T of F(2x2) along one axis of the 4x4 tiles: out[0..3] = d0 - d2, d1 + d2, d2 - d1, d1 - d3."""
    torch.sub(d[0], d[2], out=out[0])
    torch.add(d[1], d[2], out=out[1])
    torch.sub(d[2], d[1], out=out[2])
    torch.sub(d[1], d[3], out=out[3])


def _output_transform_2(m: torch.Tensor, out: torch.Tensor) -> None:
    """A^T of F(2x2) along the first axis: out[0] = m0 + m1 + m2, out[1] = m1 - m2 - m3."""
    torch.add(m[0], m[1], out=out[0]).add_(m[2])
    torch.sub(m[1], m[2], out=out[1]).sub_(m[3])


def _input_transform_4(d: list[torch.Tensor], out: torch.Tensor) -> None:
    """B^T of F(4x4) along one axis of the 6x6 tiles, its shared terms built in out's own rows (d is not written:
    neighbouring tiles overlap in it). out[0] = 4 d0 - 5 d2 + d4, out[5] = 4 d1 - 5 d3 + d5, and with
    t = d4 - 4 d2, u = d3 - 4 d1, v = d4 - d2, w = d3 - d1: out[1, 2] = t +- u, out[3, 4] = v +- 2 w."""
    torch.add(d[4], d[0], alpha=4, out=out[0]).add_(d[2], alpha=-5)
    torch.add(d[5], d[1], alpha=4, out=out[5]).add_(d[3], alpha=-5)
    torch.add(d[4], d[2], alpha=-4, out=out[1])
    torch.add(d[3], d[1], alpha=-4, out=out[2])
    out[1].add_(out[2])  # t + u
    torch.add(out[1], out[2], alpha=-2, out=out[2])  # t - u
    torch.sub(d[4], d[2], out=out[3])
    torch.sub(d[3], d[1], out=out[4])
    out[3].add_(out[4], alpha=2)  # v + 2 w
    torch.add(out[3], out[4], alpha=-4, out=out[4])  # v - 2 w


def _output_transform_4(m: torch.Tensor, out: torch.Tensor) -> None:
    """A^T of F(4x4) along the first axis, m's rows overwritten by the shared terms a = m1 + m2, b = m1 - m2,
    c = m3 + m4, e = m3 - m4: out[0..3] = m0 + a + c, b + 2 e, a + 4 c, b + 8 e + m5."""
    m[1].add_(m[2])  # a
    torch.add(m[1], m[2], alpha=-2, out=m[2])  # b
    m[3].add_(m[4])  # c
    torch.add(m[3], m[4], alpha=-2, out=m[4])  # e
    torch.add(m[0], m[1], out=out[0]).add_(m[3])
    torch.add(m[2], m[4], alpha=2, out=out[1])
    torch.add(m[1], m[3], alpha=4, out=out[2])
    torch.add(m[2], m[4], alpha=8, out=out[3]).add_(m[5])


_TRANSFORMS = {2: (_input_transform_2, _output_transform_2), 4: (_input_transform_4, _output_transform_4)}


def winograd_conv3x3(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, *, reflect: bool = False) -> torch.Tensor:
    """3x3 conv with one pixel of zero (or reflected) padding, by Winograd F(m x m, 3x3); kernel =
    winograd_kernel(w, m) (m = 2 or 4, told by its shape).

    2.25x (m = 2) or 4x (m = 4) fewer multiply-adds than the direct conv; the transforms are passes over the image,
    done per band of tile rows so that they run in cache. Equal to the direct conv up to rounding (F(2x2) in bf16
    about twice its rounding error: the transformed tiles are rounded once more; F(4x4) in fp32 a few times it).
    Returns a channels_last [B, O, H, W] tensor.
    """
    batch, channels, height, width = x.shape
    out_channels = kernel.shape[-1]
    size = round(kernel.shape[0] ** 0.5)  # the input tile's side, m + 2
    tile = size - 2
    input_transform, output_transform = _TRANSFORMS[tile]
    padded = _padded_nhwc(x, reflect, tile)
    tile_rows, tile_cols = -(-height // tile), -(-width // tile)
    out = x.new_empty(batch, tile_rows, tile, tile_cols, tile, out_channels)
    band = max(1, min(tile_rows, WINOGRAD_BAND_BUDGET // (size * size * batch * tile_cols * max(channels, out_channels))))
    rows_t = x.new_empty(size, batch, band, padded.shape[2], channels)  # B^T d: the row transform
    tiles = x.new_empty(size, size, batch, band, tile_cols, channels)  # B^T d B
    sums = x.new_empty(tile, size, batch, band, tile_cols, out_channels)  # A^T M
    for start in range(0, tile_rows, band):
        count = min(band, tile_rows - start)
        rows = rows_t[:, :, :count]
        input_transform([padded[:, tile * start + r : tile * (start + count) + r : tile] for r in range(size)], rows)
        transformed = tiles[:, :, :, :count]
        input_transform([rows[:, :, :, q : q + tile * tile_cols : tile] for q in range(size)], transformed.transpose(0, 1))
        m = torch.bmm(transformed.reshape(size * size, -1, channels), kernel).view(size, size, batch, count, tile_cols, out_channels)
        p = sums[:, :, :, :count]
        output_transform(m, p)
        if bias is not None:
            p[:, 1] += bias  # A^T adds p[:, 1] to every output of a tile with weight +1 (both schemes)
        output_transform(p.transpose(0, 1), out[:, start : start + count].permute(4, 2, 0, 1, 3, 5))  # [b, a, B, rows, cols, O]
    out = out.view(batch, tile * tile_rows, tile * tile_cols, out_channels)[:, :height, :width]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


class WinogradConv3x3(torch.autograd.Function):
    """winograd_conv3x3 with zero padding and the gradient to its input (not to the frozen weights): for a stride-1
    3x3 conv with one pixel of zeros, that gradient is the same kind of conv of the output's gradient with the
    kernel flipped and its in/out channels swapped (`back_kernel` = winograd_kernel of that), so the backward
    pass saves the multiplies the forward does (--refine: the encoder's forward and backward every step)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor, back_kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(back_kernel)
        # not a view of the function's buffers: the encoder applies its ReLU in place, which autograd forbids on those
        return winograd_conv3x3(x, kernel, bias).detach()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (back_kernel,) = ctx.saved_tensors
        return winograd_conv3x3(grad, back_kernel, None), None, None, None


def flipped_transposed(weight: torch.Tensor) -> torch.Tensor:
    """The kernel whose zero-padded 3x3 conv is the input gradient of `weight`'s: [I, O, 3, 3], flipped in space."""
    return weight.flip(2, 3).transpose(0, 1)


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

    Four strided slice copies rather than one copy of a 6-d strided view: faster at the decoder's full-size maps
    and no slower at the smaller ones (see docs/performance.md)."""
    batch, channels, height, width = y.shape[0], y.shape[1] // 4, y.shape[2] - 1, y.shape[3] - 1
    out = torch.empty(batch, channels, 2 * height, 2 * width, dtype=y.dtype, device=y.device, memory_format=_memory_format(y))
    for index, (a, b) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[:, :, a::2, b::2] = y[:, index * channels : (index + 1) * channels, a : a + height, b : b + width]
    return out


def upsample_conv3x3_reflect(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv3x3_reflect(nearest x2 upsampling of x) without the upsampled copy (see upsample_conv3x3_phases)."""
    return interleave_phases(upsample_conv3x3_phases(x, weight, bias))


def _phase_window() -> torch.Tensor:
    """Where a 3x3 tap of the interleaved image lands in the phases, as [p, k, a, r]: for output row parity p and
    kernel row k (offset k - 1), input phase a and 2x2 window row r (rows i, i + 1 of the phase map); the same
    for columns."""
    window = torch.zeros(2, 3, 2, 2)
    for parity in range(2):
        for row in range(3):
            offset = parity + row - 1  # row 2i + offset of the interleaved image relative to row 2i
            window[parity, row, offset % 2, int(offset >= 1)] = 1.0
    return window


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
    window = _phase_window().to(weight)
    kernel = torch.einsum("pkar,qlbs,ockl->opqabcrs", window, window, weight).reshape(4 * weight.shape[0], 4 * channels, 2, 2)
    return F.pixel_shuffle(F.conv2d(y, kernel, None if bias is None else bias.repeat_interleave(4)), 2)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format
