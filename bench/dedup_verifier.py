"""Train the duplicate search's learned check (curator/dedup/verifier.npz) on sources the benchmark never uses.

Why: on real icon themes the confirm score alone found a third of the renditions of one design (an icon drawn
again at 16, 22, 32 and 48 px: lines a pixel apart) while confirming siblings of a family (face-smile and
face-worried); no threshold separates the two. A network that sees both pictures at the smaller one's full detail
can.

Training data (nothing of it is in bench/dedup_set.py's parts, so every benchmark part stays a held-out check):
- Debian's Oxygen, Papirus, Breeze and elementary-xfce icon themes (`apt-get download`, unpacked under
  bench/out/verifier/themes; GPL/LGPL/CC BY-SA): each icon's sizes (up to three) are renditions of one picture,
  plus two copies made with curator.dedup.variants (JPEG, WebP, GIF, crops, borders, brightness, resizes);
  negatives are the pairs the hash stage proposes between different icons (siblings of a family), each picture's
  nearest signatures (matching.NEIGHBOURS: the search confirms those too), the same icon name in another theme
  (another artist) and random pairs;
- EmojiOne and Noto v1 emoji (npm `@iconify-json/emojione`, `@iconify-json/noto-v1`): three skin tones of one
  person (negatives: another tone) and other emoji, each with two copies;
- monochrome glyphs hand-tuned at each size, as the benchmark's Octicons and Fluent are (npm `@blueprintjs/icons`,
  Apache-2.0: 16 and 20 px; `heroicons`, MIT: solid at 16, 20 and 24 px, the 24 px outline a look-alike), in black
  or a grey, with two copies each (added in session 14: the themes above paint in colour, and line art was the kind
  the search missed most).
Pairs that share a file (sha256 or pixels) are one picture whatever their names.

Checks, never trained on: the Tango and GNOME themes (the same pairs, built the same way), and the benchmark's
tuning part and fourth untouched part (pairs the hash stage proposes, nearest signatures, and every pair of one
subject). The report gives, per set, the pairs the confirm score alone confirms (>= 0.7) against those confirmed as
the search decides them (the network's verdict on the pairs it is asked about, whose smaller picture is under 64 px).

    python bench/dedup_verifier.py [--epochs 16] [--seed 0] [--widths 32 48 64 96] [--rebuild] [--report]

Takes about 30 minutes on 2 CPU cores (data 3 min, training 28); writes curator/dedup/verifier.npz and
bench/out/verifier/report.txt. ``--report`` only scores the shipped weights, at the search's current bar.
"""
from __future__ import annotations

import argparse
import collections
import io
import itertools
import json
import os
import random
import re
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from dedup_set import GREYS, OUT, _iconify_svg, _png, _render, _tint, ensure_debs, ensure_npm, load_part  # noqa: E402
from PIL import Image  # noqa: E402

from curator.dedup import matching  # noqa: E402
from curator.dedup.nearsearch import UnionFind, nearest_pairs  # noqa: E402
from curator.dedup.variants import RECIPES, transform  # noqa: E402
from curator.dedup.verifier import WEIGHTS, Verifier, default_verifier  # noqa: E402
from curator.imports.hashing import fingerprint_bytes, fingerprint_many  # noqa: E402

WORK = OUT / "verifier"
THEMES_DIR = WORK / "themes"
NPM = WORK / "npm"
DEBS = ["oxygen-icon-theme", "papirus-icon-theme", "breeze-icon-theme", "elementary-xfce-icon-theme",  # training
        "tango-icon-theme", "gnome-icon-theme",  # its checks
        "faenza-icon-theme", "moka-icon-theme", "numix-icon-theme", "mate-icon-theme"]  # bench/dedup_themes.py
NPM_PACKAGES = ["@iconify-json/emojione@1.2.3", "@iconify-json/noto-v1@1.2.5",
                "@blueprintjs/icons@6.14.1", "heroicons@2.2.0"]
TRAIN_THEMES = ["oxygen/base", "Papirus", "breeze", "elementary-xfce"]
CHECK_THEMES = ["Tango", "gnome"]
EMOJI_SETS = ["emojione", "noto-v1"]
SKIP = ("symbolic", "@2x", "scalable", "panel", "animations", "/cursors")
TONE = re.compile(r"-(light|medium-light|medium|medium-dark|dark)-skin-tone")
TRAIN_SETS = ("train-themes", "train-emoji", "train-line")
WIDTHS = (32, 48, 64, 96)  # channels of the four convolutions (24-32-48-64 until session 14, which had not learned
# its own training pairs by heart: it found 91 % of its training themes' true pairs and 83 % of Tango's)
FLOOR = matching.LEARNED_FLOOR  # pairs are trained on from the score where the search starts asking


def ensure_sources() -> None:
    """Debian's icon themes (unpacked, not installed) and the two npm emoji sets, fetched once into bench/out."""
    ensure_debs(DEBS, WORK / "debs", THEMES_DIR, THEMES_DIR / "unpacked.txt")
    ensure_npm(NPM, NPM_PACKAGES)


def theme_icons(theme: str) -> dict:
    """{(theme, context, name): [(size, path)]} of the icons a theme ships at two sizes or more (no symlinks)."""
    base = THEMES_DIR / "usr/share/icons" / theme
    found: dict = collections.defaultdict(dict)
    for folder, _, files in os.walk(base):
        rel = os.path.relpath(folder, base)
        if any(s in rel + "/" for s in SKIP):
            continue
        size, context = None, []
        for part in rel.split("/"):
            m = re.fullmatch(r"(\d+)x\1", part) or re.fullmatch(r"(\d+)", part)
            if m:
                size = int(m.group(1))
            else:
                context.append(part)
        if size is None or size < 16:
            continue
        for f in files:
            path = os.path.join(folder, f)
            if f.endswith((".png", ".svg")) and not os.path.islink(path):
                found[(theme, "/".join(context), f[:-4])][size] = path
    return {k: sorted(v.items()) for k, v in found.items() if len(v) >= 2}


def render_file(path: str, size: int) -> bytes | None:
    if not path.endswith(".svg"):
        return Path(path).read_bytes()
    import resvg_py
    try:
        return bytes(resvg_py.svg_to_bytes(svg_string=Path(path).read_text(), width=size, height=size))
    except Exception:  # an SVG resvg cannot draw is left out
        return None


def _copies(png: bytes, rng: random.Random, n: int = 2) -> list[tuple[bytes, str]]:
    src = Image.open(io.BytesIO(png)).convert("RGBA")
    out = []
    for _ in range(n):
        if rng.random() < 0.5:  # an enlarged copy first: icons are often shared larger
            f = rng.choice([2, 3, 4])
            base = src.resize((src.width * f, src.height * f), Image.Resampling.LANCZOS)
        else:
            base = src
        out.append(transform(base, rng.choice(RECIPES), rng))
    return out


def _theme_records(themes: list[str], per_theme: int, rng: random.Random) -> list[tuple]:
    """(picture, source, name, what, fingerprint) of up to ``per_theme`` icons of each theme: up to three of its
    sizes and two copies of one of them."""
    recs = []
    for theme in themes:
        icons = theme_icons(theme)
        keys = sorted(icons)
        rng.shuffle(keys)
        for key in keys[:per_theme]:
            picture = len({r[0] for r in recs})
            sizes = icons[key][:]
            rng.shuffle(sizes)
            made = []
            for size, path in sorted(sizes[:3]):
                data = render_file(path, size)
                if data is not None:
                    recs.append((picture, theme, key[2], f"rendition {size}", fingerprint_bytes(data)))
                    made.append(data)
            if made:
                for data, what in _copies(rng.choice(made), rng):
                    recs.append((picture, theme, key[2], what, fingerprint_bytes(data)))
    return recs


def _shaded(png: bytes, rng: random.Random) -> bytes:
    """The same drawing rendered in 3-D style, as a look-alike: light falling from one side (x0.7-1.25 across the
    picture) and a soft highlight, where the copies' brightness edits change every pixel alike."""
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")).astype(np.float32)
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    angle = rng.uniform(0, 2 * np.pi)
    light = 0.975 + 0.275 * ((xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle)) * 2
    cx, cy = 0.5 - 0.2 * np.cos(angle), 0.5 - 0.2 * np.sin(angle)
    spot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 0.08 ** 2))[..., None]
    rgb = np.clip(img[..., :3] * light[..., None], 0, 255)
    rgb = rgb * (1 - 0.6 * spot) + 255 * 0.6 * spot
    out = np.concatenate([rgb, img[..., 3:]], axis=2).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(out, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def _emoji_records(bases: int, plain: int, rng: random.Random) -> list[tuple]:
    """Three skin tones of ``bases`` people and ``plain`` other emoji of each set, each with two copies; the tones
    of one person share a name (so they are each other's look-alikes), and so does a shaded rendering (``_shaded``)
    of every third other emoji, with one copy."""
    import resvg_py
    recs = []
    for name in EMOJI_SETS:
        data = json.loads((NPM / "node_modules/@iconify-json" / name / "icons.json").read_text())
        size = data.get("height", 64)
        toned = collections.defaultdict(list)
        for icon in sorted(data["icons"]):
            if TONE.search(icon):
                toned[TONE.sub("", icon)].append(icon)
        people = sorted(toned)
        rng.shuffle(people)
        others = [i for i in sorted(data["icons"]) if not TONE.search(i)]
        rng.shuffle(others)
        chosen = [rng.sample(toned[p], min(3, len(toned[p]))) for p in people[:bases]] + [[o] for o in others[:plain]]
        for icons in chosen:
            for icon in icons:
                png = bytes(resvg_py.svg_to_bytes(svg_string=_iconify_svg(data, icon), width=size, height=size))
                picture = len({r[0] for r in recs})
                recs.append((picture, name, TONE.sub("", icon), "original", fingerprint_bytes(png)))
                for copy, what in _copies(png, rng):
                    recs.append((picture, name, TONE.sub("", icon), what, fingerprint_bytes(copy)))
                if len(icons) == 1 and rng.random() < 1 / 3:
                    shaded = _shaded(png, rng)
                    recs.append((picture + 1, name, icon, "shaded", fingerprint_bytes(shaded)))
                    for copy, what in _copies(shaded, rng, 1):
                        recs.append((picture + 1, name, icon, f"shaded+{what}", fingerprint_bytes(copy)))
    return recs


def _line_designs() -> list[tuple[str, str, dict, dict]]:
    """(source, name, {size: svg} renditions of one design, {what: svg} its look-alikes) of two monochrome icon sets
    hand-tuned at each size, as octicons and Fluent are in the benchmark: Blueprint (Apache-2.0; 16 and 20 px path
    sets) and Heroicons (MIT; solid at 16, 20 and 24 px, and the 24 px outline: another picture of the name)."""
    modules = NPM / "node_modules"
    out = []
    paths = modules / "@blueprintjs/icons/src/generated"
    for f in sorted((paths / "16px/paths").glob("*.ts")):
        other = paths / "20px/paths" / f.name
        if other.exists():
            sizes = {z: "".join(f'<path d="{d}"/>' for d in re.findall(r'"([^"]+)"', g.read_text()))
                     for z, g in ((16, f), (20, other))}
            out.append(("blueprint", f.stem, {z: f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {z} {z}">'
                                              f'{body}</svg>' for z, body in sizes.items()}, {}))
    hero = modules / "heroicons"
    for f in sorted((hero / "24/solid").glob("*.svg")):
        sizes = {z: (hero / f"{z}/solid" / f.name) for z in (16, 20, 24)}
        outline = hero / "24/outline" / f.name
        out.append(("heroicons", f.stem, {z: _black(g) for z, g in sizes.items() if g.exists()},
                    {"outline": _black(outline)} if outline.exists() else {}))
    return out


def _black(svg_file: Path) -> str:
    """A Heroicons SVG drawn in black (it paints in ``currentColor``)."""
    return svg_file.read_text().replace("currentColor", "black")


def _line_records(per_source: int, rng: random.Random) -> list[tuple]:
    """Up to ``per_source`` designs of each ``_line_designs`` source in one grey or black: each rendition at its own
    size (one picture) and two copies of one, the look-alike with one copy (the same name: a negative)."""
    designs = _line_designs()
    rng.shuffle(designs)
    taken: collections.Counter = collections.Counter()
    recs = []
    for source, name, renditions, alikes in designs:
        if taken[source] >= per_source or len(renditions) < 2:
            continue
        taken[source] += 1
        colour = rng.choice([(0, 0, 0), *GREYS])
        picture = len({r[0] for r in recs})
        made = []
        for z, svg in sorted(renditions.items()):
            png = _png(_tint(_render(svg, z), colour))
            recs.append((picture, source, name, f"rendition {z}", fingerprint_bytes(png)))
            made.append(png)
        for data, what in _copies(rng.choice(made), rng):
            recs.append((picture, source, name, what, fingerprint_bytes(data)))
        for what, svg in alikes.items():
            png = _png(_tint(_render(svg, 24), colour))
            recs.append((picture + 1, source, name, what, fingerprint_bytes(png)))
            for data, how in _copies(png, rng, 1):
                recs.append((picture + 1, source, name, f"{what}+{how}", fingerprint_bytes(data)))
    return recs


def same_picture(ids: list, keys: list) -> np.ndarray:
    """Each item's picture: its own ``ids`` entry, joined with every item sharing one of its ``keys`` (a file's
    sha256 or pixel hash: the same file under another name)."""
    joined, first = UnionFind(ids), {}
    for i, ks in zip(ids, keys):
        for k in ks:
            if k and k in first:
                joined.union(i, first[k])
            elif k:
                first[k] = i
    return np.array([joined.find(i) for i in ids])


def pair_set(recs: list[tuple], rng: random.Random, hard_per_positive: int = 3) -> dict:
    """Every pair of one picture; the hash stage's candidates between different pictures (up to
    ``hard_per_positive`` per positive); every pair of one name across pictures (other tones, other themes); random
    pairs (half as many as positives), scored (``_scored``)."""
    picture = same_picture([r[0] for r in recs], [(r[4].sha256, r[4].pixel_hash) for r in recs])
    fps = [r[4] for r in recs]
    thumbs = matching.Thumbs(fps)
    pairs = set()
    by_picture, by_name = collections.defaultdict(list), collections.defaultdict(list)
    for i, r in enumerate(recs):
        by_picture[picture[i]].append(i)
        by_name[r[2]].append(i)
    for members in by_picture.values():
        pairs.update(itertools.combinations(members, 2))
    positives = len(pairs)
    ci, cj = matching.candidate_pairs(matching._hash_array(fps, "phash"), matching._hash_array(fps, "dhash"),
                                      matching.DEFAULT_HASH_THRESHOLD)
    hard = [(a, b) for a, b in zip(ci.tolist(), cj.tolist()) if picture[a] != picture[b]]
    rng.shuffle(hard)
    pairs.update(hard[:hard_per_positive * positives])
    pairs.update((a, b) for m in by_name.values() for a, b in itertools.combinations(m, 2) if picture[a] != picture[b])
    for _ in range(positives // 2):
        a, b = sorted(rng.sample(range(len(recs)), 2))
        if picture[a] != picture[b]:
            pairs.add((a, b))
    return _scored(thumbs, pairs | _neighbours(thumbs), picture)


def _neighbours(thumbs) -> set:
    """Each picture's nearest signatures, which the search also confirms (matching.NEIGHBOURS): renditions the
    hashes miss, and the siblings closest to a picture."""
    ni, nj = nearest_pairs(thumbs.signatures(np.arange(len(thumbs.stack))), matching.NEIGHBOURS)
    return set(zip(ni.tolist(), nj.tolist()))


def _scored(thumbs, pairs: set, picture: np.ndarray) -> dict:
    """A pair set as the training and the report read it: the thumbnails, each pair's positions, whether it is one
    picture, and its score as the search scores it (``confirm_scores`` with the threshold)."""
    arr = np.array(sorted(pairs))
    a, b = arr[:, 0], arr[:, 1]
    scores = matching.confirm_scores(thumbs.stack[a], thumbs.stack[b], threshold=matching.DEFAULT_CONFIRM_THRESHOLD,
                                     sizes_a=thumbs.sizes[a], sizes_b=thumbs.sizes[b])
    return dict(thumbs=thumbs.stack, sizes=thumbs.sizes, a=a, b=b, same=picture[a] == picture[b], scores=scores)


def benchmark_pairs(part: str) -> dict:
    """The hash stage's candidates and every pair of one subject of a benchmark part (as above)."""
    root, items = load_part(part)
    fps = fingerprint_many([root / it.file for it in items])
    thumbs = matching.Thumbs(fps)
    ci, cj = matching.candidate_pairs(matching._hash_array(fps, "phash"), matching._hash_array(fps, "dhash"),
                                      matching.DEFAULT_HASH_THRESHOLD)
    pairs = set(zip(ci.tolist(), cj.tolist()))
    by_subject = collections.defaultdict(list)
    for k, it in enumerate(items):
        by_subject[it.subject].append(k)
    for members in by_subject.values():
        pairs.update(itertools.combinations(members, 2))
    return _scored(thumbs, pairs | _neighbours(thumbs), np.array([it.group for it in items]))


def cached(name: str, make, rebuild: bool) -> dict:
    path = WORK / f"{name}.npz"
    if rebuild or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **make())
    with np.load(path) as data:
        return dict(data)


def inputs(d: dict) -> tuple:
    """The network's inputs and labels of the pairs scoring FLOOR or more (the only ones the search asks about)."""
    keep = d["scores"] >= FLOOR
    a, b = d["a"][keep], d["b"][keep]
    images, scalars = matching.verifier_inputs(d["thumbs"][a], d["thumbs"][b], d["sizes"][a], d["sizes"][b],
                                               d["scores"][keep].astype(np.float32))
    return images, scalars, d["same"][keep].astype(np.float32), d["scores"][keep]


def network(widths=WIDTHS):
    import torch.nn as nn

    class Net(nn.Module):
        """curator.dedup.verifier's network (its numpy forward pass reads these parameter names)."""

        def __init__(self, widths):
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv2d(9, widths[0], 3, padding=1), nn.ReLU(),
                nn.Conv2d(widths[0], widths[1], 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(widths[1], widths[2], 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(widths[2], widths[3], 3, stride=2, padding=1), nn.ReLU())
            self.head = nn.Sequential(nn.Linear(2 * widths[3] + 4, 64), nn.ReLU(), nn.Linear(64, 1))

        def forward(self, images, scalars):
            import torch
            h = self.conv(torch.cat([images, images[:, 0:3] - images[:, 3:6]], 1))  # see fold_difference
            return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3)), scalars], 1)).squeeze(1)

    return Net(widths)


def train(data: tuple, epochs: int, seed: int = 0, widths=WIDTHS):
    """Binary cross-entropy, Adam with a one-cycle schedule; each batch flipped and turned a quarter at random (both
    pictures alike: a pair is a copy whichever way it is looked at)."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    net = network(widths)
    images, scalars, labels = (torch.from_numpy(x) for x in data[:3])
    steps = epochs * ((len(labels) + 255) // 256)
    opt = torch.optim.Adam(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    from tqdm import tqdm
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(labels))
        bar = tqdm(range(0, len(labels), 256), desc=f"epoch {epoch + 1}/{epochs}", leave=False)
        for lo in bar:
            i = order[lo:lo + 256]
            x = images[i]
            if gen.random() < 0.5:
                x = x.flip(3)
            if gen.random() < 0.5:
                x = x.flip(2)
            x = torch.rot90(x, int(gen.integers(4)), (2, 3))
            loss = F.binary_cross_entropy_with_logits(net(x, scalars[i]), labels[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return net


def report_line(name: str, same: np.ndarray, scores: np.ndarray, p: np.ndarray, small: np.ndarray) -> str:
    """Pairs confirmed by the score alone and as the search decides them (``small``: the smaller picture is under
    matching.LEARNED_BELOW px, so the network is asked)."""
    same = same > 0.5
    base = scores >= matching.DEFAULT_CONFIRM_THRESHOLD
    net = np.where((scores >= FLOOR) & (scores < matching.LEARNED_CEILING) & small, p >= matching.LEARNED_SAME, base)
    return (f"{name:14s} {int(same.sum()):6d} true pairs | score alone: {int((same & base).sum()):6d} right "
            f"{int((~same & base).sum()):5d} wrong | with the network: {int((same & net).sum()):6d} right "
            f"{int((~same & net).sum()):5d} wrong")


def report(data: dict, verifier, head: str) -> str:
    lines = [f"{head}; the pairs the search asks about (score {FLOOR}-{matching.LEARNED_CEILING}, smaller picture under "
             f"{matching.LEARNED_BELOW} px) decided by the network at p >= {matching.LEARNED_SAME}"]
    for name in (*TRAIN_SETS, *(n for n in data if n.startswith("check-"))):
        d = data[name]
        images, scalars, same, scores = inputs(d)
        keep = d["scores"] >= FLOOR
        small = np.minimum(d["sizes"][d["a"][keep]], d["sizes"][d["b"][keep]]) < matching.LEARNED_BELOW
        lines.append(report_line(name, same, scores, verifier.probabilities(images, scalars), small))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0, help="the training's seed (its order of batches and flips)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the pair sets (cached in bench/out/verifier)")
    ap.add_argument("--report", action="store_true", help="score the shipped weights without training")
    ap.add_argument("--widths", type=int, nargs=4, default=list(WIDTHS), help="channels of the four convolutions")
    args = ap.parse_args()
    ensure_sources()
    matching.LEARNED_CHECK = False  # the sets are scored by the confirm score alone (the network's own input)
    def seeded(records, seed: int) -> dict:  # each set from its own seed: a cached set and a rebuilt one are equal
        rng = random.Random(seed)
        return pair_set(records(rng), rng)

    sets = {
        "train-themes": lambda: seeded(lambda rng: _theme_records(TRAIN_THEMES, 1200, rng), 2),
        "train-emoji": lambda: seeded(lambda rng: _emoji_records(150, 300, rng), 3),
        "train-line": lambda: seeded(lambda rng: _line_records(320, rng), 4),
        **{f"check-{t}": (lambda t=t: pair_set(_theme_records([t], 400, random.Random(1)), random.Random(1)))
           for t in CHECK_THEMES},
        **{f"check-{p}": (lambda p=p: benchmark_pairs(p)) for p in ("tune", "untouched-4")},
    }
    data = {name: cached(name, make, args.rebuild) for name, make in sets.items()}
    if args.report:
        print(report(data, default_verifier(), f"{WEIGHTS.name} as shipped"))
        return
    train_parts = [inputs(data[n]) for n in TRAIN_SETS]
    train_data = tuple(np.concatenate([p[k] for p in train_parts]) for k in range(4))
    t0 = time.time()
    net = train(train_data, args.epochs, seed=args.seed, widths=tuple(args.widths))
    seconds = time.time() - t0
    weights = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    np.savez(WEIGHTS, **weights)
    verifier = Verifier(weights)
    text = report(data, verifier, f"trained on {len(train_data[2])} pairs ({int(train_data[2].sum())} of one "
                                  f"picture), {args.epochs} epochs, seed {args.seed}, {seconds:.0f} s")
    print(text)
    (WORK / "report.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
