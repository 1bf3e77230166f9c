"""Problem sources and (seqio) task definitions for the GenRM tasks.

`tasks.sources` is plain Python (no TensorFlow): importing this package must
stay cheap, so registry modules that need seqio are imported explicitly.
"""
