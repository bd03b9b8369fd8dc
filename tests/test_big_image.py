"""A 4000×3000 photo through the real ``artshift stylize`` at its default tile size stays under
the memory bound the README states (peak RSS of that one process, from ``wait4``).

The generator has the default run's layers and widths (anti-aliased, ngf 32), which set the
memory of a tile; one residual block instead of six keeps the test fast (the blocks run at a
quarter of the resolution, one after the other, and reuse the same buffers).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import export_random_generator

PEAK_RSS_LIMIT_MB = 1500  # README, "Repainting photos"


@pytest.fixture(scope="module")
def default_width_onnx(tmp_path_factory):
    return export_random_generator(tmp_path_factory.mktemp("model"), ngf=32, antialias=True)


def peak_rss_mb(command: list[str], log) -> tuple[int, float]:
    """Run ``command``; its exit code and peak resident memory (MB), its alone."""
    with open(log, "w") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                 env={**os.environ, "ARTSHIFT_NO_PROGRESS": "1"})
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss / 1024


def cpu_name() -> str:
    """The CPU's model name, for failure messages: a tile's memory depends on the CPU's kernels."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    return next((line.partition(":")[2].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def test_4000x3000_through_the_cli_under_the_stated_bound(default_width_onnx, tmp_path):
    photo = tmp_path / "big.jpg"
    Image.linear_gradient("L").resize((4000, 3000)).convert("RGB").save(photo, quality=80)
    code, peak_mb = peak_rss_mb([sys.executable, "-m", "artshift.cli", "stylize", str(photo), "--out",
                                 str(tmp_path / "out"), "--model", str(default_width_onnx)], tmp_path / "log")
    assert code == 0, (tmp_path / "log").read_text()[-2000:]
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB on {cpu_name()}"
    assert Image.open(tmp_path / "out" / "big.jpg").size == (4000, 3000)


RELEASE_SCRIPT = """
import os, sys
from PIL import Image
from artshift.inference import Stylizer

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

stylizer = Stylizer(sys.argv[1], providers=["CPUExecutionProvider"], threads=2)
stylizer.stylize(Image.new("RGB", (64, 64)))  # small images run in the (small) arena
before = rss_mb()
for _ in range(2):
    stylizer.stylize(Image.new("RGB", (1024, 1024)))
after_two = rss_mb()

def stop_after_one_tile(done, total):
    if done == 1:
        raise TimeoutError  # as the service's time budget stops a request
try:
    stylizer.stylize(Image.new("RGB", (2000, 1024)), stop_after_one_tile)
except TimeoutError:
    print(before, after_two, rss_mb())
"""
# What stays after big images: the arena-less session's per-thread work buffers and what the C
# allocator keeps, not a tile's whole working memory (+0.86 GB was kept by the arena before).
RETAINED_LIMIT_MB = 300


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident size from /proc")
def test_memory_of_big_images_is_given_back(default_width_onnx):
    result = subprocess.run([sys.executable, "-c", RELEASE_SCRIPT, str(default_width_onnx)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    before, after_two, after_stopped = map(float, result.stdout.split())
    assert after_two - before < RETAINED_LIMIT_MB, f"{before:.0f} MB before two 1024 px images, {after_two:.0f} after"
    assert after_stopped - before < RETAINED_LIMIT_MB, f"{after_stopped:.0f} MB after an image stopped half-way"
