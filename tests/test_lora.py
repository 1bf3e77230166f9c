"""LoRA: adapters start as the base model, fold into it exactly, and the
trainer trains only them (frozen weights bit for bit, no optimizer state for
them), resumes, shards and exports an ordinary bundle."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from genrm_jax import checkpointing
from genrm_jax import lora
from genrm_jax.models import checkpoints as model_checkpoints
from genrm_jax.models import gemma
from tests import train_utils as tu

TOKENS = jnp.array([[2, 5, 7, 9, 11, 13], [2, 8, 6, 4, 3, 1]])

# Small models that cover every adapted projection: separate q / kv (tiny,
# GQA with the transposed gating weight of Gemma 3) and the fused qkv of
# multi-head models (Gemma 1 7B's layout).
MODELS = {
    'tiny': dict(),
    'gemma3_like': dict(num_heads=4, num_kv_heads=2, transpose_gating_einsum=True,
                        use_qk_norm=True),
    'fused_qkv': dict(num_heads=4, num_kv_heads=4),
}


def _config(name, **more):
  return gemma.get_config('tiny', dtype='float32', **MODELS[name], **more)


def _logits(config, params):
  out = gemma.Transformer(config).apply({'params': params}, TOKENS)
  return np.asarray(getattr(out, 'logits', out))


def _with_base(config, base, seed=1, randomize_b=False):
  """LoRA params of `config` whose non-adapter leaves are `base`'s."""
  flat = traverse_util.flatten_dict(gemma.init_params(config, seed))
  base_flat = traverse_util.flatten_dict(base)
  assert set(flat) - set(base_flat) == {k for k in flat if lora.is_adapter(k)}
  flat.update(base_flat)
  if randomize_b:
    rng = np.random.default_rng(seed)
    for k in flat:
      if k[-1].endswith('lora_b'):
        flat[k] = jnp.asarray(rng.normal(size=flat[k].shape) * 0.05, flat[k].dtype)
  return traverse_util.unflatten_dict(flat)


@pytest.mark.parametrize('name', list(MODELS))
def test_adapters_start_as_the_base_model_and_merge_exactly(name):
  base_cfg = _config(name)
  lora_cfg = base_cfg.replace(lora_rank=4, lora_alpha=8.0)
  base = gemma.init_params(base_cfg, 0)
  names = {k[-2] if k[-1] in ('lora_a', 'lora_b') else k[-1].rsplit('_lora_', 1)[0]
           for k in traverse_util.flatten_dict(gemma.init_params(lora_cfg, 0))
           if lora.is_adapter(k)}
  want = {'qkv_einsum'} if name == 'fused_qkv' else {'q_einsum', 'kv_einsum'}
  assert names == want | {'attn_vec_einsum', 'gating_einsum', 'linear'}
  # B = 0 at initialisation: the base model's logits, exactly.
  np.testing.assert_array_equal(_logits(lora_cfg, _with_base(lora_cfg, base)),
                                _logits(base_cfg, base))
  # Trained adapters (random B): folding them in gives the same function, on
  # stacked params and on per-layer ones (the sampler's layout).
  adapted = _with_base(lora_cfg, base, randomize_b=True)
  want_logits = _logits(lora_cfg, adapted)
  assert np.abs(want_logits - _logits(base_cfg, base)).max() > 1e-3  # they matter
  merged = lora.merge(lora_cfg, adapted)
  assert not any(lora.is_adapter(k) for k in traverse_util.flatten_dict(merged))
  np.testing.assert_allclose(_logits(base_cfg, merged), want_logits, atol=2e-5, rtol=1e-5)
  per_layer = lora.merge(lora_cfg, gemma.unstack_layers(adapted))
  np.testing.assert_allclose(
      _logits(base_cfg.replace(scan_layers=False), per_layer), want_logits,
      atol=2e-5, rtol=1e-5)


def test_targets_and_config_errors():
  assert lora.parse_targets('attention') == ('qkv_einsum', 'q_einsum', 'kv_einsum',
                                             'attn_vec_einsum')
  assert lora.parse_targets('mlp,q_einsum') == ('gating_einsum', 'linear', 'q_einsum')
  with pytest.raises(ValueError, match='lora_targets'):
    lora.parse_targets('qproj')
  with pytest.raises(ValueError, match='lora_rank'):
    gemma.get_config('tiny', lora_rank=-1)
  with pytest.raises(ValueError, match='lora_targets'):
    gemma.get_config('tiny', lora_rank=2, lora_targets=('up_proj',))
  # Only the MLP adapted: no attention adapters.
  cfg = gemma.get_config('tiny', lora_rank=2, lora_targets=lora.parse_targets('mlp'))
  flat = traverse_util.flatten_dict(gemma.abstract_params(cfg))
  assert {k[-1] for k in flat if lora.is_adapter(k)} == {
      'gating_einsum_lora_a', 'gating_einsum_lora_b', 'linear_lora_a', 'linear_lora_b'}


def _flat(tree):
  """'a/b/0/c' -> leaf, for a checkpoint's nested dicts and lists."""
  def key(path):
    return '/'.join(str(getattr(p, 'key', getattr(p, 'idx', p))) for p in path)
  return {key(path): np.asarray(v) for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _lora_config(**more):
  settings = dict(total_steps=3, checkpoint_every=1, model__lora_rank=4,
                  model__lora_alpha=8.0, lr=3e-3)
  return tu.tiny_config('last_letter_genrm', **{**settings, **more})


def test_training_updates_only_the_adapters_and_exports_a_plain_bundle(tmp_path):
  # The base model, saved as an official checkpoint: what `init_from` reads.
  full = tu.tiny_config('last_letter_genrm', total_steps=1)
  base_cfg = gemma.get_config(full.model.preset, **{
      k: v for k, v in full.model.to_dict().items()
      if k not in ('preset', 'lora_targets') and v is not None})
  base = gemma.init_params(base_cfg, 3)
  ckpt = str(tmp_path / 'base')
  checkpointing.export_params(base, ckpt)

  workdir = tmp_path / 'lora'
  metrics = tu.run(_lora_config(init_from=ckpt, export_params=True), workdir)
  assert np.isfinite(metrics['loss'])
  steps = {s: _flat(tu.restore_raw(str(workdir), s)) for s in (1, 3)}
  # Checkpoints hold the adapters, not the frozen weights (init_from has them).
  params = [k for k in steps[3] if k.startswith('params/')]
  assert params and all('lora_' in k for k in params), params
  for key in params:
    if key.endswith('lora_b'):  # zero at the start, trained since
      assert np.abs(steps[3][key]).max() > 0, key
      assert not np.array_equal(steps[3][key], steps[1][key]), key
  # AdamW moments exist for the adapters only.
  moments = [k for k in steps[3] if k.startswith('opt_state/') and '/mu/' in k]
  assert moments and all('lora_' in k for k in moments), moments
  # Step 1's loss is the base model's: the adapters start at zero.
  base_run = tu.run(tu.tiny_config('last_letter_genrm', total_steps=1, init_from=ckpt),
                    tmp_path / 'full')
  first = tu.train_records(str(workdir))[0]
  assert first['loss'] == pytest.approx(base_run['loss'], rel=1e-6)

  # The export: the adapters folded in, an ordinary rank-0 bundle.
  export = workdir / 'export'
  model_json = json.loads((export / 'model.json').read_text())
  assert model_json['config']['lora_rank'] == 0
  # It was merged from the in-memory state: the checkpoint's adapters beside
  # the untouched base give the same function, so training left the frozen
  # weights as they were.
  restored = model_checkpoints.load_params(str(export / 'params'), base_cfg)
  lora_cfg = base_cfg.replace(lora_rank=4, lora_alpha=8.0)
  adapters = traverse_util.unflatten_dict(
      {tuple(k.split('/')[2:]): v for k, v in steps[3].items()
       if k.startswith('params/model/')})
  np.testing.assert_allclose(_logits(base_cfg, restored),
                             _logits(lora_cfg, lora.combine(adapters, base)),
                             atol=2e-5, rtol=1e-5)


def test_lora_resumes_exactly_and_shards(tmp_path):
  straight = tu.run(_lora_config(), tmp_path / 'straight')
  tu.run(_lora_config(total_steps=2), tmp_path / 'resumed')
  resumed = tu.run(_lora_config(), tmp_path / 'resumed')
  assert resumed['loss'] == straight['loss']
  a = _flat(tu.restore_raw(str(tmp_path / 'straight'), 3))
  b = _flat(tu.restore_raw(str(tmp_path / 'resumed'), 3))
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  # FSDP x tensor over 8 fake devices: the same training, to rounding.
  sharded = tu.run(_lora_config(mesh=(2, 2, 2)), tmp_path / 'sharded', num_devices=8)
  assert sharded['loss'] == pytest.approx(straight['loss'], rel=1e-4)


def test_discriminative_lora_trains_its_value_head(tmp_path):
  workdir = tmp_path / 'disc'
  tu.run(tu.tiny_config('last_letter_disc', total_steps=2, checkpoint_every=1,
                        model__lora_rank=2, lr=3e-3, export_params=True), workdir)
  one, two = (_flat(tu.restore_raw(str(workdir), s)) for s in (1, 2))
  heads = [k for k in two if k.startswith('params/value_head/')]
  assert heads and any(not np.array_equal(one[k], two[k]) for k in heads)
  assert any(k.startswith('opt_state/') and 'value_head' in k for k in two)
  assert os.path.exists(workdir / 'export' / 'value_head.npz')


def test_dpo_lora_reference_is_the_frozen_base(tmp_path):
  """No second copy of the weights: the reference is the model with its
  adapters zeroed, so at the start policy = reference and the loss is
  -log sigmoid(0) = log 2, exactly."""
  workdir = tmp_path / 'dpo'
  tu.run(tu.tiny_config('last_letter_dpo', total_steps=4, model__lora_rank=2, lr=1e-2),
         workdir)
  records = tu.train_records(str(workdir))
  assert records[0]['loss'] == pytest.approx(np.log(2), abs=1e-6)
  # (Warmup: step 1's learning rate is 0.) The adapters moved the policy
  # away from the reference, which did not move.
  assert abs(records[-1]['loss'] - np.log(2)) > 1e-4


def test_resuming_with_other_lora_settings_lists_what_differs(tmp_path):
  workdir = tmp_path / 'run'
  tu.run(_lora_config(total_steps=1), workdir)
  with pytest.raises(ValueError, match=r"does not fit this run's state: .*arrays differ in "
                     r"shape.*params/model/layers/attn/kv_einsum/lora_a \(2, 64, 4\) vs "
                     r"\(2, 64, 2\).*start a new --workdir"):
    tu.run(_lora_config(total_steps=2, model__lora_rank=2), workdir)
  with pytest.raises(ValueError, match=r"this run needs .* arrays the checkpoint lacks: "
                     r"params/model/embedder/input_embedding"):
    tu.run(_lora_config(total_steps=2, model__lora_rank=0), workdir)
