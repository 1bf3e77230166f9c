"""Candidate stores and verifier-score files: round trips, atomic/append writes, malformed rows."""

import json
import logging
import os

import pytest

from genrm_jax import candidates as cands


def _row(**overrides):
  row = {'problem_id': 'gsm8k/test.jsonl/0', 'candidate_id': 0, 'question': 'What is 1+1?',
         'solution': '1+1 = 2. The answer is 2.', 'answer': '2', 'reference': '2',
         'correct': True}
  row.update(overrides)
  return row


def _write_lines(path, lines):
  path.write_text(''.join(line + '\n' for line in lines), encoding='utf-8')


def test_round_trip_keeps_optional_and_unknown_fields(tmp_path):
  path = tmp_path / 'c.jsonl'
  rows = [_row(), _row(candidate_id='s1', answer=None, correct=False, task='gsm8k',
                       generator='gemma', seed=3, logprob=-1.5, note='kept')]
  assert cands.write_candidates(path, rows) == 2
  read = cands.read_candidates(path)
  assert [c.to_dict() for c in read] == rows
  assert read[1].extra == {'note': 'kept'} and read[1].logprob == -1.5
  assert os.listdir(tmp_path) == ['c.jsonl']  # no temp file left behind


@pytest.mark.parametrize('line, problem', [
    ('{"problem_id": "p"', 'invalid JSON'),
    (json.dumps({k: v for k, v in _row().items() if k != 'reference'}), "missing field(s) reference"),
    (json.dumps(_row(problem_id=7)), "field 'problem_id' must be a string, got int 7"),
    (json.dumps(_row(correct=1)), "field 'correct' must be true or false"),
    (json.dumps(_row(candidate_id=True)), "field 'candidate_id' must be an integer or a string"),
    (json.dumps(_row(logprob='x')), "field 'logprob' must be a finite number or null"),
    ('[1, 2]', 'must be a JSON object'),
])
def test_malformed_row_names_file_line_and_problem(tmp_path, line, problem):
  path = tmp_path / 'bad.jsonl'
  _write_lines(path, [json.dumps(_row()), '', line])
  with pytest.raises(cands.MalformedRowError) as info:
    cands.read_candidates(path)
  message = str(info.value)
  assert message.startswith(f'{path}:3: ')
  assert problem in message
  assert info.value.line_number == 3


def test_skip_mode_counts_and_warns(tmp_path, caplog):
  path = tmp_path / 'c.jsonl'
  _write_lines(path, [json.dumps(_row()), 'garbage', json.dumps(_row(candidate_id=1)),
                      json.dumps(_row(correct='yes'))])
  stats = cands.ReadStats()
  with caplog.at_level(logging.WARNING):
    read = cands.read_candidates(path, on_error='skip', stats=stats)
  assert [c.candidate_id for c in read] == [0, 1]
  assert (stats.rows, stats.skipped) == (2, 2)
  assert stats.errors[0].startswith(f'{path}:2: invalid JSON')
  assert '2 malformed rows skipped' in caplog.text
  with pytest.raises(ValueError, match='on_error'):
    cands.read_candidates(path, on_error='ignore')


def test_atomic_write_keeps_old_store_when_a_row_is_bad(tmp_path):
  path = tmp_path / 'c.jsonl'
  cands.write_candidates(path, [_row()])
  before = path.read_bytes()
  with pytest.raises(ValueError, match='correct'):
    cands.write_candidates(path, [_row(candidate_id=1), _row(correct=None)])
  assert path.read_bytes() == before
  assert os.listdir(tmp_path) == ['c.jsonl']


def test_append_mode_resumes_and_isolates_a_cut_line(tmp_path):
  path = tmp_path / 'c.jsonl'
  cands.write_candidates(path, [_row(candidate_id=0)], append=True)
  cands.write_candidates(path, [cands.Candidate.from_dict(_row(candidate_id=1))], append=True)
  with open(path, 'a', encoding='utf-8') as f:
    f.write('{"problem_id": "cut')  # a writer killed mid-line
  cands.write_candidates(path, [_row(candidate_id=2)], append=True)
  # The cut line moved aside: every later (strict) reader reads the file.
  assert [c.candidate_id for c in cands.read_candidates(path)] == [0, 1, 2]
  assert (tmp_path / 'c.jsonl.cut').read_text() == '{"problem_id": "cut\n'
  # A whole row that lacks only its newline stays.
  with open(path, 'a', encoding='utf-8') as f:
    f.write(json.dumps(_row(candidate_id=3)))
  cands.write_candidates(path, [_row(candidate_id=4)], append=True)
  assert [c.candidate_id for c in cands.read_candidates(path)] == [0, 1, 2, 3, 4]
  # A cut line longer than the reader's 64 KiB blocks.
  with open(path, 'a', encoding='utf-8') as f:
    f.write('{"solution": "' + 'x' * 200_000)
  cands.write_candidates(path, [_row(candidate_id=5)], append=True)
  assert [c.candidate_id for c in cands.read_candidates(path)] == [0, 1, 2, 3, 4, 5]
  assert len((tmp_path / 'c.jsonl.cut').read_text().splitlines()) == 2


def test_group_by_problem_keeps_order():
  rows = [cands.Candidate.from_dict(_row(problem_id=p, candidate_id=i))
          for i, p in enumerate(['b', 'a', 'b', 'c', 'a'])]
  groups = cands.group_by_problem(rows)
  assert list(groups) == ['b', 'a', 'c']
  assert [c.candidate_id for c in groups['b']] == [0, 2]


def test_scores_round_trip_and_validation(tmp_path):
  path = tmp_path / 's.jsonl'
  scores = [{'problem_id': 'p', 'candidate_id': 0, 'verifier': 'genrm', 'score': 0.75},
            {'problem_id': 'p', 'candidate_id': 1, 'verifier': 'genrm_cot', 'score': 1,
             'k': 3, 'rationale': 'ok'}]
  cands.write_scores(path, scores)
  read = cands.read_scores(path)
  assert [s.to_dict() for s in read] == [scores[0], {**scores[1], 'score': 1.0}]
  assert isinstance(read[1].score, float)
  _write_lines(path, [json.dumps(scores[0]), '{"problem_id": "p", "candidate_id": 0, '
                      '"verifier": "v", "score": NaN}'])
  with pytest.raises(cands.MalformedRowError, match=r's.jsonl:2: .*finite number'):
    cands.read_scores(path)
  with pytest.raises(ValueError, match='score'):
    cands.write_scores(path, [{**scores[0], 'score': float('inf')}])
