"""The quickstart's main job.

Not yet: the end-to-end pipeline (generator SFT -> candidates -> verifier
training -> Best-of-N) lands with the training and evaluation issues. Until
then this checks the installation by running the tiny Gemma on the CPU.
"""

import time

import jax
import numpy as np

from genrm_jax.models import gemma


def main() -> None:
  print("genrm_jax quickstart: the full GenRM pipeline is not there yet "
        "(training and Best-of-N evaluation are still open issues).")
  config = gemma.get_config("tiny")
  start = time.time()
  params = gemma.init_params(config, 0)
  tokens = np.arange(1, 17, dtype=np.int32)[None]
  logits = jax.jit(lambda p, t: gemma.Transformer(config).apply(
      {"params": p}, t).logits)(params, tokens)
  print(f"Installation check: tiny Gemma ({gemma.count_params(params):,} "
        f"params) forward pass on {jax.devices()[0].platform}, logits "
        f"{tuple(logits.shape)}, {time.time() - start:.1f}s.")


if __name__ == "__main__":
  main()
