r"""Try a model: prints the continuation of a prompt.

  python -m genrm_jax.sample --checkpoint=DIR --prompt="The capital of" \
      --max_new_tokens=32 [--temperature=0.7 --top_k=40 --top_p=0.95 --seed=0]

Greedy unless --temperature > 0. DIR is a bundle (`WORKDIR/export` of
genrm_jax.train, or `genrm_jax.models.bundle.save_bundle`), or a bare official
checkpoint with --preset and --tokenizer. An instruction-tuned checkpoint
takes --chat_template=gemma: the prompt is the user's turn, and the reply
ends at the end of the model's turn (not printed).
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from absl import logging

from genrm_jax import prompts


def define_flags() -> None:
  """CLI flags (defined only when run as a program)."""
  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  bundle.define_flags('The')
  flags.DEFINE_string('prompt', None, 'Prompt text (BOS is added).')
  sampling.define_flags(temperature=0.0, max_new_tokens=64)
  prompts.define_chat_template_flag('model')
  # --help lists them with this CLI's own flags.
  flags.adopt_module_key_flags(sampling)
  flags.adopt_module_key_flags(bundle)
  flags.adopt_module_key_flags(prompts)


def sample(checkpoint: str, prompt: str, max_new_tokens: int, *, temperature: float = 0.0,
           top_k: int = 0, top_p: float = 1.0, seed: int = 0, preset: str = '',
           tokenizer: str = '', dtype: str = '', chat_template: str = '') -> str:
  """The continuation of `prompt` (stops at EOS or `max_new_tokens`; with
  `chat_template`, the reply to `prompt` as the user's turn, without the
  turn's end)."""
  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  model = bundle.load_bundle(checkpoint, preset=preset or None, tokenizer=tokenizer or None,
                             dtype=dtype or None)
  sampler = sampling.Sampler(model.config, model.params, tokenizer=model.tokenizer)
  ends = prompts.chat_stop_strings(chat_template or None)
  params = sampling.SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature,
                                   top_k=top_k, top_p=top_p,
                                   stop_tokens=sampling.eos_stop_tokens(model.tokenizer),
                                   stop_strings=ends)
  text = sampler.generate([prompts.as_chat(prompt, chat_template or None)], params,
                          rng=seed).texts[0]
  return sampling.without_stop_string(text, ends)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  logging.set_verbosity(logging.WARNING)  # keep stdout to the continuation
  if not f.checkpoint or f.prompt is None:
    raise app.UsageError('--checkpoint=DIR and --prompt=TEXT are required.')
  try:
    text = sample(f.checkpoint, f.prompt, f.max_new_tokens, temperature=f.temperature,
                  top_k=f.top_k, top_p=f.top_p, seed=f.seed, preset=f.preset,
                  tokenizer=f.tokenizer, dtype=f.dtype,
                  chat_template=prompts.chat_template_flag() or '')
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'error: {e}')
  print(text)


if __name__ == '__main__':
  define_flags()
  app.run(main)
