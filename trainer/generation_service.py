"""Generation jobs of a run: sample its checkpoint in a subprocess, read the job back from its folder, and send
chosen pictures to the curator. A job is `runs/<id>/generated/<job>/` (request.json, job.json, exit_code, the PNGs
and GIFs); like runs, its truth is in its files, so any server worker can read it.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from core.models import Batch
from core.processes import log_tail, process_alive, spawn_detached
from curator.imports.service import import_candidates
from curator.imports.sources import Candidate
from curator.imports.storage import ImageStore
from curator.imports.validation import Limits
from diffusion import rundir
from trainer.service import RunError, RunView

GENERATED = "generated"


@dataclass
class GenerationRequest:
    classes: list[str]
    n: int = 4
    steps: int = 25
    sampler: str = "dpm++2m"
    guidance: float = 3.0
    seed: int = 0
    gif: bool = True


def generation_dir(run_dir: Path, gen_id: str) -> Path:
    return Path(run_dir) / GENERATED / gen_id


def start_generation(view: RunView, request: GenerationRequest) -> str:
    """Sample the run's best checkpoint in a subprocess (`python -m diffusion.generate`); returns the job id.

    The process writes `generated/<id>/<class>/<i>.png` (+ `.gif` denoising animation) and, when it ends, an
    `exit_code` file, so any server worker (or a restarted server) can tell running, done and failed apart.
    """
    if not view.has_checkpoint:
        raise RunError(f"run {view.id} has no checkpoint yet: wait for its first epoch to finish")
    gen_id = f"{datetime.now():%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"
    out = generation_dir(view.path, gen_id)
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "diffusion.generate", str(view.path), str(out), "--n", str(request.n),
           "--steps", str(request.steps), "--sampler", request.sampler, "--guidance", str(request.guidance),
           "--seed", str(request.seed), "--which", "best"]
    for name in request.classes:
        cmd += ["--class", name]
    if request.gif:
        cmd.append("--gif")
    rundir.write_json_atomic(out / "request.json", {**request.__dict__, "created": time.time()})
    wrapper = ['/bin/sh', '-c', '"$@"; code=$?; echo $code > "$0/.exit_code.tmp" && mv "$0/.exit_code.tmp" '
               '"$0/exit_code"', str(out), *cmd]
    proc = spawn_detached(wrapper, out / "output.log")
    rundir.write_json_atomic(out / "job.json", {"pid": proc.pid})
    return gen_id


@dataclass
class Generation:
    id: str
    path: Path
    state: str  # running | done | failed
    request: dict
    images: list[dict]  # {class, index, png (relative to the run dir), gif or None}
    error: str = ""


def read_generation(view: RunView, gen_id: str) -> Generation | None:
    out = generation_dir(view.path, gen_id)
    request = rundir.read_json(out / "request.json", default=None)
    if request is None:
        return None
    images = []
    names = {n: n for n in view.class_names}
    for class_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        for png in sorted((p for p in class_dir.glob("*.png") if p.stem.isdigit()), key=lambda p: int(p.stem)):
            gif = png.with_suffix(".gif")
            images.append({"class": names.get(class_dir.name, class_dir.name), "index": int(png.stem),
                           "png": str(png.relative_to(view.path)),
                           "gif": str(gif.relative_to(view.path)) if gif.exists() else None})
    code_text = (out / "exit_code").read_text().strip() if (out / "exit_code").exists() else None
    if code_text is not None:
        state = "done" if code_text == "0" else "failed"
    else:
        pid = (rundir.read_json(out / "job.json", default={}) or {}).get("pid")
        state = "running" if process_alive(pid) else "failed"
    error = ""
    if state == "failed":
        error = log_tail(out / "output.log", 12) or "the sampling process stopped without a result"
    return Generation(gen_id, out, state, request, images, error)


def list_generations(view: RunView) -> list[str]:
    root = view.path / GENERATED
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if (p / "request.json").exists()), reverse=True)


def send_to_curator(session: Session, store: ImageStore, view: RunView, job: Generation, picks: list[str],
                    limits: Limits) -> Batch:
    """Close the loop: chosen images of a generation become one curator batch (kind "generated", source = the run).
    Raises RunError (nothing imported) when nothing is chosen or a choice is not an image of this generation."""
    known = {img["png"]: img for img in job.images}
    missing = [p for p in picks if p not in known]
    if not picks or missing:
        raise RunError("Tick the generated images to send to the curator." if not picks
                       else f"Not images of this generation: {', '.join(missing)}")
    candidates = [Candidate(f"{view.id}/{known[p]['class']}/{Path(p).name}", known[p]["class"],
                            (lambda path=view.path / p: path.read_bytes())) for p in picks]
    return import_candidates(session, store, candidates, kind="generated", source=f"run {view.id}", limits=limits)
