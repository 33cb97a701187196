"""N concurrent rankers against a real gunicorn on loopback, optionally while `manage.py import` adds M images:
are all answers stored, does anyone see a 5xx, how long does an answer take?

A fresh instance holds the demo dataset (on its SQLite file, or on --database-url, e.g. a PostgreSQL database that
this script empties first). gunicorn serves it login-free (MENAGERIE_AUTH=off: each browser session is its own
guest, so answers are attributed per ranker). Each ranker is one thread with its own HTTP session: it opens the
compare page of the class, then answers the pair on screen the way htmx does (HX-Request, the CSRF header) until
--seconds are up, always answering the pair the last response showed. With --import M, M new distinct pictures are
imported by `manage.py import` in another process, started a second after the rankers.

Reported: answers sent, answered 2xx, stored (comparison rows at the end: every 2xx answer must be one row), errors
by status, latency p50/p95/max, and the import's time and exit status.

Measured 2026-12-02 on the shared 2-core development machine (load average 3-6 from other work), gunicorn -w 2
--threads 4, 50 rankers for 30 s: SQLite alone 1,436 answers, all stored, no error, p50 0.77 s, p95 1.63 s; SQLite
with a 6,000-image import (31.0 s) 935 answers, all stored, no error, p50 1.30 s, p95 1.87 s; PostgreSQL 15 with the
same import (31.8 s) 802 answers, all stored, no error, p50 1.58 s, p95 2.05 s. (The answers queue for the CPU: a
rating update per answer on 2 cores.)

    python bench/load.py --rankers 50 --seconds 30 --import 6000
    python bench/load.py --rankers 50 --seconds 30 --import 6000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/menagerie_load
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from common import ROOT, answer_fields, csrf_token, free_port, serve, stop  # bench/common.py, beside this script


def reset_database(url: str) -> None:
    """An empty schema for the run (only for a database named on the command line: everything in it goes)."""
    from sqlalchemy import MetaData, create_engine
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()


class Tally:
    """What every ranker saw, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = 0
        self.ok = 0
        self.statuses: collections.Counter = collections.Counter()
        self.took: list[float] = []
        self.samples: dict[int, str] = {}

    def add(self, status: int, seconds: float, body: str) -> None:
        with self.lock:
            self.sent += 1
            self.statuses[status] += 1
            self.took.append(seconds)
            if 200 <= status < 300:
                self.ok += 1
            else:
                self.samples.setdefault(status, body[:300])


def ranker(base: str, class_name: str, deadline: float, tally: Tally, seed: int) -> None:
    """One person ranking: the compare page, then answers until the deadline (bounded by it; never retries a
    refused answer without reloading the page, as a person would reload)."""
    rng = random.Random(seed)
    http = requests.Session()
    html, token = "", None
    while time.monotonic() < deadline:
        if not html or not token:
            try:
                html = http.get(f"{base}/rank/{class_name}/", timeout=60).text
            except requests.RequestException:
                time.sleep(0.5)
                continue
            token = csrf_token(html)
        form = answer_fields(html)
        if "left" not in form or not token:
            html = ""
            time.sleep(0.5)
            continue
        data = {**form, "outcome": rng.choice(["left", "right", "left", "right", "tie"])}
        t0 = time.perf_counter()
        try:
            response = http.post(f"{base}/rank/{class_name}/answer", data=data, timeout=60,
                                 headers={"HX-Request": "true", "X-CSRFToken": token})
            status, body = response.status_code, response.text
        except requests.RequestException as exc:
            status, body = 0, repr(exc)  # 0: no answer at all (connection refused or reset, timeout)
        tally.add(status, time.perf_counter() - t0, body)
        html = body if 200 <= status < 300 else ""
        time.sleep(rng.uniform(0.05, 0.3))  # a person reads the next pair


def make_pictures(folder: Path, n: int, size: int = 32) -> None:
    """n distinct pictures (smooth random colour fields, so no two are near duplicates of each other)."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(n):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((size, size), Image.BILINEAR).save(folder / f"{i:05d}.png")


def row_count(url: str, table: str) -> int:
    """How many rows `table` holds now (comparison: the answers stored; image: the images indexed)."""
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(text(f"select count(*) from {table}")).scalar_one()
    engine.dispose()
    return count


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rankers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30, help="how long the rankers answer (bounded run)")
    parser.add_argument("--import", dest="import_images", type=int, default=0, metavar="M",
                        help="import M new pictures with manage.py import while the rankers answer")
    parser.add_argument("--database-url", help="a database to use instead of the instance's SQLite file "
                                                "(EMPTIED first)")
    parser.add_argument("--class", dest="class_name", default="bird")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--scratch", default=str(ROOT / "bench" / "out"), help="where the instance is made")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.rankers <= 500 or not 0 < args.seconds <= 3600:
        parser.error("--rankers must be 1..500 and --seconds 0..3600 (the run is bounded)")

    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="load-", dir=args.scratch))
    instance = work / "instance"
    url = args.database_url or f"sqlite:///{instance / 'menagerie.sqlite3'}"
    env = {**os.environ, "MENAGERIE_INSTANCE": str(instance), "MENAGERIE_AUTH": "off",
           "MENAGERIE_DATABASE_URL": url}
    server = importer = None
    try:
        if args.database_url:
            reset_database(url)
        subprocess.run([sys.executable, "manage.py", "demo"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        folder = work / "to-import"
        if args.import_images:
            make_pictures(folder / "load", args.import_images)
        before_images = row_count(url, "image")
        port = free_port()
        server = serve(env, port, workers=args.workers, threads=args.threads)
        base = f"http://127.0.0.1:{port}"
        tally = Tally()
        deadline = time.monotonic() + args.seconds
        threads = [threading.Thread(target=ranker, args=(base, args.class_name, deadline, tally, i), daemon=True)
                   for i in range(args.rankers)]
        for t in threads:
            t.start()
        import_result = None
        if args.import_images:
            time.sleep(1)
            t0 = time.monotonic()
            importer = subprocess.Popen([sys.executable, "manage.py", "import", str(folder), "--json"], cwd=ROOT,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        start_new_session=True)
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()) + 90)
        if importer is not None:
            out, err = importer.communicate(timeout=max(60.0, 10 * args.seconds))
            import_result = {"exit": importer.returncode, "seconds": round(time.monotonic() - t0, 1),
                             "added": row_count(url, "image") - before_images, "stderr_tail": err.decode()[-400:]}
        stored = row_count(url, "comparison")
    finally:
        for process in (importer, server):
            stop(process)
        shutil.rmtree(work, ignore_errors=True)

    took = np.array(tally.took or [0.0]) * 1e3
    result = {
        "database": url.split(":", 1)[0], "rankers": args.rankers, "seconds": args.seconds,
        "gunicorn": f"-w {args.workers} --threads {args.threads}",
        "answers_sent": tally.sent, "answers_2xx": tally.ok, "answers_stored": stored,
        "lost": tally.ok - stored, "statuses": dict(sorted(tally.statuses.items())),
        "p50_ms": round(float(np.percentile(took, 50)), 1), "p95_ms": round(float(np.percentile(took, 95)), 1),
        "max_ms": round(float(took.max()), 1), "import": import_result,
        "error_samples": {str(k): v for k, v in tally.samples.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"# {args.rankers} rankers for {args.seconds:g} s on {result['database']} (gunicorn "
              f"{result['gunicorn']})" + (f", importing {args.import_images} images" if args.import_images else ""))
        print(f"answers sent {tally.sent}, 2xx {tally.ok}, stored {stored} (lost {tally.ok - stored}); "
              f"statuses {result['statuses']}")
        print(f"latency p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, max {result['max_ms']} ms")
        if import_result:
            print(f"import: exit {import_result['exit']}, {import_result['added']} images added in "
                  f"{import_result['seconds']} s")
        for status, sample in result["error_samples"].items():
            print(f"  e.g. {status}: {sample[:200]!r}")
    return result


if __name__ == "__main__":
    main()
