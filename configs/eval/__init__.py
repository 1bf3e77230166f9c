"""Evaluation configs (python -m genrm_jax.evaluate --config=...)."""
