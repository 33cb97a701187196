"""The quality benchmark's own maths (bench/quality_checks.py: the judge's Fréchet distance, the real-data floor's
matched counts, balanced accuracy, the memorised share, the split) checked by CI. The tests import nothing from
bench/: they run the bench script's self-test as a user would, in its own process."""
import os
import subprocess
import sys

from app import ROOT


def test_the_quality_bench_self_test_passes():
    # tried: `python bench/quality.py --self-test`, which runs every check of bench/quality_checks.py (each of which
    # was broken on purpose once and failed); it must exit 0 and say how many passed
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "quality.py"), "--self-test"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 passed" in done.stdout + done.stderr, done.stdout + done.stderr
