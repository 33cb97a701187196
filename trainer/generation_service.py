"""Generation jobs of a run: sample its checkpoint in a subprocess, read the job back from its folder, pack a job
as a zip, and send chosen pictures to the curator. A job is `runs/<id>/generated/<job>/` (request.json, job.json,
exit_code, the PNGs and GIFs); like runs, its truth is in its files, so any server worker can read it.

Pictures sent to the curator (from a generation or from the run's favourites) are staged as a batch of kind
"generated" in the merge preview: they are training data only once a curator accepts them, and even then snapshots
leave them out unless asked (curator.snapshots.service).
"""
from __future__ import annotations

import io
import json
import os
import sys
import time
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from core.models import Batch
from core.processes import log_tail, process_alive, recorded_exit, spawn_recording_exit
from curator.imports.service import import_candidates
from curator.imports.sources import Candidate
from curator.imports.storage import ImageStore
from curator.imports.validation import Limits
from diffusion import rundir
from diffusion.config import DEFAULT_SAMPLER
from trainer import favourites
from trainer.service import RunError, RunView

GENERATED = "generated"
FIXED_CHECKPOINTS = ("best", "last")
MAX_SEND = 500  # pictures one request may send to the curator
GENERATED_KIND = "generated"  # Batch.kind: the merge preview marks it, snapshots leave it out unless asked


@dataclass
class GenerationRequest:
    classes: list[str]
    n: int = 4
    steps: int = 25
    sampler: str = DEFAULT_SAMPLER
    guidance: float = 3.0
    seed: int = 0
    gif: bool = True
    which: str = "best"  # the checkpoint: best, last, or an epoch's number


def generation_dir(run_dir: Path, gen_id: str) -> Path:
    return Path(run_dir) / GENERATED / gen_id


def checkpoint_choices(view: RunView) -> list[str]:
    """The checkpoints this run can sample from, as `--which` values: best (which falls back to last before the
    run is evaluated) and last once saved, then the epochs whose weights are kept, newest first
    (`diffusion.generate --which N`)."""
    saved = {w for w in FIXED_CHECKPOINTS if rundir.checkpoint_path(view.path, w).is_file()}
    fixed = [w for w in FIXED_CHECKPOINTS if saved and (w == "best" or w in saved)]
    epochs = [str(e) for e in reversed(rundir.list_checkpoint_epochs(view.path))]
    return fixed + epochs


def last_request(view: RunView) -> dict:
    """The settings of the run's newest generation (the form starts from them), or {} when there is none."""
    for gen_id in list_generations(view):
        request = rundir.read_json(generation_dir(view.path, gen_id) / "request.json", default=None)
        if isinstance(request, dict):
            return request
    return {}


def start_generation(view: RunView, request: GenerationRequest) -> str:
    """Sample the chosen checkpoint in a subprocess (`python -m diffusion.generate`); returns the job id.

    The process writes `generated/<id>/<class>/<i>.png` (+ `.gif` denoising animation) and, when it ends, an
    `exit_code` file, so any server worker (or a restarted server) can tell running, done and failed apart.
    """
    if not view.has_checkpoint:
        raise RunError(f"run {view.id} has no checkpoint yet: wait for its first epoch to finish")
    if request.which not in checkpoint_choices(view):
        raise RunError(f"run {view.id} has no checkpoint {request.which!r}; choose one of "
                       f"{', '.join(checkpoint_choices(view))}")
    gen_id = f"{datetime.now():%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"
    out = generation_dir(view.path, gen_id)
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "diffusion.generate", str(view.path), str(out), "--n", str(request.n),
           "--steps", str(request.steps), "--sampler", request.sampler, "--guidance", str(request.guidance),
           "--seed", str(request.seed), "--which", request.which]
    for name in request.classes:
        cmd += ["--class", name]
    if request.gif:
        cmd.append("--gif")
    rundir.write_json_atomic(out / "request.json", {**asdict(request), "created": time.time()})
    proc = spawn_recording_exit(cmd, out, out / "output.log")
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
    names = {rundir.safe_dir_name(n): n for n in view.class_names}  # folder -> class name
    for class_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        for png in sorted((p for p in class_dir.glob("*.png") if p.stem.isdigit()), key=lambda p: int(p.stem)):
            gif = png.with_suffix(".gif")
            images.append({"class": names.get(class_dir.name, class_dir.name), "index": int(png.stem),
                           "png": str(png.relative_to(view.path)),
                           "gif": str(gif.relative_to(view.path)) if gif.exists() else None})
    code = recorded_exit(out)
    if code is not None:
        state = "done" if code == 0 else "failed"
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


def generation_zip(view: RunView, job: Generation) -> bytes:
    """One zip of a whole generation: its PNGs and GIFs by class, request.json, and manifest.json naming, for
    each picture, what regenerates it (run, checkpoint, class, index, seed, steps, sampler, guidance)."""
    settings = {k: job.request.get(k) for k in ("which", "seed", "steps", "sampler", "guidance", "n")}
    settings["which"] = settings["which"] or "best"
    manifest = {"run": view.id, "generation": job.id, "state": job.state, **settings, "pictures": []}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("request.json", json.dumps(job.request, indent=1, sort_keys=True))
        for img in job.images:
            entry = {"class": img["class"], "index": img["index"], "png": f"{img['class']}/{img['index']}.png"}
            zf.write(view.path / img["png"], entry["png"])
            if img["gif"]:
                entry["gif"] = f"{img['class']}/{img['index']}.gif"
                zf.write(view.path / img["gif"], entry["gif"])
            manifest["pictures"].append(entry)
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
    return buffer.getvalue()


def send_pictures(session: Session, store: ImageStore, view: RunView, pictures: list[dict], limits: Limits) -> Batch:
    """Stage run pictures ({png (relative to the run), class, name}) as one batch of kind "generated" in the merge
    preview (source: the run). Nothing joins the dataset until a curator accepts them there. The preview sorts
    them into new and duplicates when first opened (curator.merge.service.ensure_analysed): trainer stages
    through curator.imports, the curator feature it may use."""
    if len(pictures) > MAX_SEND:
        raise RunError(f"{len(pictures)} pictures are too many to send at once (at most {MAX_SEND}); nothing was sent")
    candidates = [Candidate(f"{view.id}/{p['name']}", p["class"], (lambda path=view.path / p["png"]: path.read_bytes()))
                  for p in pictures]
    return import_candidates(session, store, candidates, kind=GENERATED_KIND, source=f"run {view.id}", limits=limits,
                             staged=True, origin="web")


def send_to_curator(session: Session, store: ImageStore, view: RunView, job: Generation, picks: list[str],
                    limits: Limits) -> Batch:
    """Close the loop: chosen images of a generation are staged for the curator (kind "generated", source = the
    run). Raises RunError (nothing staged) when nothing is chosen or a choice is not an image of this generation."""
    known = {img["png"]: img for img in job.images}
    picks = list(dict.fromkeys(picks))
    missing = [p for p in picks if p not in known]
    if not picks or missing:
        shown = ", ".join(m[:80] for m in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise RunError("Tick the generated images to send to the curator." if not picks
                       else f"Not images of this generation: {shown}; nothing was sent")
    pictures = [{"png": p, "class": known[p]["class"], "name": f"{known[p]['class']}/{job.id}-{Path(p).name}"}
                for p in picks]
    return send_pictures(session, store, view, pictures, limits)


def send_favourites(session: Session, store: ImageStore, view: RunView, items: list[dict], limits: Limits) -> Batch:
    """The run's favourites (trainer.favourites items), staged for the curator like a generation's pictures."""
    items = favourites.checked(view.path, items)
    if not items:
        raise RunError("The run has no favourites to send: mark some first.")
    pictures = [{"png": i["png"], "class": i["class"], "name": favourites.picture_name(i)} for i in items]
    return send_pictures(session, store, view, pictures, limits)
