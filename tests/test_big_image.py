"""A 4000×3000 photo goes through in tiles with bounded memory (measured in a fresh process)."""

import subprocess
import sys

from PIL import Image

PEAK_RSS_LIMIT_MB = 1500

SCRIPT = """
import resource, sys
from PIL import Image
from artshift.inference import Stylizer
stylizer = Stylizer(sys.argv[1], providers=["CPUExecutionProvider"], threads=2, tile=512, overlap=32)
out = stylizer.stylize(Image.open(sys.argv[2]).convert("RGB"))
out.save(sys.argv[3])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_4000x3000_in_tiles_under_memory_bound(tiny_onnx, tmp_path):
    photo = tmp_path / "big.jpg"
    Image.linear_gradient("L").resize((4000, 3000)).convert("RGB").save(photo, quality=80)
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_onnx), str(photo), str(tmp_path / "out.png")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_mb = int(result.stdout.split()[-1])
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_mb} MB"
    assert Image.open(tmp_path / "out.png").size == (4000, 3000)
