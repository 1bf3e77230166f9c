"""Programmatic solutions and oracle verification rationales for the algorithmic tasks.

For last-letter concatenation and word sorting every step of a solution can be
checked by a program, which is how the paper gets "oracle" rationales for these
tasks (paper §3.1). This module writes

* the step-by-step solutions a generator is fine-tuned on
  (`solve_last_letter`, `solve_word_sort`), ending "The answer is X.";
* `oracle_rationale(task, question, solution, reference)`: re-checks each step
  a candidate solution states, then its final answer, and ends with exactly
  `Verification: Is the answer correct (Yes/No)? Yes|No`. The verdict is the
  grader's (`genrm_jax.grading.grade`), so it always agrees with the
  candidate's true correctness, whatever its intermediate steps say.

Solution formats (the oracle parses these; other text is ignored):

  last letter:  The last letter of "Whitney" is "y". ... Concatenating them is
                "yajo". The answer is yajo.
  word sort:    The words to sort are: thrill, splutter, panicking.
                "panicking" < "splutter" (letter 1: "p" < "s").
                "splutter" < "thrill" (letter 1: "s" < "t").
                The answer is panicking splutter thrill.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from genrm_jax import grading
from genrm_jax import prompts
from genrm_jax.grading import algorithmic

LAST_LETTER = 'last_letter'
WORD_SORT = 'word_sort'
ALGORITHMIC_TASKS = (LAST_LETTER, WORD_SORT)

_LAST_LETTER_QUESTION = 'Take the last letters of each words in "{words}" and concatenate them.'
_WORD_SORT_QUESTION = 'Sort the following words alphabetically: List: {words}'

_QUOTED = re.compile(r'"([^"]*)"')
_WORD_SORT_LIST = re.compile(r'List:\s*(.*)$', re.DOTALL)
_LETTER_CLAIM = re.compile(r'[Tt]he last letter of "([^"]*)" is "([^"]*)"')
_CONCAT_CLAIM = re.compile(r'[Cc]oncatenating them is "([^"]*)"')
# A step line of a word-sorting solution starts with the comparison it justifies
# (the letters compared inside the parentheses are not steps of their own).
_COMPARISON_CLAIM = re.compile(r'^\s*"([^"]+)" ([<>=]) "([^"]+)"', re.MULTILINE)


# -----------------------------------------------------------------------------
# Questions and solutions.
# -----------------------------------------------------------------------------


def last_letter_question(words: Sequence[str]) -> str:
  """Kojima et al.'s wording: 'Take the last letters of each words in "A B" and concatenate them.'."""
  return _LAST_LETTER_QUESTION.format(words=' '.join(words))


def word_sort_question(words: Sequence[str]) -> str:
  """BBH's wording: 'Sort the following words alphabetically: List: a b c'."""
  return _WORD_SORT_QUESTION.format(words=' '.join(words))


def last_letter_answer(words: Sequence[str]) -> str:
  return ''.join(word[-1] for word in words)


def word_sort_answer(words: Sequence[str]) -> str:
  # Code-point order: reproduces all 250 BBH targets.
  return ' '.join(sorted(words))


def question_words(task: str, question: str, reference: Optional[str] = None) -> list[str]:
  """The words (names) a last-letter or word-sorting question is about.

  Args:
    task: 'last_letter' or 'word_sort'.
    question: The question text.
    reference: For last-letter questions, the answer; it resolves names of two
      words (Kojima et al.'s set has "Ira Paola Jose Antonio Maria" -> "aaoa":
      "Jose Antonio" is one name). Without it every word is a name.
  """
  if task == LAST_LETTER:
    match = _QUOTED.search(question)
    if match is None:
      raise ValueError(f'last-letter question without a quoted word list: {question!r}')
    tokens = match.group(1).split()
    if reference is not None:
      answer = algorithmic.normalize_text(reference)
      if len(answer) != len(tokens):
        return _group_names(tokens, answer) or tokens
    return tokens
  if task == WORD_SORT:
    match = _WORD_SORT_LIST.search(question)
    if match is None:
      raise ValueError(f'word-sorting question without "List:": {question!r}')
    return match.group(1).split()
  raise ValueError(f'{task!r} is not an algorithmic task ({", ".join(ALGORITHMIC_TASKS)})')


def _group_names(tokens: Sequence[str], answer: str) -> Optional[list[str]]:
  """Joins adjacent tokens into len(answer) names whose last letters spell `answer`."""
  if not answer:
    return [] if not tokens else None
  for size in range(1, len(tokens) - len(answer) + 2):
    name = ' '.join(tokens[:size])
    if name[-1] == answer[0]:
      rest = _group_names(tokens[size:], answer[1:])
      if rest is not None:
        return [name] + rest
  return None


def solve_last_letter(words: Sequence[str]) -> str:
  """Step-by-step last-letter solution (Wei et al.'s CoT style)."""
  steps = [f'The last letter of "{word}" is "{word[-1]}".' for word in words]
  answer = last_letter_answer(words)
  steps.append(f'Concatenating them is "{answer}".')
  steps.append(f'{prompts.ANSWER_PHRASE} {answer}.')
  return ' '.join(steps)


def _first_difference(a: str, b: str) -> Optional[int]:
  """Index of the first differing character; None if one word is a prefix of the other."""
  for i, (x, y) in enumerate(zip(a, b)):
    if x != y:
      return i
  return None


def _relation(a: str, b: str) -> str:
  return '<' if a < b else '>' if a > b else '='


def _comparison(a: str, b: str) -> str:
  """'"a" < "b" (letter 2: "x" < "y")', justifying the order of two words."""
  relation = _relation(a, b)
  if relation == '=':
    return f'"{a}" = "{b}" (the same word)'
  i = _first_difference(a, b)
  if i is None:
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    return f'"{a}" {relation} "{b}" ("{shorter}" is a prefix of "{longer}")'
  return f'"{a}" {relation} "{b}" (letter {i + 1}: "{a[i]}" {relation} "{b[i]}")'


def solve_word_sort(words: Sequence[str]) -> str:
  """Step-by-step word-sorting solution: the sorted list, each adjacent pair justified."""
  ordered = sorted(words)
  lines = [f'The words to sort are: {", ".join(words)}.']
  lines += [_comparison(a, b) + '.' for a, b in zip(ordered, ordered[1:])]
  lines.append(f'{prompts.ANSWER_PHRASE} {" ".join(ordered)}.')
  return '\n'.join(lines)


# -----------------------------------------------------------------------------
# Oracle rationales.
# -----------------------------------------------------------------------------


def oracle_rationale(task: str, question: str, solution: str, reference: str) -> str:
  """A rationale that re-checks every step of `solution`, ending with the verdict line.

  Args:
    task: 'last_letter' or 'word_sort'.
    question: The problem (its word list is read from it).
    solution: The candidate solution.
    reference: The correct final answer.

  Returns:
    Lines of checks, a blank line, then exactly
    `Verification: Is the answer correct (Yes/No)? Yes|No`; the verdict is
    `grading.grade(task, solution, reference)`.

  Raises:
    ValueError: for a task without programmatic rationales (GSM8K, MATH use
      reference-guided synthetic rationales instead) or a question without a
      word list.
  """
  words = question_words(task, question, reference)
  if task == LAST_LETTER:
    checks = _check_last_letter(words, solution, reference)
  else:
    checks = _check_word_sort(words, solution, reference)
  correct = grading.grade(task, solution, reference)
  return '\n'.join(checks) + '\n\n' + prompts.verdict_line(correct)


def _final_answer_line(answer: Optional[str], expected: str, matches: bool,
                       note: str = '') -> str:
  if answer is None:
    return 'Final answer: the solution states no final answer ("The answer is ...").'
  verb = 'matches' if matches else 'does not match'
  return f'Final answer: the solution\'s answer "{answer}" {verb} "{expected}"{note}.'


def _check_last_letter(words: list[str], solution: str, reference: str) -> list[str]:
  claims = _LETTER_CLAIM.findall(solution or '')
  unused = list(claims)
  lines = [f'Check each step. The words are: {", ".join(words)}.']
  claimed_letters = []
  for step, word in enumerate(words, start=1):
    truth = word[-1]
    claim = next((c for c in unused if c[0] == word), None)
    if claim is None:
      lines.append(f'Step {step}: the last letter of "{word}" is "{truth}"; '
                   'the solution does not state it. Missing.')
      continue
    unused.remove(claim)
    claimed_letters.append(claim[1])
    verdict = 'Correct.' if claim[1] == truth else 'Incorrect.'
    lines.append(f'Step {step}: the last letter of "{word}" is "{truth}"; '
                 f'the solution says "{claim[1]}". {verdict}')
  for word, letter in unused:
    lines.append(f'The solution also gives "{letter}" for "{word}", '
                 'which is not in the list. Incorrect.')
  true_concat = last_letter_answer(words)
  concat = _CONCAT_CLAIM.findall(solution or '')
  letters = ', '.join(f'"{word[-1]}"' for word in words)
  if concat:
    verdict = 'Correct.' if concat[-1] == true_concat else 'Incorrect.'
    lines.append(f'Concatenation: {letters} gives "{true_concat}"; '
                 f'the solution says "{concat[-1]}". {verdict}')
  else:
    lines.append(f'Concatenation: {letters} gives "{true_concat}"; '
                 'the solution does not state it.')
  answer = grading.extract_answer(LAST_LETTER, solution)
  expected = algorithmic.normalize_text(reference)
  matches = algorithmic.is_equivalent_last_letter(answer, reference)
  lines.append(_final_answer_line(answer, expected, matches,
                                  ' (ignoring case)' if matches and answer != expected else ''))
  return lines


def _answer_words(text: Optional[str]) -> list[str]:
  """Words of a word-sorting answer, split exactly as the grader compares them."""
  if text is None:
    return []
  normalized = algorithmic.normalize_text(text.replace(',', ' '))
  return normalized.split(' ') if normalized else []


def _check_word_sort(words: list[str], solution: str, reference: str) -> list[str]:
  lines = [f'Check each step. The words to sort are: {", ".join(words)} '
           f'({len(words)} words).']
  # The comparisons the solution states, each re-checked.
  claims = _COMPARISON_CLAIM.findall(solution or '')
  for step, (a, relation, b) in enumerate(claims, start=1):
    truth = _relation(a, b)
    verdict = 'Correct.' if truth == relation else 'Incorrect.'
    lines.append(f'Step {step}: the solution says "{a}" {relation} "{b}"; '
                 f'in fact {_comparison(a, b)}. {verdict}')
  answer = grading.extract_answer(WORD_SORT, solution)
  expected_words = _answer_words(reference)
  expected = ' '.join(expected_words)
  if answer is None:
    lines.append(_final_answer_line(None, expected, False))
    return lines
  answer_words = _answer_words(answer)
  # Same words? (a sorted list must be a permutation of the input)
  missing = _multiset_difference(words, answer_words)
  extra = _multiset_difference(answer_words, words)
  if not missing and not extra:
    lines.append(f'The final list has all {len(words)} words, each once. Correct.')
  else:
    if missing:
      lines.append(f'The final list is missing: {", ".join(missing)}. Incorrect.')
    if extra:
      lines.append(f'The final list has words not in the list (or repeated): '
                   f'{", ".join(extra)}. Incorrect.')
  # Position by position against the sorted list.
  for position in range(max(len(answer_words), len(expected_words))):
    got = answer_words[position] if position < len(answer_words) else None
    want = expected_words[position] if position < len(expected_words) else None
    if got == want:
      lines.append(f'Position {position + 1}: "{got}". Correct.')
    elif got is None:
      lines.append(f'Position {position + 1}: should be "{want}"; the list has ended. Incorrect.')
    elif want is None:
      lines.append(f'Position {position + 1}: "{got}" should not be there. Incorrect.')
    else:
      lines.append(f'Position {position + 1}: "{got}" should be "{want}". Incorrect.')
  lines.append(_final_answer_line(answer, expected, answer_words == expected_words))
  return lines


def _multiset_difference(a: Sequence[str], b: Sequence[str]) -> list[str]:
  remaining = list(b)
  out = []
  for item in a:
    if item in remaining:
      remaining.remove(item)
    else:
      out.append(item)
  return out
