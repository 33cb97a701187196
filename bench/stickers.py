"""Stickers: learned upscaler vs Lanczos vs bicubic, halos along the silhouette, SVG size and fidelity.

    python bench/stickers.py [--steps 4000] [--sets demo,emoji] [--sheet docs/stickers-sheet.png]
    python bench/stickers.py --packs LANCZOS.zip LEARNED.zip OUTLINED.zip --sheet docs/stickers-demo-run.png

For each image set an upscaler is trained (diffusion.upscale, the same code a run uses) on the images it does not
hold back, for a fixed number of steps (about what 8 minutes buy on this 2-core CPU when it is quiet: a busy
machine takes longer but measures the same model; the wall time and load are printed beside the figures), the
checkpoint of each scale picked on the validation images (another one in ten), and everything is measured on the
held-back ones only (one in ten, by a hash of the file name, never trained on nor used to pick):
- PSNR (dB) and edge sharpness (gradient magnitude at the original's strongest edges, 1.0 = as sharp as the
  original) at ×4 (32 → 128 px) and ×8 (16 → 128 px) against the 128 px originals;
- stickers made from the 32 px version (what a run at 32 px draws) at ×4 and ×8, by the pipeline before this work
  ("before": heuristic matte, Lanczos, unreduced trace), with Lanczos and with the learned upscaler: halo pixels
  along the silhouette
  (trainer.stickers.halo_pixels), SVG size, and the SVG rendered by resvg against the PNG (mean absolute
  difference over white, 0–255, and the share of pixels off by more than 32).
Sets: "demo" (demo/animal-emoji, 128 px animals) and "emoji" (the noto and fluent-emoji originals of
bench/out/dedup-set: 128 px objects, faces and symbols, no animals). Needs the bench extra (resvg-py).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from common import DEMO_IMAGES, ROOT  # bench/common.py, beside this script
from PIL import Image, ImageDraw

from diffusion import upscale as up
from diffusion.data import preprocess_image
from trainer import stickers

OUT = ROOT / "bench" / "out" / "stickers"


def emoji_folder() -> Path:
    """An ImageFolder of the dedup set's untouched 128 px noto/fluent-emoji originals (links, one class per source)."""
    root = OUT / "emoji-set"
    for source in ("noto", "fluent-emoji"):
        folder = root / source
        folder.mkdir(parents=True, exist_ok=True)
        for f in sorted((ROOT / "bench/out/dedup-set" / source).glob("*__original.png")):
            link = folder / f.name
            if not link.exists():
                link.symlink_to(f)
    return root


SETS = {"demo": lambda: DEMO_IMAGES, "emoji": emoji_folder}


def render_diff(svg: str, png: Image.Image) -> tuple[float, float]:
    """(mean |SVG − PNG| over white in 0–255, share of pixels off by more than 32)."""
    import resvg_py
    rendered = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg, width=png.width,
                                                                  height=png.height)))).convert("RGBA")
    white = Image.new("RGBA", png.size, "white")
    a = np.asarray(Image.alpha_composite(white, rendered).convert("RGB"), dtype=np.float64)
    b = np.asarray(Image.alpha_composite(white, png.convert("RGBA")).convert("RGB"), dtype=np.float64)
    diff = np.abs(a - b).max(axis=2)
    return float(diff.mean()), float((diff > 32).mean())


BEFORE = "feee3a6"  # the commit before this work: its sticker pipeline is the "before" figure


def old_pipeline():
    """trainer/stickers.py as it was at BEFORE (Lanczos, heuristic matte), loaded from git."""
    import subprocess
    import types
    source = subprocess.run(["git", "show", f"{BEFORE}:trainer/stickers.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    module = types.ModuleType("stickers_before")
    exec(compile(source, "stickers_before.py", "exec"), module.__dict__)
    return module


def learned_upscaler(model):
    return lambda img, scale: up.upscale_image(model, img, scale)


def sticker_figures(held, model, *, size: int = 32, scale: int = 4, colours: int = 8) -> dict:
    """Halo share, SVG size and render difference for Lanczos and learned stickers of the held-back images."""
    out = {}
    before = old_pipeline()
    makers = {"before": lambda small: before.make_sticker(small, scale=scale, background="matte"),
              "lanczos": lambda small: stickers.make_sticker(small, scale=scale, background="matte"),
              "learned": lambda small: stickers.make_sticker(small, scale=scale, background="matte",
                                                             upscaler=learned_upscaler(model))}
    for name, make in makers.items():
        halo = edge = 0
        sizes, diffs, off = [], [], []
        for path, _ in held:
            with Image.open(path) as img:
                small = Image.fromarray(preprocess_image(img, size, "crop", "white"))
            sticker = make(small)
            h, e = stickers.halo_pixels(sticker)
            halo, edge = halo + h, edge + e
            svg = before.trace_svg(sticker) if name == "before" else stickers.trace_svg(sticker, colours=colours)
            sizes.append(len(svg.encode()))
            d, o = render_diff(svg, sticker)
            diffs.append(d)
            off.append(o)
        out[name] = {"halo_share": round(halo / max(edge, 1), 5), "halo_pixels": halo, "edge_pixels": edge,
                     "svg_kb_median": round(float(np.median(sizes)) / 1024, 2),
                     "svg_kb_max": round(max(sizes) / 1024, 2),
                     "svg_png_mean_abs_diff": round(float(np.mean(diffs)), 2),
                     "svg_png_share_off_32": round(float(np.mean(off)), 4)}
    return out


SHEET_CLASSES = ("frog", "rabbit", "cat", "fish", "turtle", "dog")  # the four, and two more


def sheet(held, model, path: Path) -> None:
    """Rows (one held-back animal per class): the 32 px input (nearest ×4), the Lanczos sticker, the learned
    sticker, learned + white outline."""
    cells = []
    firsts = {}
    for p, label in held:
        firsts.setdefault(label, p)
    for p in [firsts[c] for c in SHEET_CLASSES if c in firsts]:
        with Image.open(p) as img:
            small = Image.fromarray(preprocess_image(img, 32, "crop", "white"))
        cells.append([small.resize((128, 128), Image.NEAREST).convert("RGBA"),
                      stickers.make_sticker(small, scale=4, background="matte"),
                      stickers.make_sticker(small, scale=4, background="matte", upscaler=learned_upscaler(model)),
                      stickers.make_sticker(small, scale=4, background="matte", upscaler=learned_upscaler(model),
                                            outline_width=5, outline_colour="white").resize((128, 128),
                                                                                            Image.LANCZOS)])
    titles = ["32 px sample", "Lanczos x4", "learned x4", "learned + outline"]
    pad, head = 8, 22
    img = Image.new("RGB", (pad + 4 * (128 + pad), head + len(cells) * (128 + pad)), (86, 112, 140))
    draw = ImageDraw.Draw(img)
    for c, t in enumerate(titles):
        draw.text((pad + c * (128 + pad) + 4, 6), t, fill="white")
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            img.paste(cell, (pad + c * (128 + pad), head + r * (128 + pad)), cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)


def packs_sheet(packs: list[Path], path: Path) -> None:
    """One row per class, one column per sticker pack (`manage.py stickers RUN ... --out PACK.zip`, the same
    samples in each): how docs/stickers-demo-run.png is made from the Lanczos, learned and outlined packs."""
    import zipfile
    columns = []
    for pack in packs:
        with zipfile.ZipFile(pack) as z:
            manifest = json.loads(z.read("manifest.json"))
            settings = manifest["settings"]
            title = f"{settings['upscaler'].replace('lanczos', 'Lanczos')} x{settings['scale']}" + (
                f" + outline {settings['outline']} px" if settings["outline"] else "")
            cells = {r["class"]: Image.open(io.BytesIO(z.read(r["png"]))).convert("RGBA")
                     for r in manifest["stickers"]}
        columns.append((title, cells))
    classes = sorted(columns[0][1])
    cell = max(im.width for _, cells in columns for im in cells.values())
    pad, label_w, head = 18, 70, 28
    img = Image.new("RGB", (label_w + len(columns) * (cell + pad), head + len(classes) * (cell + pad)), (86, 96, 112))
    draw = ImageDraw.Draw(img)
    for c, (title, _) in enumerate(columns):
        draw.text((label_w + c * (cell + pad) + 10, 8), title, fill="white")
    for r, name in enumerate(classes):
        y = head + r * (cell + pad)
        draw.text((6, y + cell // 2 - 6), name, fill="white")
        for c, (_, cells) in enumerate(columns):
            im = cells[name]
            img.paste(im, (label_w + c * (cell + pad) + (cell - im.width) // 2, y + (cell - im.height) // 2), im)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)


STEPS = 4000  # about 8 minutes on this project's 2-core CPU, quiet


def run_set(name: str, steps: int, reuse: bool) -> tuple[dict, list, object]:
    data = SETS[name]()
    folder = OUT / name / "upscaler"
    if not (reuse and (folder / up.MODEL_FILE).exists()):
        up.train_upscaler(folder, data, image_size=32, minutes=None, max_steps=steps,
                          log=lambda m: print(m, file=sys.stderr))
    model, _ = up.load_model(folder)
    _, held = up.split(up.list_originals(data))
    high = up.load_high(held, 128, "crop", "white")
    config = json.loads((folder / "config.json").read_text())
    result = {"held_back": len(held), "trained_on": config["trained_on"], "validation": config["validation"],
              "x4": up.evaluate(model, high, 4), "x8": up.evaluate(model, high, 8),
              "stickers_x4": sticker_figures(held, model, scale=4), "stickers_x8": sticker_figures(held, model, scale=8)}
    if name != "demo" and (OUT / "demo" / "upscaler" / up.MODEL_FILE).exists():
        # The demo's upscaler on every image of this set (none of which it saw): does it carry over?
        demo_model, _ = up.load_model(OUT / "demo" / "upscaler")
        everything = up.load_high(up.list_originals(data), 128, "crop", "white")
        result["x4_demo_upscaler_all_images"] = up.evaluate(demo_model, everything, 4)
    status = json.loads((folder / "status.json").read_text())
    result["training"] = {"steps": status.get("step"), "wall_seconds": status.get("elapsed"),
                          "picked_on_validation": status.get("picked")}
    return result, held, model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=STEPS, help="upscaler training steps per set")
    p.add_argument("--sets", default="demo,emoji")
    p.add_argument("--reuse", action="store_true", help="reuse an upscaler trained by an earlier run of this bench")
    p.add_argument("--sheet", type=Path, default=ROOT / "docs" / "stickers-sheet.png")
    p.add_argument("--packs", type=Path, nargs="+", help="only compose these sticker packs side by side into --sheet")
    a = p.parse_args(argv)
    if a.packs:
        packs_sheet(a.packs, a.sheet)
        return 0
    results = {}
    for name in a.sets.split(","):
        t, load = time.time(), os.getloadavg()[0]
        results[name], held, model = run_set(name, a.steps, a.reuse)
        results[name]["bench_seconds"] = round(time.time() - t, 1)
        results[name]["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        if name == "demo" and a.sheet:
            sheet(held, model, a.sheet)
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    for name, r in results.items():
        print(f"{name}: upscaler {r['training']['steps']} steps in {r['training']['wall_seconds']} s (load average "
              f"{r['load_average'][0]} -> {r['load_average'][1]}); {r['held_back']} held-back images")
        for s in ("x4", "x8"):
            e = r[s]
            print(f"{name} {s}: PSNR learned {e['psnr_learned']:.2f} / Lanczos {e['psnr_lanczos']:.2f} / bicubic "
                  f"{e['psnr_bicubic']:.2f} dB (+{e['psnr_learned'] - e['psnr_lanczos']:.2f}); sharpness "
                  f"{e['sharpness_learned']:.2f} / {e['sharpness_lanczos']:.2f} / {e['sharpness_bicubic']:.2f}")
        for k, v in [(f"x4 {k}", v) for k, v in r["stickers_x4"].items()] + \
                [(f"x8 {k}", v) for k, v in r["stickers_x8"].items()]:
            print(f"{name} stickers ({k}): halo {v['halo_share']:.2%} of the edge, SVG median {v['svg_kb_median']} KB "
                  f"(max {v['svg_kb_max']}), SVG vs PNG mean diff {v['svg_png_mean_abs_diff']}, "
                  f"{v['svg_png_share_off_32']:.1%} pixels off by >32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
