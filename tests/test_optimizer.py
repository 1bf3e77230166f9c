"""The LR schedule, weight-decay masking and bf16 moments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from genrm_jax import optimizer


def test_paper_schedule_values():
  peak = 2e-6
  s = optimizer.make_schedule(peak, warmup_steps=1000, decay_steps=200_000,
                              min_lr_ratio=0.1)
  expect = {
      0: 0.0,
      500: peak / 2,  # linear warmup
      1000: peak,  # warmup end
      # Cosine midpoint: halfway between peak and 10% of peak.
      (1000 + 200_000) // 2: peak * (0.1 + 0.9 * 0.5) - 2.7e-14,
      200_000: 0.1 * peak,  # decay end
      250_000: 0.1 * peak,  # held after
      300_000: 0.1 * peak,
  }
  for step, value in expect.items():
    np.testing.assert_allclose(float(s(step)), value, rtol=1e-5, atol=1e-12,
                               err_msg=f"step {step}")
  # Monotone down after warmup.
  values = [float(s(t)) for t in range(1000, 200_001, 1000)]
  assert all(a >= b for a, b in zip(values, values[1:]))


def test_schedule_from_paper_config():
  config = common.get_config("gsm8k", "cot")
  s = optimizer.schedule_from_config(config)
  assert float(s(1000)) == pytest.approx(2e-6)
  assert float(s(300_000)) == pytest.approx(2e-7)


def _params():
  return {"model": {"embedder": {"input_embedding": jnp.ones((4, 3))},
                    "layers": {"attn": {"q_einsum": {"w": jnp.ones((2, 3))}},
                               "pre_attention_norm": {"scale": jnp.ones(3)}},
                    "final_norm": {"scale": jnp.ones(3)}},
          "value_head": {"kernel": jnp.ones((3, 1)), "bias": jnp.ones(1)}}


@pytest.mark.parametrize("mode,decayed", [
    ("no_norms", {"input_embedding", "w", "kernel"}),
    ("all", {"input_embedding", "w", "kernel", "scale", "bias"}),
    ("no_norms_no_embed", {"w", "kernel"}),
])
def test_weight_decay_mask(mode, decayed):
  config = common.get_config("last_letter", "genrm", "tiny")
  config.lr = 0.1
  config.optimizer.warmup_steps = 0
  config.optimizer.weight_decay = 0.5
  config.optimizer.weight_decay_mask = mode
  tx, _ = optimizer.make_optimizer(config)
  params = _params()
  state = tx.init(params)
  # Zero gradients: the update is pure decoupled decay, -lr * wd * p.
  grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(grads, state, params)
  flat = jax.tree_util.tree_flatten_with_path(updates)[0]
  for path, u in flat:
    name = path[-1].key
    expected = -0.1 * 0.5 if name in decayed else 0.0
    np.testing.assert_allclose(np.asarray(u), expected, rtol=1e-6,
                               err_msg=str(path))


def test_bf16_first_moment():
  config = common.get_config("last_letter", "genrm", "tiny")
  config.optimizer.mu_dtype = "bfloat16"
  tx, _ = optimizer.make_optimizer(config)
  state = tx.init(_params())
  dtypes = {x.dtype for x in jax.tree.leaves(state) if x.ndim >= 1}
  assert jnp.dtype(jnp.bfloat16) in dtypes and jnp.dtype(jnp.float32) in dtypes  # mu bf16, nu fp32
