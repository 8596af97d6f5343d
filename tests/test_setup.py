"""gankit.setup: the config filled in and checked against the data, the held-out split, seeding, the models and their
fixed inputs, the one-line out-of-memory error and the device check. Tiny models on the digits that ship with
scikit-learn; nothing is trained."""

import collections
import random

import numpy as np
import pytest
import torch

from gankit import config, data as datasets, distributed, setup
from gankit.errors import ConfigError, UserError

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"z_dim": 8, "g_width": 8, "d_width": 8, "batch_size": 16}


def _cfg(**fields):
    return config.load(None, {**SMALL, **fields})


@pytest.fixture(scope="module")
def digits8():
    return datasets.load("digits", img_size=8)


@pytest.fixture(scope="module")
def digits16():
    return datasets.load("digits", img_size=16)


def _field(excinfo) -> str:
    return excinfo.value.field


def test_resolve_fills_in_what_the_data_decides(digits8):
    rgb = datasets.load("digits", img_size=8, channels=3)
    assert setup.resolve(_cfg(), digits8).channels == 1
    assert setup.resolve(_cfg(), rgb).channels == 3
    assert setup.resolve(_cfg(channels=1), rgb).channels == 1                  # an explicit count is kept
    assert setup.resolve(_cfg(), digits8).c_dim == 0                           # unconditional: no classes
    assert setup.resolve(_cfg(cond="concat"), digits8).c_dim == 10
    assert setup.resolve(_cfg(cond="projection", c_dim=10), digits8).c_dim == 10


def test_resolve_refuses_what_the_data_cannot_give(digits8):
    unlabelled = datasets.load("fake", img_size=8, n_points=32)
    with pytest.raises(ConfigError) as e:
        setup.resolve(_cfg(data="fake", cond="concat"), unlabelled)
    assert _field(e) == "cond" and "no class labels" in str(e.value)
    with pytest.raises(ConfigError) as e:
        setup.resolve(_cfg(cond="concat", c_dim=5), digits8)
    assert _field(e) == "c_dim" and "10 classes" in str(e.value)
    ten = digits8.subset(torch.arange(10))
    assert setup.resolve(_cfg(batch_size=10), ten).batch_size == 10
    with pytest.raises(ConfigError) as e:
        setup.resolve(_cfg(batch_size=11), ten)
    assert _field(e) == "batch_size" and "exceeds the 10 " in str(e.value)          # the data set's size
    with pytest.raises(ConfigError) as e:
        setup.resolve(_cfg(batch_size=6), ten, world_size=2)                  # 6 x 2 processes
    assert _field(e) == "batch_size"


def _rows(part):
    """Each example (image and label) as bytes, counted: a multiset that duplicates cannot fool."""
    return collections.Counter(x.numpy().tobytes() + bytes([int(y)]) for x, y in zip(part.x, part.y))


def test_holdout_splits_the_data_into_disjoint_parts_fixed_across_seeds():
    whole, train, held = setup.load_parts(_cfg(model="mlp", img_size=8, holdout=50, seed=0))
    assert (len(whole), len(train), len(held)) == (1797, 1747, 50)
    assert _rows(train) + _rows(held) == _rows(whole)                         # every example in exactly one part
    assert setup.held_out(held) is held
    _, train5, held5 = setup.load_parts(_cfg(model="mlp", img_size=8, holdout=50, seed=5))
    assert torch.equal(held5.x, held.x) and torch.equal(held5.y, held.y)
    assert torch.equal(setup.load_data(_cfg(model="mlp", img_size=8, holdout=50), "held_out").x, held.x)


def test_without_holdout_nothing_is_held_out():
    whole, train, held = setup.load_parts(_cfg(model="mlp", img_size=8))
    assert held is None and len(train) == len(whole) == 1797
    with pytest.raises(ConfigError) as e:
        setup.held_out(held)
    assert _field(e) == "holdout" and "holdout set to the number" in str(e.value) and "--" not in str(e.value)


def _draws():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_seed_everything_seeds_torch_numpy_and_random():
    setup.seed_everything(7)
    first = _draws()
    _draws()
    setup.seed_everything(7)
    assert _draws() == first
    setup.seed_everything(8)
    other = _draws()
    assert all(a != b for a, b in zip(other, first))                          # each of the three RNGs moved
    setup.seed_everything(2**32 + 7)                                          # seed + rank past NumPy's limit
    assert np.random.rand(3).tolist() == first[1]


@pytest.mark.parametrize("channels_last", [True, False])
def test_build_models_puts_dcgan_in_channels_last_when_asked(digits16, channels_last):
    cfg = setup.resolve(_cfg(img_size=16, channels_last=channels_last), digits16)
    G, D, _ = setup.build_models(cfg, digits16, torch.device("cpu"))
    for model in (G, D):
        maps = [p for p in model.parameters() if p.dim() == 4]
        layout = torch.channels_last if channels_last else torch.contiguous_format
        assert maps and all(p.is_contiguous(memory_format=layout) for p in maps)
        assert any(not p.is_contiguous() for p in maps) == channels_last      # NHWC differs from NCHW
    first = next(m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    seen = []
    first.register_forward_hook(lambda m, i, out: seen.append(out))
    with torch.no_grad():
        G.eval()(torch.randn(2, 8))
    assert seen[0].shape[1] > 1 and seen[0].is_contiguous() != channels_last   # G computes in NHWC


def test_build_models_keeps_an_averaged_copy_of_g_only_with_ema_decay(digits8):
    cfg = setup.resolve(_cfg(model="mlp", img_size=8), digits8)
    assert setup.build_models(cfg, digits8, torch.device("cpu"))[2] is None
    cfg = setup.resolve(_cfg(model="mlp", img_size=8, ema_decay=0.99), digits8)
    G, _, G_ema = setup.build_models(cfg, digits8, torch.device("cpu"))
    a, b = G.state_dict(), G_ema.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not G_ema.training and not any(p.requires_grad for p in G_ema.parameters())
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    assert all(not torch.equal(p, q) for p, q in zip(G.parameters(), G_ema.parameters()))   # a copy, not a view


def test_fixed_inputs_depend_on_the_seed_alone_and_cycle_through_the_classes(digits16):
    def fixed(seed, global_seed):
        cfg = setup.resolve(_cfg(img_size=16, cond="concat", grid_n=12, seed=seed), digits16)
        G, D, _ = setup.build_models(cfg, digits16, torch.device("cpu"))
        torch.manual_seed(global_seed)
        torch.rand(global_seed + 1)
        return setup.fixed_inputs(cfg, digits16, G, D, torch.device("cpu"))

    z, y = fixed(3, 0)
    z_again, y_again = fixed(3, 11)
    assert z.shape == (12, 8) and torch.equal(z, z_again) and torch.equal(y, y_again)
    assert y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert not torch.allclose(fixed(4, 0)[0], z)
    cfg = setup.resolve(_cfg(img_size=16, grid_n=12), digits16)
    G, D, _ = setup.build_models(cfg, digits16, torch.device("cpu"))
    assert setup.fixed_inputs(cfg, digits16, G, D, torch.device("cpu"))[1] is None


def test_memory_errors_turn_a_failed_allocation_into_one_line():
    with pytest.raises(UserError) as e:
        with setup.memory_errors("building the models"):
            raise RuntimeError("CUDA error: tried to allocate 2.00 GiB (GPU 0; 1 GiB total)\nlong CUDA details")
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "out of memory while building the models" in msg
    assert "tried to allocate 2.00 GiB" in msg and "batch_size" in msg
    assert e.value.__suppress_context__                                       # raised from None: no chained trace
    with pytest.raises(UserError, match="MemoryError"):
        with setup.memory_errors("x"):
            raise MemoryError()
    other = RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")
    with pytest.raises(RuntimeError) as e:
        with setup.memory_errors("x"):
            raise other
    assert e.value is other and not isinstance(e.value, UserError)


def test_resolve_device_refuses_cuda_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ctx = distributed.Context()
    for name in ("cuda:3", "cuda"):
        with pytest.raises(ConfigError) as e:
            setup.resolve_device(name, ctx)
        assert _field(e) == "device" and "no CUDA device" in str(e.value)
    assert setup.resolve_device("auto", ctx) == setup.resolve_device("cpu", ctx) == torch.device("cpu")


def test_gankit_data_refuses_sequences_before_reading_them(tmp_path):
    from gankit import config as config_mod
    from gankit.errors import UserError
    from gankit.setup import preview_data

    cfg = config_mod.load("smmnist-predict", {"data_dir": str(tmp_path / "nothing")})
    with pytest.raises(UserError, match="smoving-mnist holds sequences of frames"):
        preview_data(cfg, tmp_path / "reals.png")
    assert not (tmp_path / "reals.png").exists()
