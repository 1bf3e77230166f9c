"""The launchers in launch/: syntax, and the exact commands of their dry runs.

Dry runs must need none of the tools they would call (gcloud, srun, sbatch,
curl, git): each runs here with a PATH holding only the basic utilities, so
that a real call would fail the test.
"""

import os
import pathlib
import shlex
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
SCRIPTS = sorted(LAUNCH.glob("*.sh")) + sorted(LAUNCH.glob("*.sbatch"))


@pytest.fixture(scope="module")
def bare_path(tmp_path_factory):
  """A PATH directory with only what the scripts use for printing."""
  bin_dir = tmp_path_factory.mktemp("bin")
  for tool in ("bash", "sed", "awk", "grep", "cut", "dirname", "cat", "env",
               "sha256sum", "mkdir", "sh"):
    found = shutil.which(tool)
    if found:
      (bin_dir / tool).symlink_to(found)
  for absent in ("gcloud", "srun", "sbatch", "curl", "git", "python3"):
    assert not (bin_dir / absent).exists()
  return str(bin_dir)


def dry_run(script, *args, bare_path, env=None):
  """Runs `bash launch/SCRIPT ARGS` and returns (stdout lines, stderr)."""
  full_env = {"PATH": bare_path, "HOME": os.environ.get("HOME", "/tmp"),
              "TMPDIR": "/tmp", **(env or {})}
  proc = subprocess.run(["bash", str(LAUNCH / script), *args], cwd=REPO,
                        env=full_env, capture_output=True, text=True,
                        timeout=60, check=False)
  assert proc.returncode == 0, proc.stderr
  return proc.stdout.splitlines(), proc.stderr


def commands(lines):
  """The printed commands ('+ ...' lines), each split as a shell would."""
  return [shlex.split(line[2:]) for line in lines if line.startswith("+ ")]


def flag(cmd, name):
  values = [a.split("=", 1)[1] for a in cmd if a.startswith(name + "=")]
  assert len(values) == 1, (name, cmd)
  return values[0]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
  subprocess.run(["bash", "-n", str(script)], check=True)
  text = script.read_text()
  if script.name != "_common.sh":  # a sourced library has no shebang
    assert text.startswith("#!/usr/bin/env bash"), script
    assert "set -euo pipefail" in text, script


def test_every_launcher_is_here():
  names = {p.name for p in SCRIPTS}
  assert {"tpu_pod.sh", "gpu.sh", "slurm.sh", "slurm.sbatch",
          "download_data.sh", "setup_env.sh"} <= names


# --- TPU pod -----------------------------------------------------------------


def test_tpu_pod_dry_run_queued_v5p(bare_path):
  lines, _ = dry_run(
      "tpu_pod.sh", "--dry_run", "--project=my-project", "--zone=us-east5-a",
      "--accelerator=v5p-32", "--name=genrm-v5p", "--queued", "--spot",
      "--download_data", "--config=configs/gsm8k_cot.py",
      "--workdir=gs://my-bucket/genrm/run1",
      "--config.init_from=gs://my-bucket/gemma2-9b/ckpt",
      "--env=GENRM_DATA_DIR=/data dir", "--teardown=delete", "--",
      "--config.mesh=(1,-1,1)", bare_path=bare_path)
  cmds = commands(lines)
  gcloud = [c for c in cmds if c[0] == "gcloud"]
  # Create through queued resources, with the generation's runtime.
  create = gcloud[0]
  assert create[:5] == ["gcloud", "compute", "tpus", "queued-resources",
                        "create"]
  assert flag(create, "--accelerator-type") == "v5p-32"
  assert flag(create, "--runtime-version") == "v2-alpha-tpuv5"
  assert flag(create, "--node-id") == "genrm-v5p"
  assert flag(create, "--project") == "my-project"
  assert flag(create, "--zone") == "us-east5-a"
  assert "--spot" in create
  assert any("until ACTIVE" in line for line in lines)
  # Code: a tarball of the checkout, copied to every worker.
  scp = [c for c in gcloud if "scp" in c]
  assert len(scp) == 1 and "--worker=all" in scp[0]
  # Every ssh runs on all workers.
  ssh = [c for c in gcloud if "ssh" in c]
  assert ssh and all("--worker=all" in c for c in ssh)
  remote = [flag(c, "--command") for c in ssh]
  assert any("tar -xzf" in r for r in remote)
  setup = [r for r in remote if "launch/setup_env.sh" in r]
  assert len(setup) == 1 and "GENRM_EXTRAS=tpu" in setup[0]
  assert any("launch/download_data.sh" in r for r in remote)
  # The same training command on every worker, distributed init on.
  train = [r for r in remote if "genrm_jax.train" in r]
  assert len(train) == 1
  words = shlex.split(train[0])
  assert "GENRM_JAX_INIT=1" in words
  assert "GENRM_DATA_DIR=/data dir" in words
  assert "--config=configs/gsm8k_cot.py" in words
  assert "--workdir=gs://my-bucket/genrm/run1" in words
  assert "--config.init_from=gs://my-bucket/gemma2-9b/ckpt" in words
  assert "--config.mesh=(1,-1,1)" in words
  # Steps in order, teardown last.
  order = [i for i, r in enumerate(remote)
           if "tar -xzf" in r or "setup_env" in r or "genrm_jax.train" in r]
  assert order == sorted(order)
  assert gcloud[-1][3:5] == ["queued-resources", "delete"]


def test_tpu_pod_dry_run_v6e_git_stop(bare_path):
  lines, _ = dry_run(
      "tpu_pod.sh", "--dry_run", "--zone=us-east1-d", "--accelerator=v6e-16",
      "--config=configs/gsm8k_cot.py:tiny", "--workdir=gs://b/d",
      "--code=git", "--repo=https://github.com/me/genrm_jax", "--ref=v1",
      "--teardown=stop", "--detach", bare_path=bare_path)
  cmds = commands(lines)
  create = cmds[0]
  assert create[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "create"]
  assert flag(create, "--version") == "v2-alpha-tpuv6e"
  assert not any(a.startswith("--project") for a in create)
  assert any(line.startswith("# reused if") for line in lines)
  remote = [flag(c, "--command") for c in cmds if "ssh" in c]
  assert "git clone -q https://github.com/me/genrm_jax genrm_jax" in remote[0]
  assert not any(c[0] == "bash" for c in cmds)  # no tarball with --code=git
  train = [r for r in remote if "genrm_jax.train" in r][0]
  # Braced: a bare trailing `&` backgrounds the whole `cd && export && ...`
  # list, whose subshell holds ssh open until training ends.
  assert "{ nohup " in train and train.rstrip().endswith("& }")
  assert cmds[-1][3:5] == ["tpu-vm", "stop"]


def test_tpu_pod_only_train_step(bare_path):
  lines, _ = dry_run("tpu_pod.sh", "--dry_run", "--zone=z", "--name=pod",
                     "--config=configs/gsm8k_cot.py", "--workdir=gs://b/d",
                     "--steps=train", bare_path=bare_path)
  cmds = commands(lines)
  assert len(cmds) == 1 and "ssh" in cmds[0] and "pod" in cmds[0]


def test_tpu_pod_teardown_alone_needs_no_config(bare_path):
  """`--steps=teardown` cleans up a slice without --config and --workdir
  (launch/README.md's clean-up command)."""
  lines, _ = dry_run("tpu_pod.sh", "--dry_run", "--project=p", "--zone=z", "--name=pod",
                     "--steps=teardown", "--teardown=delete", bare_path=bare_path)
  cmds = commands(lines)
  assert len(cmds) == 1 and cmds[0][3:6] == ["tpu-vm", "delete", "pod"], cmds


def test_tpu_pod_rejects_bad_flags(bare_path):
  env = {"PATH": bare_path, "HOME": "/tmp"}
  for args in (["--zone=z", "--workdir=gs://b/d"],  # no config
               ["--zone=z", "--config=configs/nope.py", "--workdir=gs://b/d"],
               ["--zone=z", "--config=configs/gsm8k_cot.py",
                "--workdir=gs://b/d", "--bogus"],
               # the teardown step with the default --teardown=none deleted
               ["--zone=z", "--name=pod", "--steps=teardown"]):
    proc = subprocess.run(["bash", str(LAUNCH / "tpu_pod.sh"), "--dry_run",
                           "--accelerator=v5p-8", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "error:" in proc.stderr, args


# --- GPU, one host -------------------------------------------------------------


def test_gpu_dry_run(bare_path):
  lines, _ = dry_run("gpu.sh", "--dry_run", "--gpus=0,1",
                     "--config=configs/last_letter_genrm.py:tiny",
                     "--workdir=/tmp/ll", "--config.total_steps=5",
                     "--xla_flags=--xla_dump_to=/tmp/dump",
                     bare_path=bare_path)
  assert "+ GENRM_EXTRAS=gpu bash launch/setup_env.sh" in lines
  cmds = commands(lines)
  exports = dict(c[1].split("=", 1) for c in cmds if c[0] == "export")
  assert exports["XLA_FLAGS"] == ("--xla_gpu_enable_latency_hiding_scheduler="
                                  "true --xla_dump_to=/tmp/dump")
  assert exports["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.90"
  assert exports["CUDA_VISIBLE_DEVICES"] == "0,1"
  train = cmds[-1]
  assert train[0].endswith(".venv/bin/python")
  assert train[1:] == ["-m", "genrm_jax.train",
                       "--config=configs/last_letter_genrm.py:tiny",
                       "--workdir=/tmp/ll", "--config.total_steps=5"]


def test_gpu_respects_environment(bare_path):
  lines, _ = dry_run("gpu.sh", "--dry_run", "--python=/opt/py/bin/python",
                     "--config=configs/gsm8k_cot.py", "--workdir=/w",
                     bare_path=bare_path,
                     env={"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.5"})
  cmds = commands(lines)
  assert not any("setup_env" in line for line in lines)
  exports = dict(c[1].split("=", 1) for c in cmds if c[0] == "export")
  assert exports["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.5"
  assert "CUDA_VISIBLE_DEVICES" not in exports
  assert cmds[-1][0] == "/opt/py/bin/python"
  # An explicit flag wins over the environment.
  lines, _ = dry_run("gpu.sh", "--dry_run", "--python=/opt/py/bin/python",
                     "--config=configs/gsm8k_cot.py", "--workdir=/w", "--mem_fraction=0.95",
                     bare_path=bare_path, env={"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.5"})
  exports = dict(c[1].split("=", 1) for c in commands(lines) if c[0] == "export")
  assert exports["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.95"


# --- SLURM, several hosts -------------------------------------------------------


def test_slurm_dry_run(bare_path):
  lines, _ = dry_run("slurm.sh", "--dry_run", "--nodes=4",
                     "--gpus_per_node=8", "--partition=gpu", "--time=2:00:00",
                     "--config=configs/gsm8k_cot.py", "--workdir=/shared/w",
                     "--config.batch_size=128", bare_path=bare_path)
  cmds = commands(lines)
  sbatch = cmds[0]
  assert sbatch[0] == "sbatch"
  assert flag(sbatch, "--nodes") == "4"
  assert flag(sbatch, "--ntasks-per-node") == "1"
  assert flag(sbatch, "--gpus-per-node") == "8"
  assert flag(sbatch, "--partition") == "gpu"
  assert flag(sbatch, "--time") == "2:00:00"
  i = sbatch.index("launch/slurm.sbatch")
  assert sbatch[i + 1:] == ["--config=configs/gsm8k_cot.py",
                            "--workdir=/shared/w", "--config.batch_size=128"]
  # What the job runs: distributed init from SLURM, one task per node.
  exports = dict(c[1].split("=", 1) for c in cmds if c[0] == "export")
  assert exports["GENRM_JAX_INIT"] == "1"
  assert "latency_hiding_scheduler=true" in exports["XLA_FLAGS"]
  srun = cmds[-1]
  assert srun[0] == "srun"
  assert flag(srun, "--nodes") == "4" and flag(srun, "--ntasks") == "4"
  assert flag(srun, "--ntasks-per-node") == "1"
  j = srun.index("genrm_jax.train")
  assert srun[j - 1] == "-m" and srun[j - 2].endswith(".venv/bin/python")
  assert srun[j + 1:] == sbatch[i + 1:]


def test_sbatch_script_dry_run_inside_a_job(bare_path):
  """The batch script itself, as SLURM would run it (env from the job)."""
  lines, _ = dry_run("slurm.sbatch", "--dry_run",
                     "--config=configs/gsm8k_cot.py", "--workdir=/shared/w",
                     bare_path=bare_path,
                     env={"SLURM_JOB_NUM_NODES": "3",
                          "SLURM_SUBMIT_DIR": str(REPO),
                          "GENRM_PYTHON": "/env/bin/python"})
  srun = commands(lines)[-1]
  assert srun[:2] == ["srun", "--nodes=3"]
  assert srun[-4:] == ["-m", "genrm_jax.train",
                       "--config=configs/gsm8k_cot.py", "--workdir=/shared/w"]
  assert "/env/bin/python" in srun
  sbatch_text = (LAUNCH / "slurm.sbatch").read_text()
  assert "#SBATCH --ntasks-per-node=1" in sbatch_text


# --- Data download -------------------------------------------------------------


def _expected_table():
  text = (LAUNCH / "download_data.sh").read_text()
  table = text.split("SHA256='", 1)[1].split("'", 1)[0]
  return dict(reversed(line.split()) for line in table.strip().splitlines())


def test_download_data_table_matches_shared_readme():
  """The script's sums are section 8 of the shared data README, all of it."""
  readme = REPO.parent / "shared" / "data" / "README.md"
  if not readme.exists():
    pytest.skip("no ../shared/data/README.md beside the repository")
  section = readme.read_text().split("## 8.", 1)[1]
  want = {}
  for line in section.splitlines():
    cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
    if len(cells) == 3 and len(cells[2]) == 64:
      want[cells[0]] = cells[2]
  assert want and _expected_table() == want


def test_download_data_dry_run(bare_path, tmp_path):
  lines, err = dry_run("download_data.sh", "--dry_run", bare_path=bare_path,
                       env={"GENRM_DATA_DIR": str(tmp_path / "data")})
  assert not (tmp_path / "data").exists()  # a dry run writes nothing
  assert "dry run" in err
  cmds = commands(lines)
  curls = [c for c in cmds if c[0] == "curl"]
  urls = [c[-1] for c in curls]
  assert any("grade-school-math/3101c7d5" in u for u in urls)
  assert any("BIG-Bench-Hard/9ee07bd4" in u for u in urls)
  assert any("MATH.tar" in line for line in lines)
  assert any(c[:2] == ["git", "clone"] for c in cmds)
  # Every file of the table is checked against its sum.
  checked = {c[2]: c[4] for c in cmds if c[:2] == ["check", "sha256"]}
  table = _expected_table()
  assert set(checked) == set(table) - {"math/LICENSE"}
  assert all(checked[k] == table[k] for k in checked)


def test_download_data_checks_sums_of_present_files(tmp_path):
  """With the files present (no network needed), the real run checks every
  sum and stops on a mismatch."""
  shared = REPO.parent / "shared" / "data"
  if not (shared / "README.md").exists():
    pytest.skip("no ../shared/data beside the repository")
  data = tmp_path / "data"
  shutil.copytree(shared, data, symlinks=False,
                  copy_function=os.symlink)
  # A copy of the shared data (no .git) is present, not cloned into again.
  env = {**os.environ, "GENRM_DATA_DIR": str(data)}
  script = str(LAUNCH / "download_data.sh")
  proc = subprocess.run(["bash", script], env=env, capture_output=True,
                        text=True, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr
  assert "every file's sha256 checked" in proc.stderr and "git clone" not in proc.stderr
  target = data / "bbh" / "word_sorting.json"
  target.unlink()
  target.write_text('{"examples": []}')
  proc = subprocess.run(["bash", script], env=env, capture_output=True,
                        text=True, timeout=120, check=False)
  assert proc.returncode != 0
  assert "sha256 mismatch" in proc.stderr and "word_sorting.json" in proc.stderr


# --- Gemma 3 270M paper comparison ---------------------------------------------


def test_paper_270m_dry_run(bare_path):
  lines, _ = dry_run("paper_270m.sh", "--dry_run", "--task=gsm8k",
                     "--config.runs.solve.total_steps=10", bare_path=bare_path)
  assert "+ GENRM_EXTRAS=gpu,gguf bash launch/setup_env.sh" in lines
  cmds = commands(lines)
  exports = dict(c[1].split("=", 1) for c in cmds if c[0] == "export")
  assert exports["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.90"
  python = [c for c in cmds if c[0].endswith(".venv/bin/python")]
  assert python[0][1:] == ["-m", "genrm_jax.models.import_gguf",
                           "--out=runs/gemma3_270m"]
  assert python[1][1:] == [
      "-m", "genrm_jax.pipeline",
      "--config=configs/pipeline/paper_270m.py:task=gsm8k,base=runs/gemma3_270m",
      "--workdir=runs/paper_270m_gsm8k", "--config.runs.solve.total_steps=10"]
  assert ["mkdir", "-p", "results/paper_270m/gsm8k"] in cmds
  copy = next(c for c in cmds if c[0] == "cp")
  assert copy == ["cp", "runs/paper_270m_gsm8k/eval/results.json",
                  "runs/paper_270m_gsm8k/eval/curves.csv",
                  "runs/paper_270m_gsm8k/eval/selections.jsonl",
                  "runs/paper_270m_gsm8k/pipeline.json", "results/paper_270m/gsm8k/"]
  assert cmds[-1][:2] == ["sh", "-c"] and "results/paper_270m/gsm8k/" in cmds[-1][2]


def test_paper_270m_smoke_dry_run(bare_path):
  """--smoke passes the config's `smoke` option and keeps its workdir and
  results away from the real run's."""
  lines, _ = dry_run("paper_270m.sh", "--dry_run", "--smoke", "--task=last_letter",
                     "--python=py", "--unified", "--bt", bare_path=bare_path)
  cmds = commands(lines)
  pipeline = [c for c in cmds if c[:3] == ["py", "-m", "genrm_jax.pipeline"]]
  assert pipeline == [[
      "py", "-m", "genrm_jax.pipeline",
      "--config=configs/pipeline/paper_270m.py:task=last_letter,base=runs/gemma3_270m,"
      "smoke,unified,bt", "--workdir=runs/paper_270m_smoke_last_letter"]]
  assert ["mkdir", "-p", "results/paper_270m_smoke/last_letter"] in cmds
  assert not any("results/paper_270m/" in " ".join(c) for c in cmds)
  # The argument is one the config accepts.
  from configs.pipeline import paper_270m  # pylint: disable=g-import-not-at-top
  arg = pipeline[0][3].split(":", 1)[1]
  assert paper_270m.get_config(arg).train.batch_size == 2
  assert {"genrm_cot_unified", "bt"} <= set(paper_270m.get_config(arg).verifiers)


def test_paper_270m_rejects_unknown_task(bare_path):
  proc = subprocess.run(["bash", str(LAUNCH / "paper_270m.sh"), "--task=math",
                         "--dry_run"], cwd=REPO, env={"PATH": bare_path},
                        capture_output=True, text=True)
  assert proc.returncode != 0 and "expected last_letter" in proc.stderr


# --- offline bundle (a GPU machine without network) ------------------------------


def _offline(*args, env):
  return subprocess.run(["bash", str(LAUNCH / "offline_bundle.sh"), *args], cwd=REPO,
                        env={**os.environ, **env}, capture_output=True, text=True,
                        timeout=120, check=False)


def test_offline_bundle_packs_under_the_limit_and_runs_there(tmp_path):
  """`pack` spreads the wheels and the task's data over folders that each fit
  a transfer beside the tree; `run` refuses a missing one, then links the
  data into one GENRM_DATA_DIR and runs the command with it and the site."""
  from tasks import sources  # pylint: disable=g-import-not-at-top
  data_root = sources.resolve_data_dir(None)
  if not os.path.isdir(os.path.join(data_root, "last_letters")):
    pytest.skip("needs GENRM_DATA_DIR")
  wheels = tmp_path / "wheelhouse"
  wheels.mkdir()
  sizes = {f"weights_part{k}-1.0.0-py3-none-any.whl": 3 << 20 for k in range(1, 5)}
  sizes.update({"gguf-0.19.0-py3-none-any.whl": 100_000,
                "ml_collections-1.1.0-py3-none-any.whl": 70_000})
  for name, size in sizes.items():
    (wheels / name).write_bytes(os.urandom(size))
  dev = tmp_path / "dev"
  env = {"GENRM_OFFLINE_WHEELS": str(wheels), "GENRM_DATA_DIR": data_root}
  proc = _offline("pack", "--task=last_letter", f"--dir={dev}", "--limit_mib=8", env=env)
  assert proc.returncode == 0, proc.stderr
  transfers = (dev / "transfers").read_text().split()
  assert transfers == [f"t{k}" for k in range(1, len(transfers) + 1)]
  assert len(transfers) >= 4  # four 3 MiB parts, at most one per 8 MiB transfer
  listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout
  tree = sum(os.path.getsize(REPO / f) for f in listed.split("\0") if (REPO / f).is_file())
  assert tree > 500_000
  packed = {}
  for t in transfers:
    files = [p for p in (dev / t).rglob("*") if p.is_file()]
    assert tree + sum(p.stat().st_size for p in files) <= (8 - 2) << 20, t
    packed.update({str(p.relative_to(dev / t)): p.stat().st_size for p in files})
    assert f"carry {dev}/{t}" in proc.stdout
  data_files = {str(p.relative_to(data_root)): p.stat().st_size
                for p in pathlib.Path(data_root, "last_letters").rglob("*") if p.is_file()}
  assert packed == {**{f"wheels/{n}": s for n, s in sizes.items()},
                    **{f"data/{n}": s for n, s in data_files.items()}}
  assert "--task=last_letter --python=python3" in proc.stdout
  # A --dir holding the repo is refused before anything is deleted.
  proc = _offline("pack", f"--dir={REPO.parent}", env=env)
  assert proc.returncode != 0 and "holds the repo" in proc.stderr
  assert (REPO / "launch" / "offline_bundle.sh").is_file()

  # There: a transfer that did not arrive is named.
  site = tmp_path / "site"
  site.mkdir()
  (site / ".genrm_installed").touch()  # the fake wheels are not installable
  shutil.move(dev / "t2", tmp_path / "t2")
  env = {"GENRM_OFFLINE_SITE": str(site)}
  script = ("import os, json, sys; from tasks import sources; "
            "print(os.environ['GENRM_DATA_DIR']); print(sys.path[1]); "
            "print(len(sources.get_problems('last_letter', 'test')))")
  proc = _offline("run", f"--dir={dev}", "--", sys.executable, "-c", script, env=env)
  assert proc.returncode != 0 and f"{dev}/t2" in proc.stderr
  shutil.move(tmp_path / "t2", dev / "t2")
  proc = _offline("run", f"--dir={dev}", "--", sys.executable, "-c", script, env=env)
  assert proc.returncode == 0, proc.stderr
  data_dir, first_path, problems = proc.stdout.split()
  assert data_dir == str(dev / "data") and first_path == str(site)
  assert int(problems) > 0
  linked = {str(p.relative_to(data_dir)) for p in pathlib.Path(data_dir).rglob("*")
            if p.is_symlink()}
  assert linked == set(data_files)


# --- Rehearsal of the GPU image ----------------------------------------------

def test_rehearse_gpu_image_dry_run(bare_path):
  lines, _ = dry_run("rehearse_gpu_image.sh", "--dry_run", "--tests",
                     "--task=gsm8k", "--root=/srv/img", bare_path=bare_path)
  cmds = commands(lines)
  assert cmds[0][:2] == ["debootstrap", "--variant=minbase"] and "trixie" in cmds[0]
  assert cmds[0][-2] == "/srv/img"
  mounts = [c for c in cmds if c[0] == "mount"]
  assert mounts[-1] == ["mount", "--bind", str(REPO.parent), "/srv/img/mnt/genrm"]
  (install,) = [c for c in cmds if "install" in c and c[0] == "chroot"]
  assert "jax[cpu]==0.11.2" in install and not any("tensorflow" in a for a in install)
  assert not any(a.startswith(("ml_collections", "gguf")) for a in install)
  (pack,) = [c for c in cmds if c[:2] == ["bash", "launch/offline_bundle.sh"]]
  assert pack[2:] == ["pack", "--task=gsm8k", "--dir=.dev"]
  inside = [c[-1] for c in cmds if c[:2] == ["chroot", "/srv/img"] and c[-2] == "-c"]
  assert inside[0].startswith(f"cd /mnt/genrm/{REPO.name} && ")
  assert inside[0].endswith("bash launch/offline_bundle.sh run --dir=.dev -- "
                            "bash launch/paper_270m.sh --task=gsm8k --smoke --python=python3")
  assert "-m pytest -q -n 2 tests" in inside[1]
  assert "GENRM_DATA_DIR=/mnt/genrm/shared/data" in inside[1]
