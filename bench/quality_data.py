"""The quality benchmark's datasets, assembled from open sources and written as ImageFolders, kept split.

Each dataset becomes ``<root>/<name>/{train,tuned,untouched}/<class>/<file>.png`` plus ``SOURCES.md``:

- ``train``: what `manage.py train --data .../train` sees (and the judge learns from);
- ``tuned``: held back, scored while tuning;
- ``untouched``: held back and never looked at while tuning; scored only for the final report.

The split is a pure function of the file names (sha256 of dataset/class/name), so it is the same on every machine and
every run, and the parts are disjoint by construction. Sources:

- ``demo``: the bundled animal emoji (app.DEMO_DIR, 8 classes, 298 images, licences in its LICENSES.md);
- ``digits``: scikit-learn's bundled copy of the UCI "Optical Recognition of Handwritten Digits" test set
  (1,797 real 8x8 scans of digits written by 43 people, 10 classes, CC BY 4.0), drawn black on white and
  enlarged to 32 px with a bicubic filter.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

PARTS = ("train", "tuned", "untouched")
FRACTIONS = {"tuned": 0.15, "untouched": 0.15}  # the rest trains
DATASETS = ("digits", "demo")
DIGITS_SIZE = 32


def split_parts(names_by_class: dict[str, list[str]], salt: str,
                fractions: dict[str, float] = FRACTIONS) -> dict[str, dict[str, list[str]]]:
    """{part: {class: [names]}}: per class, names ordered by sha256(salt/class/name), untouched first, then tuned,
    the rest train. Each held-back part gets at least one image of every class with 3 or more images; a class always
    keeps at least one training image. Deterministic and independent of the input order."""
    out: dict[str, dict[str, list[str]]] = {part: {} for part in PARTS}
    for cls, names in names_by_class.items():
        if len(set(names)) != len(names):
            raise ValueError(f"class {cls!r} lists a name twice")
        order = sorted(names, key=lambda n: hashlib.sha256(f"{salt}/{cls}/{n}".encode()).hexdigest())
        n = len(order)
        k_u = max(1, round(fractions["untouched"] * n)) if n >= 3 else 0
        k_t = max(1, round(fractions["tuned"] * n)) if n >= 3 else 0
        out["untouched"][cls] = sorted(order[:k_u])
        out["tuned"][cls] = sorted(order[k_u:k_u + k_t])
        out["train"][cls] = sorted(order[k_u + k_t:])
    return out


# ---------------------------------------------------------------- sources

def _demo_source() -> tuple[dict[str, dict[str, bytes]], str]:
    from app import DEMO_DIR

    images = DEMO_DIR / "images"
    files = {d.name: {p.name: p.read_bytes() for p in sorted(d.glob("*.png"))}
             for d in sorted(images.iterdir()) if d.is_dir()}
    licences = DEMO_DIR / "LICENSES.md"
    notes = ("Source: the bundled demo, demo/animal-emoji/images (emoji art of 8 animals in 9 open emoji styles, "
             "128 px RGBA). Licences: Apache-2.0, MIT, CC BY 4.0, CC BY-SA 4.0 per style; see LICENSES.md "
             "(copied here).")
    return files, notes + ("\n\n" + licences.read_text(encoding="utf-8") if licences.is_file() else "")


def _digits_source() -> tuple[dict[str, dict[str, bytes]], str]:
    import io

    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    files: dict[str, dict[str, bytes]] = {str(c): {} for c in range(10)}
    for i, (img, label) in enumerate(zip(d.images, d.target)):
        ink = np.asarray(img, dtype=np.float64) / 16.0  # 0..16 ink counts per 4x4 block of the 32x32 scan
        pixels = np.clip(np.round(255.0 * (1.0 - ink)), 0, 255).astype(np.uint8)
        im = Image.fromarray(pixels, mode="L").resize((DIGITS_SIZE, DIGITS_SIZE), Image.BICUBIC)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        files[str(int(label))][f"{i:04d}.png"] = buf.getvalue()
    import sklearn
    notes = (f"Source: scikit-learn {sklearn.__version__} `sklearn.datasets.load_digits()` (bundled with the package, "
             "no download): the test set of the UCI Optical Recognition of Handwritten Digits data set (E. Alpaydin, "
             "C. Kaynak, 1998), 1,797 real scans by 43 writers, 10 classes, each an 8x8 grid of ink counts 0..16. "
             "Drawn black on white and enlarged to 32 px (bicubic). Licence: CC BY 4.0 "
             "(https://archive.ics.uci.edu/dataset/80), scikit-learn itself BSD-3-Clause.")
    return files, notes


SOURCES = {"demo": _demo_source, "digits": _digits_source}


def build(name: str, root: Path) -> Path:
    """Write (or reuse) dataset ``name`` under ``root/name``; return that folder. Rewritten when its split differs."""
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(SOURCES)}")
    files, notes = SOURCES[name]()
    parts = split_parts({c: list(v) for c, v in files.items()}, salt=name)
    manifest = {"dataset": name, "fractions": FRACTIONS,
                "counts": {p: {c: len(v) for c, v in parts[p].items()} for p in PARTS},
                "files": parts}
    out = Path(root) / name
    stamp = out / "split.json"
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == manifest:
        return out
    if out.exists():
        shutil.rmtree(out)
    for part in PARTS:
        for cls, names in parts[part].items():
            folder = out / part / cls
            folder.mkdir(parents=True, exist_ok=True)
            for n in names:
                (folder / n).write_bytes(files[cls][n])
    totals = {p: sum(manifest["counts"][p].values()) for p in PARTS}
    (out / "SOURCES.md").write_text(
        f"# {name}\n\n{notes}\n\nSplit (bench/quality_data.py, sha256 of the file names): "
        + ", ".join(f"{p} {totals[p]}" for p in PARTS) + "; per class in split.json.\n", encoding="utf-8")
    stamp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return out
