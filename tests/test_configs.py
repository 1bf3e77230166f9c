"""Every experiment config loads, with and without `:tiny`."""

import pytest

from configs import common
from tests import train_utils as tu

REQUIRED = ("total_steps", "checkpoint_every", "log_every", "seed",
            "batch_size", "lr", "model", "init_from", "method", "data",
            "mesh", "optimizer")


def test_every_task_method_has_a_config():
  expected = {f"{t}_{m}.py" for t in common.TASKS for m in common.METHODS}
  assert expected == set(tu.CONFIG_FILES)


@pytest.mark.parametrize("arg", [None, "tiny"])
@pytest.mark.parametrize("name", tu.CONFIG_FILES)
def test_config_loads(name, arg):
  config = tu.load_config(name, arg)
  for key in REQUIRED:
    assert key in config, key
  task, method = name[:-3].rsplit("_", 1)
  if task.endswith("_"):
    task = task[:-1]
  assert config.method == common.METHODS[method]
  assert config.data.task.startswith(task)
  if arg == "tiny":
    assert config.model.preset == "tiny"
    assert config.total_steps <= 100 and config.batch_size <= 16
  else:
    # The paper's settings.
    assert (config.total_steps, config.batch_size, config.lr) == (
        300_000, 64, 2e-6)
    o = config.optimizer
    assert (o.warmup_steps, o.decay_steps, o.min_lr_ratio, o.weight_decay,
            o.grad_clip_norm) == (1000, 200_000, 0.1, 1e-2, 1.0)
  assert name[:-3] in config_docstring(name)


def config_docstring(name):
  import os  # pylint: disable=g-import-not-at-top
  with open(os.path.join(tu.CONFIG_DIR, name)) as f:
    return f.read().split('"""')[1]


def test_parse_arg():
  args = common.parse_arg("tiny,seed=3,name=x", tiny=False, seed=0, name="")
  assert args.tiny is True and args.seed == 3 and args.name == "x"
  with pytest.raises(ValueError, match="Unknown config argument"):
    common.parse_arg("tinny", tiny=False)


def test_locked_config_rejects_unknown_key():
  config = tu.load_config("gsm8k_cot.py")
  config.lock()
  with pytest.raises(AttributeError):
    config.totl_steps = 3
