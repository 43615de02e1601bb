"""An independent stand-in for the authors' reconstruction module, for tests.

Written from the spec (onenip-spec.md section 2/3) with torch.nn.MultiheadAttention,
sequence-first, under the authors' attribute names, so that its state_dict has the
key layout of a gaobb/OneNIP ``ckpt.pkl`` (below ``module.reconstruction.``). It does
not use this package's transformer, so comparing the two checks both the key
mapping of the converter and the semantics of the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Enc(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads)
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x: Tensor, pos: Tensor, mask: Tensor) -> Tensor:
        q = x + pos
        x = self.norm1(x + self.self_attn(q, q, value=x, attn_mask=mask)[0])
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class _Mlp(nn.Module):
    def __init__(self, d: int, ffn: int) -> None:
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(d, ffn), nn.Linear(ffn, d)


class _Dec(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.cross_attn_prompt_to_image = nn.MultiheadAttention(d, heads)
        self.cross_attn_image_to_prompt = nn.MultiheadAttention(d, heads)
        self.mlp = _Mlp(d, ffn)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, queries: Tensor, keys: Tensor, pos: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        a = self.cross_attn_prompt_to_image(queries + pos, keys + pos, value=keys, attn_mask=mask)[0]
        queries = self.norm1(queries + a)
        queries = self.norm2(queries + self.mlp.lin2(F.relu(self.mlp.lin1(queries))))
        a = self.cross_attn_image_to_prompt(keys + pos, queries + pos, value=queries, attn_mask=mask)[0]
        keys = self.norm3(keys + a)
        return queries, keys


class _Stack(nn.Module):
    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class _Transformer(nn.Module):
    def __init__(self, d: int, heads: int, n_enc: int, n_dec: int, ffn: int) -> None:
        super().__init__()
        self.encoder = _Stack([_Enc(d, heads, ffn) for _ in range(n_enc)])
        self.decoder = _Stack([_Dec(d, heads, ffn) for _ in range(n_dec)])
        self.decoder.norm = nn.LayerNorm(d)
        self.decoder.final_attn_token_to_image = nn.MultiheadAttention(d, heads)


class _PosEmbed(nn.Module):
    def __init__(self, h: int, d: int) -> None:
        super().__init__()
        self.row_embed, self.col_embed = nn.Embedding(h, d // 2), nn.Embedding(h, d // 2)


def _upconv(cin: int, m: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, m, 3, padding=1, bias=False), nn.BatchNorm2d(m), nn.ReLU(), nn.ConvTranspose2d(m, m, 2, 2)
    )


class AuthorsReconstruction(nn.Module):
    def __init__(self, c: int, h: int, d: int, heads: int, n_enc: int, n_dec: int, ffn: int, m: int) -> None:
        super().__init__()
        self.h, self.c = h, c
        self.pos_embed = _PosEmbed(h, d)
        self.transformer = _Transformer(d, heads, n_enc, n_dec, ffn)
        self.input_proj, self.output_proj = nn.Linear(c, d), nn.Linear(d, c)
        self.seghead = nn.Module()
        self.seghead.upconv1, self.seghead.upconv2 = _upconv(c, m), _upconv(m, m)
        self.seghead.predictor = nn.Conv2d(m, 1, 1)

    def randomize(self, g: torch.Generator) -> None:
        """Random weights of a healthy scale: 1/sqrt(fan_in) weights, norms near 1,
        positive running variances (LayerNorm weights near 0 would collapse all tokens)."""
        norms = {n for n, m in self.named_modules() if isinstance(m, (nn.LayerNorm, nn.BatchNorm2d))}
        with torch.no_grad():
            for name, t in self.state_dict().items():
                owner, leaf = name.rsplit(".", 1)
                if not t.dtype.is_floating_point:
                    continue
                if leaf == "running_var":
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif owner in norms and leaf == "weight":
                    t.copy_(1.0 + 0.2 * torch.randn(t.shape, generator=g))
                elif t.dim() >= 2 and "embed" not in owner:
                    fan_in = t[0].numel() if "ConvTranspose" not in type(self.get_submodule(owner)).__name__ else t.shape[0]
                    t.copy_(torch.randn(t.shape, generator=g) / fan_in**0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.2)

    def forward(self, feat: Tensor, prompt_feat: Tensor, out_size: int) -> tuple[Tensor, Tensor]:
        """features -> (rec_map, ref_prob), sequence-first, the spec's formulas."""
        h = self.h
        r = torch.arange(h).repeat_interleave(h)
        c = torch.arange(h).repeat(h)
        near = ((r[:, None] - r[None, :]).abs() <= h // 4) & ((c[:, None] - c[None, :]).abs() <= h // 4)
        mask = torch.zeros(h * h, h * h).masked_fill(near, float("-inf"))
        pos = torch.cat(
            [self.pos_embed.col_embed.weight[None].expand(h, h, -1), self.pos_embed.row_embed.weight[:, None].expand(h, h, -1)],
            -1,
        ).reshape(h * h, 1, -1)
        x = self.input_proj(feat.flatten(2).permute(2, 0, 1))
        p = self.input_proj(prompt_feat.flatten(2).permute(2, 0, 1))
        for layer in self.transformer.encoder.layers:
            x, p = layer(x, pos, mask), layer(p, pos, mask)
        for layer in self.transformer.decoder.layers:
            p, x = layer(p, x, pos, mask)
        p = p + self.transformer.decoder.final_attn_token_to_image(p + pos, x + pos, value=x)[0]
        rec = self.output_proj(self.transformer.decoder.norm(p)).permute(1, 2, 0).reshape(feat.shape)
        up = nn.UpsamplingBilinear2d(size=(out_size, out_size))
        rec_map = up(torch.sqrt(((rec - feat) ** 2).sum(1, keepdim=True)))
        s = self.seghead
        logits = s.predictor(s.upconv2(s.upconv1((rec - feat).abs())))
        return rec_map, torch.sigmoid(up(logits))


def authors_state_dict(recon: AuthorsReconstruction, backbone_state: dict[str, Tensor], full_b4: bool = True) -> dict[str, Tensor]:
    """{'module.backbone.*', 'module.reconstruction.*'} as in a DDP-saved ckpt.pkl."""
    state = {f"module.backbone.{k}": v.clone() for k, v in backbone_state.items()}
    if full_b4:  # the authors' backbone is the whole B4: blocks 22..31, head, classifier
        state["module.backbone._blocks.22._expand_conv.weight"] = torch.randn(960, 160, 1, 1)
        state["module.backbone._blocks.31._bn2.running_var"] = torch.ones(448)
        state["module.backbone._conv_head.weight"] = torch.randn(1792, 448, 1, 1)
        state["module.backbone._bn1.weight"] = torch.ones(1792)
        state["module.backbone._fc.weight"] = torch.randn(1000, 1792)
        state["module.backbone._fc.bias"] = torch.zeros(1000)
    state.update({f"module.reconstruction.{k}": v.clone() for k, v in recon.state_dict().items()})
    return state
