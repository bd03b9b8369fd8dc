import logging

import numpy as np
import onnx
import pytest
import torch

from artshift.errors import ArtShiftError
from artshift.export import export_fp16, export_generator, export_int8, export_int8_generator, parity, parity_inputs
from artshift.inference import Sampler, Stylizer, noise
from artshift.models.networks import ResnetGenerator, init_weights


def _images(*sizes):
    rng = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, h, w, generator=rng) * 2 - 1 for h, w in sizes]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=8, n_blocks=2)
    init_weights(generator, gain=0.2)  # large weights so outputs are not all ≈ 0
    path = tmp_path_factory.mktemp("onnx") / "g.onnx"
    export_generator(generator, path, opset=18, metadata={"run_id": "abc", "method": "cut"})
    return generator.eval(), path


def test_single_file_with_dynamic_axes_and_metadata(exported):
    _, path = exported
    assert [p.name for p in path.parent.iterdir()] == ["g.onnx"]  # no external-data sidecar
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    for tensor in (model.graph.input[0], model.graph.output[0]):
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["run_id"] == "abc" and meta["precision"] == "fp32" and meta["output_range"].startswith("[-1, 1]")
    assert model.model_version >= 2 and "any height and width >= 16" in model.doc_string


def test_plain_onnxruntime_runs_any_size(exported):
    """What a user with only the file does: no ArtShift code, an odd size such as 601 × 401."""
    import onnxruntime

    generator, path = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["min_side"] == "16"
    for height, width in ((601, 401), (17, 18)):
        image = np.random.default_rng(0).uniform(-1, 1, size=(1, 3, height, width)).astype(np.float32)
        (out,) = session.run(None, {"image": image})
        assert out.shape == image.shape
    padded = np.pad(image, ((0, 0), (0, 0), (0, 3), (0, 2)), mode="reflect")  # up to 20 × 20
    with torch.no_grad():
        reference = generator(torch.from_numpy(padded))[..., :height, :width].numpy()
    assert np.abs(out - reference).max() <= 1e-4


def test_parity_with_pytorch_on_two_sizes(exported):
    generator, path = exported
    diffs = parity(generator, path, _images((64, 96), (40, 32)))
    assert diffs["max_abs_diff"] <= 1e-4 and 0 < diffs["mean_abs_diff"] <= diffs["max_abs_diff"]


def test_fp16_and_int8_variants_run_close_to_fp32(exported, tmp_path):
    generator, path = exported
    export_fp16(path, tmp_path / "g.fp16.onnx")
    calibration = np.random.default_rng(0).uniform(-1, 1, size=(4, 3, 32, 32)).astype(np.float32)
    export_int8(path, tmp_path / "g.int8.onnx", calibration)
    # Bounds on the mean abs difference in [-1, 1] output units: fp16 is near-exact, int8 coarse.
    for name, precision, bound in (("g.fp16.onnx", "fp16", 0.005), ("g.int8.onnx", "int8", 0.1)):
        model = onnx.load(str(tmp_path / name))
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["precision"] == precision and meta["run_id"] == "abc"
        diffs = parity(generator, tmp_path / name, _images((32, 32)))
        assert 0 < diffs["mean_abs_diff"] < bound, (name, diffs)
    int8_ops = {node.op_type for node in onnx.load(str(tmp_path / "g.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= int8_ops
    assert (tmp_path / "g.int8.onnx").stat().st_size < 0.5 * path.stat().st_size


def test_exported_graph_is_the_fast_form(exported, tmp_path):
    generator, path = exported
    fp32_ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert "DepthToSpace" in fp32_ops and fp32_ops.count("ConvTranspose") == 2  # output conv rewritten only
    calibration = np.random.default_rng(0).uniform(-1, 1, size=(4, 3, 32, 32)).astype(np.float32)
    export_int8_generator(generator, tmp_path / "g.int8.onnx", 18, calibration, {"run_id": "abc"})
    int8 = onnx.load(str(tmp_path / "g.int8.onnx"))
    assert "ConvTranspose" not in {node.op_type for node in int8.graph.node}  # every conv gets int8 kernels
    assert {p.key: p.value for p in int8.metadata_props}["precision"] == "int8"
    diffs = parity(generator, tmp_path / "g.int8.onnx", _images((32, 32)))
    assert 0 < diffs["mean_abs_diff"] < 0.1, diffs


def test_stylizer_pads_to_multiple_and_crops_back(exported):
    generator, path = exported
    stylizer = Stylizer(path, providers=["CPUExecutionProvider"])
    assert stylizer.provider == "CPUExecutionProvider"
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, 3, 37, 50)).astype(np.float32)
    out = stylizer.run_array(x)
    assert out.shape == x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (0, 3), (0, 2)), mode="reflect")  # up to 40 × 52
    with torch.no_grad():
        reference = generator(torch.from_numpy(padded))[..., :37, :50]
    assert np.abs(out - reference.numpy()).max() <= 1e-4


def test_idle_session_threads_sleep_instead_of_spinning(exported):
    stylizer = Stylizer(exported[1], providers=["CPUExecutionProvider"])
    options = stylizer.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_a_big_cpu_batch_runs_in_arena_sized_slices_with_the_same_result(exported, monkeypatch):
    generator, path = exported
    stylizer = Stylizer(path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(-1, 1, size=(5, 3, 33, 40)).astype(np.float32)  # padded to 36 × 40
    monkeypatch.setattr("artshift.inference.ARENA_MAX_PIXELS", 2 * 36 * 40)
    assert stylizer.images_per_run(36, 40, 5) == 2
    assert stylizer.images_per_run(80, 80, 5) == 1  # one image over the limit still runs, alone
    runs = []
    run = stylizer._run
    monkeypatch.setattr(stylizer, "_run", lambda batch: runs.append(len(batch)) or run(batch))
    out = stylizer.run_array(x)
    assert runs == [2, 2, 1]
    assert stylizer._large_run_session is None  # every slice stayed in the arena session
    padded = np.pad(x, ((0, 0), (0, 0), (0, 3), (0, 0)), mode="reflect")
    with torch.no_grad():
        reference = generator(torch.from_numpy(padded))[..., :33, :]
    assert out.shape == x.shape
    assert np.abs(out - reference.numpy()).max() <= 1e-4


def test_stylizer_rejects_missing_and_broken_models(tmp_path):
    from artshift.errors import ArtShiftError

    with pytest.raises(ArtShiftError, match="not found"):
        Stylizer(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ArtShiftError, match="not a loadable ONNX model"):
        Stylizer(broken)


def test_tiles_cover_every_pixel_with_overlap():
    from artshift.inference import blend_weights, tile_starts

    starts = tile_starts(1000, 256, 32)
    assert starts[0] == 0 and starts[-1] == 1000 - 256
    assert all(b - a <= 256 - 32 for a, b in zip(starts, starts[1:]))
    assert tile_starts(200, 256, 32) == [0]
    weights = blend_weights(256, 32)
    assert weights.min() > 0 and weights.max() == 1.0 and weights[0] < weights[16] < weights[40]


def test_tiled_run_matches_untiled_within_tolerance(exported):
    _, path = exported
    # Statistically homogeneous content: every tile sees the image's own statistics.
    pixels = np.random.default_rng(1).integers(0, 256, size=(1, 200, 300, 3), dtype=np.uint8)
    whole = Stylizer(path, providers=["CPUExecutionProvider"], tile=1024).run_pixels(pixels.copy())[0] / 127.5
    tiled = Stylizer(path, providers=["CPUExecutionProvider"], tile=128, overlap=48).run_pixels(pixels)[0] / 127.5
    assert tiled.shape == whole.shape == (200, 300, 3)
    # Instance norm sees per-tile statistics, so tiles differ slightly from one whole pass;
    # the cross-fade keeps that difference small and spread out (no seam).
    assert np.abs(tiled - whole).mean() < 0.06  # the stated tolerance, in [-1, 1] output units
    column_error = np.abs(tiled - whole).mean(axis=(0, 2))
    assert column_error.max() < 4 * column_error.mean() + 0.02


def test_dcgan_exports_with_noise_input_and_dynamic_batch(tiny_dcgan, tmp_path):
    generator, path = tiny_dcgan
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert model.graph.input[0].name == "z" and [d.dim_param or d.dim_value for d in dims] == ["batch", 8]
    assert parity(generator, path, parity_inputs(generator))["max_abs_diff"] <= 1e-4
    export_int8(path, tmp_path / "dcgan.int8.onnx", noise(8, 8, seed=0))
    assert parity(generator, tmp_path / "dcgan.int8.onnx", parity_inputs(generator))["mean_abs_diff"] < 0.1


def test_sampler_draws_the_same_paintings_for_the_same_seed(tiny_dcgan):
    generator, path = tiny_dcgan
    sampler = Sampler(path, providers=["CPUExecutionProvider"])
    first, again, other = (list(sampler.sample(3, seed=s, batch=2)) for s in (0, 0, 1))
    assert [im.size for im in first] == [(16, 16)] * 3
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again))
    assert not np.array_equal(np.asarray(first[0]), np.asarray(other[0]))
    with torch.no_grad():
        expected = generator(torch.from_numpy(noise(3, 8, seed=0))).numpy()
    np.testing.assert_allclose(sampler.run_array(noise(3, 8, seed=0)), expected, atol=1e-4)


def test_each_runner_refuses_the_other_kind_of_model(exported, tiny_dcgan):
    with pytest.raises(ArtShiftError, match="paints from noise .*use `artshift sample`"):
        Stylizer(tiny_dcgan[1])
    with pytest.raises(ArtShiftError, match="repaints photos; use `artshift stylize`"):
        Sampler(exported[1])


def test_onnx_file_declares_what_its_generator_takes(exported, tiny_dcgan):
    from artshift.generator_io import METADATA_KEY

    metas = [{p.key: p.value for p in onnx.load(str(path)).metadata_props} for path in (exported[1], tiny_dcgan[1])]
    assert [meta[METADATA_KEY] for meta in metas] == ["photo", "noise"]


def test_a_model_without_the_declaration_is_refused(exported, tmp_path):
    from artshift.generator_io import METADATA_KEY

    model = onnx.load(str(exported[1]))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    foreign = tmp_path / "foreign.onnx"
    onnx.save_model(model, str(foreign))
    with pytest.raises(ArtShiftError, match="not an ArtShift generator"):
        Stylizer(foreign)


def test_export_variants_writes_all_three_and_gates_on_fp32_parity(exported, tmp_path):
    from artshift.export import VARIANTS, export_variants

    generator, _ = exported
    paths = {variant: tmp_path / f"{variant}.onnx" for variant in VARIANTS}
    calibration = torch.cat(_images((32, 32), (32, 32))).numpy()
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("artshift").addHandler(handler)
    try:
        report = export_variants(generator, paths, 18, calibration, {"method": "cut"}, parity_atol=1e-4, seed=0)
    finally:
        logging.getLogger("artshift").removeHandler(handler)
    assert set(report) == set(VARIANTS) and all(path.is_file() for path in paths.values())
    # A stage passes temporary stand-ins: the log names variants, never a path (nor the int8 source's temp file).
    assert [line.split()[0] for line in lines] == list(VARIANTS)
    assert not [line for line in lines if "/" in line.split("vs PyTorch")[0]]
    assert report["fp32"]["max_abs_diff"] < 1e-4 < report["int8"]["max_abs_diff"]
    with pytest.raises(ArtShiftError, match=r"fp32 ONNX differs from PyTorch by .* > export.parity_atol"):
        export_variants(generator, paths, 18, calibration, {}, parity_atol=1e-12, seed=0)


def test_quality_changes_are_differences_from_fp32():
    from artshift.export import quality_changes

    changes = quality_changes({"fp32": {"kid_mean": 0.5, "content": 0.9}, "int8": {"kid_mean": 0.75, "content": 0.8}})
    assert changes["fp32"] == {"kid_mean": 0.5, "content": 0.9}  # no change metrics that are always 0
    assert changes["int8"]["kid_mean_change_vs_fp32"] == 0.25
    assert changes["int8"]["content_change_vs_fp32"] == pytest.approx(-0.1)


def test_example_inputs_are_photos_or_seeded_noise(exported, tiny_dcgan, tmp_path):
    from artshift.export import example_inputs
    from conftest import write_processed

    photos = write_processed(tmp_path, per_folder=3, size=16) / "train" / "photos"
    assert example_inputs(exported[0], photos, 2, seed=0).shape == (2, 3, 16, 16)
    z = example_inputs(tiny_dcgan[0], photos, 5, seed=3)
    assert z.shape == (5, 8) and np.array_equal(z, noise(5, 8, 3))


def _optimised_op_types(path) -> set[tuple[str, str]]:
    """(domain, op type) of every node after ONNX Runtime's CPU graph optimisations."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(path.with_suffix(".optimised.onnx"))
    options.log_severity_level = 3  # its warning that the file is for this CPU only
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return {(node.domain, node.op_type) for node in onnx.load(options.optimized_model_filepath).graph.node}


def test_antialiased_generator_exports_with_parity_and_quantises(tmp_path):
    """Blur-pool and bilinear upsampling export as grouped Conv and Resize; fp16 and int8 stay close."""
    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=8, n_blocks=2, antialias=True)
    init_weights(generator, gain=0.2)
    generator.eval()
    path = tmp_path / "aa.onnx"
    export_generator(generator, path, opset=18, metadata={"run_id": "abc", "method": "cut"})
    assert "Resize" in {node.op_type for node in onnx.load(str(path)).graph.node}
    assert parity(generator, path, _images((64, 96), (40, 32)))["max_abs_diff"] <= 1e-4
    optimised = _optimised_op_types(path)
    assert optimised >= {("com.microsoft.nchwc", "Upsample")} and ("", "Resize") not in optimised  # run blocked
    export_fp16(path, tmp_path / "aa.fp16.onnx")  # both Resizes share a scales constant: one Cast, not two
    assert 0 < parity(generator, tmp_path / "aa.fp16.onnx", _images((32, 32)))["mean_abs_diff"] < 0.005
    calibration = np.random.default_rng(0).uniform(-1, 1, size=(4, 3, 32, 32)).astype(np.float32)
    export_int8_generator(generator, tmp_path / "aa.int8.onnx", 18, calibration, {"run_id": "abc"})
    assert 0 < parity(generator, tmp_path / "aa.int8.onnx", _images((32, 32)))["mean_abs_diff"] < 0.1


def test_int8_reflection_pads_run_on_8_bit_tensors_with_identical_outputs(tmp_path, monkeypatch):
    """The DequantizeLinear → Pad → QuantizeLinear round trips are gone, and nothing changes:
    the int8 model gives bit-identical outputs to the one quantised without the rewrite."""
    import onnxruntime

    from artshift import export

    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=8, n_blocks=2, antialias=True)
    init_weights(generator, gain=0.2)
    calibration = np.random.default_rng(0).uniform(-1, 1, size=(4, 3, 32, 32)).astype(np.float32)
    export_int8_generator(generator.eval(), tmp_path / "rewritten.onnx", 18, calibration)
    monkeypatch.setattr(export, "_pad_quantized_tensors", lambda graph: 0)
    export_int8_generator(generator, tmp_path / "plain.onnx", 18, calibration)

    def pads(path):
        graph = onnx.load(str(path)).graph
        producers = {out: node.op_type for node in graph.node for out in node.output}
        return [producers.get(node.input[0]) for node in graph.node if node.op_type == "Pad"]

    assert set(pads(tmp_path / "plain.onnx")) == {"DequantizeLinear"}
    # the input's, the stem's, 2 blurs', 4 in the blocks, the output conv's
    assert len(pads(tmp_path / "rewritten.onnx")) == len(pads(tmp_path / "plain.onnx")) == 9
    assert "DequantizeLinear" not in pads(tmp_path / "rewritten.onnx")
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 3, 36, 44)).astype(np.float32)
    outputs = [onnxruntime.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"])
               .run(None, {"image": x})[0] for name in ("plain.onnx", "rewritten.onnx")]
    assert np.array_equal(*outputs) and np.abs(outputs[0]).mean() > 0.01


def test_pad_rewrite_keeps_pads_whose_round_trip_changes_values():
    """A zero-constant Pad (the new value is not a copy) and a Pad whose output is quantised
    with its own scale stay between DequantizeLinear and QuantizeLinear."""
    from onnx import TensorProto, helper

    from artshift.export import _pad_quantized_tensors

    def scale(name, value):
        return helper.make_tensor(name, TensorProto.FLOAT, [], [value])

    zero = helper.make_tensor("zero", TensorProto.UINT8, [], [128])
    pads = helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1])
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zero"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "zero"], ["dq"])]
    for index, (mode, out_scale) in enumerate(((b"reflect", "s"), (b"constant", "s"), (b"edge", "s2"))):
        nodes += [helper.make_node("Pad", ["dq", "pads"], [f"p{index}"], mode=mode),
                  helper.make_node("QuantizeLinear", [f"p{index}", out_scale, "zero"], [f"out{index}"])]
    outputs = [helper.make_tensor_value_info(f"out{i}", TensorProto.UINT8, None) for i in range(3)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              outputs, [scale("s", 0.5), scale("s2", 0.25), zero, pads])
    assert _pad_quantized_tensors(graph) == 1
    reads = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "Pad"}
    assert reads == {"out0": "q", "p1": "dq", "p2": "dq"}
    assert [node.op_type for node in graph.node].count("QuantizeLinear") == 3  # the input's and two outputs'


def test_row_by_row_tiling_equals_blending_the_whole_image(exported):
    """The tiled runner keeps one row of tiles in floating point; the result must be the
    cross-fade of every tile over the whole image, as if it were accumulated all at once."""
    from artshift.inference import _to_input, _to_uint8, blend_weights

    _, path = exported
    stylizer = Stylizer(path, providers=["CPUExecutionProvider"], tile=64, overlap=20)
    pixels = np.random.default_rng(2).integers(0, 256, size=(1, 150, 173, 3), dtype=np.uint8)
    tops, lefts = stylizer.tile_grid(173, 150)
    assert len(tops) == 3 and len(lefts) == 4 and tops[-1] - tops[-2] < 64 - 20  # an uneven last row
    total = np.zeros((150, 173, 4))
    weight = np.outer(blend_weights(64, 20), blend_weights(64, 20))[..., None]
    for top in tops:
        for left in lefts:
            tile = stylizer.run_array(_to_input(pixels[:, top:top + 64, left:left + 64]))[0].transpose(1, 2, 0)
            total[top:top + 64, left:left + 64] += np.concatenate([tile * weight, weight], axis=-1)
    expected = _to_uint8((total[..., :3] / total[..., 3:]).astype(np.float32))
    tiled = stylizer.run_pixels(pixels)[0]
    assert np.abs(tiled.astype(int) - expected).max() <= 1
