"""The training loop on cached features.

Each step: ``batch`` normal images drawn class-balanced, one cached anomalous
variant of each, and one prompt per sample drawn at random from the training
images of the SAME class. Loss (spec section 4)::

    MSE(F_hat, [F_n; F_n]) + 0.5 * Dice(sigmoid(logits), [0; m])

Both streams regress onto the clean features; feature jitter comes from the
transformer in training mode. AdamW, linear warm-up then cosine decay, gradient
clipping.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checkpoint import save_checkpoint
from ..fusion import reconstruction_map
from ..model import OneNIP
from .cache import FeatureCache

STATE_FILE = "train_state.pt"  # model + optimiser + schedule + RNG, for --resume
MODEL_FILE = "model.pt"  # the trained model, this project's checkpoint format
LOG_FILE = "train_log.jsonl"
PLOT_FILE = "loss.png"


@dataclass
class TrainConfig:
    steps: int = 2500
    batch: int = 8  # normal images per step (plus as many anomalous, plus prompts)
    lr: float = 4e-4
    weight_decay: float = 1e-4
    warmup: int = 100
    min_lr_ratio: float = 0.02
    grad_clip: float = 0.1
    dice_weight: float = 0.5
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 25


def dice_loss(prob: Tensor, target: Tensor) -> Tensor:
    """Per sample 1 - (sum(pt) + 1) / (sum(p^2) + sum(t^2) + 1), averaged."""
    p = prob.flatten(1)
    t = target.flatten(1)
    return (1 - (2 * (p * t).sum(1) + 1) / ((p * p).sum(1) + (t * t).sum(1) + 1)).mean()


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    t = min(1.0, t)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


@dataclass
class Batch:
    feat: Tensor  # [2B, C, h, w]: normal then anomalous
    target: Tensor  # [2B, C, h, w]: clean features twice
    prompt: Tensor  # [B, C, h, w]
    mask: Tensor  # [2B, 1, H, W]: zeros then the anomaly masks


class Sampler:
    """Class-balanced batches from the cache."""

    def __init__(self, cache: FeatureCache, rng: np.random.Generator) -> None:
        self.cache = cache
        self.rng = rng
        self.by_class = [idx.numpy() for idx in cache.by_class()]
        self.by_class = [c for c in self.by_class if len(c)]

    def draw(self, b: int) -> Batch:
        c = self.cache
        rng = self.rng
        cls = rng.integers(0, len(self.by_class), b)
        idx = np.array([rng.choice(self.by_class[k]) for k in cls])
        prm = []
        for k, i in zip(cls, idx):
            pool = self.by_class[k]
            j = i
            if len(pool) > 1:
                while j == i:
                    j = rng.choice(pool)
            prm.append(j)
        var = rng.integers(0, c.variants, b)
        ti, tv = torch.from_numpy(idx), torch.from_numpy(var)
        normal = c.normal[ti].float()
        anom = c.anomalous[ti, tv].float()
        mask = c.masks[ti, tv].float()[:, None]
        return Batch(
            feat=torch.cat([normal, anom]),
            target=torch.cat([normal, normal]),
            prompt=c.normal[torch.from_numpy(np.array(prm))].float(),
            mask=torch.cat([torch.zeros_like(mask), mask]),
        )


def step_loss(model: OneNIP, batch: Batch, cfg: TrainConfig) -> tuple[Tensor, dict[str, float]]:
    b = batch.prompt.shape[0]
    prompt_tokens = model.transformer.encode(batch.prompt)  # [N, B, D]
    prompt_tokens = prompt_tokens.repeat(1, 2, 1).transpose(0, 1)  # [2B, N, D], same prompt for both streams
    rec = model.reconstruct_features(batch.feat, prompt_tokens)
    _, residual = reconstruction_map(rec, batch.feat, model.cfg.input_size)
    logits = model.refiner(residual)
    mse = torch.mean((rec - batch.target) ** 2)
    dice = dice_loss(torch.sigmoid(logits), batch.mask)
    loss = mse + cfg.dice_weight * dice
    with torch.no_grad():
        dice_anom = float(dice_loss(torch.sigmoid(logits[b:]), batch.mask[b:]))
    return loss, {"loss": loss.item(), "mse": mse.item(), "dice": dice.item(), "dice_anom": dice_anom}


@dataclass
class TrainResult:
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def _save_state(run: Path, model: OneNIP, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig,
                rng: np.random.Generator, history: list[dict[str, Any]], seconds: float, extra: dict[str, Any]) -> None:
    tmp = run / (STATE_FILE + ".tmp")
    torch.save(
        {
            "step": step,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "train_config": asdict(cfg),
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "history": history,
            "seconds": seconds,
            "extra": extra,
        },
        tmp,
    )
    tmp.replace(run / STATE_FILE)
    save_checkpoint(model, run / MODEL_FILE)


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(axes, ("mse", "dice", "lr"), ("feature MSE", "Dice (all / anomalous)", "learning rate")):
        ax.plot(steps, [h[key] for h in history], label=key)
        if key == "dice":
            ax.plot(steps, [h["dice_anom"] for h in history], label="dice (anomalous)")
            ax.legend()
        if key == "mse":
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def train(
    model: OneNIP,
    cache: FeatureCache,
    run: Path,
    cfg: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or continue training) ``model`` on ``cache``; writes state, model, log and plot into ``run``."""
    from tqdm import tqdm

    run.mkdir(parents=True, exist_ok=True)
    extra = extra or {}
    params = model.trainable_parameters()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    start, history, seconds = 0, [], 0.0
    state_path = run / STATE_FILE
    if resume and state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        rng.bit_generator.state = st["numpy_rng"]
        torch.set_rng_state(st["torch_rng"])
        start, history, seconds = int(st["step"]), list(st["history"]), float(st["seconds"])
        (run / LOG_FILE).write_text("".join(json.dumps(h) + "\n" for h in history))
    elif not resume:
        (run / LOG_FILE).unlink(missing_ok=True)
    sampler = Sampler(cache, rng)
    model.train()
    log_path = run / LOG_FILE
    window: list[dict[str, float]] = []
    t0 = time.perf_counter() - seconds
    bar = tqdm(total=cfg.steps, initial=start, desc="training", unit="step", disable=not progress, dynamic_ncols=True)
    step = start
    for step in range(start, cfg.steps):
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = sampler.draw(cfg.batch)
        loss, figs = step_loss(model, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        opt.step()
        figs["grad_norm"] = gnorm
        window.append(figs)
        bar.update(1)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            avg = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            rec = {"step": done, "lr": lr, "seconds": round(time.perf_counter() - t0, 1), **avg}
            history.append(rec)
            with log_path.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            bar.set_postfix(mse=f"{avg['mse']:.4f}", dice=f"{avg['dice_anom']:.3f}", lr=f"{lr:.1e}")
            window = []
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            model.eval()
            _save_state(run, model, opt, done, cfg, rng, history, time.perf_counter() - t0, extra)
            plot_history(history, run / PLOT_FILE)
            model.train()
    bar.close()
    model.eval()
    seconds = time.perf_counter() - t0
    if start >= cfg.steps:  # nothing to do, but keep the files consistent
        save_checkpoint(model, run / MODEL_FILE)
        plot_history(history, run / PLOT_FILE)
    return TrainResult(cfg.steps, seconds, history)
