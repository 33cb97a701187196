"""Training quality per 10 CPU-minutes with every default, on data the project has never seen, judged independently.

    python bench/quality.py                       # digits and demo at 32 px, demo at 64 px, 10 min each
    python bench/quality.py --minutes 2 --datasets digits          # a smoke run of the harness
    python bench/quality.py --datasets demo@64 --epochs 215        # a fixed amount of training, whatever the load
    python bench/quality.py --rescore bench/out/quality/instance/runs/<id> --part both
    python bench/quality.py --check-reals         # the judge on real images posing as samples
    python bench/quality.py --self-test           # only the benchmark's own maths checks (every call runs them first)

Per dataset (bench/quality_data.py: ImageFolders split into train / tuned / untouched), exactly what a new user
types: `manage.py train --data <dataset>/train --minutes 10` (plus `--image-size 64` for the 64 px figure), then
`manage.py sample RUN --n 50 --steps 25` (25 per class at 64 px; the run's own choices of checkpoint, guidance and
interval). The samples are scored by bench/quality_judge.py (a classifier that is not the run's evaluator, trained on the train part only)
against the held-back part chosen by --part: `tuned` while tuning, `untouched` (never used while tuning) for the
final figure, `both` prints both. Targets (issue 12): sample accuracy >= 0.95 x the judge's accuracy on held-back
reals, Fréchet <= 2 x the real-data floor at the same sample count, memorised <= 2 %.

Runs go one after another (the CPUs are shared: the load average at start and end of each is recorded). Writes
bench/out/quality/<dataset>-<size>.json, <dataset>-<size>-grid.png (10 samples per class, one row per class),
<dataset>-<size>.train.log and the run under bench/out/quality/instance/runs/ (with --epochs: <dataset>-<size>-e<N>.*).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import common  # sets OMP_WAIT_POLICY=PASSIVE before torch loads
import quality_checks
import quality_data
import quality_judge as qj
import torch

from diffusion.data import load_images
from diffusion.evaluate import read_sample_folder
from diffusion.generate import make_grid

OUT = common.ROOT / "bench" / "out" / "quality"
DEFAULT_SPECS = ("digits", "demo", "demo@64")
SAMPLES_DIR = "bench-samples"


def load_avg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def parse_spec(spec: str) -> tuple[str, int]:
    name, _, size = spec.partition("@")
    if name not in quality_data.SOURCES:
        raise SystemExit(f"unknown dataset {name!r}; known: {', '.join(quality_data.SOURCES)} (name or name@size)")
    return name, int(size or 32)


def manage(args: list[str], log, out: Path) -> dict:
    """`python manage.py --instance OUT/instance ARGS --json`: its JSON result; progress goes to the log."""
    cmd = [sys.executable, "manage.py", "--instance", str(out / "instance"), *args, "--json"]
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run(cmd, cwd=common.ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[1:4])} ... failed (exit {proc.returncode}); see {log.name}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train_and_sample(name: str, size: int, minutes: float, per_class: int, steps: int, out: Path,
                     epochs: int | None = None) -> tuple[Path, dict]:
    """Train with every default for `minutes` (or a fixed number of `epochs`: the same work on a loaded machine),
    then sample; returns the run and a record of what was run."""
    root = quality_data.build(name, out / "data")
    tag = run_tag(name, size, epochs)
    with open(out / f"{tag}.train.log", "w", encoding="utf-8") as log:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=common.ROOT, capture_output=True, text=True)
        record = {"load_avg_start": load_avg(), "started": datetime.now().isoformat(timespec="seconds"),
                  "git_head": head.stdout.strip()}
        budget = f"{epochs} epochs" if epochs else f"{minutes:g} min"
        print(f"[{tag}] training {budget} with every default (load {record['load_avg_start']})", flush=True)
        args = ["train", "--data", str(root / "train")]
        args += ["--epochs", str(epochs)] if epochs else ["--minutes", f"{minutes:g}"]
        if size != 32:
            args += ["--image-size", str(size)]
        t0 = time.perf_counter()
        record["train_command"] = "python manage.py " + " ".join(args)
        record["train"] = manage(args, log, out)
        record["train_wall_s"] = round(time.perf_counter() - t0, 1)
        record["load_avg_after_train"] = load_avg()
        run_dir = Path(record["train"]["run_dir"])
        samples = run_dir / SAMPLES_DIR
        shutil.rmtree(samples, ignore_errors=True)
        args = ["sample", str(run_dir), "--n", str(per_class), "--steps", str(steps), "--out", str(samples)]
        t0 = time.perf_counter()
        record["sample_command"] = "python manage.py " + " ".join(args)
        manage(args, log, out)
        record["sample_wall_s"] = round(time.perf_counter() - t0, 1)
    return run_dir, record


def run_tag(name: str, size: int, epochs: int | None) -> str:
    return f"{name}-{size}" + (f"-e{epochs}" if epochs else "")


def judge_for(root: Path, size: int, train_u8, train_labels, class_names, out: Path) -> qj.Judge:
    """The dataset's judge, fitted once per split and size (cached: the same yardstick for every run)."""
    split = hashlib.sha256((root / "split.json").read_bytes()).hexdigest()[:12]
    path = out / "judges" / f"{root.name}-{size}-{split}.pt"
    if path.is_file():
        return qj.Judge.load(path)
    print(f"fitting the judge on {len(train_labels)} training reals of {root.name} at {size} px", flush=True)
    judge = qj.Judge.fit(train_u8, train_labels, class_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    judge.save(path)
    return judge


def score_run(run_dir: Path, parts: list[str], out: Path, tag: str | None = None) -> dict:
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    root = Path(config["data"]).parent
    size, fit, background = config["image_size"], config["fit"], config["background"]
    train_u8, train_labels, class_names = load_images(root / "train", size, fit, background)
    if class_names != config["class_names"]:
        raise SystemExit(f"{run_dir} was trained on classes {config['class_names']}, {root}/train has {class_names}")
    samples, sample_labels = read_sample_folder(run_dir / SAMPLES_DIR, class_names, train_u8.shape[1])
    judge = judge_for(root, size, train_u8, train_labels, class_names, out)
    result = {"run_dir": str(run_dir), "dataset": root.name, "size": size, "judge": judge.info,
              "settings": {k: config.get(k) for k in ("preset", "batch_size", "lr", "flip", "guidance", "minutes")},
              "parts": {}}
    for part in parts:
        held, held_labels, _ = load_images(root / part, size, fit, background)
        result["parts"][part] = qj.score(judge, samples, sample_labels, train_u8, train_labels, held, held_labels)
    grid_path = out / f"{tag or f'{root.name}-{size}'}-grid.png"
    pick = torch.cat([torch.nonzero(sample_labels == c).flatten()[:10] for c in range(len(class_names))])
    make_grid(samples[pick], len(class_names), scale=3 if size <= 32 else 2).save(grid_path)
    result["grid"] = str(grid_path.relative_to(common.ROOT) if grid_path.is_relative_to(common.ROOT) else grid_path)
    result["grid_rows"] = class_names
    status = run_dir / "status.json"
    if status.is_file():
        s = json.loads(status.read_text(encoding="utf-8"))
        result["status"] = {k: s.get(k) for k in ("step", "epoch", "best_epoch", "train_s", "preview_s",
                                                  "evaluator_fit_s", "sweep_s", "images_per_sec", "stop_message",
                                                  "augmentation", "guidance")}
    return result


def check_reals(name: str, size: int, out: Path) -> dict:
    """The yardstick on real images: the untouched part scored as if it were samples, against the tuned part.
    Expect an accuracy ratio near 1, a Fréchet ratio near 1 and about 1 % memorised (the threshold's percentile)."""
    root = quality_data.build(name, out / "data")
    train_u8, train_labels, class_names = load_images(root / "train", size, "crop", "white")
    judge = judge_for(root, size, train_u8, train_labels, class_names, out)
    fake, fake_labels, _ = load_images(root / "untouched", size, "crop", "white")
    held, held_labels, _ = load_images(root / "tuned", size, "crop", "white")
    fig = qj.score(judge, fake, fake_labels, train_u8, train_labels, held, held_labels)
    return {"dataset": name, "size": size, "judge": judge.info, "parts": {"reals-as-samples": fig}}


def _f(v, fmt=".3f"):
    return "-" if v is None else format(v, fmt)


def print_table(rows: list[dict]) -> None:
    ok = {True: "pass", False: "FAIL"}
    print(f"\n{'dataset':<10}{'part':<10}{'steps':>6}{'epochs':>7}  {'acc samples/judge real':<24}{'ratio':>6}      "
          f"{'Fréchet/floor':<16}{'ratio':>6}      {'memorised':>9}       load start/end")
    for r in rows:
        st = r.get("status") or {}
        for part, fig in r["parts"].items():
            v = fig["pass"]
            print(f"{r['dataset'] + '@' + str(r['size']):<10}{part:<10}{_f(st.get('step'), 'd'):>6}"
                  f"{_f(st.get('epoch'), 'd'):>7}  {fig['sample_accuracy']:.3f} / {fig['judge_real_accuracy']:.3f}"
                  f"{'':<9}{fig['accuracy_ratio']:>6.3f} {ok[v['accuracy']]}  "
                  f"{fig['frechet']:>6.2f} / {fig['floor']:<6.2f}  {fig['frechet_ratio']:>6.2f} {ok[v['frechet']]}  "
                  f"{fig['memorised_share']:>8.1%} {ok[v['memorised']]}  "
                  f"{r.get('load_avg_start', '-')} / {r.get('load_avg_end', '-')}")
    print(f"targets: accuracy ratio >= {qj.TARGETS['accuracy_ratio']}, Fréchet <= {qj.TARGETS['frechet_ratio']} x "
          f"floor, memorised <= {qj.TARGETS['memorised_share']:.0%}; accuracies balanced over classes")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DEFAULT_SPECS),
                   help="comma-separated NAME[@SIZE] (names: %(default)s)")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per dataset (manage.py --minutes)")
    p.add_argument("--epochs", type=int, default=None,
                   help="train this many epochs instead of --minutes (the same work whatever the machine's load)")
    p.add_argument("--per-class", type=int, default=None,
                   help="samples per class (default 50 at 32 px, 25 above: a 64 px sample costs 4x; the demo's "
                        "Fréchet comparison is capped by its training images per class, 7..26 but for birds)")
    p.add_argument("--steps", type=int, default=25, help="solver steps per sample")
    p.add_argument("--part", choices=("tuned", "untouched", "both"), default="tuned",
                   help="held-back part to score against (untouched: the final check only)")
    p.add_argument("--rescore", type=Path, nargs="+", metavar="RUN_DIR",
                   help="score existing runs (their bench-samples/) instead of training")
    p.add_argument("--check-reals", action="store_true",
                   help="no training: score the untouched reals as if they were samples (the yardstick's own check)")
    p.add_argument("--self-test", action="store_true",
                   help="only check the judge's and the split's maths (bench/quality_checks.py), which every call "
                        "does first")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    try:
        print(quality_checks.run())
    except quality_checks.CheckFailed as exc:
        raise SystemExit(str(exc)) from None
    if args.self_test:
        return 0
    parts = ["tuned", "untouched"] if args.part == "both" else [args.part]
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    if args.check_reals:
        rows = [check_reals(*parse_spec(spec.strip()), args.out) for spec in args.datasets.split(",")]
        (args.out / "check-reals.json").write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    elif args.rescore:
        for run_dir in args.rescore:
            row = {"load_avg_start": load_avg(), **score_run(run_dir.resolve(), parts, args.out),
                   "load_avg_end": load_avg()}
            rows.append(row)
    else:
        for spec in args.datasets.split(","):
            name, size = parse_spec(spec.strip())
            per_class = args.per_class or (50 if size <= 32 else 25)
            run_dir, record = train_and_sample(name, size, args.minutes, per_class, args.steps, args.out,
                                               args.epochs)
            tag = run_tag(name, size, args.epochs)
            row = {**record, **score_run(run_dir, parts, args.out, tag), "load_avg_end": load_avg()}
            rows.append(row)
            (args.out / f"{tag}.json").write_text(json.dumps(row, indent=1, default=str), encoding="utf-8")
            print_table([row])
    print_table(rows)
    if args.rescore:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        (args.out / f"rescore-{stamp}.json").write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
