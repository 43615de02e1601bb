import numpy as np
import pytest
import torch
from PIL import Image

from onenip.backbone import build_backbone, lite0_weights_path, same_padding
from onenip.config import BACKBONES, CONFIGS, get_config
from onenip.model import OneNIP, build_model
from onenip.preprocess import preprocess
from onenip.resize import resize_bilinear
from onenip.transformer import neighbour_mask_bool


@pytest.fixture(scope="module")
def models() -> dict[str, OneNIP]:
    torch.manual_seed(0)
    return {name: build_model(get_config(name)) for name in CONFIGS}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shapes(models: dict[str, OneNIP], name: str) -> None:
    m, cfg = models[name], get_config(name)
    H, h, N, D, C = cfg.input_size, cfg.feature_size, cfg.num_tokens, cfg.hidden_dim, cfg.channels
    image, prompt = torch.randn(1, 3, H, H), torch.randn(1, 3, H, H)
    with torch.no_grad():
        taps = m.backbone(image)
        assert [t.shape[1] for t in taps] == list(cfg.backbone_spec.channels)
        assert [H // t.shape[-1] for t in taps] == list(cfg.backbone_spec.strides)
        tokens = m.encode_prompt(prompt)
        rec_map, residual = m.reconstruct(image, tokens)
        amap, score = m.refine(residual, rec_map)
        out = m(torch.cat([image, prompt]), prompt)  # batch 2 against one prompt
    assert tokens.shape == (1, N, D)
    assert rec_map.shape == (1, 1, H, H) and residual.shape == (1, C, h, h)
    assert amap.shape == (1, 1, H, H) and score.shape == (1,)
    assert out.anomaly_map.shape == (2, 1, H, H) and out.score.shape == (2,)
    assert torch.allclose(out.rec_map[:1], rec_map, atol=1e-4)


def test_configuration_sizes() -> None:
    s, b4 = get_config("onenip-s"), get_config("official-b4")
    assert (s.input_size, s.channels, s.feature_size, s.neighbor) == (256, 192, 16, 8)
    assert (b4.input_size, b4.channels, b4.feature_size, b4.neighbor) == (224, 272, 14, 7)
    assert get_config("official-b4", 320).feature_size == 20
    with pytest.raises(ValueError, match="unknown configuration"):
        get_config("onenip-xl")


def test_trainable_parameter_counts(models: dict[str, OneNIP]) -> None:
    # official: transformer 7.78 M + refiner 0.59 M (the authors' 8.37 M); small: about 1.2 M
    b4 = models["official-b4"]
    assert sum(p.numel() for p in b4.trainable_parameters()) == 8_372_625
    assert sum(p.numel() for p in b4.refiner.parameters()) == 592_769
    small = sum(p.numel() for p in models["onenip-s"].trainable_parameters())
    assert 1.1e6 < small < 1.3e6


def test_lite0_imagenet_weights_load_strictly() -> None:
    net = build_backbone(BACKBONES["efficientnet-lite0"], pretrained=True)
    state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    dropped = sorted({k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("_blocks") else "") for k in state if net.unused_key(k)})
    assert dropped == ["_blocks.11", "_blocks.12", "_blocks.13", "_blocks.14", "_blocks.15", "_bn1", "_conv_head", "_fc"]
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert not any(p.requires_grad for p in net.parameters())


def test_tf_same_padding() -> None:
    # B4: static paddings for 380 (stem 380 -> 190 needs (0, 1); a 5x5 stride-2 conv on 95 needs (2, 2))
    assert same_padding(380, 3, 2) == (0, 1, 0, 1)
    assert same_padding(95, 5, 2) == (2, 2, 2, 2)
    assert same_padding(56, 5, 2) == (1, 2, 1, 2)  # Lite0 at 224
    assert same_padding(24, 5, 1) == (2, 2, 2, 2)
    b4 = build_backbone(BACKBONES["efficientnet-b4"], pretrained=False)
    assert b4.stem_pad == (0, 1, 0, 1) and b4._blocks[6].pad == (2, 2, 2, 2) and b4._blocks[10].pad == (0, 1, 0, 1)
    assert len(b4._blocks) == 22 and b4._blocks[0].has_se


def _masked_pairs(h: int, n: int) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    m = neighbour_mask_bool(h, n)
    return {((i // h, i % h), (j // h, j % h)) for i, j in m.nonzero().tolist()}


@pytest.mark.parametrize("size,h,n", [(224, 14, 7), (256, 16, 8)])
def test_neighbour_mask(size: int, h: int, n: int) -> None:
    cfg = get_config("official-b4", size)
    assert (cfg.feature_size, cfg.neighbor) == (h, n)
    pairs = _masked_pairs(h, n)
    half = n // 2
    want = {
        ((r1, c1), (r2, c2))
        for r1 in range(h) for c1 in range(h) for r2 in range(h) for c2 in range(h)
        if abs(r1 - r2) <= half and abs(c1 - c2) <= half
    }
    assert pairs == want
    assert ((5, 5), (5, 5)) in pairs  # a token never attends itself
    assert ((5, 5), (5 + half, 5 - half)) in pairs
    assert ((5, 5), (5 + half + 1, 5)) not in pairs
    mask = neighbour_mask_bool(h, n)
    assert mask.sum(1)[(h // 2) * h + h // 2] == (2 * half + 1) ** 2  # 49 at 224, 81 at 256
    assert mask.sum(1)[0] == (half + 1) ** 2  # corner
    m = build_model(cfg, pretrained=False)
    add = m.transformer.attn_mask()
    assert torch.isneginf(add[mask]).all() and (add[~mask] == 0).all()


def test_position_embedding_layout(models: dict[str, OneNIP]) -> None:
    t = models["onenip-s"].transformer
    pos = t.pos_embed()
    h, r, c = t.h, 3, 11
    want = torch.cat([t.pos_embed.col_embed.weight[c], t.pos_embed.row_embed.weight[r]])
    assert torch.equal(pos[r * h + c, 0], want)


def test_prompt_tokens_do_not_depend_on_the_image(models: dict[str, OneNIP]) -> None:
    m = models["onenip-s"]
    H = m.cfg.input_size
    prompt, img1, img2 = (torch.randn(1, 3, H, H) for _ in range(3))
    with torch.no_grad():
        tokens = m.encode_prompt(prompt)
        # the shared encoder on an image+prompt batch (as the authors run it) gives
        # the prompt the same encoding as alone: the two never interact
        joint = m.transformer.encode(torch.cat([m.features(img1), m.features(prompt)]))
        assert torch.allclose(joint[:, 1], tokens[0], atol=1e-5)
        joint2 = m.transformer.encode(torch.cat([m.features(img2), m.features(prompt)]))
        assert torch.allclose(joint2[:, 1], tokens[0], atol=1e-5)
        assert not torch.allclose(joint[:, 0], joint2[:, 0], atol=1e-2)
        # so the cached tokens reproduce the full forward for any image
        for img in (img1, img2):
            full = m(img, prompt)
            rec_map, residual = m.reconstruct(img, tokens)
            amap, score = m.refine(residual, rec_map)
            assert torch.allclose(rec_map, full.rec_map, atol=1e-4)
            assert torch.allclose(amap, full.anomaly_map, atol=1e-4)
        # and the reconstruction does depend on the prompt
        other = m.encode_prompt(torch.randn(1, 3, H, H))
        assert not torch.allclose(m.reconstruct(img1, other)[0], m.reconstruct(img1, tokens)[0], atol=1e-2)


def test_training_mode_jitter_and_frozen_backbone() -> None:
    cfg = get_config("onenip-s")
    m = build_model(cfg, pretrained=False)
    feat = torch.randn(2, cfg.channels, cfg.feature_size, cfg.feature_size)
    with torch.no_grad():
        a, b = m.transformer.encode(feat), m.transformer.encode(feat)
    assert torch.equal(a, b)  # eval: no jitter, no dropout
    m.train()
    assert not m.backbone.training and m.transformer.training
    tokens = m.transformer.to_tokens(feat)
    jittered = m.transformer.jitter(tokens)
    noise = (jittered - tokens).std() / (tokens.norm(dim=-1) / cfg.channels * cfg.jitter_scale).mean()
    assert 0.8 < float(noise) < 1.2  # randn * ||f|| / C * 20
    out = m.forward_features(feat, feat[:1])
    (out.rec_feat.square().mean() + out.ref_logits.mean()).backward()
    assert all(p.grad is not None for p in m.trainable_parameters())
    assert all(p.grad is None and not p.requires_grad for p in m.backbone.parameters())
    m.eval()
    assert not m.transformer.training


def test_bilinear_matches_torch_interpolate() -> None:
    x = torch.randn(1, 4, 112, 112) * 30
    for size in (16, 14, 224):
        ref = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)
        assert torch.allclose(resize_bilinear(x, (size, size)), ref, atol=1e-4)


def test_preprocess() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (300, 451, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    x = preprocess(img, 256)
    assert x.shape == (1, 3, 256, 256) and x.dtype == np.float32
    small = np.asarray(img.resize((256, 256), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    want = (small - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(x[0].transpose(1, 2, 0), want, atol=1e-6)
    grey = preprocess(Image.fromarray(rgb[..., 0]), 64)  # grey input becomes RGB
    assert grey.shape == (1, 3, 64, 64) and np.allclose(grey[0, 0] * 0.229 + 0.485, grey[0, 1] * 0.224 + 0.456, atol=1e-5)
