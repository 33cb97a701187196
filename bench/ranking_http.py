"""Ranking over HTTP as a person would: gunicorn serving the demo, a simulated ranker clicking through the pages.

For each seed: a fresh copy of an instance holding the demo dataset, gunicorn (2 workers) on a free port, k set on
the leaderboard page, and a simulated ranker (bench/ranking_sim.py's Ranker: a hidden true order of the class and a
noise model) answering the compare page (--mode pairs: POST /rank/<class>/answer) or the best-of-4 page (best4:
POST /rank/<class>/pick) the way htmx does (HX-Request and the CSRF header), always the screen the last response
showed. Each answer's time is measured from request to complete response. At each budget (multiples of
n log2 n clicks) the leaderboard's top-k is read and scored against the hidden order. When a page says the class is
done, the click count is noted and the ranker follows "keep going".

    python bench/ranking_http.py --mode best4 --seeds 0-2              # the demo's bird class, k=16
    python bench/ranking_http.py --mode pairs --seeds 0-2 --multiples 0.5 1 2
"""
from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from common import ROOT, answer_fields, csrf_token, free_port, serve, stop  # bench/common.py, beside this script
from ranking_sim import Ranker, parse_seeds  # bench/ranking_sim.py

ROW = re.compile(r'<tr class="[^"]*" data-id="(\d+)">')


def top_k(http: requests.Session, base: str, name: str, k: int) -> list[int]:
    html = http.get(f"{base}/rank/{name}/leaderboard?all=1").text
    return [int(i) for i in ROW.findall(html)][:k]


def run_seed(args, template: Path, seed: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ranking-http-", dir=args.scratch))
    instance = work / "instance"
    shutil.copytree(template, instance)
    port = free_port()
    env = {**os.environ, "MENAGERIE_INSTANCE": str(instance), "MENAGERIE_AUTH": "off"}  # one simulated person, no login
    server = serve(env, port)
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    try:
        page = http.get(f"{base}/rank/{args.class_name}/leaderboard?all=1").text
        image_ids = [int(i) for i in ROW.findall(page)]
        n = len(image_ids)
        token = csrf_token(page)
        headers = {"X-CSRFToken": token, "HX-Request": "true"}
        http.post(f"{base}/rank/{args.class_name}/k", data={"k": args.k}, headers={"X-CSRFToken": token})
        ranker = Ranker(n, seed, args.noise, args.error_rate)  # ranker index i is image_ids[i]
        index = {image_id: i for i, image_id in enumerate(image_ids)}
        unit = n * math.log2(n)
        budgets = sorted({int(round(m * unit)) for m in args.multiples})
        compare = f"{base}/rank/{args.class_name}/" + ("best" if args.mode == "best4" else "")
        html = http.get(compare, headers={"HX-Request": "true"}).text
        took, out, done_at, more = [], {}, None, {}
        for click in range(1, budgets[-1] + 1):
            if 'id="class-done"' in html:
                done_at = done_at or click - 1
                more = {"more": "1"}
                html = http.get(compare, params=more, headers={"HX-Request": "true"}).text
            form = answer_fields(html)
            if args.mode == "best4":
                shown = [int(i) for i in form["shown"].split(",")]
                best = ranker.answer(tuple(index[i] for i in shown), False)[0]
                data, url = {**form, **more, "pick": image_ids[best]}, f"{base}/rank/{args.class_name}/pick"
            else:
                left, right = int(form["left"]), int(form["right"])
                best = ranker.answer((index[left], index[right]), False)[0]
                outcome = "left" if image_ids[best] == left else "right"
                data, url = {**form, **more, "outcome": outcome}, f"{base}/rank/{args.class_name}/answer"
            t0 = time.perf_counter()
            response = http.post(url, data=data, headers=headers)
            took.append(time.perf_counter() - t0)
            response.raise_for_status()
            html = response.text
            if click in budgets:
                top = top_k(http, base, args.class_name, args.k)
                out[click] = float(np.mean([ranker.true_rank[index[i]] < args.k for i in top]))
        return {"precision": out, "done_at": done_at, "took": took, "n": n}
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["pairs", "best4"], default="best4")
    parser.add_argument("--class", dest="class_name", default="bird")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-2"))
    parser.add_argument("--noise", choices=["flip", "gumbel"], default="flip")
    parser.add_argument("--error-rate", type=float, default=0.10)
    parser.add_argument("--multiples", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--scratch", default=str(ROOT / "bench" / "out"), help="where instances are made")
    args = parser.parse_args(argv)
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    template = Path(tempfile.mkdtemp(prefix="ranking-demo-", dir=args.scratch)) / "instance"
    try:
        subprocess.run([sys.executable, "manage.py", "--instance", str(template), "demo"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        results = {}
        for seed in args.seeds:
            results[seed] = run_seed(args, template, seed)
            r = results[seed]
            print(f"# seed {seed}: n={r['n']}, precision {r['precision']}, done after {r['done_at']} clicks, "
                  f"p50 {np.median(r['took']) * 1e3:.1f} ms", file=sys.stderr)
    finally:
        shutil.rmtree(template.parent, ignore_errors=True)
    n = next(iter(results.values()))["n"]
    print(f"# {args.mode} over HTTP (gunicorn -w 2), class {args.class_name} (n={n}), k={args.k}, noise {args.noise} "
          f"({args.error_rate:.0%} of pair answers wrong), seeds {args.seeds}")
    unit = n * math.log2(n)
    for multiple in args.multiples:
        clicks = int(round(multiple * unit))
        values = [results[s]["precision"][clicks] for s in args.seeds]
        print(f"{multiple:g}x n log2 n = {clicks} clicks: top-{args.k} precision " + " ".join(f"{v:.3f}" for v in values)
              + f" (min {min(values):.3f})")
    done = [results[s]["done_at"] for s in args.seeds]
    print(f"class done after: {done} clicks (None: not within {int(round(max(args.multiples) * unit))})")
    took = np.concatenate([results[s]["took"] for s in args.seeds]) * 1e3
    print(f"per answer over HTTP: p50 {np.percentile(took, 50):.1f} ms, p95 {np.percentile(took, 95):.1f} ms, "
          f"max {took.max():.1f} ms ({len(took)} answers)")


if __name__ == "__main__":
    main()
