"""`gankit export`: safetensors + JSON (and ONNX) give the same images as the checkpoint they came from."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY
from gankit import checkpoint
from gankit.cli import main
from gankit.models import generator_from_spec
from gankit.sample import load_sampler


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An unconditional run and a conditional one with virtual batch norm in G and an EMA generator."""
    out = tmp_path_factory.mktemp("export")
    assert main(["train", *TINY, "--steps", "2", "--out", str(out), "--name", "plain"]) == 0
    assert main(["train", *TINY, "--steps", "3", "--out", str(out), "--name", "cond", "--cond", "concat",
                 "--g_norm", "virtual_batch", "--vbn_ref_size", "8", "--ema_decay", "0.5"]) == 0
    return out / "plain", out / "cond"


def _z(n, seed=0):
    return torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))


def test_export_gives_the_checkpoints_images(runs, tmp_path, cli):
    run = runs[0]
    code, out, err = cli("export", run, "--out", tmp_path / "exp", "--onnx")
    assert code == 0, err
    meta = json.loads((tmp_path / "exp" / "generator.json").read_text())
    assert (meta["z_dim"], meta["c_dim"], meta["img_shape"], meta["step"], meta["prior"]) == (8, 0, [1, 16, 16], 2,
                                                                                             "normal")
    assert meta["onnx"]["exporter"] in ("dynamo", "torchscript") and meta["onnx"]["inputs"] == ["z"]
    ckpt, exported = load_sampler(run), load_sampler(tmp_path / "exp")
    z = _z(7)
    want = ckpt.decode(z)
    assert torch.allclose(exported.decode(z), want, atol=1e-6)

    sess = ort.InferenceSession(str(tmp_path / "exp" / "generator.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["z"] and isinstance(sess.get_inputs()[0].shape[0], str)
    for n in (1, 7):                                                          # the batch dimension is dynamic
        got = sess.run(None, {"z": z[:n].numpy()})[0]
        assert got.shape == (n, 1, 16, 16) and np.allclose(got, want[:n].numpy(), atol=1e-5)

    # `gankit sample` from the export equals sampling from the run
    assert cli("sample", tmp_path / "exp", "--n", 5, "--out", tmp_path / "e.npz")[0] == 0
    assert cli("sample", run, "--n", 5, "--out", tmp_path / "r.npz")[0] == 0
    assert np.array_equal(np.load(tmp_path / "e.npz")["images"], np.load(tmp_path / "r.npz")["images"])


def test_export_of_a_conditional_vbn_ema_generator(runs, tmp_path, cli):
    run = runs[1]
    code, _, err = cli("export", run, "--out", tmp_path / "exp", "--onnx")
    assert code == 0, err
    meta = json.loads((tmp_path / "exp" / "generator.json").read_text())
    assert meta["c_dim"] == 10 and len(meta["class_names"]) == 10 and meta["ema"] is True
    assert meta["onnx"]["inputs"] == ["z", "y"]
    weights = load_file(str(tmp_path / "exp" / "generator.safetensors"))
    state = checkpoint.load(checkpoint.find(run))
    assert {"ref_in", "ref_y"} <= weights.keys()                              # VBN's reference batch travels along
    assert all(torch.equal(weights[k], v) for k, v in state["G_ema"].items())  # the EMA weights, not G's

    z, y = _z(6, 1), torch.tensor([0, 3, 9, 3, 1, 7])
    ckpt, exported = load_sampler(run), load_sampler(tmp_path / "exp")
    want = ckpt.decode(z, y)
    assert torch.allclose(exported.decode(z, y), want, atol=1e-6)
    raw_G = generator_from_spec(state["G_spec"])
    raw_G.load_state_dict(state["G"])
    assert not torch.allclose(raw_G.eval()(z, y), want, atol=1e-4)           # so the check above can tell G apart

    sess = ort.InferenceSession(str(tmp_path / "exp" / "generator.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"z": z.numpy(), "y": y.numpy()})[0]
    assert np.allclose(got, want.numpy(), atol=1e-5)
    assert not np.allclose(sess.run(None, {"z": z.numpy(), "y": (y + 1).numpy() % 10})[0], got, atol=1e-4)


def test_export_refuses_to_overwrite_and_names_missing_steps(runs, tmp_path, cli):
    run = runs[0]
    assert cli("export", run, "--out", tmp_path / "exp")[0] == 0
    before = (tmp_path / "exp" / "generator.json").read_text()
    code, _, err = cli("export", run, "--out", tmp_path / "exp")
    assert code == 2 and "already holds generator.safetensors, generator.json" in err
    assert (tmp_path / "exp" / "generator.json").read_text() == before
    code, _, err = cli("export", tmp_path / "exp", "--out", tmp_path / "exp2")
    assert code == 2 and "already an export" in err
    code, _, err = cli("export", run, "--out", tmp_path / "exp3", "--checkpoint", 7)
    assert code == 2 and "no checkpoint of step 7" in err and not (tmp_path / "exp3").exists()
    assert cli("export", run, "--out", tmp_path / "exp4", "--checkpoint", 2)[0] == 0
    (tmp_path / "exp4" / "generator.safetensors").unlink()                   # a half-copied export
    code, _, err = cli("sample", tmp_path / "exp4", "--out", tmp_path / "s.npz")
    assert code == 2 and "cannot load the exported generator" in err and len(err.strip().splitlines()) == 1


def test_torchscript_fallback_and_the_onnxruntime_check(tmp_path, monkeypatch):
    from gankit import export
    from gankit.models import mlp

    torch.manual_seed(0)
    G = mlp.Generator(z_dim=8, out_shape=(2,), width=8, layers=1, c_dim=3).eval()
    real_export = torch.onnx.export

    def no_dynamo(*args, dynamo=True, **kwargs):   # as if torch.export could not trace some model
        if dynamo:
            raise RuntimeError("cannot trace")
        return real_export(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", no_dynamo)
    info = export.export_onnx(G, tmp_path / "g.onnx", "points")
    assert info["exporter"] == "torchscript" and info["inputs"] == ["z", "y"] and info["max_abs_diff"] < 1e-5
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    z, y = _z(3), torch.tensor([2, 0, 1])
    assert np.allclose(sess.run(["points"], {"z": z.numpy(), "y": y.numpy()})[0], G(z, y).detach().numpy(), atol=1e-5)
    with torch.no_grad():
        G.net[-1].bias.add_(0.1)                   # G no longer matches the file: the check must say so
    with pytest.raises(RuntimeError, match="differs from G"):
        export.check_onnx(G, tmp_path / "g.onnx")


def test_an_export_without_its_checksum_or_with_nonfinite_weights_is_refused(runs, tmp_path):
    from safetensors.torch import save_file

    from gankit.errors import UserError
    from gankit.export import export

    export(runs[0], tmp_path / "exp")
    meta_file, weights_file = tmp_path / "exp" / "generator.json", tmp_path / "exp" / "generator.safetensors"
    meta = json.loads(meta_file.read_text())
    meta["weights"].pop("sha256")
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="records no SHA-256 of generator.safetensors.*re-export"):
        load_sampler(tmp_path / "exp")
    weights = load_file(str(weights_file))
    key = next(k for k, v in weights.items() if v.is_floating_point() and v.dim() > 1)
    weights[key] = torch.full_like(weights[key], float("nan"))
    save_file(weights, str(weights_file), metadata={"format": "pt"})
    meta["weights"]["sha256"] = checkpoint.sha256_file(weights_file)     # the checksum of the NaN weights
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(UserError, match=f"{key} holds NaN or infinity"):
        load_sampler(tmp_path / "exp")
