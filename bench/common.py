"""What several bench scripts share: the demo images, the diffusers baseline, gunicorn serving an instance on a free
loopback port with the CSRF token and answer forms read from its pages, and OMP_WAIT_POLICY=PASSIVE.

The scripts run as `python bench/<name>.py`; Python searches a script's own folder first, so `import common` finds
this file (bench/ is not a package). The project itself is imported as installed (`pip install -e '.[bench]'`).

Importing this module sets OMP_WAIT_POLICY=PASSIVE unless it is set already, so import it before torch: spin-waiting
OpenMP threads starve a shared CPU (manage.py and diffusion.train do the same).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from urllib.error import HTTPError  # noqa: E402
from urllib.request import urlopen  # noqa: E402

from app import DEMO_DIR, ROOT  # noqa: E402

DEMO_IMAGES = DEMO_DIR / "images"  # the bundled demo emoji: <class>/<style>__<emoji>.png

__all__ = ["DEMO_IMAGES", "ROOT", "answer_fields", "csrf_token", "diffusers_unet", "free_port", "serve", "stop"]

# The token as base.html gives it to htmx (hx-headers on <body>; a whole page) or as a form field (an htmx region).
TOKEN = re.compile(r'"X-CSRFToken": "([^"]+)"|name="csrf_token" value="([^"]+)"')
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"')


def diffusers_unet(*, block_out_channels, norm_num_groups: int, num_class_embeds: int, sample_size: int = 32,
                   channels: int = 3, layers_per_block: int = 1):
    """The public baseline: diffusers' UNet2DModel, class-conditional through `num_class_embeds`, with attention at
    the lowest level only. Each bench picks the widths that match what it compares against."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=sample_size, in_channels=channels, out_channels=channels,
                       layers_per_block=layers_per_block, block_out_channels=block_out_channels,
                       down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
                       num_class_embeds=num_class_embeds, norm_num_groups=norm_num_groups)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(env: dict, port: int, *, workers: int = 2, threads: int = 1, wait_s: float = 120) -> subprocess.Popen:
    """gunicorn serving the instance `env` names (MENAGERIE_INSTANCE, ...) on 127.0.0.1:`port`, once /rank/ answers.
    It leads its own process group (end it with `stop`); its stderr goes to a temporary file, whose tail is in the
    error when it does not start within `wait_s`."""
    log = tempfile.TemporaryFile()
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads), "-b",
               f"127.0.0.1:{port}", "--timeout", "60", "app:create_app()"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
                              start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urlopen(f"http://127.0.0.1:{port}/rank/", timeout=30).close()
            return server
        except HTTPError:
            return server  # it answered (a page that needs a login, say): it is up
        except OSError:
            time.sleep(0.2)
    stop(server)
    log.seek(0)
    raise RuntimeError(f"gunicorn did not start within {wait_s:g} s:\n" + log.read().decode()[-3000:])


def stop(process: subprocess.Popen | None) -> None:
    """End a process started with start_new_session=True and everything it started: SIGTERM to its group, then
    SIGKILL after 30 s."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def csrf_token(html: str) -> str | None:
    """The CSRF token a page or an htmx region carries, for the X-CSRFToken header; None when it has none."""
    found = TOKEN.search(html)
    return found and (found.group(1) or found.group(2))


def answer_fields(html: str) -> dict[str, str]:
    """The hidden fields of the answer form on a ranking page or region (pair: left, right, next_left, ...; best of
    4: shown, next, ...), as an answer sends them back: those before the undo form, the CSRF token left out."""
    fields = dict(HIDDEN.findall(html.split('class="rank-undo"')[0]))
    fields.pop("csrf_token", None)
    return fields
