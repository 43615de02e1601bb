"""``onenip-eval MODEL DATA``: metrics of an exported model on the test split.

Scores every test image exactly as the deployed element does (see
:mod:`onenip.onnx_model`): the ONNX graphs, the deployed preprocessing, the
refiner's ``score`` output as the image score and its ``anomaly_map`` as the
pixel map (at the model's input size; masks are resized with nearest).

Prompt policies:

- ``first`` (default): one fixed prompt per class, the first train/good image,
  as a deployed camera would have;
- ``random``: one train/good image per class drawn with ``--seed``;
- ``all``: ``--max-prompts`` prompts per class (the first, then evenly spaced
  train/good images); the headline figures are still the first prompt's, and the
  spread (mean, std, min, max over prompts) is reported beside them.

Writes ``results.json``, ``results.md``, ``curves.png`` (image ROC and pixel PR
per class) and ``gallery.png`` (heat maps) into ``--out``.

``onenip-eval --score-pair MODEL IMAGE PROMPT`` prints the JSON score of one
image against one prompt (the reference for the element's parity tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import DataError, TestItem, find_classes, load_mask, test_items, train_images
from .metrics import auroc, average_precision, pro_auc
from .onnx_model import OnnxModel, Prediction, resolve_model_dir, score_pair

METRICS = ("image_auroc", "pixel_auroc", "pixel_ap", "pro")
__all__ = ["evaluate", "main", "markdown", "score_pair"]


@dataclass
class ClassRun:
    """Predictions of one class with one prompt."""

    cls: str
    prompt: Path
    items: list[TestItem]
    preds: list[Prediction]
    masks: list[np.ndarray] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.array([it.anomalous for it in self.items])

    @property
    def scores(self) -> np.ndarray:
        return np.array([p.score for p in self.preds])

    @property
    def has_masks(self) -> bool:
        anom = [it for it in self.items if it.anomalous]
        return bool(anom) and all(it.mask is not None for it in anom)


def _at(y: np.ndarray, s: np.ndarray, thr: float) -> dict[str, Any]:
    pred = s > thr
    return {
        "threshold": thr,
        "tpr": float(pred[y].mean()) if y.any() else None,
        "fpr": float(pred[~y].mean()) if (~y).any() else None,
        "accuracy": float((pred == y).mean()),
    }


def class_metrics(run: ClassRun, image_threshold: float | None = None,
                  class_threshold: float | None = None) -> dict[str, Any]:
    y, s = run.labels, run.scores
    out: dict[str, Any] = {
        "n_good": int((~y).sum()),
        "n_defect": int(y.sum()),
        "image_auroc": auroc(y, s),
        "pixel_auroc": None,
        "pixel_ap": None,
        "pro": None,
    }
    if run.has_masks:
        gt = np.stack(run.masks)
        maps = np.stack([p.anomaly_map for p in run.preds])
        out["pixel_auroc"] = auroc(gt, maps)
        out["pixel_ap"] = average_precision(gt, maps)
        out["pro"] = pro_auc(list(gt), list(maps))
    if image_threshold is not None:
        out["at_threshold"] = _at(y, s, image_threshold)
    if class_threshold is not None:
        out["at_class_threshold"] = _at(y, s, class_threshold)
    return out


def mean_of(rows: dict[str, dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows.values() if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def choose_prompts(data: Path, cls: str, policy: str, max_prompts: int, rng: np.random.Generator) -> list[Path]:
    good = train_images(data, cls)
    if not good:
        raise DataError(f"{data}/{cls}: no train/good image to use as the prompt")
    if policy == "first":
        return [good[0]]
    if policy == "random":
        return [good[int(rng.integers(0, len(good)))]]
    n = min(max_prompts, len(good))
    idx = [0] + [int(round(i * (len(good) - 1) / max(1, n - 1))) for i in range(1, n)]
    return [good[i] for i in dict.fromkeys(idx)]


def run_class(model: OnnxModel, data: Path, cls: str, prompt: Path, masks: list[np.ndarray] | None,
              items: list[TestItem], bar: Any = None) -> ClassRun:
    tokens = model.encode_prompt(prompt)
    preds = []
    for it in items:
        preds.append(model.predict(it.path, tokens))
        if bar is not None:
            bar.update(1)
    if masks is None:
        masks = [load_mask(it.mask, model.size) for it in items]
    return ClassRun(cls, prompt, items, preds, masks)


def evaluate(model_dir: Path, data: Path, policy: str = "first", max_prompts: int = 5, seed: int = 0,
             classes: Sequence[str] | None = None, threads: int = 2, progress: bool = True,
             keep_runs: bool = False) -> tuple[dict[str, Any], dict[str, ClassRun]]:
    from tqdm import tqdm

    model = OnnxModel(model_dir, threads)
    rng = np.random.default_rng(seed)
    classes = list(classes) if classes else find_classes(data)
    plan: dict[str, tuple[list[TestItem], list[Path]]] = {}
    for cls in classes:
        items = test_items(data, cls)
        if not items:
            continue
        plan[cls] = (items, choose_prompts(data, cls, policy, max_prompts, rng))
    if not plan:
        raise DataError(f"{data}: no <class>/test images")
    total = sum(len(i) * len(p) for i, p in plan.values())
    bar = tqdm(total=total, desc="evaluating", unit="img", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    per_class: dict[str, dict[str, Any]] = {}
    head_runs: dict[str, ClassRun] = {}
    for cls, (items, prompts) in plan.items():
        masks = [load_mask(it.mask, model.size) for it in items]
        runs = [run_class(model, data, cls, p, masks, items, bar) for p in prompts]
        cal = model.meta.get("calibration", {}).get("per_class", {}).get(cls, {})
        head = class_metrics(runs[0], model.image_threshold, cal.get("image_threshold"))
        head["prompt"] = runs[0].prompt.name
        if len(runs) > 1:
            spread: dict[str, Any] = {"prompts": [r.prompt.name for r in runs]}
            ms = [head] + [class_metrics(r) for r in runs[1:]]
            for k in METRICS:
                vals = [m[k] for m in ms if m[k] is not None]
                if vals:
                    spread[k] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)),
                                 "min": float(np.min(vals)), "max": float(np.max(vals)), "values": vals}
            head["spread"] = spread
        per_class[cls] = head
        head_runs[cls] = runs[0]
    bar.close()
    seconds = time.perf_counter() - t0
    mean = {k: mean_of(per_class, k) for k in METRICS}
    if policy == "all":
        for k in METRICS:
            vals = [r["spread"][k]["mean"] for r in per_class.values() if "spread" in r and k in r["spread"]]
            if vals:
                mean[f"{k}_prompt_mean"] = float(np.mean(vals))
            mins = [r["spread"][k]["min"] for r in per_class.values() if "spread" in r and k in r["spread"]]
            if mins:
                mean[f"{k}_worst_prompt_mean"] = float(np.mean(mins))
    results = {
        "model": str(resolve_model_dir(model_dir)),
        "data": str(data),
        "prompt_policy": policy,
        "model_meta": {k: model.meta.get(k) for k in ("variant", "input_size", "fuse_k", "image_threshold",
                                                      "pixel_threshold", "calibrated")},
        "classes": per_class,
        "mean": mean,
        "images_scored": total,
        "seconds": round(seconds, 1),
        "ms_per_image": round(1000 * seconds / max(1, total), 1),
    }
    return results, head_runs


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def markdown(results: dict[str, Any]) -> str:
    rows = results["classes"]
    spread = any("spread" in r for r in rows.values())
    head = "| class | image AUROC | pixel AUROC | pixel AP | PRO |"
    sep = "|---|---|---|---|---|"
    if spread:
        head += " image AUROC over prompts (mean ± std, min) |"
        sep += "---|"
    head += " TPR / FPR at model threshold | TPR / FPR at class threshold |"
    sep += "---|---|"
    lines = [f"Prompt policy: {results['prompt_policy']} (headline: the first train/good image of each class). "
             f"Figures in %. Model threshold: the model-wide calibrated image_threshold; class threshold: "
             f"the class's own calibrated threshold (model.json calibration.per_class).", "", head, sep]
    for cls, r in rows.items():
        line = f"| {cls} | {_fmt(r['image_auroc'])} | {_fmt(r['pixel_auroc'])} | {_fmt(r['pixel_ap'])} | {_fmt(r['pro'])} |"
        if spread:
            s = r.get("spread", {}).get("image_auroc")
            line += f" {100 * s['mean']:.1f} ± {100 * s['std']:.1f}, {100 * s['min']:.1f} |" if s else " - |"
        t = r.get("at_threshold", {})
        tpr, fpr = t.get("tpr"), t.get("fpr")
        line += f" {_fmt(tpr)} / {_fmt(fpr)} |"
        t = r.get("at_class_threshold")
        line += f" {_fmt(t['tpr'])} / {_fmt(t['fpr'])} |" if t else " - |"
        lines.append(line)
    m = results["mean"]
    line = f"| **mean** | **{_fmt(m['image_auroc'])}** | **{_fmt(m['pixel_auroc'])}** | **{_fmt(m['pixel_ap'])}** | **{_fmt(m['pro'])}** |"
    if spread:
        pm, wm = m.get("image_auroc_prompt_mean"), m.get("image_auroc_worst_prompt_mean")
        line += f" {_fmt(pm)} (worst prompt per class: {_fmt(wm)}) |"
    line += " | |"
    lines.append(line)
    lines.append("")
    lines.append(f"{results['images_scored']} images scored in {results['seconds']} s "
                 f"({results['ms_per_image']} ms per image, ONNX Runtime CPU).")
    return "\n".join(lines) + "\n"


def plot_curves(runs: dict[str, ClassRun], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5))
    for cls, r in runs.items():
        y = r.labels
        if y.any() and (~y).any():
            fpr, tpr, _ = roc_curve(y, r.scores)
            a.plot(fpr, tpr, label=cls)
        if r.has_masks:
            gt = np.stack(r.masks).ravel()
            mp = np.stack([p.anomaly_map for p in r.preds]).ravel()
            sub = slice(None, None, 4)  # every 4th pixel keeps the plot light
            pr, rc, _ = precision_recall_curve(gt[sub], mp[sub])
            b.plot(rc, pr, label=cls)
    a.plot([0, 1], [0, 1], "k:", lw=0.8)
    a.set(title="image ROC (fixed prompt)", xlabel="false positive rate", ylabel="true positive rate")
    b.set(title="pixel precision-recall", xlabel="recall", ylabel="precision")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_gallery(runs: dict[str, ClassRun], path: Path, pixel_threshold: float, per_class: int = 4) -> None:
    """Per class: the prompt, then the highest-scoring good image and defective images,
    each as the image with its ground truth outlined and the anomaly map beneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from .data import load_resized

    vmax = max(float(np.percentile([p.anomaly_map.max() for r in runs.values() for p in r.preds], 95)), 1e-6)
    cols = per_class + 2
    fig, axes = plt.subplots(2 * len(runs), cols, figsize=(1.9 * cols, 1.9 * 2 * len(runs)))
    axes = np.atleast_2d(axes)
    for row, (cls, r) in enumerate(runs.items()):
        size = r.preds[0].anomaly_map.shape[0]
        good = [i for i, it in enumerate(r.items) if not it.anomalous]
        bad = [i for i, it in enumerate(r.items) if it.anomalous]
        picks = []
        if good:
            picks.append(max(good, key=lambda i: r.preds[i].score))
        step = max(1, len(bad) // per_class)
        picks += bad[::step][:per_class]
        ax_i, ax_m = axes[2 * row], axes[2 * row + 1]
        for ax in (*ax_i, *ax_m):
            ax.axis("off")
        ax_i[0].imshow(load_resized(r.prompt, size))
        ax_i[0].set_title(f"{cls}: prompt", fontsize=7)
        for c, i in enumerate(picks, start=1):
            it, p = r.items[i], r.preds[i]
            ax_i[c].imshow(np.asarray(Image.open(it.path).convert("RGB").resize((size, size))))
            if r.masks and r.masks[i].any():
                ax_i[c].contour(r.masks[i], levels=[0.5], colors="lime", linewidths=0.6)
            ax_i[c].set_title(f"{it.label} s={p.score:.3g}", fontsize=7)
            ax_m[c].imshow(p.anomaly_map, cmap="jet", vmin=0, vmax=vmax)
            ax_m[c].contour(p.anomaly_map, levels=[pixel_threshold], colors="white", linewidths=0.5)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _score_pair_main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="onenip-eval --score-pair",
                                 description="Score one image against one prompt with an exported model.")
    ap.add_argument("model", type=Path)
    ap.add_argument("image", type=Path)
    ap.add_argument("prompt", type=Path)
    ap.add_argument("--save-map", type=Path, help="also save the anomaly map as .npy")
    args = ap.parse_args(argv)
    m = OnnxModel(args.model)
    p = m.predict(args.image, m.encode_prompt(args.prompt))
    if args.save_map:
        np.save(args.save_map, p.anomaly_map)
    amap = p.anomaly_map
    print(json.dumps({
        "score": p.score,
        "anomalous": p.score > m.image_threshold,
        "image_threshold": m.image_threshold,
        "pixel_threshold": m.pixel_threshold,
        "map_mean": float(amap.mean()),
        "map_max": float(amap.max()),
        "map_min": float(amap.min()),
        "pixels_above_threshold": int((amap > m.pixel_threshold).sum()),
        "rec_map_mean": float(p.rec_map.mean()),
    }))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--score-pair":
        return _score_pair_main(argv[1:])
    ap = argparse.ArgumentParser(
        prog="onenip-eval",
        description="Evaluate an exported OneNIP model on the test split of an MVTec-layout folder "
        "(image AUROC, pixel AUROC, pixel AP, PRO per class). "
        "Also: onenip-eval --score-pair MODEL IMAGE PROMPT.",
    )
    ap.add_argument("model", type=Path, help="model folder (model.json + ONNX) or a run folder with model/")
    ap.add_argument("data", type=Path, help="data set root holding <class>/test")
    ap.add_argument("--prompt-policy", choices=("first", "random", "all"), default="first")
    ap.add_argument("--max-prompts", type=int, default=5, help="prompts per class with --prompt-policy all")
    ap.add_argument("--classes", default="", help="comma-separated subset of classes")
    ap.add_argument("--out", type=Path, help="output folder (default MODEL/eval or RUN/eval)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] or None
    try:
        mdir = resolve_model_dir(args.model)
        results, runs = evaluate(mdir, args.data, args.prompt_policy, args.max_prompts, args.seed, classes,
                                 args.threads, not args.no_progress)
    except (DataError, FileNotFoundError) as e:
        print(f"onenip-eval: error: {e}", file=sys.stderr)
        return 2
    out = args.out or (Path(args.model) / "eval")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    md = markdown(results)
    (out / "results.md").write_text(md)
    if not args.no_plots:
        plot_curves(runs, out / "curves.png")
        plot_gallery(runs, out / "gallery.png", float(results["model_meta"]["pixel_threshold"] or 0))
    print(md)
    print(f"onenip-eval: wrote results.json, results.md{'' if args.no_plots else ', curves.png, gallery.png'} to {out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
