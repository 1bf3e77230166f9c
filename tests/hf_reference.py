"""Small Gemma checkpoints in HF transformers' layout, and their golden logits.

`hf_weights(spec)` builds seeded random weights named and shaped as HF's
PyTorch `GemmaForCausalLM` state dict (`nn.Linear` weights [out, in]).
`GOLDEN` holds logits that HF's own Flax Gemma (`FlaxGemmaForCausalLM`,
transformers 4.46.3, the last release with it; Gemma 2 and 3 have no Flax
port) computed from those weights, with the weights turned into its Flax
layout by transposing each linear weight. Regenerate (not needed in CI):

  pip install --target /tmp/hfpkgs --no-deps transformers==4.46.3 \
      'tokenizers<0.21' 'huggingface_hub<1' safetensors regex pyyaml filelock requests \
      tqdm packaging fsspec
  PYTHONPATH=/tmp/hfpkgs:. JAX_PLATFORMS=cpu python tests/hf_reference.py
"""

import numpy as np

# Gemma 1 shapes: MQA like Gemma 2B, and multi-head (fused qkv) like 7B.
SPECS = {
    "mqa": dict(vocab=96, d=32, f=64, layers=2, heads=4, kv=1, head_dim=16),
    "mha": dict(vocab=96, d=32, f=48, layers=2, heads=2, kv=2, head_dim=16),
}
TOKENS = [[2, 17, 5, 88, 41, 9, 60, 3], [2, 90, 12, 12, 77, 30, 1, 54]]


def hf_weights(spec: dict, seed: int = 0) -> dict[str, np.ndarray]:
  """HF `GemmaForCausalLM` state dict (float32), seeded."""
  rng = np.random.default_rng(seed)
  normal = lambda *shape: (rng.normal(size=shape) * 0.2).astype(np.float32)
  d, f, h = spec["d"], spec["f"], spec["head_dim"]
  out = {"model.embed_tokens.weight": normal(spec["vocab"], d),
         "model.norm.weight": normal(d)}
  for i in range(spec["layers"]):
    p = f"model.layers.{i}."
    out.update({
        p + "input_layernorm.weight": normal(d),
        p + "post_attention_layernorm.weight": normal(d),
        p + "self_attn.q_proj.weight": normal(spec["heads"] * h, d),
        p + "self_attn.k_proj.weight": normal(spec["kv"] * h, d),
        p + "self_attn.v_proj.weight": normal(spec["kv"] * h, d),
        p + "self_attn.o_proj.weight": normal(d, spec["heads"] * h),
        p + "mlp.gate_proj.weight": normal(f, d),
        p + "mlp.up_proj.weight": normal(f, d),
        p + "mlp.down_proj.weight": normal(d, f),
    })
  return out


def hf_config(spec: dict) -> dict:
  """config.json of such a checkpoint."""
  return {"model_type": "gemma", "architectures": ["GemmaForCausalLM"],
          "vocab_size": spec["vocab"], "hidden_size": spec["d"],
          "intermediate_size": spec["f"], "num_hidden_layers": spec["layers"],
          "num_attention_heads": spec["heads"], "num_key_value_heads": spec["kv"],
          "head_dim": spec["head_dim"], "hidden_act": "gelu_pytorch_tanh",
          "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6,
          "rope_theta": 10000.0, "max_position_embeddings": 64,
          "torch_dtype": "float32"}


# logits[:, :, :8] of FlaxGemmaForCausalLM (float32) on TOKENS, per spec.
GOLDEN = {
    'mqa': np.array([[[0.013546, 1.697303, 4.474181, 0.600246, -0.454997, -0.701957, -0.989083, 0.172171],
        [0.912097, 1.727147, 2.579056, 0.033679, -0.031485, -0.301266, 1.211538, -0.709556],
        [0.430934, 1.936955, 3.022252, -1.404072, 0.759333, 0.307169, 1.199391, -2.454941],
        [1.372729, -0.811430, -1.186289, 0.585063, -0.362617, -2.238810, -0.319447, 1.721958],
        [-0.613395, 0.581853, 1.335802, -1.865329, -0.551595, -1.101483, -1.322070, -0.649058],
        [-0.366978, -0.250536, -1.882308, 0.909742, 0.571148, -0.570369, 0.771416, -0.850911],
        [-2.337083, 1.219870, 2.181968, -0.406435, 0.103079, 0.722746, -2.687088, -1.272191],
        [1.371334, 0.088071, 2.175521, 1.767681, -0.941608, -1.384767, -0.964439, 0.603511]],
        
        [[0.013546, 1.697303, 4.474181, 0.600246, -0.454997, -0.701957, -0.989083, 0.172171],
        [0.255733, 0.161855, 0.517432, 2.567828, 1.157929, -0.694295, 0.548387, 2.792510],
        [0.180391, 0.203661, 0.512517, 1.149806, 0.706677, 1.150702, 4.007330, 0.702930],
        [0.247618, 0.034142, 0.254091, 1.006174, 0.585840, 1.355723, 4.059660, 0.312028],
        [-0.555590, -0.932348, -3.097869, 1.702637, -0.924935, 1.468815, -0.261034, -0.292089],
        [0.452714, -1.105776, -1.888202, 0.268662, -1.371348, 1.919820, 0.626081, 0.992638],
        [-0.231333, 2.483919, 1.140425, 1.324616, 0.424352, 0.394201, -0.599607, 1.111618],
        [0.771807, -1.445276, -2.742691, 2.726804, -0.683329, -0.329681, -2.602408, 0.260601]]], dtype=np.float32),
    'mha': np.array([[[0.719200, 1.218445, 3.975028, -0.379734, -0.915741, 0.343356, 1.508774, 0.971547],
        [1.314472, -0.597199, -1.221116, 1.023494, -0.598483, -0.320282, -0.024790, 0.978324],
        [0.378486, -1.070190, -0.571498, -1.958527, -0.958944, 1.833044, 1.526362, -2.128808],
        [0.835326, -0.122694, 1.495009, -1.489385, -0.107635, 0.394130, 0.089082, -0.641323],
        [0.919311, 0.231563, -0.216346, 1.652417, -0.822419, -0.965974, -1.654543, 1.719797],
        [-0.067805, -1.820656, -1.744175, -0.033674, -0.738126, 0.029707, -0.433309, 0.358836],
        [-0.285029, 0.271598, 0.790041, -0.039054, 1.298846, 0.527895, -0.270583, -1.181369],
        [2.061318, -1.713098, 0.009916, 3.115626, 0.277804, -0.783462, -0.706035, 0.839416]],
        
        [[0.719200, 1.218445, 3.975028, -0.379734, -0.915741, 0.343356, 1.508774, 0.971547],
        [0.634991, 0.437741, 0.379144, 0.908102, -0.951009, -0.328888, 0.732525, 0.963811],
        [1.363417, 0.079873, -0.433098, 0.454058, -0.192745, 0.057518, 2.618191, 2.203567],
        [1.293398, 0.099734, -0.447584, 0.492241, -0.380781, 0.141253, 2.656401, 2.311620],
        [1.808917, -0.687889, -0.802036, -0.174476, 0.277235, -0.483968, 0.703433, -1.563602],
        [1.757211, 0.651914, 0.907762, -1.231574, -0.002713, -0.303197, 1.273149, -0.228854],
        [1.292438, 2.786270, 0.607587, -0.738838, 1.077297, -1.583158, 0.733772, -1.444113],
        [-0.045377, 2.208977, -0.167157, 0.306547, -0.801529, -1.425186, -0.602930, -1.010117]]], dtype=np.float32),
}


def _flax_logits(spec: dict) -> np.ndarray:
  import jax  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from transformers import GemmaConfig, FlaxGemmaForCausalLM  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_default_matmul_precision", "highest")
  model = FlaxGemmaForCausalLM(GemmaConfig(**hf_config(spec)), dtype=jax.numpy.float32)
  flat = {}
  for name, value in hf_weights(spec).items():
    path = tuple(name.split("."))
    if path[-2] == "embed_tokens":
      flat[path[:-1] + ("embedding",)] = value
    elif path[-1] == "weight" and value.ndim == 2:
      flat[path[:-1] + ("kernel",)] = value.T
    else:
      flat[path] = value
  want = traverse_util.flatten_dict(model.params)
  assert set(flat) == set(want), sorted(set(flat) ^ set(want))
  params = traverse_util.unflatten_dict(flat)
  return np.asarray(model(np.asarray(TOKENS), params=params).logits)


if __name__ == "__main__":
  for name, spec in SPECS.items():
    logits = _flax_logits(spec)[:, :, :8]
    text = np.array2string(logits, separator=", ", max_line_width=96,
                           formatter={"float_kind": lambda x: f"{x:.6f}"})
    print(f"    {name!r}: np.array({text}, dtype=np.float32),")
