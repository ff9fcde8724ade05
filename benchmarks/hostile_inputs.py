"""Hostile and broken inputs: each case run as its own process, with a time and memory cap.

For every case the table gives the wall time, the peak resident memory of the process, its exit
status and the last line it printed. A case that exceeds the cap shows ``timeout`` or a
MemoryError; after the fixes every case ends within seconds with a located error (exit 1), a
usage error (exit 2) or a correct result. Run from the repository root::

    python benchmarks/hostile_inputs.py                      # this checkout
    python benchmarks/hostile_inputs.py --root /other/tree   # another checkout, same cases
    python benchmarks/hostile_inputs.py -k alias glow        # only cases whose name matches

The machine running it may be shared: times are indicative, memory is what matters.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from measure import glow_spec, measure

HERE = Path(__file__).resolve().parent.parent
ROOT = [HERE]  # the checkout under test; setup steps (compiling a model file) use it too
Setup = Callable[[Path], list[str]]


def _cli(*args: str) -> list[str]:
    return ["-m", "flowspec", *args]


def _write(tmp: Path, name: str, text: str | bytes) -> str:
    path = tmp / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def _alias_bomb(tmp: Path) -> list[str]:
    rows = ["flowspec: 1", "input: {shape: [2]}", "layers: [{type: scale}]", 'a0: &a0 ["x"]']
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    rows.append("description: *a9")
    return _cli("validate", _write(tmp, "bomb.yaml", "\n".join(rows) + "\n"))


def _spec(shape: str, layers: str, extra: str = "") -> str:
    return f"flowspec: 1\ninput: {{shape: {shape}}}\nlayers: {layers}\n{extra}"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _nested_repeats(depth: int) -> str:
    text = "{type: scale}"
    for _ in range(depth):
        text = f"{{repeat: 1, body: [{text}]}}"
    return f"[{text}]"


def _moons_model(tmp: Path, name: str = "moons.safetensors", spec: str | None = None) -> str:
    path = tmp / name
    if not path.exists():
        source = spec or str(HERE / "specs" / "nice_moons.yaml")
        if spec is not None:
            source = _write(tmp, name + ".yaml", spec)
        subprocess.run(
            [sys.executable, *_cli("compile", source, "-o", str(path))],
            check=True,
            capture_output=True,
            env=_env(),
        )
    return str(path)


PERMUTE_SPEC = _spec(
    "[2]",
    "[{type: actnorm}, {type: affine_coupling, mask: first_half}, {type: permute}, "
    "{type: affine_coupling, mask: first_half}]",
    "data: {name: moons}\n",
)
LU_SPEC = _spec(
    "[2]", "[{type: invconv, lu: true}, {type: affine_coupling}]", "data: {name: moons}\n"
)


def _digest(tensors: dict) -> str:
    """The tensors' checksum as flowspec writes it (name, dtype, shape, bytes in name order)."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _edited(tmp: Path, name: str, spec: str, edit: Callable[[dict], None]) -> str:
    """A model file of ``spec`` whose tensors were changed by ``edit``, its checksum recomputed
    (where the file has one) as a deliberate edit would."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    source = _moons_model(tmp, name + ".orig.safetensors", spec)
    with safe_open(source, framework="pt") as fh:
        metadata = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    edit(tensors)
    if "tensors_sha256" in metadata:
        metadata["tensors_sha256"] = _digest(tensors)
    out = str(tmp / f"{name}.safetensors")
    save_file(tensors, out, metadata=metadata)
    return out


def _spec_in_weights(tmp: Path) -> list[str]:
    """A model file whose embedded spec (checksum recomputed) repeats a layer 10^8 times."""
    import hashlib

    from safetensors import safe_open
    from safetensors.torch import save_file

    source = _moons_model(tmp)
    with safe_open(source, framework="pt") as fh:
        metadata = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    spec = json.loads(metadata["spec"])
    spec["layers"] = [{"repeat": 100_000_000, "body": [{"type": "scale"}]}]
    metadata["spec"] = json.dumps(spec, sort_keys=True)
    metadata["spec_sha256"] = hashlib.sha256(metadata["spec"].encode()).hexdigest()
    if "tensors_sha256" in metadata:
        metadata["tensors_sha256"] = _digest(tensors)
    out = str(tmp / "huge_spec.safetensors")
    save_file(tensors, out, metadata=metadata)
    return _cli("inspect", out)


def _bit_flip(tmp: Path) -> list[str]:
    source = Path(_moons_model(tmp))
    data = bytearray(source.read_bytes())
    data[-3] ^= 0x40  # a bit of the last tensor's bytes
    out = tmp / "flipped.safetensors"
    out.write_bytes(bytes(data))
    return _cli("eval", str(out), "--json")


def _npy_bomb(tmp: Path) -> list[str]:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 2), }"
    header += " " * (63 - len(header) % 64) + "\n"
    blob = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 80
    path = _write(tmp, "bomb.npy", blob)
    return _cli(
        "train",
        str(HERE / "specs/nice_moons.yaml"),
        "--data",
        path,
        "--steps",
        "1",
        "--out",
        str(tmp / "npy_run"),
        "--no-figures",
    )


def _resume_changed_data(tmp: Path) -> list[str]:
    data = tmp / "points.npy"
    np.save(data, np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32))
    spec = str(HERE / "specs/nice_moons.yaml")
    args = [
        spec,
        "--data",
        str(data),
        "--steps",
        "20",
        "--out",
        str(tmp / "resume"),
        "--no-figures",
        "--quiet",
    ]
    subprocess.run(
        [sys.executable, *_cli("train", *args, "--stop-after", "5")],
        check=True,
        capture_output=True,
        env=_env(),
    )
    np.save(data, np.random.default_rng(1).normal(size=(500, 2)).astype(np.float32) * 3)
    return _cli("train", *args, "--resume")


def _name_escape(tmp: Path) -> list[str]:
    work = tmp / "a" / "b"
    work.mkdir(parents=True, exist_ok=True)
    spec = _write(tmp, "escape.yaml", _spec("[2]", "[{type: scale}]", "name: ../../escaped\n"))
    code = (
        "import os, sys; os.chdir(sys.argv[1]); from flowspec.cli import main; "
        "rc = main(['train', sys.argv[2], '--data', 'moons', '--steps', '1', '--no-figures', "
        "'--quiet']); print('wrote outside runs/:', os.path.exists(os.path.join(sys.argv[1], "
        "'../escaped/model.safetensors'))); sys.exit(rc)"
    )
    return ["-c", code, str(work), spec]


PY_SAMPLE = (
    "import flowspec, torch\nflow = flowspec.compile('specs/nice_moons.yaml')\n"
    "for args in [(-1,), (4, float('nan')), (4, -1.0)]:\n"
    "    try:\n        out = flow.sample(*args); print(args, 'returned', tuple(out.shape))\n"
    "    except Exception as exc:\n        print(args, type(exc).__name__, str(exc)[:60])\n"
)
PY_LOAD_MODE = (
    "import flowspec, sys\nflow = flowspec.load(sys.argv[1])\n"
    "print('training mode:', flow.training)"
)
PY_GLOW_SAMPLES = (
    "import torch, flowspec\nfrom flowspec.spec.training import TrainSpec\n"
    "torch.manual_seed(0)\n"
    "r = flowspec.train('specs/glow_digits.yaml', config=TrainSpec(steps=60, batch_size=64, "
    "lr=3e-3, threads=1))\nflow = r.flow.eval()\n"
    "with torch.no_grad():\n    x = flow.sample(10000, temperature=1.0)\n"
    "bad = (~torch.isfinite(x.reshape(len(x), -1))).any(1).sum()\n"
    "print(f'{int(bad)} of 10000 samples non-finite')\n"
)


def _nudged_glow(tmp: Path) -> list[str]:
    """Glow trained for 30 steps on digits, its weights then nudged by 0.1 x N(0, 1)."""
    code = (
        "import torch, flowspec\nfrom flowspec.nn.oracles import perturb_parameters\n"
        "from flowspec.spec.training import TrainSpec\ntorch.manual_seed(0)\n"
        "r = flowspec.train('specs/glow_digits.yaml', config=TrainSpec(steps=30, batch_size=32, "
        "lr=1e-3, threads=1))\nflow = perturb_parameters(r.flow, scale=0.1, seed=0).eval()\n"
        "torch.manual_seed(1)\nwith torch.no_grad():\n    x = flow.sample(10000)\n"
        "bad = (~torch.isfinite(x.reshape(len(x), -1))).any(1).sum()\n"
        "print(f'{int(bad)} of 10000 samples non-finite')\n"
    )
    return ["-c", code]


def _set(key: str, value: Callable[[dict], object]) -> Callable[[dict], None]:
    def edit(tensors: dict) -> None:
        tensors[key] = value(tensors)

    return edit


def _overflow(tensors: dict) -> None:
    """Finite weights whose forward overflows: an actnorm scale of exp(100)."""
    tensors["layers.0.log_scale"] = tensors["layers.0.log_scale"] * 0 + 100
    tensors["layers.0.initialized"] = tensors["layers.0.initialized"] | True


def _inverse_overflow(tensors: dict) -> None:
    """Finite weights whose inverse overflows: a coupling log-scale of -1e30."""
    tensors["layers.1.scale"] = tensors["layers.1.scale"] * 0 - 1e30
    tensors["layers.1.net.trunk.4.bias"] = tensors["layers.1.net.trunk.4.bias"] + 1.0


def _actnorm_inf(tensors: dict) -> None:
    tensors["layers.0.log_scale"] = tensors["layers.0.log_scale"] + float("inf")
    tensors["layers.0.initialized"] = tensors["layers.0.initialized"] | True


CASES: dict[str, Setup] = {
    # resources
    "alias-bomb": _alias_bomb,
    "glow-3x128x128": lambda t: _cli("validate", _write(t, "g128.yaml", glow_spec(3, 128, 5, 32))),
    "glow-3x256x256": lambda t: _cli("validate", _write(t, "g256.yaml", glow_spec(3, 256, 6, 32))),
    "input-1e9": lambda t: _cli(
        "validate", _write(t, "big.yaml", _spec("[1000000000]", "[{type: scale}]"))
    ),
    "input-3x1e5x1e5": lambda t: _cli(
        "validate", _write(t, "bigimg.yaml", _spec("[3, 100000, 100000]", "[{type: actnorm}]"))
    ),
    "repeat-1e8": lambda t: _cli(
        "validate",
        _write(t, "rep.yaml", _spec("[2]", "[{repeat: 100000000, body: [{type: scale}]}]")),
    ),
    "nested-lists-1000": lambda t: _cli(
        "validate", _write(t, "deep.yaml", _spec("[2]", _nested(1000)))
    ),
    "nested-repeats-300": lambda t: _cli(
        "validate", _write(t, "deeprep.yaml", _spec("[2]", _nested_repeats(300)))
    ),
    "spec-20MB": lambda t: _cli(
        "validate",
        _write(t, "huge.yaml", _spec("[2]", "[{type: scale}]", "description: " + "x" * 20_000_000)),
    ),
    "diagnostics-20000": lambda t: _cli(
        "validate",
        _write(t, "many.yaml", _spec("[2]", "[" + "{type: scale, x: 1}, " * 20000 + "]")),
    ),
    "hidden-1e9": lambda t: _cli(
        "compile",
        _write(
            t,
            "wide.yaml",
            _spec("[2]", "[{type: affine_coupling, net: {type: mlp, hidden: [1000000000]}}]"),
        ),
        "-o",
        str(t / "wide.safetensors"),
    ),
    "resnet-blocks-1e6": lambda t: _cli(
        "compile",
        _write(
            t,
            "blocks.yaml",
            _spec(
                "[1, 4, 4]",
                "[{type: affine_coupling, mask: checkerboard, "
                "net_input: masked, net: {type: resnet, blocks: 1000000}}]",
            ),
        ),
        "-o",
        str(t / "blocks.safetensors"),
    ),
    "sample-n-1e9": lambda t: _cli(
        "sample", _moons_model(t), "-n", "1000000000", "-o", str(t / "s.npy")
    ),
    "threads-1e6": lambda t: _cli(
        "train",
        str(HERE / "specs/nice_moons.yaml"),
        "--steps",
        "1",
        "--threads",
        "1000000",
        "--out",
        str(t / "thr"),
        "--no-figures",
    ),
    "npy-header-1e12-rows": _npy_bomb,
    # files checked before trusted
    "weights-spec-repeat-1e8": _spec_in_weights,
    "weights-bit-flip": _bit_flip,
    "weights-perm-zero": lambda t: _cli(
        "eval",
        _edited(
            t, "permzero", PERMUTE_SPEC, _set("layers.2.perm", lambda s: s["layers.2.perm"] * 0)
        ),
        "--json",
    ),
    "weights-perm-range": lambda t: _cli(
        "eval",
        _edited(
            t, "permrange", PERMUTE_SPEC, _set("layers.2.perm", lambda s: s["layers.2.perm"] + 5)
        ),
        "--json",
    ),
    "weights-lu-singular": lambda t: _cli(
        "check",
        _edited(t, "lusing", LU_SPEC, _set("layers.0.sign", lambda s: s["layers.0.sign"] * 0)),
    ),
    "weights-actnorm-inf": lambda t: _cli(
        "eval", _edited(t, "actinf", PERMUTE_SPEC, _actnorm_inf), "--json"
    ),
    "eval-json-nan": lambda t: _cli(
        "eval",
        _edited(
            t,
            "nan",
            PERMUTE_SPEC,
            _set(
                "layers.1.net.trunk.0.weight",
                lambda s: s["layers.1.net.trunk.0.weight"] * float("nan"),
            ),
        ),
        "--json",
    ),
    "sample-nan": lambda t: _cli(
        "sample",
        _edited(
            t,
            "nan",
            PERMUTE_SPEC,
            _set(
                "layers.1.net.trunk.0.weight",
                lambda s: s["layers.1.net.trunk.0.weight"] * float("nan"),
            ),
        ),
        "-n",
        "10",
        "-o",
        str(t / "nan.npy"),
    ),
    "eval-json-overflow": lambda t: _cli(
        "eval", _edited(t, "overflow", PERMUTE_SPEC, _overflow), "--json"
    ),
    "sample-overflow": lambda t: _cli(
        "sample",
        _edited(t, "invoverflow", PERMUTE_SPEC, _inverse_overflow),
        "-n",
        "10",
        "-o",
        str(t / "overflow.npy"),
    ),
    "spec-utf16": lambda t: _cli(
        "validate",
        _write(
            t, "u16.yaml", _spec("[2]", "[{type: scale}]", "description: café\n").encode("utf-16")
        ),
    ),
    "spec-latin1": lambda t: _cli(
        "validate",
        _write(
            t, "l1.yaml", _spec("[2]", "[{type: scale}]", "description: café\n").encode("latin-1")
        ),
    ),
    "spec-binary": lambda t: _cli("validate", _write(t, "bin.yaml", bytes(range(256)) * 4)),
    # the spec means one thing
    "duplicate-layers": lambda t: _cli(
        "validate",
        _write(
            t, "dup.yaml", _spec("[2]", "[{type: affine_coupling}]") + "layers: [{type: scale}]\n"
        ),
    ),
    "duplicate-type": lambda t: _cli(
        "validate",
        _write(t, "duptype.yaml", _spec("[2]", "[{type: affine_coupling, type: scale}]")),
    ),
    "octal-010": lambda t: _cli(
        "validate", _write(t, "oct.yaml", _spec("[010]", "[{type: scale}]"))
    ),
    "sexagesimal-1:30": lambda t: _cli(
        "validate", _write(t, "sex.yaml", _spec("[1:30]", "[{type: scale}]"))
    ),
    "threads-yes": lambda t: _cli(
        "validate",
        _write(t, "yes.yaml", _spec("[2]", "[{type: scale}]", "train: {threads: yes}\n")),
    ),
    "lr-inf": lambda t: _cli(
        "validate", _write(t, "inf.yaml", _spec("[2]", "[{type: scale}]", "train: {lr: .inf}\n"))
    ),
    "min-lr-above-lr": lambda t: _cli(
        "validate",
        _write(
            t, "minlr.yaml", _spec("[2]", "[{type: scale}]", "train: {lr: 1.0e-3, min_lr: 0.1}\n")
        ),
    ),
    "dequantize-twice": lambda t: _cli(
        "check",
        _write(
            t,
            "dq2.yaml",
            _spec(
                "[2]",
                "[{type: affine_coupling}]",
                "preprocess: [{type: dequantize, levels: 4}, {type: dequantize, levels: 4}]\n",
            ),
        ),
    ),
    "dequantize-after-logit": lambda t: _cli(
        "check",
        _write(
            t,
            "dqlogit.yaml",
            _spec(
                "[2]",
                "[{type: affine_coupling}]",
                "preprocess: [{type: logit}, {type: dequantize, levels: 4}]\n",
            ),
        ),
    ),
    "name-escapes-runs": _name_escape,
    "python-sample-args": lambda t: ["-c", PY_SAMPLE],
    # checks that cannot pass falsely
    "check-singular-perm": lambda t: _cli(
        "check",
        _edited(
            t, "permzero", PERMUTE_SPEC, _set("layers.2.perm", lambda s: s["layers.2.perm"] * 0)
        ),
    ),
    "resume-changed-data": _resume_changed_data,
    "glow-nudged-samples": _nudged_glow,
    "glow-trained-samples": lambda t: ["-c", PY_GLOW_SAMPLES],
    "load-eval-mode": lambda t: ["-c", PY_LOAD_MODE, _moons_model(t)],
}


def _env(root: Path | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root or ROOT[0]), "OMP_NUM_THREADS": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE, help="checkout to run (PYTHONPATH)")
    parser.add_argument("-k", nargs="*", default=[], help="only cases whose name contains one")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="address-space cap (4)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case (60)")
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    args = parser.parse_args()
    ROOT[0] = args.root.resolve()
    names = [n for n in CASES if not args.k or any(k in n for k in args.k)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in names:
            argv = CASES[name](tmp)
            result = measure(argv, args.root, args.memory_gb, args.timeout)
            if args.json:
                print(json.dumps({"case": name, **result}), flush=True)
            else:
                print(
                    f"{name:24s} {result['seconds']:7.2f} s {result['peak_mb']:8.0f} MB "
                    f"rc {result['rc']!s:7s} {result['lines']:>8} lines  {result['last']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
