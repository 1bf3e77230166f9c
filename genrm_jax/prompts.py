"""Prompt formats of the GenRM paper, exactly as in its released GSM8K data.

Every example the paper released (`genrm-critiques`: `rm_*` and `critiques_*`
zips) has the shape

  <HEADER>\\n\\nQ: <question>\\nA: Let's think step by step.\\n<solution>\\n<suffix>

where HEADER is a fixed 3-line instruction and the suffix asks for either a
direct verdict (`Verification: Is the answer correct (Yes/No)?`, target
`" Yes"`/`" No"` with a leading space) or a rationale (`Verification: Let's
verify step by step.\\n`, target = rationale whose last line is the verdict
line `Verification: Is the answer correct (Yes/No)? Yes|No`). Solutions end
with "The answer is <answer>.".

The algorithmic tasks use the same header: the paper released no templates for
them, and one format across tasks lets one verifier checkpoint score any task.

Golden test: rebuilding every released validation `inputs` string from its
parsed (question, solution) reproduces it byte for byte
(tests/test_prompts.py).
"""

from __future__ import annotations

import re
from typing import Optional

# The 3-line instruction header that starts every released input.
HEADER = (
    'Solve the math problems and provide step-by-step solutions, ending with'
    ' "The answer is [Insert Final Answer Here]".\n'
    'When asked "Verification: Is the answer correct (Yes/No)?", respond with'
    ' " Yes" or " No" based on the answer\'s correctness.\n'
    'When asked "Verification: Let\'s verify step by step.", verify every step'
    ' of the solution and conclude with "Verification: Is the answer correct'
    ' (Yes/No)?" followed by " Yes" or " No".')

QUESTION_PREFIX = '\n\nQ: '
STEP_BY_STEP = "\nA: Let's think step by step.\n"
ANSWER_PHRASE = 'The answer is'

# The direct-verification question; inputs end with it (no trailing space) so
# the target's leading space lands on the " Yes"/" No" token.
VERIFY_QUESTION = 'Verification: Is the answer correct (Yes/No)?'
DIRECT_SUFFIX = '\n' + VERIFY_QUESTION
YES = ' Yes'
NO = ' No'

# The CoT trigger; inputs end with it, newline included.
COT_TRIGGER = "Verification: Let's verify step by step."
COT_SUFFIX = '\n' + COT_TRIGGER + '\n'

DIRECT = 'direct'
COT = 'cot'

# The verdict as the prompt asks for it: exactly one space, then Yes or No.
# "Yes**" (markdown bold closing) still counts; "Yesterday" does not.
_STRICT_VERDICT = re.compile(r'Is the answer correct \(Yes/No\)\? (Yes|No)\b')
# Variants seen in the raw Gemini critiques of genrm-critiques: a misplaced
# "?" ("correct? (Yes/No)"), markdown/HTML bold or quotes around the verdict.
_LENIENT_VERDICT = re.compile(
    r'Is the answer correct\??\s*\(Yes/No\)\??'
    r'(?:\s|\*\*|</?b>|["\':])*(Yes|No)\b')


def solution_prompt(question: str, header: str = HEADER) -> str:
  """The prompt a generator completes with a solution (and the prefix of every verification input)."""
  return f'{header}{QUESTION_PREFIX}{question}{STEP_BY_STEP}'


def direct_verification_prompt(question: str, solution: str, header: str = HEADER) -> str:
  """Inputs of a direct GenRM example; ends with `Verification: Is the answer correct (Yes/No)?`."""
  return solution_prompt(question, header) + solution + DIRECT_SUFFIX


def direct_target(correct: bool) -> str:
  """`" Yes"` or `" No"` (leading space, as released)."""
  return YES if correct else NO


def direct_verification_example(question: str, solution: str, correct: Optional[bool],
                                header: str = HEADER) -> dict:
  """A direct GenRM example: `{'inputs': ..., 'targets': ' Yes'|' No'}`.

  Args:
    question: The problem text.
    solution: The candidate solution (ending "The answer is ...").
    correct: The candidate's correctness; None gives inputs only (scoring),
      with `targets` None.
    header: The instruction header.
  """
  return {
      'inputs': direct_verification_prompt(question, solution, header),
      'targets': None if correct is None else direct_target(correct),
  }


def cot_verification_prompt(question: str, solution: str, header: str = HEADER) -> str:
  """Inputs of a GenRM-CoT example; ends with `Verification: Let's verify step by step.\\n`."""
  return solution_prompt(question, header) + solution + COT_SUFFIX


# Instruction-tuned checkpoints (e.g. Gemma's "-it" releases, as graders or
# judges) answer inside chat turns: a prompt above becomes the user's turn,
# and the model's turn ends with the template's end marker (Gemma's
# tokenizer holds both markers as single ids, matched in text).
CHAT_TEMPLATES = {
    'gemma': ('<start_of_turn>user\n', '<end_of_turn>\n<start_of_turn>model\n',
              '<end_of_turn>'),
}


def as_chat(prompt: str, template: Optional[str]) -> str:
  """`prompt` as the user's turn of `template` (None: unchanged)."""
  if not template:
    return prompt
  if template not in CHAT_TEMPLATES:
    raise ValueError(f'chat template {template!r}; known: '
                     f'{", ".join(sorted(CHAT_TEMPLATES))}.')
  start, end, _ = CHAT_TEMPLATES[template]
  return start + prompt + end


def chat_stop_strings(template: Optional[str]) -> tuple[str, ...]:
  """What ends the model's turn in `template` (a stop string)."""
  return (CHAT_TEMPLATES[template][2],) if template else ()


def define_chat_template_flag(who: str) -> None:
  """`--chat_template` of the CLIs that prompt a model (`who`: which one,
  e.g. "generator"); read it with `chat_template_flag()`."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum('chat_template', 'none', ['none', *sorted(CHAT_TEMPLATES)],
                    f"An instruction-tuned {who}: the prompt as the user's turn of "
                    "this chat template, its turn's end a stop string.")


def chat_template_flag() -> Optional[str]:
  """The template `--chat_template` names (None for 'none')."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  template = flags.FLAGS.chat_template
  return None if template == 'none' else template


def verdict_line(correct: bool) -> str:
  """The last line of every verification rationale."""
  return f'{VERIFY_QUESTION}{direct_target(correct)}'


def parse_verdict(rationale: Optional[str], lenient: bool = False) -> Optional[bool]:
  """The verdict of a rationale: its last "Is the answer correct (Yes/No)? Yes|No".

  Args:
    rationale: A verification rationale (model output or released critique).
    lenient: Also accept the decorated variants of the raw released critiques
      ("correct? (Yes/No) **No**", "<b>Yes</b>", quotes).

  Returns:
    True for Yes, False for No, None if the rationale states no verdict.
  """
  if not isinstance(rationale, str):
    return None
  match = find_verdict(rationale, lenient)
  return None if match is None else match.group(1) == 'Yes'


def find_verdict(rationale: str, lenient: bool = False) -> Optional[re.Match]:
  """The regex match of the last verdict in `rationale` (group 1: 'Yes'|'No'), or None."""
  pattern = _LENIENT_VERDICT if lenient else _STRICT_VERDICT
  last = None
  for last in pattern.finditer(rationale):
    pass
  return last


def parse_verification_inputs(inputs: str, header: str = HEADER) -> tuple[str, str]:
  """Splits a formatted verification `inputs` string back into (question, solution).

  Accepts direct and CoT inputs (and a bare solution prompt + solution).

  Raises:
    ValueError: naming what is missing, if `inputs` is not in this format.
  """
  question, solution, _ = _split_inputs(inputs, header)
  return question, solution


def verification_kind(inputs: str, header: str = HEADER) -> Optional[str]:
  """`'direct'`, `'cot'` or None (a solution prompt) for a formatted input string."""
  return _split_inputs(inputs, header)[2]


def _split_inputs(inputs: str, header: str) -> tuple[str, str, Optional[str]]:
  prefix = header + QUESTION_PREFIX
  if not isinstance(inputs, str) or not inputs.startswith(prefix):
    raise ValueError('inputs do not start with the instruction header followed by'
                     f' {QUESTION_PREFIX!r}: {str(inputs)[:80]!r}...')
  rest = inputs[len(prefix):]
  # Questions never contain newlines (none of GSM8K's do), so the first
  # step-by-step marker ends the question even if a solution repeats it.
  question, marker, body = rest.partition(STEP_BY_STEP)
  if not marker:
    raise ValueError(f'inputs have no {STEP_BY_STEP!r} after the question: '
                     f'{rest[:80]!r}...')
  for suffix, kind in ((DIRECT_SUFFIX, DIRECT), (COT_SUFFIX, COT)):
    if body.endswith(suffix):
      return question, body[:-len(suffix)], kind
  return question, body, None
