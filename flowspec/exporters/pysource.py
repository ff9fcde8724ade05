"""A compiled flow as one standalone, readable PyTorch source file: the compiler's most literal
output.

The file needs torch and safetensors, never flowspec. It holds one class per part used (each
written by that part's ``emit()``, see :mod:`flowspec.nn.emit`) and one model class, named after
the spec, whose ``forward``, ``inverse``, ``log_prob`` and ``sample`` walk the flow's steps
unrolled, one line per step, in the order flowspec's interpreter walks them. ``from_file`` loads
the weights flowspec saved (the file's spec checksum must match the one the code was written
for). On the same inputs and random state the generated model gives the same ``z``, ``logdet``
and samples as flowspec, bit for bit.
"""

from __future__ import annotations

import hashlib
import keyword
import textwrap

import yaml

from flowspec.io import spec_json
from flowspec.nn.emit import HELPERS, Emitted, emit_part, literal, refuse_conditional
from flowspec.nn.flow import Flow

__all__ = ["class_name", "python_source"]


def _imports(body: str) -> str:
    """The import block, with ``math`` and ``F`` only when the code uses them."""
    stdlib = ["import hashlib", *(["import math"] if "math." in body else []),
              "from pathlib import Path"]  # fmt: skip
    third = ["import torch", *(["import torch.nn.functional as F"] if "F." in body else [])]
    third += ["from safetensors import safe_open", "from safetensors.torch import load_file",
              "from torch import Tensor, nn"]  # fmt: skip
    return "\n".join(["from __future__ import annotations", "", *stdlib, "", *third]) + "\n"


REGISTER = '''

def register(root: nn.Module, name: str, module: nn.Module) -> None:
    """Register module under a dotted name (layers.0.3.1), making the parents as ModuleDicts, so
    parameter names are those of flowspec's weights files."""
    *parents, leaf = name.split(".")
    parent = root
    for part in parents:
        if part not in parent._modules:
            parent.add_module(part, nn.ModuleDict())
        parent = parent._modules[part]
    parent.add_module(leaf, module)
'''


def class_name(spec_name: str) -> str:
    """The model class's name: the spec's name in CamelCase (``realnvp_moons`` ->
    ``RealnvpMoons``), or ``Flow`` when that is not an identifier.

    Example:
        >>> class_name("realnvp_moons"), class_name("my flow")
        ('RealnvpMoons', 'Flow')
    """
    name = "".join(part[:1].upper() + part[1:] for part in spec_name.split("_"))
    return name if name.isidentifier() and not keyword.iskeyword(name) else "Flow"


def _split_args(text: str) -> list[str]:
    """Top-level comma-separated parts of ``text`` (brackets and quoted strings respected)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    return [*parts, tail] if tail else parts


def layout(expr: str, indent: int, end: str = "", width: int = 100, prefix: str = "") -> list[str]:
    """``prefix + expr + end`` as lines of at most ``width`` where it can: one line if it fits,
    else the call's (or list's) arguments one per line, each laid out the same way.

    Example:
        >>> layout("f(aaaa, g(bbbb, cccc))", 0, ",", width=20)
        ['f(', '    aaaa,', '    g(bbbb, cccc),', '),']
    """
    pad = " " * indent
    closing = expr[-1:] if expr[-1:] in ")]" else ""
    opening = "(" if closing == ")" else "["
    if len(pad + prefix + expr + end) <= width or not closing or opening not in expr:
        return [pad + prefix + expr + end]
    head, inner = expr.split(opening, 1)
    lines = [pad + prefix + head + opening]
    for arg in _split_args(inner[:-1]):
        lines += layout(arg, indent + 4, ",", width)
    return [*lines, pad + closing + end]


def _var(slot: int) -> str:
    return "x" if slot == 0 else f"h{slot}"


def _forward(flow: Flow) -> list[str]:
    lines = [
        "    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:",
        '        """Data -> latent: x (N, *input_shape) -> z (N, D), logdet = log|det dz/dx|',
        '        (N,)."""',
        "        if tuple(x.shape[1:]) != self.input_shape:",
        '            raise ValueError(f"x must be (N, *{self.input_shape}), got {tuple(x.shape)}")',
        "        x = x if x.is_floating_point() else x.to(self._ref.dtype)",
        "        logdet = torch.zeros(x.shape[0], device=x.device, dtype=self._ref.dtype)",
    ]
    for i, step in enumerate(flow.steps):
        outs = ", ".join(_var(d) for d in step.dst)
        target = outs if len(step.dst) == 1 else f"({outs})"
        lines += [
            f"        # {step.name}: {step.kind} (spec: {step.path})",
            f"        {target}, ld = self.steps[{i}]({_var(step.src)}, context)",
            "        logdet = logdet + ld",
        ]
    latents = ", ".join(f"{_var(s)}.reshape(x.shape[0], -1)" for s in flow._latent_slots)
    cat = "\n".join(layout(f"torch.cat([{latents}], dim=1)", 8, prefix="z = "))
    return [*lines, cat, "        return z, logdet"]


def _inverse(flow: Flow) -> list[str]:
    names = [_var(s) for s in flow._latent_slots]
    lines = [
        "    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:",
        '        """Latent -> data: z (N, D) -> x (N, *input_shape)."""',
        "        if z.dim() != 2 or z.shape[1] != self.dim:",
        '            raise ValueError(f"z must be (N, {self.dim}), got {tuple(z.shape)}")',
        "        n = z.shape[0]",
        f"        {'(' + names[0] + ',)' if len(names) == 1 else ', '.join(names)} = "
        f"z.split({literal(flow.latent_sizes)}, dim=1)",
    ]
    for name, shape in zip(names, flow.latent_shapes):
        lines.append(f"        {name} = {name}.reshape(n, {', '.join(map(str, shape))})")
    for i in reversed(range(len(flow.steps))):
        step = flow.steps[i]
        outs = ", ".join(_var(d) for d in step.dst)
        given = outs if len(step.dst) == 1 else f"({outs})"
        lines += [
            f"        # {step.name}: {step.kind}, inverted",
            f"        {_var(step.src)} = self.steps[{i}].inverse({given}, context)",
        ]
    return [*lines, "        return x"]


def _model_class(flow: Flow, name: str, parts: list[tuple[str, Emitted]], base: Emitted) -> str:
    spec = flow.spec
    doc = _docstring_safe(spec.description or spec.name)
    steps = "\n".join(
        line for step_name, e in parts for line in layout(f'("{step_name}", {e.expr})', 12, ",")
    )
    lines = [
        f"class {name}(nn.Module):",
        *[f"    {line}" for line in textwrap.wrap(f'"""{doc}.', 92)],
        "",
        f"    The flow compiled from spec {spec.name!r}: forward, inverse, log_prob and sample "
        "walk",
        '    its steps one line per step, as flowspec does."""',
        "",
        f"    input_shape = {literal(tuple(flow.input_shape))}",
        f"    dim = {flow.dim}",
        f'    spec_sha256 = "{hashlib.sha256(spec_json(flow).encode()).hexdigest()}"',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        "        steps = (",
        steps,
        "        )",
        "        for step_name, module in steps:",
        "            register(self, step_name, module)",
        "        self.steps = tuple(module for _, module in steps)  # in order, not registered "
        "twice",
        f"        self.base = {base.expr}",
        '        self.register_buffer("_ref", torch.zeros(()), persistent=False)',
        "",
        "    @classmethod",
        f"    def from_file(cls, path: str | Path) -> {name}:",
        '        """The model with the weights of a flowspec model file (written for this spec),',
        '        in the dtype they were saved in."""',
        '        with safe_open(str(path), framework="pt") as fh:',
        '            text = (fh.metadata() or {}).get("spec", "")',
        "        if hashlib.sha256(text.encode()).hexdigest() != cls.spec_sha256:",
        '            raise ValueError(f"{path} holds weights of another spec than {cls.__name__}")',
        "        state = load_file(str(path))",
        '        state = {k: v for k, v in state.items() if not k.startswith("optim.")}',
        "        flow = cls()",
        "        dtype = next((t.dtype for t in state.values() if t.is_floating_point()), None)",
        "        if dtype is not None:",
        "            flow.to(dtype)",
        "        flow.load_state_dict(state)",
        "        return flow",
        "",
        *_forward(flow),
        "",
        *_inverse(flow),
        "",
        "    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:",
        '        """log p(x) = log p_Z(f(x)) + log|det df/dx|, shape (N,)."""',
        "        z, logdet = self.forward(x, context)",
        "        return self.base.log_prob(z, context) + logdet",
        "",
        "    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) "
        "-> Tensor:",
        '        """n examples: z from the base with its std scaled by temperature, inverted."""',
        "        return self.inverse(self.base.sample(n, temperature, context), context)",
    ]
    return "\n".join(lines) + "\n"


def _docstring_safe(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def python_source(flow: Flow) -> str:
    """The source of a standalone module that rebuilds ``flow`` in plain PyTorch.

    Raises:
        FlowspecError: ``export-unsupported`` naming the first part (layer, conditioner,
            transform or base) that cannot be written as Python source, or for a conditional
            flow.
    """
    refuse_conditional(flow)
    parts = [
        (step.name, emit_part(step.module, f"layer '{step.name}' ({step.kind})"))
        for step in flow.steps
    ]
    base = emit_part(flow.base, f"the base distribution '{flow.spec.base.type}'")
    sources: dict[str, str] = {}
    for _, emitted in [*parts, ("base", base)]:
        for key, text in emitted.sources.items():
            sources.setdefault(key, text)
    name = class_name(flow.spec.name)
    spec_yaml = yaml.safe_dump(flow.spec.model_dump(mode="json"), sort_keys=False)
    spec_yaml = _docstring_safe(spec_yaml)
    title = textwrap.fill(f"{name}: {flow.spec.description or flow.spec.name}.", 96)
    header = (
        f'"""{_docstring_safe(title)}\n\n'
        "Written by `flowspec export` from the spec below: plain PyTorch (torch and safetensors;\n"
        "flowspec is not needed), the same computation as flowspec's compiled flow.\n\n"
        f'    flow = {name}.from_file("model.safetensors").eval()\n'
        "    z, logdet = flow(x)                 # data -> latent, log|det dz/dx| per example\n"
        "    x = flow.inverse(z)                 # latent -> data\n"
        "    log_p = flow.log_prob(x)\n"
        "    samples = flow.sample(16, temperature=0.8)\n\n"
        "Spec (resolved):\n\n"
        + "".join(f"    {line}\n" if line else "\n" for line in spec_yaml.splitlines())
        + '"""\n\n'
    )
    blocks = [HELPERS, REGISTER, *sources.values(), _model_class(flow, name, parts, base)]
    code = "\n\n\n".join(b.strip("\n") for b in blocks) + "\n"
    return header + _imports(code) + "\n\n" + code
