"""Console tables of the evaluation CLIs: first column left-aligned, the
others right-aligned, a rule under the header."""

from __future__ import annotations

from typing import Sequence


def lines(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  """The header, its rule and the rows, each a line of aligned columns."""
  widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
  fmt = lambda r: '  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths)))
  return [fmt(header), '  '.join('-' * w for w in widths)] + [fmt(r) for r in rows]
