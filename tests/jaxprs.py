"""Reading jaxprs in structural tests: every equation, nested ones too."""

from __future__ import annotations

from collections.abc import Iterator

import jax


def all_eqns(jaxpr) -> Iterator[jax.core.JaxprEqn]:
  """Every equation of `jaxpr` (a Jaxpr or ClosedJaxpr), then those of the
  sub-jaxprs its equations carry (pjit, scan, remat, custom derivatives)."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      for sub in (param if isinstance(param, (list, tuple)) else [param]):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from all_eqns(inner)
