r"""Exports a bundle (e.g. a trained verifier) as an HF transformers checkpoint.

  pip install -e '.[hf]'          # safetensors
  python -m genrm_jax.models.export_hf --checkpoint=WORKDIR/export --out=DIR

writes `DIR/model.safetensors`, `DIR/config.json` (`GemmaForCausalLM`,
`Gemma2ForCausalLM` or `Gemma3ForCausalLM`), `DIR/tokenizer.model` and
`DIR/tokenizer_config.json`: what `AutoModelForCausalLM.from_pretrained`
and servers built on it (vLLM, TGI) load, e.g. to serve a GenRM verifier
next to its generator. The inverse of `import_hf` (tested: export, then
import, gives every parameter back bit for bit; a Gemma 1 export gives
back the weights HF's own Flax Gemma was checked against; Gemma 2 and 3
exports, tensors and config.json, are what HF's PyTorch
`from_pretrained` loaded to compute `tests/hf_reference.GOLDEN_V23`). The
embedding keeps the bundle's rows (`vocab_size` = them).

A bundle with a value head (a discriminative or Bradley-Terry reward
model) is written as `Gemma{,2,3Text}ForSequenceClassification` with one
label: the reward model TRL (`reward_funcs=DIR`, `RewardTrainer`) and HF
pipelines load. HF's `score` layer has no bias, so the head's bias is
left out of the logits (a constant shift: rankings and pairwise margins
are unchanged) and kept in config.json as `genrm_value_head_bias`, which
`import_hf` restores. Tested against HF's own classes:
`tests/hf_reference.GOLDEN_SEQ_CLS`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, Iterable

import numpy as np

from genrm_jax.models import gemma
from genrm_jax.models import import_hf
from genrm_jax.models import linear_layout

TOKENIZER_CONFIG = {
    "tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>",
    "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": True,
    "add_eos_token": False,
}


def family(config: gemma.TransformerConfig) -> str:
  """'gemma', 'gemma2' or 'gemma3_text': which HF architecture has this model's
  features (QK-norm: Gemma 3; post-norms: Gemma 2; neither: Gemma 1)."""
  if config.use_qk_norm:
    return "gemma3_text"
  if config.use_post_ffw_norm or config.use_post_attn_norm:
    return "gemma2"
  return "gemma"


def _query_pre_attn_scalar(config: gemma.TransformerConfig) -> float:
  """HF scales queries by query_pre_attn_scalar ** -0.5."""
  if config.query_pre_attn_norm == "by_embed_dim_div_num_heads":
    raise ValueError("query_pre_attn_norm='by_embed_dim_div_num_heads' scales queries "
                     "up, which HF's Gemma cannot express.")
  value = config.query_pre_attn_scalar() ** -2
  return int(round(value)) if abs(value - round(value)) < 1e-6 else value


CAUSAL_LM = {"gemma": "GemmaForCausalLM", "gemma2": "Gemma2ForCausalLM",
             "gemma3_text": "Gemma3ForCausalLM"}
SEQUENCE_CLASSIFICATION = {"gemma": "GemmaForSequenceClassification",
                           "gemma2": "Gemma2ForSequenceClassification",
                           "gemma3_text": "Gemma3TextForSequenceClassification"}
VALUE_HEAD_BIAS = "genrm_value_head_bias"  # config.json: the bias HF's score layer lacks


def hf_config(config: gemma.TransformerConfig, dtype: str,
              value_head_bias: float | None = None) -> dict[str, Any]:
  """config.json for `config`; with `value_head_bias` (a reward model's
  head), the sequence-classification architecture with one label."""
  kind = family(config)
  out = {
      "model_type": kind,
      "architectures": [CAUSAL_LM[kind] if value_head_bias is None else
                        SEQUENCE_CLASSIFICATION[kind]],
      "vocab_size": config.num_embed,
      # The shapes `import_hf` matches presets by, under HF's names.
      **{hf: getattr(config, ours) for hf, ours in import_hf.SHAPE_FIELDS.items()},
      "hidden_activation": "gelu_pytorch_tanh",
      "rms_norm_eps": 1e-6, "rope_theta": float(config.global_base_frequency),
      # HF's released configs: Gemma 1/2 8K; Gemma 3 32K (270M, 1B), 128K
      # where global RoPE is stretched (4B/12B/27B), which servers cap at.
      "max_position_embeddings": (8192 if kind != "gemma3_text" else
                                  131072 if config.global_scale_factor > 1 else 32768),
      "bos_token_id": gemma.BOS_ID, "eos_token_id": gemma.EOS_ID,
      "pad_token_id": gemma.PAD_ID, "tie_word_embeddings": True,
      "attention_bias": False, "torch_dtype": dtype,
  }
  if value_head_bias is not None:
    out.update(num_labels=1, id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0},
               **{VALUE_HEAD_BIAS: float(value_head_bias)})
  if kind == "gemma":
    out["hidden_act"] = "gelu_pytorch_tanh"
    return out
  local = set(config.attention_types) - {"global"}
  out.update({
      "query_pre_attn_scalar": _query_pre_attn_scalar(config),
      "sliding_window": config.sliding_window_size if local else None,
      "final_logit_softcapping": config.final_logit_softcap,
      "attn_logit_softcapping": config.attn_logits_soft_cap,
  })
  if kind == "gemma3_text":
    layer_types = ["full_attention" if t == "global" else "sliding_attention"
                   for t in config.attention_types]
    globals_at = [i for i, t in enumerate(layer_types) if t == "full_attention"]
    out.update({
        "rope_local_base_freq": float(config.local_base_frequency),
        "rope_scaling": (None if config.global_scale_factor == 1.0 else
                         {"rope_type": "linear", "factor": float(config.global_scale_factor)}),
        "layer_types": layer_types,
        # Older transformers releases read the period instead of the list.
        "sliding_window_pattern": (globals_at[0] + 1) if globals_at else config.num_layers,
    })
  return out


def params_to_hf(params: dict[str, Any], config: gemma.TransformerConfig,
                 dtype: Any = np.float32,
                 value_head: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
  """Our stacked params -> HF `*ForCausalLM` state-dict tensors (names under
  `model.`, `[out, in]` matrices); with a value head, also the
  `*ForSequenceClassification`'s `score.weight` [1, embed_dim]."""
  names = import_hf.layer_names(config)
  tensors = linear_layout.to_linear(
      params, config, lambda i, what: f"model.layers.{i}.{names[what]}",
      "model.embed_tokens.weight", "model.norm.weight", norm_offset=0.0, dtype=dtype)
  if value_head is not None:
    tensors[import_hf.SCORE] = np.asarray(value_head["kernel"], np.float32).T.astype(dtype)
  return tensors


def export_hf(checkpoint: str, out_dir: str, *, dtype: str = "bfloat16",
              verbose: bool = True) -> str:
  """Writes the bundle `checkpoint` to `out_dir` in HF's format."""
  try:
    from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"`safetensors` is not installed. {import_hf.INSTALL_HINT}") from e
  import jax  # pylint: disable=g-import-not-at-top
  import ml_dtypes  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  log = (lambda m: print(f"[export_hf] {m}", file=sys.stderr, flush=True)) if verbose else (
      lambda m: None)
  model = bundle.load_bundle(checkpoint)
  config = model.config
  if config.lora_rank:
    raise ValueError(f"{checkpoint} holds LoRA adapters: export the training run's "
                     "WORKDIR/export (adapters folded in).")
  np_dtype = {"bfloat16": ml_dtypes.bfloat16, "float32": np.float32}[dtype]
  head = None if model.value_head is None else jax.device_get(model.value_head)
  tensors = params_to_hf(jax.device_get(model.params), config, np_dtype, head)
  written = hf_config(config, dtype, None if head is None else
                      float(np.asarray(head["bias"]).reshape(-1)[0]))
  os.makedirs(out_dir, exist_ok=True)
  safetensors_numpy.save_file(tensors, os.path.join(out_dir, "model.safetensors"),
                              metadata={"format": "pt"})
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(written, f, indent=1)
  if config.tokenizer and os.path.isfile(config.tokenizer):
    shutil.copy(config.tokenizer, os.path.join(out_dir, "tokenizer.model"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
      json.dump(TOKENIZER_CONFIG, f, indent=1)
  else:
    log("no tokenizer.model in the bundle (a task vocabulary or bytes): none written")
  log(f"wrote {out_dir}: {written['architectures'][0]}, {len(tensors)} tensors, "
      f"{gemma.count_params(model.params) / 1e6:.1f}M params, {dtype}")
  return out_dir


def main(argv: Iterable[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint", required=True, help="a bundle (model.json, params/)")
  parser.add_argument("--out", required=True, help="HF checkpoint directory to write")
  parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
  args = parser.parse_args(argv)
  try:
    export_hf(args.checkpoint, args.out, dtype=args.dtype)
  except (ValueError, FileNotFoundError, ImportError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  main()
