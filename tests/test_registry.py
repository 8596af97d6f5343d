"""Every name in gankit.registry is implemented by the module of its kind, its properties say what that module
does, and the config accepts exactly the registry's names."""
import math

import pytest
import torch
from PIL import Image

from gankit import augment, config, data, latent, losses, models, registry
from gankit.errors import ConfigError, UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_each_task_has_a_trainer():
    from gankit.tasks.table import TRAINERS

    assert list(TRAINERS) == list(registry.TASKS)


# ---------------------------------------------------------------------------------------------------------------
# losses


@pytest.mark.parametrize("name", list(registry.LOSSES))
def test_each_loss_runs_through_d_loss_and_g_loss(name):
    d_real, d_fake = torch.tensor([1.5, -0.5, 0.25]), torch.tensor([-2.0, 0.5, 3.0])
    d = losses.d_loss(name, d_real, d_fake)
    g = losses.g_loss(name, d_fake, d_real if registry.is_relativistic(name) else None)
    assert d.shape == g.shape == () and math.isfinite(d.item()) and math.isfinite(g.item())


@pytest.mark.parametrize("name", list(registry.LOSSES))
def test_critic_means_d_loss_is_unbounded_below(name):
    """A critic's outputs are scores: a confident D drives its loss without bound. D's loss under any other loss is
    a distance to probabilities or margins, never below 0 (so reading D's outputs as D(x) makes sense)."""
    confident = losses.d_loss(name, torch.full((4,), 1e3), torch.full((4,), -1e3)).item()
    assert (confident < -1e3) == registry.is_critic(name)
    if not registry.is_critic(name):
        assert confident >= 0


@pytest.mark.parametrize("name", list(registry.LOSSES))
def test_relativistic_means_g_loss_reads_d_on_real_data(name):
    """A relativistic G loss changes with D's logits on real data (and refuses to go without them); any other
    ignores them."""
    d_fake = torch.tensor([-2.0, 0.5, 3.0])
    if registry.is_relativistic(name):
        with pytest.raises(ValueError, match="d_real"):
            losses.g_loss(name, d_fake)
        a, b = (losses.g_loss(name, d_fake, torch.full((3,), v)).item() for v in (0.0, 2.0))
        assert b > a
    else:
        assert losses.g_loss(name, d_fake).item() == losses.g_loss(name, d_fake, torch.full((3,), 5.0)).item()


def test_is_critic_refuses_an_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss 'relativistic'; known: minimax"):
        registry.is_critic("relativistic")


# ---------------------------------------------------------------------------------------------------------------
# priors


@pytest.mark.parametrize("name", list(registry.PRIORS))
def test_each_prior_draws_where_its_support_says(name):
    z_dim = 16
    z = latent.sample_z(256, z_dim, name, torch.Generator().manual_seed(0))
    assert z.shape == (256, z_dim) and torch.isfinite(z).all()
    support = registry.PRIORS[name].support
    norms = z.norm(dim=1)
    on_sphere = torch.allclose(norms, torch.full_like(norms, math.sqrt(z_dim)), rtol=1e-5)
    assert on_sphere == (support == "sphere")
    assert (z.abs().max() <= 1) == (support == "cube")


@pytest.mark.parametrize("name", list(registry.PRIORS))
def test_truncation_and_interpolation_stay_in_the_support(name):
    z = latent.sample_z(2, 9, name, torch.Generator().manual_seed(1))
    path = latent.interpolate(z[0], z[1], 5, name)                     # (5, 9)
    truncated = latent.truncate(z, 0.5, name)
    if registry.PRIORS[name].support == "sphere":
        assert torch.allclose(path.norm(dim=1), torch.full((5,), 3.0), rtol=1e-4)
        assert torch.allclose(truncated, z, atol=1e-6)                  # back on the sphere: unchanged
    else:
        assert torch.allclose(truncated, 0.5 * z)
    if registry.PRIORS[name].support == "cube":                         # a straight line: the midpoint is the mean
        assert torch.allclose(path[2], (z[0] + z[1]) / 2, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# models: a small valid config of each, for the first task that uses it

SMALL = dict(z_dim=8, g_width=8, d_width=8, g_layers=1, d_layers=1, batch_size=4, vbn_ref_size=4)
MODEL_CASES = {"dcgan": dict(img_size=16), "r3gan": dict(img_size=8), "mlp": dict(img_size=8), "srresnet": dict(img_size=16, sr_scale=4),
               "wavegan": dict(data="fsdd", audio_length=1024), "specgan": dict(data="fsdd", img_size=16,
                                                                                 audio_length=256),
               "unet": dict(data="moving-mnist", img_size=16, context=2, horizon=1, holdout=10)}


def _data_shape(cfg) -> tuple[int, ...]:
    """One example of the model's data: a clip (1, audio_length) for audio models, else an image."""
    return (1, cfg.audio_length) if registry.MODELS[cfg.model].audio else (1, cfg.img_size, cfg.img_size)


def _config(model: str, **extra) -> config.Config:
    return config.load(None, {**SMALL, "model": model, "task": registry.MODELS[model].tasks[0],
                              **MODEL_CASES[model], **extra})


def _g_input(G, cfg, n: int = 3) -> torch.Tensor:
    """What G maps: latents, low-resolution images for an upscaler, or past frames (stacked as channels) for a
    predictor, which draws its own z (its spec says which)."""
    if "context" in G.spec:
        return torch.rand(n, G.spec["context"] * G.spec["channels"], cfg.img_size, cfg.img_size) * 2 - 1
    if "scale" in G.spec:
        low = cfg.img_size // G.spec["scale"]
        return torch.rand(n, G.spec["channels"], low, low) * 2 - 1
    return torch.randn(n, cfg.z_dim)


def test_every_model_has_a_test_case():
    assert set(MODEL_CASES) == set(registry.MODELS)


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_each_model_builds_through_models_build_and_from_its_spec(name):
    cfg = _config(name)
    torch.manual_seed(0)
    G, D = models.build(cfg, _data_shape(cfg))
    g_in = _g_input(G, cfg)
    x = G(g_in)
    # waveforms for wavegan; specgan's G makes log-magnitude spectrograms, img_size a side
    assert x.shape == ((3, 1, cfg.audio_length) if name == "wavegan" else (3, 1, cfg.img_size, cfg.img_size))
    assert (D(x, g_in) if "context" in D.spec else D(x)).shape == (3,)   # a predictor's D judges (future, past)
    assert G.spec["arch"] == D.spec["arch"] == name
    G2, D2 = models.generator_from_spec(G.spec), models.discriminator_from_spec(D.spec)
    assert G2.state_dict().keys() == G.state_dict().keys() and D2.state_dict().keys() == D.state_dict().keys()


@pytest.mark.parametrize("name", [m for m, e in registry.MODELS.items() if not e.audio])  # image sizes
def test_model_sizes_are_the_sizes_it_builds(name):
    sizes = registry.MODELS[name].sizes
    for size in (4, 8, 16, 24, 32, 64, 128):
        cfg = _config(name)
        cfg = config.Config(**{**cfg.to_dict(), "img_size": size})  # not validated: the model itself decides
        if sizes is None:
            models.build(cfg, (1, size, size))
        elif size in sizes:
            assert models.build(cfg, (1, size, size))[0](torch.randn(2, 8)).shape == (2, 1, size, size)
        else:
            with pytest.raises(ValueError):
                models.build(cfg, (1, size, size))


@pytest.mark.parametrize("name", registry.names(registry.MODELS, points=True))
def test_point_models_generate_points(name):
    cfg = _config(name, data="ring")
    G, D = models.build(cfg, (2,))
    assert G(torch.randn(5, 8)).shape == (5, 2) and D(torch.randn(5, 2)).shape == (5,)


@pytest.mark.parametrize("model", ["dcgan", "mlp"])  # the models whose `g_norm` and `d_norm` apply
@pytest.mark.parametrize("norm", list(registry.NORMS))
def test_each_norm_builds_or_needs_feature_maps(model, norm):
    """A norm that needs feature maps fails on a model without them: what the registry's two properties say."""
    cfg = _config(model)
    base = cfg.to_dict()
    base.update(d_norm=norm, g_norm=norm if registry.NORMS[norm].g else "batch")
    cfg = config.Config(**base)
    G, D = models.build(cfg, (1, cfg.img_size, cfg.img_size))
    G.set_reference(torch.randn(4, 8))
    D.set_reference(torch.rand(4, 1, cfg.img_size, cfg.img_size))
    run = lambda: D(G(torch.randn(4, 8)))  # noqa: E731
    if registry.NORMS[norm].feature_maps and not registry.MODELS[model].feature_maps:
        with pytest.raises((ValueError, RuntimeError)):
            run()
    else:
        assert run().shape == (4,)
    spectral = any("parametrizations" in k for k in D.state_dict())
    assert spectral == (norm == "spectral")


def test_archs_hold_every_model():
    assert set(registry.MODELS) <= set(models.ARCHS)
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        models.build(config.Config(model="resnet"), (1, 16, 16))


# ---------------------------------------------------------------------------------------------------------------
# data sets


def _folder_of_images(root):
    for i in range(4):
        Image.new("RGB", (12, 12), (60 * i, 0, 0)).save(root / f"{i}.png")
    return root


@pytest.mark.parametrize("name", list(registry.DATASETS))
def test_each_data_set_is_known_to_the_loader(name, tmp_path):
    """Each name loads (points exactly when the registry says so) or fails on missing files, never as unknown."""
    entry = registry.DATASETS[name]
    value = name
    if entry.prefix:
        images = _folder_of_images(tmp_path)
        value = name + str(images)
        if name == "shards:":
            from gankit.data import shards

            out = tmp_path / "shards"
            shards.write_shards(images, out)
            value = name + str(out)
    assert registry.dataset(value) is entry
    try:
        ds = data.load(value, data_dir=str(tmp_path / "empty"), img_size=8, n_points=64)
    except UserError as e:  # MNIST and friends need files that the tests do not download
        assert "unknown data set" not in str(e)
        return
    assert ds.is_points == entry.points
    if entry.channels:
        assert ds.shape[0] == entry.channels


def test_dataset_lookup():
    assert registry.dataset("folder:") is None and registry.dataset("shards:") is None  # a prefix needs a path
    assert registry.dataset("imagenet") is None
    assert registry.dataset("shards:a/{000..009}.tar").files
    assert not registry.dataset("digits").files


# ---------------------------------------------------------------------------------------------------------------
# DiffAugment


def test_diffaugment_implements_exactly_the_registry_ops():
    assert list(augment.OPS) == list(registry.DIFFAUG_OPS)


@pytest.mark.parametrize("name", list(registry.DIFFAUG_OPS))
def test_each_diffaugment_op_changes_its_input(name):
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    out = augment.diff_augment(x, name)
    assert out.shape == x.shape and not torch.allclose(out, x)


# ---------------------------------------------------------------------------------------------------------------
# the config takes its names from the registry

CHOICE_FIELDS = [("task", registry.TASKS), ("model", registry.MODELS), ("loss", registry.LOSSES),
                 ("prior", registry.PRIORS), ("d_norm", registry.NORMS), ("guide", registry.GUIDES)]


@pytest.mark.parametrize("field,table", CHOICE_FIELDS)
def test_config_choices_are_the_registry_names(field, table):
    assert config.FIELDS[field].metadata["choices"] == tuple(table)


def test_g_norm_choices_are_the_norms_g_may_use():
    assert config.FIELDS["g_norm"].metadata["choices"] == tuple(n for n, e in registry.NORMS.items() if e.g)
    assert "spectral" not in config.FIELDS["g_norm"].metadata["choices"]


def test_config_constants_come_from_the_registry():
    assert config.DATASETS == tuple(n for n, d in registry.DATASETS.items() if not d.prefix)
    assert config.POINT_DATASETS == ("ring", "grid")
    assert config.FILE_DATA == ("folder:", "shards:")
    assert config.DCGAN_SIZES == registry.MODELS["dcgan"].sizes == (16, 32, 64, 128)
    assert config.TASK_MODELS == {name: task.models for name, task in registry.TASKS.items()}
    assert config.TASK_MODELS["gan"] == ("dcgan", "r3gan", "mlp", "wavegan", "specgan")
    assert config.TASK_MODELS["ssl"] == ("mlp",) and config.TASK_MODELS["sr"] == ("srresnet",)
    assert config.DIFFAUG_OPS == tuple(registry.DIFFAUG_OPS)


@pytest.mark.parametrize("field,bad,table", [
    ("task", "vae", registry.TASKS), ("model", "resnet", registry.MODELS), ("loss", "relativistic", registry.LOSSES),
    ("prior", "cube", registry.PRIORS), ("g_norm", "group", {n: 0 for n in config.NORMS}),
    ("d_norm", "group", registry.NORMS), ("data", "imagenet", registry.DATASETS),
    ("diffaug", "color,flip", registry.DIFFAUG_OPS),
])
def test_config_refuses_an_unknown_name_naming_the_field_and_listing_the_registry(field, bad, table):
    with pytest.raises(ConfigError) as e:
        config.load(None, {field: bad})
    assert e.value.field == field
    message = str(e.value)
    assert message.startswith(f"{field}: ")
    assert all(name in message for name in table)
