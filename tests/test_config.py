"""config.py: presets load, every kind of bad value is refused with a ConfigError naming the field, and the checks
that come from the registry's task, model and loss properties refuse (and accept) what those properties say."""
import pytest

from gankit import config, registry
from gankit.errors import ConfigError, UserError


def _refused(values: dict, source: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        config.load(source, values)
    return e.value


@pytest.mark.parametrize("preset", config.presets())
def test_each_preset_loads_and_dumps_back_to_itself(preset):
    cfg = config.load(preset)
    assert cfg != config.Config()  # the file was read: a preset sets something
    assert config.load(None, config.yaml.safe_load(config.dump(cfg))) == cfg


def test_flags_override_the_preset():
    assert config.load("digits").steps != 7
    assert config.load("digits", {"steps": "7"}).steps == 7


def test_an_unknown_preset_lists_the_presets():
    with pytest.raises(UserError, match="presets: .*digits"):
        config.load("no-such-preset")


# ---------------------------------------------------------------------------------------------------------------
# one bad value of each kind, named by its field


@pytest.mark.parametrize("values,field,needle", [
    ({"loss": "relativistic"}, "loss", "'relativistic' is not one of minimax, ns, ls, hinge, wgan-gp"),   # choice
    ({"channels": 2}, "channels", "is not one of 0, 1, 3"),
    ({"batch_size": 0}, "batch_size", "must be a positive integer, got 0"),                               # ranges
    ({"beta1": 1.0}, "beta1", "must be in [0, 1)"),
    ({"label_smooth": 0}, "label_smooth", "must be in (0, 1]"),
    ({"z_dim": 1 << 20}, "z_dim", "must be at most"),
    ({"seed": 2**32}, "seed", "must be below 2**32"),
    ({"steps": "many"}, "steps", "expected int, got 'many'"),                                             # types
    ({"steps": 2.5}, "steps", "expected int"),
    ({"xflip": "maybe"}, "xflip", "expected true or false"),
    ({"g_lr": "inf"}, "g_lr", "expected a finite number"),
    ({"background": "pink"}, "background", "is not one of white, black, gray or #RRGGBB"),                # syntax
    ({"device": "tpu"}, "device", "is not one of auto, cpu, cuda, cuda:N"),
    ({"diffaug": "color,flip"}, "diffaug", "unknown op flip; use a comma list of color, translation, cutout"),
    ({"data": "folder:"}, "data", "use one of digits, mnist, fashion-mnist, cifar10, stacked-mnist, ring, grid, "
                                  "fake, folder:PATH, shards:PATH, fsdd, audio:PATH"),
    ({"name": "a/b"}, "name", "is not a folder name"),
])
def test_a_bad_value_is_refused_naming_the_field(values, field, needle):
    e = _refused(values)
    assert e.field == field and needle in str(e) and str(e).startswith(f"{field}: ")


def test_an_unknown_field_suggests_the_close_one():
    e = _refused({"batchsize": 4})
    assert e.field == "batchsize" and "did you mean batch_size?" in str(e)


def test_a_value_is_checked_before_the_combinations():
    """The first error is the field's own value, then how fields fit together."""
    assert _refused({"loss": "relativistic", "task": "sr", "model": "mlp"}).field == "loss"
    assert _refused({"batch_size": 0, "pack": 3}).field == "batch_size"


# ---------------------------------------------------------------------------------------------------------------
# what the task's properties allow (registry.TASKS)

SSL = dict(task="ssl", model="mlp", holdout=10)
SR = dict(task="sr", model="srresnet", img_size=32, sr_scale=4)


def test_the_tasks_own_valid_configs_load():
    assert config.load(None, SSL).task == "ssl"
    assert config.load(None, SR).task == "sr"
    assert config.load(None, {**SR, "loss": "hinge"}).loss == "hinge"


@pytest.mark.parametrize("values,field,needle", [
    ({**SSL, "cond": "concat"}, "cond", "task ssl has no conditional models"),
    ({**SR, "pack": 2}, "pack", "task sr has no packing"),
    ({**SR, "eval_metrics": "fid"}, "eval_metrics", "leave eval_metrics empty"),
    ({**SSL, "data": "ring"}, "data", "task ssl works on images, not on 2-D points"),
    ({**SSL, "holdout": 0}, "holdout", "set holdout to how many to keep out"),
    ({**SSL, "ssl_consistency": 1.0}, "ssl_consistency", "needs ema_decay > 0"),
    ({**SR, "loss": "wgan-gp"}, "loss", "task sr uses minimax, ns, ls or hinge"),
    ({**SR, "img_size": 30}, "sr_scale", "img_size 30 must be a multiple of sr_scale 4"),
    ({**SR, "img_size": 8, "sr_scale": 8}, "sr_scale", "at least 2 low-resolution pixels"),
    ({"task": "sr", "model": "dcgan"}, "model", "task sr uses model srresnet, got dcgan"),
    ({"task": "ssl"}, "model", "task ssl uses model mlp, got dcgan"),
    ({"model": "srresnet"}, "model", "task gan uses model dcgan, r3gan, mlp, wavegan or specgan, got srresnet"),
])
def test_a_task_refuses_what_its_properties_rule_out(values, field, needle):
    e = _refused(values)
    assert e.field == field and needle in str(e)


def test_task_own_fields_apply_to_that_task_only():
    """ssl's consistency term and sr's scale are checked under their tasks; task gan ignores both fields."""
    ignored = {"ssl_consistency": 1.0, "model": "mlp", "img_size": 30, "sr_scale": 4}
    config.load(None, ignored)  # under task gan: loads
    assert _refused({**ignored, "task": "ssl", "holdout": 10}).field == "ssl_consistency"
    assert _refused({**ignored, "ssl_consistency": 0.0, "task": "sr", "model": "srresnet"}).field == "sr_scale"
    config.load(None, {**SSL, "ssl_consistency": 1.0, "ema_decay": 0.99})


def test_a_loss_is_allowed_under_the_tasks_it_lists():
    for name, loss in registry.LOSSES.items():
        if "sr" in loss.tasks:
            config.load(None, {**SR, "loss": name})
        else:
            assert _refused({**SR, "loss": name}).field == "loss"
        config.load(None, {"loss": name})  # every loss trains a GAN
    # ssl's D is a classifier with its own loss: the field does not apply, whatever it says
    assert config.load(None, {**SSL, "loss": "wgan-gp"}).task == "ssl"


# ---------------------------------------------------------------------------------------------------------------
# what the model and the data set allow (registry.MODELS, registry.DATASETS)


@pytest.mark.parametrize("values,field,needle", [
    ({"img_size": 24}, "img_size", "dcgan supports 16, 32, 64, 128, got 24"),
    ({"model": "mlp", "img_size": 3}, "img_size", "must be >= 4, got 3"),
    ({"model": "mlp", "g_norm": "instance"}, "g_norm", "instance norm needs feature maps: use it with dcgan"),
    ({"model": "mlp", "d_norm": "instance"}, "d_norm", "instance norm needs feature maps"),
    ({**SSL, "g_norm": "instance"}, "g_norm", "task ssl has no model with feature maps"),
    ({"data": "ring"}, "model", "2-D data set ring needs model mlp"),
    ({"data": "grid", "model": "mlp", "diffaug": "color"}, "diffaug", "DiffAugment works on images"),
    ({"data": "ring", "model": "mlp", "xflip": True}, "xflip", "mirrors images, not 2-D points"),
    ({"data": "stacked-mnist", "channels": 1}, "channels", "stacked-mnist has 3 channels"),
    ({"data": "digits", "stream": "on"}, "stream", "on streams folder:PATH or shards:PATH data"),
    ({"pack": 3}, "pack", "batch_size 64 must be a multiple of 3"),
    ({"pack": 2, "cond": "concat"}, "pack", "packing is for unconditional models"),
    ({"pack": 2, "d_norm": "virtual_batch", "vbn_ref_size": 63}, "vbn_ref_size", "must be a multiple of pack (2)"),
    ({"c_dim": 10}, "c_dim", "a class count needs cond"),
    ({"cond": "concat", "c_dim": 1}, "c_dim", "at least 2 classes"),
])
def test_a_model_or_data_set_refuses_what_it_cannot_do(values, field, needle):
    e = _refused(values)
    assert e.field == field and needle in str(e)


@pytest.mark.parametrize("values", [
    {"model": "mlp", "img_size": 4},
    {"model": "mlp", "data": "ring", "g_norm": "layer"},
    {"model": "dcgan", "g_norm": "instance", "d_norm": "spectral"},
    {"data": "stacked-mnist", "channels": 3},
    {"data": "folder:imgs", "stream": "on", "xflip": True},
    {"data": "shards:a/{000..009}.tar", "stream": "on"},
])
def test_what_the_model_and_data_set_can_do_is_accepted(values):
    cfg = config.load(None, values)
    assert cfg.is_points == (registry.dataset(cfg.data).points)


def test_config_imports_without_torch():
    """`gankit --help` reads the config; torch takes seconds to import."""
    import subprocess
    import sys

    code = "import sys, gankit.config, gankit.registry; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
