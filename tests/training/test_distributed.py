"""Training on two processes (gloo, CPU) against the same run on one process, in float64.

Each job starts two copies of ``tests/training/ddp_driver.py`` (or of the ``flowspec`` command)
with torchrun's environment variables; every launch is bounded by a timeout and its processes
are killed if a test fails. The oracle is a one-process run with the same global batch: two
processes must reach the same parameters (to 1e-6) with bitwise identical parameters on both
ranks, whatever the number of processes the run was stopped and resumed with.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import flowspec
from flowspec.data import load_splits
from flowspec.errors import TrainingError
from flowspec.io import read_weights
from flowspec.nn.base import reduced_moments
from flowspec.nn.batchnorm import BatchNormFlow
from flowspec.training import train
from flowspec.training.checkpoint import read_state
from flowspec.training.distributed import Ranks, collective_failure, rank_seed
from flowspec.training.resume import check_world
from flowspec.training.setup import data_init
from flowspec.training.sync import SynchronisedBatchNorm
from tests.helpers import ROOT
from tests.training.ddp_driver import CONFIG, actnorm_state, float64_flow

LAUNCH_TIMEOUT = 120
TOLERANCE = 1e-6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(world),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux ``/proc``): torchrun's workers live in their own
    sessions, so killing torchrun alone would leave them running."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def stop(proc: subprocess.Popen[str]) -> None:
    """End ``proc`` and everything it started, if still running (a failed test)."""
    if proc.poll() is not None:
        return
    kids = descendants(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for kid in kids:
        try:
            os.kill(kid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start(command: list[str], world: int = 2) -> list[subprocess.Popen[str]]:
    port = free_port()
    return [
        subprocess.Popen(
            [sys.executable, *command],
            env=rank_env(rank, world, port),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(world)
    ]


def finish(procs: list[subprocess.Popen[str]], timeout: float = LAUNCH_TIMEOUT) -> list[Any]:
    """Wait for every process (ending all of them on timeout); ``(returncode, out, err)``."""
    deadline = time.monotonic() + timeout
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            stop(proc)
    return results


def driver(job: dict[str, Any], out: Path, data: Path) -> list[dict[str, Any]]:
    """Run a two-process driver job; each rank's JSON report."""
    out.mkdir(parents=True, exist_ok=True)
    module = ["-m", "tests.training.ddp_driver", json.dumps(job), str(out), str(data)]
    reports = []
    for code, stdout, stderr in finish(start(module)):
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        assert lines, f"exit {code}, no report; stderr:\n{stderr[-3000:]}"
        reports.append(json.loads(lines[-1]))
    return reports


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(
        float((a[k].double() - b[k].double()).abs().max())
        for k in a
        if a[k].is_floating_point() and a[k].numel()
    )


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 continuous 1x4x4 images (320 train: 10 global batches of 32 per epoch)."""
    rng = np.random.default_rng(0)
    x = 0.5 * rng.standard_normal((400, 1, 4, 4)) + np.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    path = tmp_path_factory.mktemp("ddp") / "images.npy"
    np.save(path, x.astype(np.float32))
    return path


@pytest.fixture(scope="module")
def one_process(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The oracle: the same 12 steps on one process, and its initial actnorm parameters."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("single")
    splits = load_splits(str(data), (1, 4, 4))
    flow = float64_flow(CONFIG)
    result = train(flow, data=splits, config=CONFIG, out_dir=out / "run", figures=False)
    assert result.status == "completed" and result.step == 12
    init = float64_flow(CONFIG)
    data_init(init, torch.as_tensor(splits.train[:512]).double())
    return {
        "state": load_file(out / "run" / "last.safetensors"),
        "init": actnorm_state(init),
        "metrics": (out / "run" / "metrics.jsonl").read_text().splitlines(),
    }


def same_weights(path: Path, oracle: dict[str, torch.Tensor]) -> float:
    state = read_weights(path).state
    return max_difference(state, {k: oracle[k] for k in state})


def test_two_processes_stop_resume_and_match_one_process(
    data: Path, one_process: dict[str, Any], tmp_path: Path
) -> None:
    """Stopped at step 5 and resumed to 12 on two processes: ranks identical, actnorm initialised
    alike from the global batch, and the one-process run's weights and metrics to 1e-6."""
    reports = driver({"stop_after": 5}, tmp_path, data)
    assert [(r["status"], r["step"]) for r in reports] == [("stopped", 5)] * 2
    init0, init1 = (
        load_file(tmp_path / "init0.safetensors"),
        load_file(tmp_path / "init1.safetensors"),
    )
    assert init0.keys() == one_process["init"].keys() and len(init0) == 6  # 3 actnorms
    assert all(torch.equal(init0[k], init1[k]) for k in init0)
    assert max_difference(init0, one_process["init"]) < 1e-12
    shutil.copytree(tmp_path / "run", tmp_path / "to_one")  # for the next test's resume
    reports = driver({"resume": True}, tmp_path, data)
    assert [(r["status"], r["step"]) for r in reports] == [("completed", 12)] * 2
    rank0, rank1 = (
        load_file(tmp_path / "rank0.safetensors"),
        load_file(tmp_path / "rank1.safetensors"),
    )
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert same_weights(tmp_path / "run" / "last.safetensors", one_process["state"]) < TOLERANCE
    state, extra, _ = read_state(read_weights(tmp_path / "run" / "last.safetensors"))
    assert state.world_size == 2 and {"rng.torch", "rng.torch.1"} <= extra.keys()
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    oracle = [json.loads(r) for r in one_process["metrics"]]
    assert [r["step"] for r in rows] == [r["step"] for r in oracle] == [6, 12]
    for row, expected in zip(rows, oracle):
        for key in ("train_nll", "val_nll"):
            assert row[key] == pytest.approx(expected[key], abs=TOLERANCE)
    # a checkpoint of two processes resumes on one, to the same weights
    flow = float64_flow(CONFIG)
    splits = load_splits(str(data), (1, 4, 4))
    train(flow, data=splits, config=CONFIG, out_dir=tmp_path / "to_one", resume=True, figures=False)
    assert same_weights(tmp_path / "to_one" / "last.safetensors", one_process["state"]) < TOLERANCE


@pytest.fixture(scope="module")
def vector_data(data: Path) -> Path:
    """The same images, each with a context vector of two numbers (one tied to the image)."""
    x = np.load(data)
    rng = np.random.default_rng(1)
    context = np.stack([x.mean(axis=(1, 2, 3)) * 3 + 5, rng.standard_normal(len(x)) * 4], 1)
    path = data.parent / "images_with_context.npz"
    np.savez(path, x=x, context=context.astype(np.float32))
    return path


def test_a_conditional_flow_on_two_processes_matches_one_process(
    vector_data: Path, tmp_path: Path
) -> None:
    """Contexts follow their examples through each process's share of the global batch, the
    normalised context is initialised from the global first batch, and DDP's log-likelihood
    takes the context: two processes reach the one-process weights to 1e-6."""
    flow = float64_flow(CONFIG, conditional=True)
    splits = load_splits(str(vector_data), (1, 4, 4), context=flow.spec.context)
    train(flow, data=splits, config=CONFIG, out_dir=tmp_path / "one", figures=False)
    oracle = load_file(tmp_path / "one" / "last.safetensors")
    reports = driver({"conditional": True}, tmp_path / "two", vector_data)
    assert [(r["status"], r["step"]) for r in reports] == [("completed", 12)] * 2
    rank0 = load_file(tmp_path / "two" / "rank0.safetensors")
    rank1 = load_file(tmp_path / "two" / "rank1.safetensors")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert torch.equal(rank0["context.initialized"], torch.tensor(True))
    for key in ("context.mean", "context.std"):  # set before the first step, never changed
        assert float((rank0[key] - oracle[key]).abs().max()) < 1e-12
    assert same_weights(tmp_path / "two" / "run" / "last.safetensors", oracle) < TOLERANCE


def test_one_process_checkpoint_resumes_on_two(
    data: Path, one_process: dict[str, Any], tmp_path: Path
) -> None:
    flow = float64_flow(CONFIG)
    splits = load_splits(str(data), (1, 4, 4))
    part = train(
        flow, data=splits, config=CONFIG, out_dir=tmp_path / "run", stop_after=7, figures=False
    )
    assert part.status == "stopped"
    reports = driver({"resume": True}, tmp_path, data)
    assert [(r["status"], r["step"]) for r in reports] == [("completed", 12)] * 2
    assert same_weights(tmp_path / "run" / "last.safetensors", one_process["state"]) < TOLERANCE


def test_a_nan_on_one_process_stops_both(data: Path, tmp_path: Path) -> None:
    reports = driver({"poison_rank": 1, "poison_step": 3, "steps": 6}, tmp_path, data)
    assert [r["codes"] for r in reports] == [["nonfinite-loss"]] * 2
    assert all("training diverged at step 4" in r["message"] for r in reports)
    assert "'layers.6' (affine_coupling)" in reports[1]["message"]  # the poisoned share
    assert "another process's share is not" in reports[0]["message"]
    assert "last.safetensors (step 0)" in reports[0]["message"]  # the last good checkpoint


TINY = """\
flowspec: 1
name: tiny
input: {shape: [2]}
layers:
  - repeat: 2
    body:
      - type: actnorm
      - type: affine_coupling
        mask: alternating
        net: {type: mlp, hidden: [8]}
data: {name: moons}
train: {steps: 100000, batch_size: 64, val_every: 10, lr: 1.0e-3}
"""


def test_killing_one_process_stops_the_job_with_a_loadable_checkpoint(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    out = tmp_path / "run"
    procs = start(["-m", "flowspec", "train", str(spec), "--out", str(out), "--no-figures"])
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        metrics = out / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
            assert time.monotonic() < deadline and procs[0].poll() is None, "no validation"
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGKILL)
        (code, _, err), (killed, _, _) = finish(procs, timeout=60)
    finally:
        for proc in procs:
            stop(proc)
    assert killed == -signal.SIGKILL and code == 1, err
    assert "error[rank-lost]" in err and "another process of the job is gone" in err
    assert "last.safetensors (step " in err and "--resume" in err
    saved = read_state(read_weights(out / "last.safetensors"))[0].step
    assert saved >= 20 and f"(step {saved})" in err
    flow = flowspec.load(out / "last.safetensors")
    assert all(torch.isfinite(p).all() for p in flow.parameters())


def test_nproc_ctrl_c_stops_every_process_and_the_printed_command_resumes(tmp_path: Path) -> None:
    """``--nproc 2`` runs torchrun; Ctrl-C on it reaches both processes (torchrun forwards it),
    which stop after the same step and save; the command they print finishes the run."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.replace("steps: 100000", "steps: 40, threads: 1"))
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "flowspec", "train", str(spec), "--nproc", "2",
               "--out", str(out), "--no-figures"]  # fmt: skip
    log = tmp_path / "stderr.txt"
    with log.open("w") as sink:  # a file, not a pipe: nothing can block on a full pipe
        proc = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sink, text=True
        )
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while not (out / "metrics.jsonl").exists():
            assert time.monotonic() < deadline, "no validation:\n" + log.read_text()[-3000:]
            assert proc.poll() is None, "exited:\n" + log.read_text()[-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends torchrun
        proc.wait(timeout=LAUNCH_TIMEOUT)
    finally:
        stop(proc)
    err = log.read_text()
    assert err.count("interrupted at step") == 1, err[-3000:]  # rank 0 alone reports
    assert "batch 64 = 2 processes x 32" in err
    state = read_state(read_weights(out / "last.safetensors"))[0]
    assert state.world_size == 2 and f"interrupted at step {state.step} of 40" in err
    again = err.split("continue with: ", 1)[1].splitlines()[0]
    assert again.startswith("flowspec train") and again.endswith("--nproc 2 --resume")
    done = subprocess.run(
        [sys.executable, "-m", *shlex.split(again)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("completed in") == 1
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]


# ---------------------------------------------------------------------- without launching


def test_the_global_batch_must_split_evenly() -> None:
    check_world(64, 4)
    with pytest.raises(TrainingError) as exc:
        check_world(30, 4)
    assert exc.value.codes == ["batch-indivisible"] and "multiple of 4" in str(exc.value)


def test_one_process_ranks_are_the_identity() -> None:
    ranks = Ranks()
    loss = torch.tensor(1.5)
    assert not ranks.distributed and ranks.is_main and ranks.mean(loss) == 1.5
    assert ranks.any(True) and not ranks.any(False) and ranks.sum([1.0, 2.0]) == [1.0, 2.0]
    assert ranks.rng_states() == {} and ranks.share(10) == slice(0, 10)
    assert rank_seed(5, 0) == 5 and rank_seed(5, 1) != rank_seed(5, 2) != rank_seed(5, 0, 3)
    halves = [Ranks(rank=r, world=3).share(10) for r in range(3)]
    assert [(s.start, s.stop) for s in halves] == [(0, 3), (3, 7), (7, 10)]


def test_a_process_without_its_own_gpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(TrainingError) as exc:
        Ranks.start("cuda")
    assert exc.value.codes == ["device-unavailable"] and "takes GPU 1" in str(exc.value)


def test_collective_failures_are_recognised() -> None:
    peer = RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer [1.2.3.4]")
    assert collective_failure(peer)
    wrapped = RuntimeError("step 'layers.2' (batchnorm) failed in forward")
    wrapped.__cause__ = peer
    assert collective_failure(wrapped)
    assert not collective_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_reduced_moments_equal_the_batch_statistics() -> None:
    x = torch.randn(6, 3, 4, 5, dtype=torch.float64) * 3 + 100
    mean, var, n = reduced_moments(x, lambda t: t)
    assert n.item() == 6 * 4 * 5
    torch.testing.assert_close(mean, x.mean((0, 2, 3), keepdim=True), rtol=0, atol=1e-12)
    expected = x.var((0, 2, 3), keepdim=True, unbiased=False)
    torch.testing.assert_close(var, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kind", ["conditioner", "flow"])
def test_synchronised_batchnorm_on_one_process_is_batchnorm(kind: str) -> None:
    """With the identity as the sum over processes, the synchronised forms compute what the
    plain ones do: outputs, gradients and running statistics."""
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    if kind == "conditioner":
        plain = torch.nn.BatchNorm2d(3).double()
        synced = torch.nn.BatchNorm2d(3).double()
        synced.__class__ = SynchronisedBatchNorm
    else:
        plain = BatchNormFlow((3, 4, 4), momentum=0.1, eps=1e-5).double()
        synced = BatchNormFlow((3, 4, 4), momentum=0.1, eps=1e-5).double()
    synced.reduce = lambda t: t
    outs = []
    for module in (plain, synced):
        y = module(x)
        y = y[0] if isinstance(y, tuple) else y
        (grad,) = torch.autograd.grad((y * y.detach().cos()).sum(), x)
        outs.append((y.detach(), grad, module.running_mean.clone(), module.running_var.clone()))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
