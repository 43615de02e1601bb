"""Checkpoints: this project's own format and the authors' ``ckpt.pkl``.

Own format (written by :func:`save_checkpoint`, read by :func:`load_checkpoint`)::

    {"format": "onenip-checkpoint", "version": 1, "config": "onenip-s",
     "input_size": 256, "state_dict": {...},
     "calibration": {"fuse_k": .., "image_threshold": .., "pixel_threshold": ..}}  # optional

Authors' format (``gaobb/OneNIP``, saved from a DistributedDataParallel-wrapped
model): ``{"state_dict": {"module.backbone.*", "module.reconstruction.*"}}``.
:data:`AUTHORS_KEY_RULES` maps its names onto this package's names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .config import ModelConfig, get_config
from .model import OneNIP

FORMAT = "onenip-checkpoint"
CALIBRATION_KEYS = ("fuse_k", "image_threshold", "pixel_threshold")


class CheckpointError(Exception):
    """A checkpoint that cannot be used, with the file and the reason."""


@dataclass
class Loaded:
    model: OneNIP
    source_format: str  # "onenip" or "authors"
    calibration: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)


def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str]) -> tuple[re.Pattern[str], Any]:
    return re.compile(pattern), repl


_RECON = r"^reconstruction\."
_DEC = _RECON + r"transformer\.decoder\."
_WB = r"(weight|bias)$"
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)$"

# authors' key (without "module.") -> this package's key. First match wins.
AUTHORS_KEY_RULES: list[tuple[re.Pattern[str], Any]] = [
    _sub(r"^backbone\.(.+)$", r"backbone.\1"),
    _sub(_RECON + r"pos_embed\.(row|col)_embed\.weight$", r"transformer.pos_embed.\1_embed.weight"),
    _sub(_RECON + r"(input_proj|output_proj)\." + _WB, r"transformer.\1.\2"),
    _sub(
        _RECON + r"transformer\.encoder\.layers\.(\d+)\."
        r"(self_attn\.in_proj_(?:weight|bias)|self_attn\.out_proj\.(?:weight|bias)"
        r"|linear[12]\.(?:weight|bias)|norm[12]\.(?:weight|bias))$",
        r"transformer.encoder.layers.\1.\2",
    ),
    _sub(
        _DEC + r"layers\.(\d+)\.cross_attn_prompt_to_image\.(in_proj_(?:weight|bias)|out_proj\.(?:weight|bias))$",
        r"transformer.decoder.layers.\1.prompt_to_image.\2",
    ),
    _sub(
        _DEC + r"layers\.(\d+)\.cross_attn_image_to_prompt\.(in_proj_(?:weight|bias)|out_proj\.(?:weight|bias))$",
        r"transformer.decoder.layers.\1.image_to_prompt.\2",
    ),
    _sub(_DEC + r"layers\.(\d+)\.mlp\.lin([12])\." + _WB, r"transformer.decoder.layers.\1.mlp.fc\2.\3"),
    _sub(_DEC + r"layers\.(\d+)\.(norm[123])\." + _WB, r"transformer.decoder.layers.\1.\2.\3"),
    _sub(
        _DEC + r"final_attn_token_to_image\.(in_proj_(?:weight|bias)|out_proj\.(?:weight|bias))$",
        r"transformer.decoder.final_attn.\1",
    ),
    _sub(_DEC + r"norm\." + _WB, r"transformer.decoder.norm.\1"),
    _sub(_RECON + r"seghead\.upconv([12])\.0\.weight$", lambda m: f"refiner.stages.{int(m[1]) - 1}.conv.weight"),
    _sub(_RECON + r"seghead\.upconv([12])\.1\." + _BN, lambda m: f"refiner.stages.{int(m[1]) - 1}.bn.{m[2]}"),
    _sub(_RECON + r"seghead\.upconv([12])\.3\." + _WB, lambda m: f"refiner.stages.{int(m[1]) - 1}.up.{m[2]}"),
    _sub(_RECON + r"seghead\.predictor\." + _WB, r"refiner.head.\1"),
]


def map_authors_key(key: str) -> str | None:
    """The package key for an authors' key (``module.`` already stripped), or None."""
    for pattern, repl in AUTHORS_KEY_RULES:
        m = pattern.match(key)
        if m:
            return repl(m) if callable(repl) else m.expand(repl)
    return None


def is_authors_state_dict(state: Mapping[str, Any]) -> bool:
    return any(k.startswith(("module.reconstruction.", "reconstruction.")) for k in state)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        raise CheckpointError(f"{path}: cannot read as a PyTorch checkpoint: {e}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a OneNIP checkpoint: expected a dict with a 'state_dict', got {keys}")
    return ckpt


def _fmt(keys: list[str], limit: int = 12) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _load_strict(model: OneNIP, state: Mapping[str, Tensor], path: Path, what: str, unexpected: list[str]) -> None:
    """Load a fully mapped state_dict; errors name missing/unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_fmt(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_fmt(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_fmt(mismatched, 6)}")
    if problems:
        raise CheckpointError(
            f"{path}: does not fit configuration {model.cfg.name!r} "
            f"(input {model.cfg.input_size}) as {what}: " + "; ".join(problems)
        )
    model.load_state_dict(dict(state), strict=True)


def _infer_input_size(state: Mapping[str, Tensor], key: str, cfg: ModelConfig) -> int | None:
    t = state.get(key)
    return int(t.shape[0]) * cfg.feature_stride if isinstance(t, Tensor) and t.dim() == 2 else None


def load_authors_state_dict(
    state: Mapping[str, Tensor], path: Path, cfg: ModelConfig, input_size_given: bool
) -> Loaded:
    """Map an authors' state_dict onto a fresh model of configuration ``cfg``."""
    notes: list[str] = []
    plain = {k.removeprefix("module."): v for k, v in state.items()}
    size = _infer_input_size(plain, "reconstruction.pos_embed.row_embed.weight", cfg)
    if size is not None and size != cfg.input_size:
        if input_size_given:
            raise CheckpointError(
                f"{path}: checkpoint was trained at input size {size} "
                f"(feature map {size // cfg.feature_stride}x{size // cfg.feature_stride}), "
                f"not {cfg.input_size}; use --input-size {size}"
            )
        notes.append(f"input size {size} inferred from the positional embedding")
        cfg = cfg.with_input_size(size)
    model = OneNIP(cfg, pretrained=False).eval()
    own = model.state_dict()
    mapped: dict[str, Tensor] = {}
    unexpected: list[str] = []
    dropped = 0
    for orig, value in state.items():
        new = map_authors_key(orig.removeprefix("module."))
        if new is not None and new.startswith("backbone.") and model.backbone.unused_key(new[len("backbone.") :]):
            dropped += 1  # blocks after the last tap, head, classifier: not needed
            continue
        if new is None or new not in own or new in mapped:
            unexpected.append(orig)
            continue
        mapped[new] = value
    _load_strict(model, mapped, path, "an authors' checkpoint", sorted(unexpected))
    notes.append(f"dropped {dropped} backbone tensors after the last tapped block")
    return Loaded(model.eval(), "authors", None, notes)


def load_checkpoint(path: str | Path, config: str | None = None, input_size: int | None = None) -> Loaded:
    """Load either checkpoint format into a model (eval mode).

    ``config``: the configuration to load into. Required for authors'
    checkpoints (use ``official-b4``); for this project's checkpoints it
    defaults to the one recorded and must match it when given.
    """
    path = Path(path)
    ckpt = _read(path)
    state: Mapping[str, Tensor] = ckpt["state_dict"]
    if ckpt.get("format") == FORMAT:
        recorded = str(ckpt.get("config"))
        if config is not None and config != recorded:
            raise CheckpointError(f"{path}: configuration mismatch: checkpoint is {recorded!r}, requested {config!r}")
        rec_size = int(ckpt.get("input_size", 0)) or None
        if input_size is not None and rec_size is not None and input_size != rec_size:
            raise CheckpointError(
                f"{path}: input size mismatch: checkpoint is {rec_size}, requested {input_size}"
            )
        try:
            cfg = get_config(recorded, rec_size or input_size)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
        model = OneNIP(cfg, pretrained=False).eval()
        _load_strict(model, state, path, "a onenip checkpoint", sorted(set(state) - set(model.state_dict())))
        calib = ckpt.get("calibration")
        if calib is not None:
            missing = [k for k in CALIBRATION_KEYS if k not in calib]
            if missing:
                raise CheckpointError(f"{path}: calibration lacks {', '.join(missing)}")
            calib = {k: float(calib[k]) for k in CALIBRATION_KEYS}
            model.fuse_k = calib["fuse_k"]
        model.backbone_weights = "checkpoint"
        return Loaded(model, "onenip", calib)
    if is_authors_state_dict(state):
        if config is None:
            raise CheckpointError(f"{path}: an authors' checkpoint needs a configuration (official-b4)")
        try:
            cfg = get_config(config, input_size)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
        loaded = load_authors_state_dict(state, path, cfg, input_size is not None)
        loaded.model.backbone_weights = "checkpoint"
        return loaded
    raise CheckpointError(
        f"{path}: unknown checkpoint layout: neither format {FORMAT!r} nor the authors' "
        f"'module.reconstruction.*' keys (first keys: {_fmt(sorted(state), 5)})"
    )


def save_checkpoint(model: OneNIP, path: str | Path, calibration: Mapping[str, float] | None = None) -> None:
    """Write this project's checkpoint format (the training issue uses it)."""
    data: dict[str, Any] = {
        "format": FORMAT,
        "version": 1,
        "config": model.cfg.name,
        "input_size": model.cfg.input_size,
        "state_dict": model.state_dict(),
    }
    if calibration is not None:
        data["calibration"] = {k: float(calibration[k]) for k in CALIBRATION_KEYS}
    torch.save(data, path)
