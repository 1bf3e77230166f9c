r"""Verifier scores for a candidate store (resumable).

  python -m genrm_jax.score --candidates=C.jsonl --verifier=genrm \
      --checkpoint=DIR --out=S.jsonl [--name=NAME] [--batch_size=16]
  python -m genrm_jax.score ... --verifier=genrm_cot --num_rationales=8 \
      --temperature=0.7 [--max_new_tokens=512 --seed=0]
  python -m genrm_jax.score ... --verifier=dpo --reference_checkpoint=REF

Verifiers: genrm | genrm_cot | disc | dpo | likelihood | llm_judge (see
`genrm_jax.verifiers`). Rows already in --out (same name, problem, candidate,
k) are skipped: rerun the same command to resume a killed run. Evaluate with
`python -m genrm_jax.evaluate --candidates=C.jsonl --scores=S.jsonl --out=DIR`.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags

from genrm_jax import candidates as candidates_lib
from genrm_jax import prompts


def define_verifier_flags() -> None:
  """The flags of one verifier (kind, checkpoint, options): this CLI's and
  `genrm_jax.serve`'s; `spec_from_flags` reads them."""
  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  from genrm_jax import verifiers  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum('verifier', None, list(verifiers.KINDS), 'Verifier kind.')
  flags.DEFINE_string('name', '', 'Verifier name in the scores (default: the kind).')
  bundle.define_flags('Verifier')
  flags.DEFINE_string('reference_checkpoint', '', 'dpo: the reference model directory.')
  d = verifiers.DEFAULT_OPTIONS
  flags.DEFINE_integer('batch_size', d['batch_size'], 'Rows per forward pass.')
  flags.DEFINE_integer('num_rationales', d['num_rationales'], 'K (genrm_cot, llm_judge).')
  sampling.define_flags(temperature=d['temperature'],
                        max_new_tokens=d['max_new_tokens'], what='Rationale ')
  flags.DEFINE_float('beta', d['beta'], 'dpo: beta.')
  prompts.define_chat_template_flag('verifier (genrm_cot, llm_judge)')
  flags.DEFINE_enum('renormalize', 'default', ['default', 'true', 'false'],
                    'Renormalise p(Yes) over {Yes, No} (default: only for llm_judge).')
  # --help lists them with this CLI's own flags.
  flags.adopt_module_key_flags(sampling)
  flags.adopt_module_key_flags(bundle)
  flags.adopt_module_key_flags(prompts)


def spec_from_flags():
  """The `verifiers.VerifierSpec` the verifier flags describe (ValueError
  naming what is wrong)."""
  from genrm_jax import verifiers  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  options = {k: getattr(f, k) for k in (
      'batch_size', 'num_rationales', 'temperature', 'top_k', 'top_p', 'max_new_tokens',
      'seed', 'beta', 'reference_checkpoint', 'preset', 'tokenizer', 'dtype')}
  if prompts.chat_template_flag():
    options['chat_template'] = prompts.chat_template_flag()
  if f.renormalize != 'default':
    options['renormalize'] = f.renormalize == 'true'
  return verifiers.VerifierSpec(name=f.name or f.verifier, kind=f.verifier,
                                checkpoint=f.checkpoint, options=options)


def define_flags() -> None:
  """CLI flags (defined only when run as a program)."""
  flags.DEFINE_string('candidates', None, 'Candidate store (JSON lines).')
  flags.DEFINE_string('out', None, 'Scores file (appended; resumable).')
  define_verifier_flags()
  flags.mark_flags_as_required(['candidates', 'verifier', 'checkpoint', 'out'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  from genrm_jax import verifiers  # pylint: disable=g-import-not-at-top
  try:
    spec = spec_from_flags()
    verifiers.score_store(f.candidates, spec, f.out, log=print)
  except (FileNotFoundError, ValueError, candidates_lib.MalformedRowError) as e:
    sys.exit(f'error: {e}')
  print(f'Wrote {f.out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
