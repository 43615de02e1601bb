"""The OneNIP reconstruction transformer.

Tokens are sequence-first, ``[L, B, D]`` (L = h * w, row-major). The shared
post-norm encoder runs on the image and on the prompt separately (they never
interact), the two-way decoder reads its output from the PROMPT stream.
Attention modules keep the parameter layout of ``torch.nn.MultiheadAttention``
(``in_proj_weight``, ``in_proj_bias``, ``out_proj``) but are written out so that
masks, dropout and the ONNX export stay explicit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EXPORT_MASK_VALUE = -1e4  # ONNX Runtime and TensorRT dislike -inf


def neighbour_mask_bool(h: int, n: int) -> Tensor:
    """[h*h, h*h] bool, True where token i may NOT attend token j:
    |row_i - row_j| <= n // 2 and |col_i - col_j| <= n // 2 (i itself included)."""
    r = torch.arange(h).repeat_interleave(h)  # row of each token
    c = torch.arange(h).repeat(h)  # column of each token
    half = n // 2
    near_r = (r[:, None] - r[None, :]).abs() <= half
    near_c = (c[:, None] - c[None, :]).abs() <= half
    return near_r & near_c


class Attention(nn.Module):
    """Multi-head attention, sequence-first, additive float mask."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        lq, b, d = q.shape
        lk = k.shape[0]
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)
        hd = d // self.heads
        # [L, B, D] -> [B, heads, L, hd]
        q = F.linear(q, wq, bq).reshape(lq, b, self.heads, hd).permute(1, 2, 0, 3)
        k = F.linear(k, wk, bk).reshape(lk, b, self.heads, hd).permute(1, 2, 0, 3)
        v = F.linear(v, wv, bv).reshape(lk, b, self.heads, hd).permute(1, 2, 0, 3)
        scores = torch.matmul(q * (1.0 / math.sqrt(hd)), k.transpose(-2, -1))
        if mask is not None:
            scores = scores + mask
        attn = F.dropout(scores.softmax(dim=-1), self.dropout, self.training)
        out = torch.matmul(attn, v).permute(2, 0, 1, 3).reshape(lq, b, d)
        return self.out_proj(out)


class PositionEmbedding(nn.Module):
    """Learned: pos[(r, c)] = concat(col_embed[c], row_embed[r]), each D/2 wide."""

    def __init__(self, h: int, dim: int) -> None:
        super().__init__()
        self.h = h
        self.row_embed = nn.Embedding(h, dim // 2)
        self.col_embed = nn.Embedding(h, dim // 2)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self) -> Tensor:
        """[h*h, 1, D]"""
        h = self.h
        cols = self.col_embed.weight[None, :, :].expand(h, h, -1)  # [r, c, D/2]
        rows = self.row_embed.weight[:, None, :].expand(h, h, -1)
        return torch.cat([cols, rows], dim=-1).reshape(h * h, 1, -1)


class EncoderLayer(nn.Module):
    """q = k = X + pos; X = LN1(X + MHA(q, k, X, mask)); X = LN2(X + FFN(X))."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        q = x + pos
        x = self.norm1(x + self.drop1(self.self_attn(q, q, x, mask)))
        y = self.linear2(self.drop(F.relu(self.linear1(x))))
        return self.norm2(x + self.drop2(y))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class DecoderLayer(nn.Module):
    """Two-way layer; P = prompt tokens, X = image tokens:
    P = LN1(P + MHA(P+pos, X+pos, X, mask)); P = LN2(P + MLP(P));
    X = LN3(X + MHA(X+pos, P+pos, P, mask))."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.prompt_to_image = Attention(dim, heads, dropout)
        self.mlp = MLP(dim, ffn)
        self.image_to_prompt = Attention(dim, heads, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)
        self.drop3 = nn.Dropout(dropout)

    def forward(self, p: Tensor, x: Tensor, pos: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        p = self.norm1(p + self.drop1(self.prompt_to_image(p + pos, x + pos, x, mask)))
        p = self.norm2(p + self.drop2(self.mlp(p)))
        x = self.norm3(x + self.drop3(self.image_to_prompt(x + pos, p + pos, p, mask)))
        return p, x


class Encoder(nn.Module):
    def __init__(self, layers: int, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn, dropout) for _ in range(layers))

    def forward(self, x: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        for layer in self.layers:
            x = layer(x, pos, mask)
        return x


class Decoder(nn.Module):
    def __init__(self, layers: int, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn, dropout) for _ in range(layers))
        self.final_attn = Attention(dim, heads, dropout)
        self.final_drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, p: Tensor, x: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        for layer in self.layers:
            p, x = layer(p, x, pos, mask)
        p = p + self.final_drop(self.final_attn(p + pos, x + pos, x))  # unmasked
        return self.norm(p)


class ReconstructionTransformer(nn.Module):
    """input_proj -> shared encoder -> two-way decoder -> output_proj."""

    def __init__(
        self,
        channels: int,
        h: int,
        dim: int,
        heads: int,
        enc_layers: int,
        dec_layers: int,
        ffn: int,
        dropout: float,
        neighbor: int,
        jitter_scale: float,
        jitter_prob: float,
    ) -> None:
        super().__init__()
        self.h, self.channels = h, channels
        self.jitter_scale, self.jitter_prob = jitter_scale, jitter_prob
        self.input_proj = nn.Linear(channels, dim)
        self.output_proj = nn.Linear(dim, channels)
        self.pos_embed = PositionEmbedding(h, dim)
        self.encoder = Encoder(enc_layers, dim, heads, ffn, dropout)
        self.decoder = Decoder(dec_layers, dim, heads, ffn, dropout)
        self.register_buffer("neighbour_mask", neighbour_mask_bool(h, neighbor), persistent=False)
        self.mask_value = float("-inf")  # set to EXPORT_MASK_VALUE for ONNX export

    def attn_mask(self) -> Tensor:
        zero = torch.zeros((), dtype=torch.float32)
        return torch.where(self.neighbour_mask, torch.full_like(zero, self.mask_value), zero)

    def jitter(self, tokens: Tensor) -> Tensor:
        """Training only: tokens + randn * (||f||_2 / C) * scale, with probability prob."""
        if not self.training or self.jitter_scale <= 0 or torch.rand(()) > self.jitter_prob:
            return tokens
        norm = tokens.norm(dim=-1, keepdim=True) / tokens.shape[-1]
        return tokens + torch.randn_like(tokens) * norm * self.jitter_scale

    def to_tokens(self, feat: Tensor) -> Tensor:
        """[B, C, h, w] -> [h*w, B, C]"""
        return feat.flatten(2).permute(2, 0, 1)

    def encode(self, feat: Tensor) -> Tensor:
        """Feature map [B, C, h, w] -> encoded tokens [N, B, D] (jitter, input_proj, encoder)."""
        x = self.input_proj(self.jitter(self.to_tokens(feat)))
        return self.encoder(x, self.pos_embed(), self.attn_mask())

    def decode(self, prompt_tokens: Tensor, image_tokens: Tensor) -> Tensor:
        """Encoded prompt [N, Bp, D] (Bp = 1 or B) and image [N, B, D] tokens ->
        reconstructed features [B, C, h, w], read from the prompt stream."""
        n, b, _ = image_tokens.shape
        if prompt_tokens.shape[1] != b:
            prompt_tokens = prompt_tokens.expand(-1, b, -1)
        p = self.decoder(prompt_tokens, image_tokens, self.pos_embed(), self.attn_mask())
        out = self.output_proj(p)  # [N, B, C]
        return out.permute(1, 2, 0).reshape(b, self.channels, self.h, self.h)
