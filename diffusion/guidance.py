"""The per-run guidance sweep: a few guidance scales, with and without limited-interval guidance, sampled from
the same noise and scored by the run's evaluator, so the run's default is chosen by measurement and the user
sees the trade-off (higher guidance: more recognisable, less varied).

Writes `<run>/guidance.json` ({"rows": [...], "chosen": {...}, "why": "..."}) and one small grid per row
(`<run>/guidance/<row>.png`, one row of pictures per class).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from . import rundir
from .config import DEFAULT_GUIDANCE_INTERVAL
from .evaluate import chance_level
from .generate import save_grid
from .samplers import sample, to_uint8

SCALES = (1.0, 1.5, 2.0, 3.0)
ACCURACY_SHARE = 0.95  # a setting qualifies when its accuracy is >= 95 % of the best accuracy in the sweep
SWEEP_SAMPLES = 96  # samples per row (at least 4 per class): enough to rank settings, cheap enough to afford


def sweep_rows(interval=DEFAULT_GUIDANCE_INTERVAL) -> list[dict]:
    """The settings tried, most telling first (a tight budget skips the last): the strongest guidance with and
    without an interval, then milder ones, each with the interval first; no guidance (1) last."""
    rows = []
    for g in sorted(SCALES, reverse=True):
        if g != 1.0:
            rows.append({"guidance": g, "interval": list(interval)})
        rows.append({"guidance": g, "interval": None})
    return rows


def row_name(row: dict) -> str:
    return f"g{row['guidance']:g}-{'interval' if row['interval'] else 'all'}"


def choose(rows: list[dict], num_classes: int) -> tuple[dict | None, str]:
    """(chosen row, why): the lowest Fréchet distance among the rows within ACCURACY_SHARE of the best accuracy;
    None while every row's accuracy is at chance level (the figures would mean nothing)."""
    scored = [r for r in rows if r.get("accuracy") is not None]
    if not scored:
        return None, "no setting could be scored"
    best_acc = max(r["accuracy"] for r in scored)
    if all(chance_level(r["accuracy"], r.get("n_samples", 0), num_classes) for r in scored):
        return None, (f"every setting's samples are recognised at chance level (best {best_acc:.3f}, chance "
                      f"{1 / num_classes:.3f}): the run's guidance is kept; train longer")
    floor = ACCURACY_SHARE * best_acc
    eligible = [r for r in scored if r["accuracy"] >= floor - 1e-9]
    with_fid = [r for r in eligible if r.get("fid") is not None]
    if with_fid:
        chosen = min(with_fid, key=lambda r: (r["fid"], -r["accuracy"]))
        why = (f"lowest Fréchet distance ({chosen['fid']:.2f}) among the settings whose samples are recognised at "
               f"least {ACCURACY_SHARE:.0%} as often as the best ({best_acc:.3f}): variety kept at that accuracy")
    else:
        chosen = max(eligible, key=lambda r: r["accuracy"])
        why = "highest accuracy (no Fréchet distance: too few held-back images)"
    return chosen, why


@torch.no_grad()
def run_sweep(model, schedule, evaluator, class_names: list[str], run_dir: Path, *, steps: int, sampler: str,
              prediction: str, seed: int, device, budget_s: float | None = None, n_samples: int = SWEEP_SAMPLES,
              log=None) -> dict:
    """Sample every `sweep_rows()` setting from the same noise, score it, write guidance.json and the grids.

    Rows that would start after `budget_s` seconds are skipped (and listed), so the sweep's cost stays bounded.
    """
    t0 = time.time()
    k = len(class_names)
    # Fréchet distances compare with the held-back reals: beyond ~3x their number more samples add little.
    n_samples = min(n_samples, 3 * len(evaluator.holdout_labels))
    per_class = max(4, math.ceil(n_samples / k))
    labels = torch.arange(k).repeat_interleave(per_class)
    inner = getattr(model, "module", model)
    shape = (inner.cfg.in_channels, inner.image_size, inner.image_size)
    noise = torch.randn((len(labels), *shape), generator=torch.Generator().manual_seed(seed + 777))
    rows, skipped = [], []
    for row in sweep_rows():
        if budget_s is not None and rows and time.time() - t0 + rows[-1]["seconds"] > budget_s:
            skipped.append(row)
            continue
        r0 = time.time()
        images = sample(model, schedule, labels, steps=steps, sampler=sampler, guidance=row["guidance"],
                        generator=torch.Generator().manual_seed(seed), device=device, prediction=prediction,
                        noise=noise, interval=row["interval"])
        u8 = to_uint8(images)
        with torch.random.fork_rng(devices=[]):
            fig = evaluator.score(u8, labels)
        name = row_name(row)
        show = torch.cat([u8[c * per_class:c * per_class + min(per_class, 8)] for c in range(k)])
        save_grid(show, k, Path(run_dir) / "guidance" / f"{name}.png")
        rows.append({**row, "name": name, "grid": f"guidance/{name}.png", "n_samples": len(labels),
                     "accuracy": fig["accuracy"], "fid": fig.get("fid"), "kid": fig.get("kid"),
                     "memorised_share": fig.get("memorised_share"), "seconds": round(time.time() - r0, 2)})
        if log:
            log("guidance %s: accuracy %.3f, FID %s (%.1fs)", name, fig["accuracy"],
                f"{fig['fid']:.2f}" if fig.get("fid") is not None else "-", time.time() - r0)
    chosen, why = choose(rows, k)
    result = {"rows": rows, "chosen": chosen, "why": why, "steps": steps, "sampler": sampler,
              "n_per_row": len(labels), "seconds": round(time.time() - t0, 2), "budget_s": budget_s,
              "skipped": skipped, "real_accuracy": evaluator.info.get("real_accuracy")}
    rundir.write_json_atomic(Path(run_dir) / "guidance.json", result)
    return result
