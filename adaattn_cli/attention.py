"""Feature-transfer blocks: AdaAttN, SANet and AdaIN, each split into a style side and a content side.

`memorize(style)` does all style-side work once (key/value projections, position sampling), so one
style can serve a whole batch, every frame of a video, or one term of a blend. `forward(content, memory)`
does the content side. What the models and the Stylizer may rely on is TransferBlock. Maths lives in
functional.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import functional as fn
from .errors import BadInputError
from .layers import version_stamp


@dataclass
class StyleMemory:
    """Style side of one block: keys [B, d, n], values [B, n, C] (or mean/std for AdaIN).

    logit_bias [B, 1, n]: set when the query projection is folded into the keys (AdaAttN.folded_query)."""

    key: torch.Tensor
    value: torch.Tensor
    logit_bias: torch.Tensor | None = None

    def to(self, *args, **kwargs) -> "StyleMemory":
        logit_bias = None if self.logit_bias is None else self.logit_bias.to(*args, **kwargs)
        return StyleMemory(self.key.to(*args, **kwargs), self.value.to(*args, **kwargs), logit_bias)


def select_positions(
    tensors: list[torch.Tensor], *, cap: int | None, generator: torch.Generator | None, mask: torch.Tensor | None
) -> list[torch.Tensor]:
    """Flatten [B, C, H, W] maps to [B, C, n] and keep the same positions in all of them.

    `mask` ([H0, W0] bool, any size) keeps only the positions inside it; `cap` then keeps a random
    subset drawn from `generator` (a private generator: the global RNG is never touched).
    """
    height, width = tensors[0].shape[-2:]
    flat = [t.flatten(2) for t in tensors]
    index = None
    if mask is not None:
        mask = F.interpolate(mask[None, None].float(), size=(height, width), mode="nearest")[0, 0] > 0.5
        index = mask.flatten().nonzero().squeeze(1).to(tensors[0].device)
        if index.numel() == 0:
            raise BadInputError("the style mask selects no style pixels at this feature scale")
    count = height * width if index is None else index.numel()
    draw = sample_index(count, cap, generator)
    if draw is not None:
        draw = draw.to(tensors[0].device)
        index = draw if index is None else index[draw]
    if index is None:
        return flat
    return [t.index_select(2, index) for t in flat]


def sample_index(count: int, cap: int | None, generator: torch.Generator | None) -> torch.Tensor | None:
    """The random subset of `count` positions that a `cap` keeps (None: all are kept, nothing is drawn)."""
    if cap is None or count <= cap:
        return None
    return torch.randperm(count, generator=generator)[:cap]


def pointwise(conv: nn.Conv2d, flat: torch.Tensor) -> torch.Tensor:
    """Apply a 1x1 conv to [B, C, n] features."""
    return F.conv1d(flat, conv.weight[..., 0], conv.bias)


class TransferBlock(nn.Module):
    """A feature-transfer block: memorize(style, ...) -> StyleMemory, forward(content, ..., memory), and the two
    things the rest of the code may ask of any block, below."""

    # True: the style memory is made of style positions, a random subset of at most max_style_positions of them
    # (attention blocks). False: it is the style's channel statistics (AdaIN), so a content that runs in tiles
    # needs only its whole-image statistics to be its own style, not its gathered positions (tiling.py).
    attends_to_positions = True
    max_style_positions: int | None = None
    matmul_dtype: torch.dtype | None  # of the attention matmuls (None: the inputs', autocast decides)

    def configure_inference(self, *, matmul_dtype: torch.dtype, max_style_positions: int | None) -> None:
        """Inference settings: the dtype of the attention matmuls, the cap on attended style positions (None: all)."""
        self.matmul_dtype = matmul_dtype
        self.max_style_positions = max_style_positions


class AdaAttN(TransferBlock):
    """Attention-weighted mean and std: S(x) * Norm(F_c)(x) + M(x), with shallow+deep keys."""

    def __init__(self, *, value_channels: int, key_channels: int, max_style_positions: int | None, attention: str = "softmax"):
        super().__init__()
        if attention not in ("softmax", "cosine"):
            raise ValueError(f"unknown attention {attention!r}; expected 'softmax' or 'cosine'")
        self.query = nn.Conv2d(key_channels, key_channels, 1)
        self.key = nn.Conv2d(key_channels, key_channels, 1)
        self.value = nn.Conv2d(value_channels, value_channels, 1)
        self.max_style_positions = max_style_positions
        self.attention = attention
        self.logit_budget = fn.DEFAULT_LOGIT_BUDGET
        self.matmul_dtype: torch.dtype = torch.float32  # Stylizer sets bfloat16 for its fast path
        self.plain = False  # models.use_plain_ops (ONNX export): the query projection stays on the content side
        self._folded: tuple = (None, None)  # (weights' stamp, folded_query()'s tensors)

    @torch.no_grad()
    def folded_query(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The query projection moved to the style side, so that at inference the content needs no query conv.

        (W_q c + b_q) . (W_k s + b_k) = c . (W_q^T W_k s + W_q^T b_k) + (W_k^T b_q) . s + b_q . b_k: memorize keeps
        the first factor as the key and the second term as a per-key logit bias; the last term is the same for
        every logit, which softmax ignores. Saves a d x d conv at every content position (at relu3_1 the content
        has 4x the positions of the capped style). Cached until the weights change (new storage or in-place update).
        """
        query_bias, key_bias = self.query.bias, self.key.bias
        assert query_bias is not None and key_bias is not None  # the 1x1 convs of __init__ have biases
        params = (self.query.weight, query_bias, self.key.weight, key_bias)
        stamp = version_stamp(*params)
        if self._folded[0] != stamp:
            dtype = params[0].dtype
            w_q, b_q, w_k, b_k = (p.to(torch.promote_types(dtype, torch.float32)) for p in params)  # products in >= fp32
            w_q, w_k = w_q[..., 0, 0], w_k[..., 0, 0]
            folded = ((w_q.T @ w_k)[..., None], w_q.T @ b_k, (b_q @ w_k)[None, :, None])
            self._folded = (stamp, tuple(t.to(dtype) for t in folded))
        return self._folded[1]

    def memorize(self, style: torch.Tensor, style_key: torch.Tensor, *, generator=None, mask=None) -> StyleMemory:
        style, style_key = select_positions([style, style_key], cap=self.max_style_positions, generator=generator, mask=mask)
        value = pointwise(self.value, style).transpose(1, 2)
        if self.attention != "softmax" or torch.is_grad_enabled() or self.plain:  # the cosine attention normalises the query
            return StyleMemory(key=pointwise(self.key, style_key), value=value)
        key_weight, key_bias, logit_weight = self.folded_query()
        return StyleMemory(key=F.conv1d(style_key, key_weight, key_bias), value=value, logit_bias=F.conv1d(style_key, logit_weight))

    def forward(self, content: torch.Tensor, content_key: torch.Tensor, memory: StyleMemory) -> torch.Tensor:
        """content_key: fn.shallow_deep_key of the content's taps up to this block's, so it ends with Norm(content)."""
        batch, channels, height, width = content.shape
        folded = memory.logit_bias is not None  # the query projection lives in the keys (folded_query)
        query = (content_key if folded else self.query(content_key)).flatten(2).transpose(1, 2)
        key, value = memory.key.expand(batch, -1, -1), memory.value.expand(batch, -1, -1)
        logit_bias = None if memory.logit_bias is None else memory.logit_bias.expand(batch, -1, -1)
        mean, std = fn.attention_mean_std(
            query,
            key,
            value,
            mode=self.attention,
            logit_bias=logit_bias,
            logit_budget=self.logit_budget,
            matmul_dtype=self.matmul_dtype,
        )
        # [B, n, C] -> [B, C, H, W] views (channels_last in memory, like the features), in the features' dtype
        mean, std = (t.transpose(1, 2).reshape(batch, channels, height, width).to(content.dtype) for t in (mean, std))
        # The key F^{1:x} ends with Norm(F_c) itself, with the statistics the caller chose (the whole image's
        # when tiled): reuse it rather than normalise the content again.
        return torch.addcmul(mean, std, content_key[:, -channels:])


class SANet(TransferBlock):
    """Style-attentional block: F_c + out(softmax(f(Norm F_c) g(Norm F_s)) h(F_s))."""

    def __init__(self, *, channels: int, max_style_positions: int | None):
        super().__init__()
        self.query = nn.Conv2d(channels, channels, 1)
        self.key = nn.Conv2d(channels, channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        self.max_style_positions = max_style_positions
        self.logit_budget = fn.DEFAULT_LOGIT_BUDGET
        self.matmul_dtype: torch.dtype | None = None  # None: autocast decides; Stylizer sets bfloat16 when fast

    def memorize(self, style: torch.Tensor, *, generator=None, mask=None, stats=None) -> StyleMemory:
        normalised = fn.mean_variance_norm(style, stats)
        style, normalised = select_positions([style, normalised], cap=self.max_style_positions, generator=generator, mask=mask)
        return StyleMemory(key=pointwise(self.key, normalised), value=pointwise(self.value, style).transpose(1, 2))

    def forward(self, content: torch.Tensor, memory: StyleMemory, content_stats=None) -> torch.Tensor:
        batch, channels, height, width = content.shape
        query = self.query(fn.mean_variance_norm(content, content_stats)).flatten(2).transpose(1, 2)
        key, value = memory.key.expand(batch, -1, -1), memory.value.expand(batch, -1, -1)
        attended = fn.attention_output(query, key, value, logit_budget=self.logit_budget, matmul_dtype=self.matmul_dtype)
        return content + self.out(attended.transpose(1, 2).reshape(batch, channels, height, width))


class AdaIN(TransferBlock):
    """Parameter-free AdaIN; the memory holds the style's channel mean and std."""

    attends_to_positions = False

    def configure_inference(self, *, matmul_dtype: torch.dtype, max_style_positions: int | None) -> None:
        """Nothing to set: no attention, and the memory is the statistics of every style position."""

    def memorize(self, style: torch.Tensor | None, *, generator=None, mask=None, stats=None) -> StyleMemory:
        """stats: the style's (mean, std) when they are known already (a content processed in tiles)."""
        if stats is None:
            assert style is not None, "AdaIN.memorize needs the style's features or their statistics"
            if mask is not None:
                (style,) = select_positions([style], cap=None, generator=None, mask=mask)
            stats = fn.mean_std(style)
        mean, std = stats
        return StyleMemory(key=mean.flatten(2), value=std.flatten(2))

    def forward(self, content: torch.Tensor, memory: StyleMemory, content_stats=None) -> torch.Tensor:
        mean, std = (t.unsqueeze(-1) for t in (memory.key, memory.value))
        return fn.mean_variance_norm(content, content_stats) * std + mean
