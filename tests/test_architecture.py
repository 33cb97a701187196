"""Dependencies point one way (DESIGN.md): checked by importing each side in a clean interpreter."""
from __future__ import annotations

import pkgutil
import subprocess
import sys

from project_paths import ROOT


def modules(package: str) -> list[str]:
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(ROOT / package)])
            if not m.name.startswith("_")]


def loaded_after_import(names: list[str]) -> set[str]:
    code = ("import sys, importlib\n"
            f"for n in {names!r}: importlib.import_module(n)\n"
            "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_diffusion_never_loads_flask_database_curator_or_trainer():
    loaded = loaded_after_import(modules("diffusion"))
    assert not loaded & {"flask", "sqlalchemy", "flask_sqlalchemy", "curator", "trainer", "app"}


def test_web_app_never_loads_torch():
    """The web process (app factory, every curator and trainer module) stays light: no torch."""
    names = ["app", *modules("curator")]
    if (ROOT / "trainer").is_dir():
        names += [m for m in modules("trainer") if m != "trainer.cli"]
    loaded = loaded_after_import(names)
    assert "torch" not in loaded and "torchvision" not in loaded


def test_run_directory_reader_is_stdlib_only():
    """The web process reads run directories through diffusion.rundir without loading torch."""
    assert "torch" not in loaded_after_import(["diffusion.rundir"])
