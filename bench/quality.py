"""Quality per CPU-minute: train with the package defaults, then judge the samples with the offline evaluator.

    python bench/quality.py                       # 10 minutes, small preset, 32 px, demo dataset
    python bench/quality.py --minutes 5 --set guidance=2.0 --set lr=0.003
    python bench/quality.py --baseline            # also diffusers' UNet2DModel for the same minutes
    python bench/quality.py --run bench/out/quality/run-...   # re-score an existing run, no training

Prints: per-class accuracy of 25 samples per class (25-step DPM-Solver++ 2M, guidance as configured),
FID/KID against held-back reals, memorised share; then 25 fast-solver steps vs 250 DDPM steps on the
same labels; optionally the baseline. Writes the sample grid to docs/demo-grid.png and all figures to
bench/out/quality/<run>/quality.json. The machine is shared: the load average at start and end is
printed, and the baseline (when asked for) is trained in the same process right after, so read its
figures as a ratio, not an absolute.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import common  # sets OMP_WAIT_POLICY=PASSIVE: import it before torch, whose OpenMP reads it on loading
import torch
from tqdm import tqdm

from core.files import write_atomic
from diffusion.checkpoint import load_for_sampling
from diffusion.config import TrainConfig
from diffusion.data import load_images
from diffusion.evaluate import Evaluator
from diffusion.generate import make_grid
from diffusion.samplers import sample, to_uint8
from diffusion.train import train

DEMO_CANDIDATES = [common.DEMO_IMAGES, Path("/work/shared/datasets/animal-emoji/64")]


def default_data() -> Path:
    for path in DEMO_CANDIDATES:
        if path.is_dir():
            return path
    raise SystemExit("no demo dataset found; pass --data DIR (ImageFolder layout)")


def parse_overrides(items: list[str]) -> dict:
    """--set key=value pairs; values parsed as JSON when they can be (numbers, true/false, null)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_avg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    except OSError:
        return "unknown"


def balanced_labels(num_classes: int, per_class: int) -> torch.Tensor:
    return torch.arange(num_classes).repeat_interleave(per_class)


def sample_ours(model, schedule, config, labels, *, steps, sampler, seed, batch=200) -> tuple[torch.Tensor, float]:
    """uint8 samples from our EMA model and the seconds it took."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    t0 = time.perf_counter()
    for i in tqdm(range(0, len(labels), batch), desc=f"sample {sampler} x{steps}", file=sys.stderr, leave=False):
        x = sample(model, schedule, labels[i:i + batch], steps=steps, sampler=sampler, guidance=config.guidance,
                   generator=gen, device=next(model.parameters()).device, prediction=config.prediction)
        out.append(to_uint8(x))
    return torch.cat(out), time.perf_counter() - t0


def brief(scores: dict) -> dict:
    keys = ("accuracy", "balanced_accuracy", "fid", "kid", "memorised_share", "nn_ratio")
    return {k: (round(scores[k], 4) if isinstance(scores.get(k), float) else scores.get(k)) for k in keys}


def print_scores(title: str, scores: dict) -> None:
    print(f"\n== {title}")
    print("  accuracy {accuracy:.3f} (balanced {balanced_accuracy:.3f})   FID {fid}   KID {kid}   "
          "memorised {memorised_share:.3f} (threshold {nn_threshold:.4f}, NN ratio {nn_ratio:.2f})".format(
              **{**scores, "fid": _fmt(scores.get("fid")), "kid": _fmt(scores.get("kid"), 5)}))
    print("  per class: " + "  ".join(f"{k} {v:.2f}" for k, v in scores["per_class_accuracy"].items()))


def _fmt(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


# ---------------------------------------------------------------- the public baseline (diffusers)

def train_baseline(images_u8: torch.Tensor, labels: torch.Tensor, num_classes: int, *, minutes: float, seed: int,
                   batch_size: int = 64, lr: float = 1e-3, warmup: int = 100):
    """ε-prediction, 1000-step linear DDPM schedule, AdamW, flips; no EMA (it would lag a 10-minute run)."""
    from diffusers import DDPMScheduler

    torch.manual_seed(seed)
    # diffusers' UNet2DModel, class-conditional, ~1.8 M parameters at 32 px (attention at the lowest level)
    model = common.diffusers_unet(sample_size=images_u8.shape[-1], channels=images_u8.shape[1],
                                  block_out_channels=(32, 64, 96), num_class_embeds=num_classes, norm_num_groups=8)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    x_all = images_u8.float() / 127.5 - 1
    gen = torch.Generator().manual_seed(seed)
    n = len(labels)
    step, seen, t0, cpu0 = 0, 0, time.perf_counter(), time.process_time()
    bar = tqdm(desc="baseline train", unit="step", file=sys.stderr)
    model.train()
    while time.perf_counter() - t0 < minutes * 60:
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        x0 = x_all[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (len(idx),), generator=gen)
        noisy = sched.add_noise(x0, noise, t)
        loss = torch.nn.functional.mse_loss(model(noisy, t, class_labels=labels[idx]).sample, noise)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += len(idx)
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.close()
    seconds = time.perf_counter() - t0
    cpu_share = (time.process_time() - cpu0) / (seconds * (os.cpu_count() or 1))
    return model, {"steps": step, "images_per_sec": seen / seconds, "seconds": seconds, "cpu_share": cpu_share,
                   "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


@torch.no_grad()
def sample_baseline(model, labels: torch.Tensor, shape, *, steps: int, seed: int) -> torch.Tensor:
    """DPM-Solver++ 2M (diffusers' multistep scheduler) on the baseline's ε-predictions, no guidance."""
    from diffusers import DPMSolverMultistepScheduler

    sched = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear")
    sched.set_timesteps(steps)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((len(labels), *shape), generator=gen)
    model.eval()
    for t in sched.timesteps:
        eps = model(x, t, class_labels=labels).sample
        x = sched.step(eps, t, x).prev_sample
    return to_uint8(x.clamp(-1, 1))


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=None, help="training wall-clock budget (default 10)")
    p.add_argument("--epochs", type=int, default=None,
                   help="train this many epochs instead (a fixed amount of work, whatever the contention)")
    p.add_argument("--data", type=Path, default=None, help="ImageFolder dataset (default: the demo animal emoji)")
    p.add_argument("--preset", default=None, help="model preset (default: the package default)")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other TrainConfig setting, e.g. --set guidance=2.0 (repeatable)")
    p.add_argument("--per-class", type=int, default=25, help="samples per class for the main figures")
    p.add_argument("--steps", type=int, default=25, help="fast-solver steps")
    p.add_argument("--compare-per-class", type=int, default=10,
                   help="samples per class for the fast-solver vs DDPM comparison (0 skips it)")
    p.add_argument("--ddpm-steps", type=int, default=250)
    p.add_argument("--which", default="best", choices=("best", "last"), help="checkpoint to sample from")
    p.add_argument("--baseline", action="store_true", help="also train and score diffusers' UNet2DModel")
    p.add_argument("--run", type=Path, default=None, help="score this existing run instead of training")
    p.add_argument("--out", type=Path, default=common.ROOT / "bench" / "out" / "quality")
    p.add_argument("--grid", type=Path, default=common.ROOT / "docs" / "demo-grid.png", help="where to write the grid")
    p.add_argument("--no-grid", action="store_true", help="do not write the README grid")
    args = p.parse_args(argv)

    report: dict = {"load_avg_start": load_avg(), "started": datetime.now().isoformat(timespec="seconds")}
    print(f"load average at start: {report['load_avg_start']}  (shared machine: figures vary with contention)")
    torch.manual_seed(args.seed)

    if args.run is None:
        overrides = parse_overrides(args.set)
        for key, value in (("preset", args.preset), ("image_size", args.image_size),
                           ("batch_size", args.batch_size), ("lr", args.lr)):
            if value is not None:
                overrides[key] = value
        data = args.data or default_data()
        minutes = args.minutes if args.minutes is not None or args.epochs is not None else 10.0
        config = TrainConfig(data=str(data), minutes=minutes, epochs=args.epochs, seed=args.seed, device="cpu",
                             **overrides)
        config.validate()
        run_dir = args.out / f"run-{datetime.now():%Y%m%d-%H%M%S}"
        budget = " and ".join(x for x in (f"{minutes} min" if minutes else "", f"{args.epochs} epochs" if args.epochs
                                          else "") if x)
        print(f"training {run_dir} for {budget}: {json.dumps(overrides) if overrides else 'defaults'}")
        t0, cpu0 = time.perf_counter(), time.process_time()
        status = train(config, run_dir, progress=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        # CPU seconds this process got per wall second per core: ~1 on an idle machine, less when shared.
        cpu_share = cpu / (wall * (os.cpu_count() or 1))
        report["train"] = {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                           "cpu_share": round(cpu_share, 3), "steps": status.get("step"),
                           "epochs": status.get("epoch"), "images_per_sec": status.get("images_per_sec"),
                           "best_epoch": status.get("best_epoch"), "overrides": overrides}
        print(f"trained {status.get('step')} steps ({status.get('epoch')} epochs) in {wall:.0f} s; this process got "
              f"{cpu_share:.0%} of the machine's CPU time (contention)")
        if status.get("state") != "completed":
            print(f"training ended in state {status.get('state')!r}: {status.get('error') or 'see train.log'}")
            return 1
    else:
        run_dir = args.run
    report["run_dir"] = str(run_dir)
    out_json = Path(run_dir) / "quality.json"

    def save_report():  # after every stage, so a long run that is stopped keeps what it measured
        write_atomic(out_json, json.dumps(report, indent=2, default=str))

    model, schedule, config, class_names = load_for_sampling(run_dir, which=args.which, device="cpu")
    report["config"] = config.to_dict()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: preset {config.preset}, {n_params / 1e6:.2f} M parameters, {config.prediction}-prediction, "
          f"guidance {config.guidance}; sampling from {args.which}.pt")
    ev_path = run_dir / "evaluator.pt"
    images, labels, _ = load_images(config.data, config.image_size, config.fit, config.background)
    if ev_path.exists():
        evaluator = Evaluator.load(ev_path)
    else:
        evaluator = Evaluator.fit(images, labels, class_names, seed=config.seed, budget_s=config.eval_budget_s)
        evaluator.save(ev_path)
    report["evaluator"] = {k: evaluator.info.get(k) for k in (
        "real_accuracy", "real_balanced_accuracy", "real_per_class_accuracy", "real_fid", "real_kid",
        "n_train", "n_holdout", "classifier_steps", "classifier_seconds", "fit_seconds")}
    print(f"evaluator: classifier accuracy on {evaluator.info['n_holdout']} held-back reals "
          f"{evaluator.info['real_accuracy']:.3f} (balanced {evaluator.info['real_balanced_accuracy']:.3f}); "
          f"real-vs-real FID {_fmt(evaluator.info.get('real_fid'))}, KID {_fmt(evaluator.info.get('real_kid'), 5)}")

    # Main figures: 25 fast-solver steps, per-class samples.
    main_labels = balanced_labels(len(class_names), args.per_class)
    samples, secs = sample_ours(model, schedule, config, main_labels, steps=args.steps, sampler="dpm++2m",
                                seed=args.seed + 1)
    scores = evaluator.score(samples, main_labels)
    report["main"] = {"sampler": "dpm++2m", "steps": args.steps, "n": len(main_labels), "sample_seconds": round(secs, 2),
                      **scores}
    save_report()
    print_scores(f"ours: {len(main_labels)} samples, DPM-Solver++ 2M x{args.steps} steps "
                 f"({secs:.1f} s to sample)", scores)

    if not args.no_grid:
        cols = min(args.per_class, 10)
        pick = torch.cat([torch.nonzero(main_labels == c).flatten()[:cols] for c in range(len(class_names))])
        args.grid.parent.mkdir(parents=True, exist_ok=True)
        make_grid(samples[pick], len(class_names), scale=3).save(args.grid)
        print(f"grid ({len(class_names)} rows: {', '.join(class_names)}) written to {args.grid}")

    if args.compare_per_class > 0:
        cmp_labels = balanced_labels(len(class_names), args.compare_per_class)
        fast, fast_s = sample_ours(model, schedule, config, cmp_labels, steps=args.steps, sampler="dpm++2m",
                                   seed=args.seed + 2)
        slow, slow_s = sample_ours(model, schedule, config, cmp_labels, steps=args.ddpm_steps, sampler="ddpm",
                                   seed=args.seed + 2)
        fast_scores, slow_scores = evaluator.score(fast, cmp_labels), evaluator.score(slow, cmp_labels)
        report["solver_comparison"] = {
            "n": len(cmp_labels),
            "fast": {"sampler": "dpm++2m", "steps": args.steps, "seconds": round(fast_s, 2), **brief(fast_scores)},
            "ddpm": {"sampler": "ddpm", "steps": args.ddpm_steps, "seconds": round(slow_s, 2), **brief(slow_scores)}}
        save_report()
        print(f"\n== fast solver vs DDPM on the same {len(cmp_labels)} labels")
        for name, sc, s in ((f"DPM-Solver++ 2M x{args.steps}", fast_scores, fast_s),
                            (f"DDPM x{args.ddpm_steps}", slow_scores, slow_s)):
            print(f"  {name:<22} accuracy {sc['accuracy']:.3f}  FID {_fmt(sc.get('fid'))}  KID {_fmt(sc.get('kid'), 5)}"
                  f"  memorised {sc['memorised_share']:.3f}  ({s:.1f} s)")

    if args.baseline:
        base_minutes = args.minutes or (report.get("train", {}).get("wall_seconds", 600) / 60)
        print(f"\ntraining the diffusers baseline for {base_minutes:.1f} min (load average now {load_avg()})")
        base, info = train_baseline(images, labels, len(class_names), minutes=base_minutes, seed=args.seed)
        t0 = time.perf_counter()
        base_samples = sample_baseline(base, main_labels, tuple(images.shape[1:]), steps=args.steps, seed=args.seed + 1)
        info["sample_seconds"] = round(time.perf_counter() - t0, 2)
        base_scores = evaluator.score(base_samples, main_labels)
        report["baseline"] = {**info, **base_scores}
        print_scores(f"baseline: diffusers UNet2DModel {info['params_m']:.2f} M params, eps/DDPM, "
                     f"{info['steps']} steps at {info['images_per_sec']:.0f} img/s; sampled with DPM-Solver++ "
                     f"x{args.steps}, no guidance", base_scores)
        save_report()
        if report.get("train", {}).get("images_per_sec"):
            print(f"  training images/s, ours / baseline: "
                  f"{report['train']['images_per_sec'] / info['images_per_sec']:.2f}x "
                  f"(measured minutes apart on a shared CPU)")
        make_grid(base_samples[torch.cat([torch.nonzero(main_labels == c).flatten()[:10]
                                          for c in range(len(class_names))])], len(class_names), scale=3).save(
            Path(run_dir) / "baseline-grid.png")

    report["load_avg_end"] = load_avg()
    print(f"\nload average at end: {report['load_avg_end']}")
    save_report()
    print(f"figures written to {out_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
