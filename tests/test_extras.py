"""The install extras: ``artshift[serve]`` (no torch) really runs stylize, sample, serve and the API.

The check runs the real code in a subprocess in which every distribution that only the ``train``
extra brings (torch, MLflow, DVC, pandas...; read from pyproject.toml) cannot be imported, as on
a machine with ``pip install 'artshift[serve]'``.
"""

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
SELF = re.compile(r"^artshift\[(?P<extras>[^\]]+)\]$")

SCRIPT = r"""
import importlib.abc, json, sys, urllib.request
blocked, model, dcgan, folder = set(json.loads(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]

class Uninstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in artshift[serve])", name=name)

sys.meta_path.insert(0, Uninstalled())
from artshift.cli import main
codes = [main(["stylize", folder + "/photo.png", "--out", folder + "/out", "--model", model]),
         main(["sample", "--n", "2", "--out", folder + "/drawn", "--model", dcgan])]
from artshift import Stylizer
from PIL import Image
codes.append(0 if Stylizer(model).stylize(Image.new("RGB", (24, 20))).size == (24, 20) else 1)
from artshift.serve import background_server, create_app
with background_server(create_app(model)) as url:
    health = json.load(urllib.request.urlopen(url + "/healthz"))
    with open(folder + "/photo.png", "rb") as photo:
        request = urllib.request.Request(url + "/v1/stylize", data=photo.read(), method="POST")
    stylized = urllib.request.urlopen(request).read()
loaded = sorted(name for name in sys.modules if name.partition(".")[0] in blocked)
print(json.dumps({"codes": codes, "status": health["status"], "png": stylized[:4].hex(), "loaded": loaded}))
"""


def _requirements(extra: str, table: dict) -> list[Requirement]:
    """The requirements of ``extra`` with the project's own extras it names expanded."""
    found = []
    for text in table[extra]:
        if match := SELF.match(text):
            for name in match["extras"].split(","):
                found += _requirements(name, table)
        else:
            found.append(Requirement(text))
    return found


def _closure(names: set[str]) -> set[str]:
    """``names`` and every distribution they require, as installed here (extras left out)."""
    seen, todo = set(), [n.lower() for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:  # onnxruntime here: onnxruntime-gpu stands in for it
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name.lower())
    return seen


def _train_only_modules() -> set[str]:
    """Top-level modules of the distributions that ``train`` brings and ``serve`` does not."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    serve = _closure({Requirement(r).name for r in project["dependencies"]} |
                     {r.name for r in _requirements("serve", extras)} | {"onnxruntime-gpu"})
    train_only = {r.name.lower() for r in _requirements("train", extras)} - serve
    modules = {module for module, dists in importlib.metadata.packages_distributions().items()
               if any(dist.lower() in train_only for dist in dists)}
    assert {"torch", "mlflow", "dvc", "pandas", "yaml", "onnx", "scipy"} <= modules, modules
    return modules


def test_serve_extra_has_no_torch_and_the_full_set_has_everything():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    serve = {r.name for r in _requirements("serve", extras)} | {Requirement(r).name for r in project["dependencies"]}
    assert {"onnxruntime", "fastapi", "uvicorn", "pillow", "numpy"} <= serve
    assert not {"torch", "torchvision", "onnxruntime-gpu", "mlflow", "dvc"} & serve
    test = {r.name for r in _requirements("test", extras)}
    assert {"torch", "dvc", "mlflow", "onnxruntime-gpu", "fastapi", "pytest"} <= test
    assert "onnxruntime" not in test  # never beside onnxruntime-gpu: both install the module onnxruntime
    assert all(re.search(r"==\d", str(r)) for r in _requirements("test", extras))  # every pin exact


def test_stylize_sample_serve_and_api_run_without_the_train_extra(tiny_onnx, tiny_dcgan, tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 90, 30)).save(tmp_path / "photo.png")
    blocked = sorted(_train_only_modules())
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(blocked), str(tiny_onnx), str(tiny_dcgan[1]),
                             str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0, 0, 0], "status": "ok", "png": "89504e47", "loaded": []}
    assert Image.open(tmp_path / "out" / "photo.png").size == (40, 30)
    assert len(list((tmp_path / "drawn").iterdir())) == 2
