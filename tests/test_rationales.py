"""Programmatic solutions and oracle rationales: golden strings, verdicts vs true correctness."""

import random
import string

import pytest

from genrm_jax import grading
from genrm_jax import prompts
from genrm_jax import rationales

NAMES = ['Whitney', 'Erika', 'Tj', 'Benito', 'James', 'Mary', 'Ann', 'Jose Antonio']


def test_golden_last_letter_solution_and_rationales():
  words = ['Whitney', 'Erika', 'Tj', 'Benito']
  question = rationales.last_letter_question(words)
  assert question == ('Take the last letters of each words in "Whitney Erika Tj Benito" and '
                      'concatenate them.')
  solution = rationales.solve_last_letter(words)
  assert solution == (
      'The last letter of "Whitney" is "y". The last letter of "Erika" is "a". The last letter '
      'of "Tj" is "j". The last letter of "Benito" is "o". Concatenating them is "yajo". '
      'The answer is yajo.')
  assert rationales.oracle_rationale('last_letter', question, solution, 'yajo') == (
      'Check each step. The words are: Whitney, Erika, Tj, Benito.\n'
      'Step 1: the last letter of "Whitney" is "y"; the solution says "y". Correct.\n'
      'Step 2: the last letter of "Erika" is "a"; the solution says "a". Correct.\n'
      'Step 3: the last letter of "Tj" is "j"; the solution says "j". Correct.\n'
      'Step 4: the last letter of "Benito" is "o"; the solution says "o". Correct.\n'
      'Concatenation: "y", "a", "j", "o" gives "yajo"; the solution says "yajo". Correct.\n'
      'Final answer: the solution\'s answer "yajo" matches "yajo".\n\n'
      'Verification: Is the answer correct (Yes/No)? Yes')
  wrong = solution.replace('"Erika" is "a"', '"Erika" is "k"').replace('yajo', 'ykjo')
  rationale = rationales.oracle_rationale('last_letter', question, wrong, 'yajo')
  assert 'Step 2: the last letter of "Erika" is "a"; the solution says "k". Incorrect.' in rationale
  assert rationale.endswith('does not match "yajo".\n\nVerification: Is the answer correct (Yes/No)? No')


def test_golden_word_sort_solution_and_rationale():
  words = ['thrill', 'splutter', 'it&t', 'it']
  assert rationales.word_sort_question(words) == (
      'Sort the following words alphabetically: List: thrill splutter it&t it')
  solution = rationales.solve_word_sort(words)
  assert solution == (
      'The words to sort are: thrill, splutter, it&t, it.\n'
      '"it" < "it&t" ("it" is a prefix of "it&t").\n'
      '"it&t" < "splutter" (letter 1: "i" < "s").\n'
      '"splutter" < "thrill" (letter 1: "s" < "t").\n'
      'The answer is it it&t splutter thrill.')
  question = rationales.word_sort_question(words)
  wrong = solution.replace('The answer is it it&t splutter thrill.',
                           'The answer is it&t it splutter thrill.')
  rationale = rationales.oracle_rationale('word_sort', question, wrong, 'it it&t splutter thrill')
  assert rationale == (
      'Check each step. The words to sort are: thrill, splutter, it&t, it (4 words).\n'
      'Step 1: the solution says "it" < "it&t"; in fact "it" < "it&t" ("it" is a prefix of "it&t"). Correct.\n'
      'Step 2: the solution says "it&t" < "splutter"; in fact "it&t" < "splutter" (letter 1: "i" < "s"). Correct.\n'
      'Step 3: the solution says "splutter" < "thrill"; in fact "splutter" < "thrill" (letter 1: "s" < "t"). Correct.\n'
      'The final list has all 4 words, each once. Correct.\n'
      'Position 1: "it&t" should be "it". Incorrect.\n'
      'Position 2: "it" should be "it&t". Incorrect.\n'
      'Position 3: "splutter". Correct.\n'
      'Position 4: "thrill". Correct.\n'
      'Final answer: the solution\'s answer "it&t it splutter thrill" does not match '
      '"it it&t splutter thrill".\n\n'
      'Verification: Is the answer correct (Yes/No)? No')


def test_two_word_names_resolved_by_the_reference():
  question = 'Take the last letters of each words in "Ira Paola Jose Antonio Maria" and concatenate them.'
  assert rationales.question_words('last_letter', question, 'aaoa') == [
      'Ira', 'Paola', 'Jose Antonio', 'Maria']
  assert rationales.question_words('last_letter', question) == [
      'Ira', 'Paola', 'Jose', 'Antonio', 'Maria']


def test_oracle_rejects_non_algorithmic_tasks():
  with pytest.raises(ValueError, match='not an algorithmic task'):
    rationales.oracle_rationale('gsm8k', 'q', 's', '1')


def _random_word(rng):
  return ''.join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 7)))


def _corrupt(rng, task, words, solution):
  """One random corruption (or none) of a correct solution."""
  kind = rng.choice(['none', 'letter', 'answer_letter', 'swap', 'drop', 'duplicate',
                     'no_answer', 'case', 'commas', 'claim_only', 'truncate', 'extra_word'])
  head, _, answer = solution.rpartition('The answer is ')
  answer = answer[:-1]  # drop the final period
  if kind == 'letter':
    i = rng.randrange(len(solution))
    return solution[:i] + rng.choice(string.ascii_lowercase) + solution[i + 1:]
  if kind == 'answer_letter' and answer:
    i = rng.randrange(len(answer))
    return f'{head}The answer is {answer[:i]}{rng.choice("xyzq")}{answer[i + 1:]}.'
  if kind == 'swap' and task == 'word_sort' and len(words) > 1:
    items = answer.split(' ')
    i, j = rng.sample(range(len(items)), 2)
    items[i], items[j] = items[j], items[i]
    return f'{head}The answer is {" ".join(items)}.'
  if kind == 'drop':
    items = answer.split(' ') if task == 'word_sort' else list(answer)
    del items[rng.randrange(len(items))]
    sep = ' ' if task == 'word_sort' else ''
    return f'{head}The answer is {sep.join(items)}.'
  if kind == 'duplicate':
    return f'{head}The answer is {answer} {answer.split(" ")[0]}.'
  if kind == 'no_answer':
    return head.strip()
  if kind == 'case':
    return f'{head}The answer is {answer.upper()}.'
  if kind == 'commas' and task == 'word_sort':
    return f'{head}The answer is {", ".join(answer.split(" "))}.'
  if kind == 'claim_only':  # a wrong intermediate step, right final answer
    return solution.replace('is "', 'is "q', 1).replace('" < "', '" > "', 1)
  if kind == 'truncate':
    return solution[:rng.randrange(len(solution))]
  if kind == 'extra_word':
    return f'{head}The answer is {answer} zzz.'
  return solution


@pytest.mark.parametrize('task', ['last_letter', 'word_sort'])
def test_oracle_verdict_agrees_with_true_correctness(task):
  rng = random.Random(0)
  verdicts = {True: 0, False: 0}
  for _ in range(1500):
    words = rng.sample(NAMES, rng.randint(1, 5)) if task == 'last_letter' else list(
        dict.fromkeys(_random_word(rng) for _ in range(rng.randint(1, 8))))
    if task == 'last_letter':
      question = rationales.last_letter_question(words)
      reference, solution = rationales.last_letter_answer(words), rationales.solve_last_letter(words)
    else:
      question = rationales.word_sort_question(words)
      reference, solution = rationales.word_sort_answer(words), rationales.solve_word_sort(words)
    assert grading.grade(task, solution, reference)
    candidate = _corrupt(rng, task, words, solution)
    truth = grading.grade(task, candidate, reference)
    rationale = rationales.oracle_rationale(task, question, candidate, reference)
    assert rationale.endswith('\n\n' + prompts.verdict_line(truth))
    assert rationale.count('Is the answer correct') == 1
    assert prompts.parse_verdict(rationale) is truth
    # The final-answer check states the same conclusion as the verdict.
    final = [line for line in rationale.split('\n') if line.startswith('Final answer:')]
    assert len(final) == 1 and (' matches ' in final[0]) is truth
    verdicts[truth] += 1
  assert min(verdicts.values()) > 300  # both outcomes well exercised
