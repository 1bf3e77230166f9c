"""Small Gemma checkpoints in HF transformers' layout, and their golden logits.

Gemma 1: `hf_weights(spec)` builds seeded random weights named and shaped as
HF's PyTorch `GemmaForCausalLM` state dict (`nn.Linear` weights [out, in]).
`GOLDEN` holds logits that HF's own Flax Gemma (`FlaxGemmaForCausalLM`,
transformers 4.46.3, the last release with it) computed from those weights,
with the weights turned into its Flax layout by transposing each linear
weight. Regenerate (not needed in CI):

  pip install --target /tmp/hfpkgs --no-deps transformers==4.46.3 \
      'tokenizers<0.21' 'huggingface_hub<1' safetensors regex pyyaml filelock requests \
      tqdm packaging fsspec
  PYTHONPATH=/tmp/hfpkgs:. JAX_PLATFORMS=cpu python tests/hf_reference.py flax

Gemma 2 and 3 (no Flax port): `V23_CONFIGS` are small models of ours with
each generation's features (sliding windows, soft caps, the 27B's query
scale, QK-norm, local/global RoPE bases, the 4B+'s stretched global RoPE);
`hf_weights_v23(config)` seeded weights in HF's naming. `GOLDEN_V23` holds
the logits of HF's PyTorch `Gemma2ForCausalLM` / `Gemma3ForCausalLM`
(eager attention, float32) loaded with `from_pretrained` from those weights
and the config.json our exporter writes (`export_hf.hf_config`, recorded in
`HF_CONFIGS_V23`): no key missing or unexpected. `GOLDEN_SEQ_CLS`: the same
for reward models (`*ForSequenceClassification`, a value head as `score`). Computed with torch
2.13.0 (CPU) and transformers 5.25.0, and the same to 1e-5 with 4.57.6:

  python -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.13.0 transformers \
      safetensors jax==0.10.2 flax==0.12.8 ml_collections
  PYTHONPATH=. JAX_PLATFORMS=cpu /tmp/tv/bin/python tests/hf_reference.py torch
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



# Gemma 2 and 3: (preset, overrides) of small models with each generation's
# features. Windows of 4 and soft caps of a few units bite on 8 tokens.
_SMALL = dict(num_embed=96, embed_dim=32, hidden_dim=64, num_heads=4, num_kv_heads=2,
              head_dim=16, sliding_window_size=4, dtype="float32")
V23_CONFIGS = {
    "gemma2": ("gemma2_2b", dict(_SMALL, num_layers=3, final_logit_softcap=2.0,
                                 attn_logits_soft_cap=1.5)),
    # The 27B scales queries by (embed_dim / num_heads) ** -0.5, not head_dim's.
    "gemma2_27b": ("gemma2_27b", dict(_SMALL, num_layers=2)),
    "gemma3": ("gemma3_270m", dict(_SMALL, attention_types=("local", "global", "local"))),
    # 4B and up: global RoPE positions / 8.
    "gemma3_4b": ("gemma3_4b", dict(_SMALL, attention_types=("local", "global"))),
}


def v23_config(name: str):
  """Our TransformerConfig of `V23_CONFIGS[name]`."""
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top
  preset, overrides = V23_CONFIGS[name]
  return gemma.get_config(preset, **overrides)


def hf_weights_v23(config, seed: int = 0, prefix: str = "model.") -> dict[str, np.ndarray]:
  """Seeded random weights with Gemma 2/3 names (post-norms; Gemma 3's q/k
  norms) for our `config`'s shapes."""
  rng = np.random.default_rng(seed)
  normal = lambda *shape: (rng.normal(size=shape) * 0.2).astype(np.float32)
  n, k, h, d, f = (config.num_heads, config.num_kv_heads, config.head_dim,
                   config.embed_dim, config.hidden_dim)
  shapes = {
      "input_layernorm.weight": (d,), "post_attention_layernorm.weight": (d,),
      "pre_feedforward_layernorm.weight": (d,), "post_feedforward_layernorm.weight": (d,),
      "self_attn.q_proj.weight": (n * h, d), "self_attn.k_proj.weight": (k * h, d),
      "self_attn.v_proj.weight": (k * h, d), "self_attn.o_proj.weight": (d, n * h),
      "mlp.gate_proj.weight": (f, d), "mlp.up_proj.weight": (f, d),
      "mlp.down_proj.weight": (d, f)}
  if config.use_qk_norm:
    shapes.update({"self_attn.q_norm.weight": (h,), "self_attn.k_norm.weight": (h,)})
  out = {prefix + "embed_tokens.weight": normal(config.num_embed, d),
         prefix + "norm.weight": normal(d)}
  for i in range(config.num_layers):
    out.update({f"{prefix}layers.{i}.{name}": normal(*shape)
                for name, shape in shapes.items()})
  return out


# logits[:, :, :8] of HF PyTorch's Gemma2ForCausalLM / Gemma3ForCausalLM
# (float32, eager attention) on TOKENS, per V23_CONFIGS entry.
GOLDEN_V23 = {
    'gemma2': np.array([[[-0.041382, 0.046246, 1.910706, -0.370930, -1.547593, 1.340005, 0.060689, 0.542556],
        [0.470604, -1.588831, 0.152612, 1.455084, -0.275932, 0.919371, -0.485230, 0.287507],
        [0.289731, -1.433112, -0.290432, 1.098734, 0.593423, 1.762463, -0.821310, -1.005741],
        [0.710190, -1.399811, -1.384478, 0.463829, -0.121264, 1.055928, -0.747130, -0.050313],
        [1.254084, -0.344562, 0.281427, 0.981945, 0.007785, 0.155835, -1.671044, -1.016550],
        [-0.393081, -0.921095, -1.388314, 1.117594, 0.928751, 1.127019, -1.307533, 1.142807],
        [0.310474, -0.028095, -1.694976, 0.733921, 0.176026, -0.512948, -0.824411, -1.681801],
        [1.399826, 0.930338, -1.505019, 1.764720, 1.668379, -1.181057, -1.660211, -1.112186]],

        [[-0.041382, 0.046246, 1.910706, -0.370930, -1.547593, 1.340005, 0.060689, 0.542556],
        [0.249186, 0.004283, 0.523838, 0.679970, 0.329839, 0.693702, -0.254971, -1.669622],
        [-0.654838, 1.021383, 0.700831, -0.581202, 0.538506, 0.993333, 1.756265, -1.718593],
        [-0.798644, 1.078336, 0.305551, -0.666695, 0.761223, 0.686236, 1.817946, -1.700423],
        [-0.232654, 1.540591, -0.837995, -0.790673, 1.168419, -1.016585, 1.699464, -1.756882],
        [0.790933, 0.703537, -1.230430, -0.173930, 0.631144, -1.800256, 1.735701, -0.319406],
        [-0.023980, 1.835066, -0.674585, -0.529825, 1.039370, -1.121972, 1.749022, -1.763796],
        [0.853640, 1.015535, -0.778725, -0.350748, 0.136250, -1.792994, 0.796066, -0.635784]]], dtype=np.float32),
    'gemma2_27b': np.array([[[-0.579630, 1.384506, 4.379130, -1.237591, -2.011020, 0.859967, 0.736753, 0.161197],
        [0.270296, -2.452103, -0.009653, 1.703352, -0.525303, 1.126111, 0.813589, 1.315314],
        [-0.015250, -1.204665, 0.565771, 0.933457, 0.051004, 3.037751, -0.305537, -1.449136],
        [-0.172673, -0.529791, -0.869489, -0.711725, -1.371313, 0.124794, -0.594998, -0.046405],
        [0.995429, 0.386339, 1.433493, 0.432254, -1.319965, -0.093339, -2.387823, -1.269334],
        [-1.515859, -0.662813, -1.432216, 0.875867, -0.314439, 0.850308, -1.437921, 1.346174],
        [-0.683533, 0.220094, 0.017379, -0.601207, -1.206115, -0.267965, -0.916541, -3.517277],
        [1.545413, 0.421045, -2.248496, 3.707969, 2.437368, -0.779423, -2.112620, -1.329183]],

        [[-0.579630, 1.384506, 4.379130, -1.237591, -2.011020, 0.859967, 0.736753, 0.161197],
        [-0.422099, 0.657117, 1.549791, 0.048306, 0.113633, 0.193216, 0.823968, -2.148343],
        [-0.817557, 0.996905, 1.407248, -1.547807, 0.262886, 0.730410, 3.392145, -1.886287],
        [-0.814618, 1.017065, 1.263225, -1.597203, 0.345696, 0.566554, 3.512504, -1.895608],
        [0.225439, 1.597807, -0.445728, -0.968325, 0.935705, -0.595102, 3.088550, -2.787768],
        [1.230577, -0.146451, -1.058393, -0.638163, -0.448335, -2.588442, 2.654609, 0.107859],
        [-0.045490, 3.363160, -0.382830, -0.371352, 0.587555, -0.762285, 2.783999, -1.976611],
        [0.460147, 0.825311, -1.540527, 0.241573, 0.700726, -1.066384, -0.311458, 0.162358]]], dtype=np.float32),
    'gemma3': np.array([[[-0.887544, 1.869681, 3.260611, -0.332902, -0.334951, 0.826987, -0.316928, -0.057438],
        [0.733956, -1.686564, 0.015888, 1.397751, -0.343583, -0.207594, 1.390207, 0.922982],
        [-0.969269, -0.312551, 0.951768, 1.589898, -0.774028, 2.818131, -1.166743, -0.620892],
        [0.015107, -0.887815, -1.995671, -0.227215, -0.959931, 0.587128, -0.440211, -2.768347],
        [0.055982, 2.116331, -0.786902, 0.754638, -0.858849, -0.496744, -2.636308, -1.443988],
        [-0.075724, -1.451488, -3.551897, 1.475888, -0.962883, 0.030405, -0.759719, -0.088281],
        [-0.620600, 1.492017, -1.262720, -0.784887, 0.440499, 0.374010, 0.688830, -2.723729],
        [1.084993, -0.261396, -2.121976, 1.569701, 1.846593, 0.128050, 0.471230, -1.182825]],

        [[-0.887544, 1.869681, 3.260611, -0.332902, -0.334951, 0.826987, -0.316928, -0.057438],
        [-0.157698, -0.276356, -0.196556, 1.455728, -0.349638, 0.088688, -0.469201, -0.802164],
        [-1.334340, 0.895874, 0.096033, -0.414521, 1.505168, 0.677162, 1.683664, -2.485080],
        [-1.263006, 0.862110, -0.211024, -0.645868, 1.699937, 0.450723, 1.913416, -2.580891],
        [1.254225, 0.505483, -1.757769, 1.038991, 1.445299, -0.727799, 0.155758, -1.335797],
        [1.399559, 0.479628, -1.473824, 0.985698, 0.621916, -2.090892, 1.027642, -0.282389],
        [0.440427, 2.263970, -1.107960, 0.653647, 2.463252, -0.766850, -0.028389, -1.598547],
        [0.437215, 0.387109, 0.075428, 1.019801, 2.197284, 0.193457, -0.745645, -0.636570]]], dtype=np.float32),
    'gemma3_4b': np.array([[[-0.646503, 1.567728, 4.046813, 0.113145, -1.471855, 0.921548, -0.371396, 0.646360],
        [0.566798, -2.485608, -0.100745, 1.636320, -1.316607, -0.183253, 1.316041, 1.732331],
        [-0.816294, -1.142186, -0.039101, 0.835960, -0.339308, 2.966169, -0.118038, -0.931013],
        [-0.874482, -1.043362, -1.814309, -1.338198, -1.057674, 1.658122, -0.572362, -3.414190],
        [0.926853, 0.674084, -1.178096, 0.861291, -0.641754, -0.283088, -2.645727, -1.371507],
        [-0.533126, -1.447984, -3.259410, 1.247800, -1.266953, 0.367223, -0.619681, -0.961788],
        [0.184891, 1.784662, -0.440988, -0.731436, 0.549249, 0.198459, -0.010844, -4.055698],
        [1.854062, -0.681348, -1.862674, 2.544560, 1.467148, -0.857889, -0.009943, -2.578808]],

        [[-0.646503, 1.567728, 4.046813, 0.113145, -1.471855, 0.921548, -0.371396, 0.646360],
        [0.024120, -0.490595, -0.309061, 1.615755, 0.192129, 0.970468, -0.668747, -0.939738],
        [-0.656489, 0.343486, 0.174108, -0.438015, 0.923856, 0.947044, 2.863260, -1.349987],
        [-0.559811, 0.229235, -0.094394, -0.502366, 1.081916, 0.749129, 3.074666, -1.364916],
        [0.229978, 0.283679, -1.809823, 0.704380, 1.403303, 0.195596, 0.494398, -1.554493],
        [1.119800, -0.839232, -2.033709, 0.724520, 0.034044, -1.869069, 2.301942, 0.753287],
        [-0.006606, 2.493967, -1.347088, 0.204240, 1.692167, -0.907009, 1.355188, -1.884749],
        [0.686902, 1.131570, -0.109396, 0.712242, 1.899432, -0.425645, -0.510086, -0.275383]]], dtype=np.float32),
}

# The config.json `export_hf.hf_config` wrote for each, which HF loaded.
_HF_SMALL = {
    "vocab_size": 96, "hidden_size": 32, "intermediate_size": 64,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-06,
    "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
    "tie_word_embeddings": True, "attention_bias": False, "torch_dtype": "float32",
    "sliding_window": 4}
_HF_GEMMA2 = dict(_HF_SMALL, model_type="gemma2", architectures=["Gemma2ForCausalLM"],
                  rope_theta=10000.0, max_position_embeddings=8192)
_HF_GEMMA3 = dict(_HF_SMALL, model_type="gemma3_text", architectures=["Gemma3ForCausalLM"],
                  rope_theta=1000000.0, max_position_embeddings=32768,
                  query_pre_attn_scalar=16, final_logit_softcapping=None,
                  attn_logit_softcapping=None, rope_local_base_freq=10000.0,
                  sliding_window_pattern=2)
HF_CONFIGS_V23 = {
    "gemma2": dict(_HF_GEMMA2, num_hidden_layers=3, query_pre_attn_scalar=16,
                   final_logit_softcapping=2.0, attn_logit_softcapping=1.5),
    "gemma2_27b": dict(_HF_GEMMA2, num_hidden_layers=2, query_pre_attn_scalar=8,
                       final_logit_softcapping=30.0, attn_logit_softcapping=50.0),
    "gemma3": dict(_HF_GEMMA3, num_hidden_layers=3, rope_scaling=None, layer_types=[
        "sliding_attention", "full_attention", "sliding_attention"]),
    # (Recorded with 32768 positions, which linear RoPE scaling does not read;
    # the export now writes the released 4B's 131072.)
    "gemma3_4b": dict(_HF_GEMMA3, num_hidden_layers=2, max_position_embeddings=131072,
                      rope_scaling={"rope_type": "linear", "factor": 8.0},
                      layer_types=["sliding_attention", "full_attention"]),
}


# Reward models: HF's `*ForSequenceClassification` reads each row's last
# non-pad token, so the second row is padded (pad id 0).
TOKENS_PADDED = [[2, 17, 5, 88, 41, 9, 60, 3], [2, 90, 12, 12, 77, 0, 0, 0]]
SEQ_CLS_NAMES = ("gemma2", "gemma3")


def value_head_v23(config, seed: int = 1) -> dict[str, np.ndarray]:
  """A seeded value head (kernel [D, 1], bias [1]) for `config`."""
  rng = np.random.default_rng(seed)
  return {"kernel": (rng.normal(size=(config.embed_dim, 1)) * 0.2).astype(np.float32),
          "bias": np.array([0.3], np.float32)}


# HF PyTorch `*ForSequenceClassification` logits [B] on TOKENS_PADDED, per
# SEQ_CLS_NAMES entry: V23_CONFIGS' weights with value_head_v23's kernel as
# `score.weight`, loaded from the config.json `export_hf.hf_config(...,
# value_head_bias=0.3)` writes (HF's score has no bias: ours minus 0.3).
GOLDEN_SEQ_CLS = {
    "gemma2": np.array([0.794941, -0.240373], dtype=np.float32),
    "gemma3": np.array([-1.315979, -0.594984], dtype=np.float32),
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


def _torch_model(tensors: dict, hf_json: dict, auto_class: str):
  """HF PyTorch's model of class `transformers.<auto_class>`, loaded with
  `from_pretrained` from these tensors and config.json: no key missing or
  unexpected, the architecture the config names."""
  import json  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as directory:
    safetensors_numpy.save_file(tensors, f"{directory}/model.safetensors",
                                metadata={"format": "pt"})
    with open(f"{directory}/config.json", "w") as f:
      json.dump(hf_json, f)
    model, info = getattr(transformers, auto_class).from_pretrained(
        directory, output_loading_info=True, attn_implementation="eager",
        torch_dtype=torch.float32)
  assert type(model).__name__ == hf_json["architectures"][0], type(model)
  assert not any(info.values()), info
  return model


def _torch_logits(name: str) -> tuple[np.ndarray, dict]:
  """HF PyTorch's logits for `V23_CONFIGS[name]`, loaded from our
  exporter's config.json; and that config."""
  import torch  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import export_hf  # pylint: disable=g-import-not-at-top
  config = v23_config(name)
  hf_json = export_hf.hf_config(config, "float32")
  model = _torch_model(hf_weights_v23(config), hf_json, "AutoModelForCausalLM")
  with torch.no_grad():
    return model(torch.tensor(TOKENS)).logits.numpy(), hf_json


def _torch_seq_cls_logits(name: str) -> np.ndarray:
  """HF PyTorch's reward-model logits [B] for SEQ_CLS_NAMES' `name`."""
  import torch  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import export_hf  # pylint: disable=g-import-not-at-top
  config = v23_config(name)
  head = value_head_v23(config)
  hf_json = export_hf.hf_config(config, "float32", float(head["bias"][0]))
  tensors = dict(hf_weights_v23(config), **{"score.weight": head["kernel"].T.copy()})
  model = _torch_model(tensors, hf_json, "AutoModelForSequenceClassification")
  tokens = torch.tensor(TOKENS_PADDED)
  with torch.no_grad():
    return model(tokens, attention_mask=(tokens != 0).long()).logits[:, 0].numpy()


def _print_array(name: str, logits: np.ndarray) -> None:
  text = np.array2string(logits, separator=", ", max_line_width=96,
                         formatter={"float_kind": lambda x: f"{x:.6f}"})
  print(f"    {name!r}: np.array({text}, dtype=np.float32),")


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  if sys.argv[1:] == ["flax"]:
    for name, spec in SPECS.items():
      _print_array(name, _flax_logits(spec)[:, :, :8])
  elif sys.argv[1:] == ["torch"]:
    import pprint  # pylint: disable=g-import-not-at-top
    configs = {}
    for name in V23_CONFIGS:
      logits, configs[name] = _torch_logits(name)
      _print_array(name, logits[:, :, :8])
    pprint.pprint(configs, width=96, sort_dicts=False)
    for name in SEQ_CLS_NAMES:
      _print_array(name, _torch_seq_cls_logits(name))
  else:
    sys.exit("usage: tests/hf_reference.py flax|torch")
