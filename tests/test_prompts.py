"""Prompt formats: golden strings, and byte-for-byte rebuilds of the paper's released inputs."""

import json
import os
import zipfile

import pytest

from genrm_jax import prompts

VAL_ZIPS = (
    'rm_correct_solutions_batch_08_val.zip',
    'rm_incorrect_solutions_batch_08_val.zip',
    'critiques_correct_solutions_batch_16_val.zip',
    'critiques_incorrect_solutions_batch_16_val.zip',
)

HEADER_GOLDEN = (
    'Solve the math problems and provide step-by-step solutions, ending with "The answer is '
    '[Insert Final Answer Here]".\n'
    'When asked "Verification: Is the answer correct (Yes/No)?", respond with " Yes" or " No" '
    'based on the answer\'s correctness.\n'
    'When asked "Verification: Let\'s verify step by step.", verify every step of the solution '
    'and conclude with "Verification: Is the answer correct (Yes/No)?" followed by " Yes" or " No".')


def _critiques_dir():
  root = os.environ.get('GENRM_DATA_DIR')
  if not root:
    pytest.skip('Set GENRM_DATA_DIR to the data directory (e.g. ../shared/data) to run data tests.')
  return os.path.join(root, 'genrm_critiques', 'critiques')


def _zip_rows(path):
  with zipfile.ZipFile(path) as archive:
    with archive.open(archive.namelist()[0]) as f:
      return [json.loads(line) for line in f]


def test_golden_solution_prompt():
  assert prompts.HEADER == HEADER_GOLDEN
  assert prompts.solution_prompt('What is 1+1?') == (
      HEADER_GOLDEN + "\n\nQ: What is 1+1?\nA: Let's think step by step.\n")


def test_golden_direct_example():
  example = prompts.direct_verification_example('What is 1+1?', '1+1 = 2. The answer is 2.', True)
  assert example == {
      'inputs': HEADER_GOLDEN + "\n\nQ: What is 1+1?\nA: Let's think step by step.\n"
                '1+1 = 2. The answer is 2.\nVerification: Is the answer correct (Yes/No)?',
      'targets': ' Yes',
  }
  assert prompts.direct_verification_example('q', 's', False)['targets'] == ' No'
  assert prompts.direct_verification_example('q', 's', None)['targets'] is None


def test_golden_cot_prompt_and_verdict_line():
  assert prompts.cot_verification_prompt('What is 1+1?', 'The answer is 3.') == (
      HEADER_GOLDEN + "\n\nQ: What is 1+1?\nA: Let's think step by step.\nThe answer is 3.\n"
      "Verification: Let's verify step by step.\n")
  assert prompts.verdict_line(True) == 'Verification: Is the answer correct (Yes/No)? Yes'
  assert prompts.verdict_line(False) == 'Verification: Is the answer correct (Yes/No)? No'


@pytest.mark.parametrize('text, lenient, expected', [
    ('Step 1 ok.\nVerification: Is the answer correct (Yes/No)? Yes', False, True),
    ('Verification: Is the answer correct (Yes/No)? No', False, False),
    # The last verdict counts.
    ('Is the answer correct (Yes/No)? Yes\n...\nIs the answer correct (Yes/No)? No', False, False),
    ('**Verification: Is the answer correct (Yes/No)? Yes**', False, True),
    ('Is the answer correct (Yes/No)? Yesterday', False, None),
    ('no verdict here', False, None),
    (None, False, None),
    ('**Verification:** Is the answer correct? (Yes/No) **No**', False, None),
    ('**Verification:** Is the answer correct? (Yes/No) **No**', True, False),
    ('Is the answer correct (Yes/No)? <b>Yes</b>', True, True),
    ('Is the answer correct (Yes/No)? "No".', True, False),
])
def test_parse_verdict(text, lenient, expected):
  assert prompts.parse_verdict(text, lenient=lenient) is expected


def test_parse_inputs_round_trip_and_errors():
  question, solution = 'Q text?', 'Line 1.\n\nLine 2. The answer is 4.'
  for build, kind in ((prompts.direct_verification_prompt, 'direct'),
                      (prompts.cot_verification_prompt, 'cot')):
    inputs = build(question, solution)
    assert prompts.parse_verification_inputs(inputs) == (question, solution)
    assert prompts.verification_kind(inputs) == kind
  with pytest.raises(ValueError, match='header'):
    prompts.parse_verification_inputs('Q: x\nA: y')
  with pytest.raises(ValueError, match='step by step'):
    prompts.parse_verification_inputs(prompts.HEADER + '\n\nQ: question without answer part')


def test_released_validation_inputs_rebuild_byte_for_byte():
  directory = _critiques_dir()
  counts = {}
  for name in VAL_ZIPS:
    rows = _zip_rows(os.path.join(directory, name))
    counts[name] = len(rows)
    correct = 'incorrect' not in name
    for row in rows:
      question, solution = prompts.parse_verification_inputs(row['inputs'])
      if name.startswith('rm_'):
        rebuilt = prompts.direct_verification_example(question, solution, correct)
        assert rebuilt == {'inputs': row['inputs'], 'targets': row['targets']}
      else:
        assert prompts.cot_verification_prompt(question, solution) == row['inputs']
        # Every released rationale ends with exactly the verdict line of its label.
        assert row['targets'].endswith('\n' + prompts.verdict_line(correct))
        assert prompts.parse_verdict(row['targets']) is correct
  assert list(counts.values()) == [125, 87, 125, 134]
