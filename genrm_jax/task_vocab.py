r"""A small SentencePiece vocabulary trained on a task's own text.

Tiny models learn an algorithmic task in minutes only when its sequences are
short: with byte tokens a last-letter verification rationale is ~1,000
tokens, with this vocabulary ~100. The vocabulary is an ordinary
SentencePiece `tokenizer.model` (Gemma's conventions: pad 0, eos 1, bos 2,
unk 3, byte fallback, no normalisation, no dummy prefix, so every string
round-trips exactly), served to seqio as a `SentencePieceVocabulary` and to
the sampler/scorer as `genrm_jax.models.tokenizer.Tokenizer`.

The corpus covers every format the pipeline writes: solution prompts and
solutions, direct and CoT verification inputs, oracle rationales of correct
and corrupted solutions (a dropped step, a wrong letter, a wrong answer).
The prompt template's fixed phrases (the header, the question frame, the
rationale's step phrases, " Yes"/" No") are user-defined pieces, one token
each.

  python -m genrm_jax.task_vocab --task=last_letter --out=DIR/tokenizer.model
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from typing import Iterable, Sequence

from genrm_jax import prompts
from genrm_jax import rationales

# Template phrases that become single tokens. Shared by every task: the
# prompt frame and verdicts (prompts.py).
COMMON_PHRASES = (
    prompts.HEADER,
    prompts.STEP_BY_STEP,
    prompts.DIRECT_SUFFIX,
    prompts.COT_SUFFIX,
    '\n\n' + prompts.VERIFY_QUESTION,
    ' ' + prompts.ANSWER_PHRASE + ' ',
    prompts.YES,
    prompts.NO,
    '\n',
)
# Per task: the question frame, the solution's and the oracle rationale's
# fixed phrases (rationales.py).
TASK_PHRASES = {
    'last_letter': (
        prompts.QUESTION_PREFIX + 'Take the last letters of each words in "',
        '" and concatenate them.' + prompts.STEP_BY_STEP,
        'The last letter of "', '" is "', '".', ' Concatenating them is "',
        'Check each step. The words are: ', '\nStep ', ': the last letter of "',
        '"; the solution says "', '". Correct.', '". Incorrect.',
        '"; the solution does not state it. Missing.', '\nConcatenation: ',
        ' gives "', '\nFinal answer: the solution\'s answer "', '" matches "',
        '" does not match "', '\nThe solution also gives "',
        '", which is not in the list. Incorrect.',
    ),
}

_SPACE = '\u2581'  # SentencePiece's whitespace marker


def _corruptions(rng: random.Random, problem: dict) -> list[str]:
  """Wrong solutions of kinds a weak generator writes (for rationale text)."""
  solution = problem['solution']
  sentences = re.split(r'(?<=\.) ', solution)
  out = []
  if len(sentences) > 3:  # drop a step (stopping early)
    drop = rng.randrange(len(sentences) - 2)
    out.append(' '.join(s for i, s in enumerate(sentences) if i != drop))
  reference = problem['reference']
  if reference:
    wrong = list(reference)
    wrong[rng.randrange(len(wrong))] = rng.choice('abcdefghijklmnopqrstuvwxyz')
    out.append(solution.replace(reference, ''.join(wrong)))
    out.append(solution[:solution.rfind(prompts.ANSWER_PHRASE)] +
               f'{prompts.ANSWER_PHRASE} {reference[:-1] or "x"}.')
  return out


def corpus(task: str, problems: Sequence[dict], seed: int = 0) -> Iterable[str]:
  """Texts in every format the pipeline tokenises, for `problems`."""
  rng = random.Random(seed)
  oracle = task in rationales.ALGORITHMIC_TASKS
  for problem in problems:
    question, reference = problem['question'], problem['reference']
    yield prompts.solution_prompt(question) + problem['solution']
    for solution in [problem['solution']] + _corruptions(rng, problem):
      yield (prompts.direct_verification_prompt(question, solution) +
             rng.choice((prompts.YES, prompts.NO)))
      if oracle:
        yield (prompts.cot_verification_prompt(question, solution) +
               rationales.oracle_rationale(task, question, solution, reference))


def train(task: str, problems: Sequence[dict], out_path: str, *,
          vocab_size: int = 1024, model_type: str = 'unigram', seed: int = 0) -> str:
  """Trains a SentencePiece model on `problems`' text; returns its path.

  `model_type='char'` keeps every other piece one character (the phrases
  stay whole): a name is then spelt out, so its last letter is a token the
  model can copy rather than a property of a whole-name token it must
  memorise; `vocab_size` is then only a lower bound (the characters seen
  decide).
  """
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  phrases = COMMON_PHRASES + TASK_PHRASES.get(task, ())
  out_dir = os.path.dirname(os.path.abspath(out_path))
  os.makedirs(out_dir, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
    prefix = os.path.join(tmp, 'sp')
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(corpus(task, problems, seed))),
        model_prefix=prefix, vocab_size=vocab_size, model_type=model_type,
        hard_vocab_limit=model_type != 'char',
        normalization_rule_name='identity', add_dummy_prefix=False,
        remove_extra_whitespaces=False, byte_fallback=True, split_digits=True,
        allow_whitespace_only_pieces=True, max_sentence_length=1 << 16,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        # Pieces see spaces as U+2581.
        user_defined_symbols=[p.replace(' ', _SPACE) for p in phrases],
        num_threads=os.cpu_count() or 1, minloglevel=2)
    os.replace(prefix + '.model', out_path)  # atomic: a killed run leaves none
  return out_path


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from tasks import sources  # pylint: disable=g-import-not-at-top
  del argv
  f = flags.FLAGS
  problems = sources.get_problems(f.task, 'train')[:f.num_problems]
  path = train(f.task, problems, f.out, vocab_size=f.vocab_size, model_type=f.model_type,
               seed=f.seed)
  print(f'Wrote {path} ({f.model_type}, {len(problems)} {f.task} problems).')


if __name__ == '__main__':
  from absl import app, flags  # pylint: disable=g-import-not-at-top,multiple-imports
  flags.DEFINE_string('task', 'last_letter', 'Task whose train problems make the corpus.')
  flags.DEFINE_string('out', None, 'tokenizer.model to write.', required=True)
  flags.DEFINE_integer('vocab_size', 1024, 'Pieces (>= 256 bytes + specials + phrases).')
  flags.DEFINE_integer('num_problems', 3000, 'Train problems in the corpus.')
  flags.DEFINE_enum('model_type', 'unigram', ['unigram', 'bpe', 'char'], 'SentencePiece model.')
  flags.DEFINE_integer('seed', 0, 'Corpus and trainer seed.')
  app.run(main)
