"""What the command line shows and checks before it imports torch: the model zoo and defaults.

``hwsim --help``, ``hwsim list`` and the first argument checks of ``hwsim run`` / ``compare``
must answer in a fraction of a second, and importing the zoo (``models``) imports torch (~2 s).
So the zoo is described here as a static table: per model the first line of its builder's
docstring (plain text), its default input size, the arguments a ``--set model.KEY`` may change
(with their defaults) and the method namespaces (``--set mlg.*`` ...) it takes.
``tests/test_catalog.py`` checks the table against the live registry, so it cannot go stale;
after changing the zoo, paste the output of ``python -m hwsim.catalog`` over ``MODELS``.
"""

import difflib
import pprint
import re

# The mapper's objectives (hwsim.cost), the calibration default (hwsim.pipeline.HARDWARE) and
# the dataset names (models.data).
OBJECTIVES = ("balanced", "dram_bytes", "energy_pj", "latency_cycles")
DEFAULT_OBJECTIVE = "balanced"
CALIB_BATCHES = 2
DATASETS = ("digits", "mnist", "cifar10", "cifar100", "synthetic")  # models.data.DATASETS

MODELS = {
    'cg_resnet20': {
        'summary': ('ResNet-20 with channel-gated conv1 per block (default pt=4, grouped base '
                    'path).'),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0},
        'namespaces': ('cg',),
    },
    'cg_resnet20_postact': {
        'summary': ('Post-activation ResNet-20, both convs of every block channel-gated (default '
                    'pt=2).'),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0},
        'namespaces': ('cg',),
    },
    'densenet121': {
        'summary': 'DenseNet-121 CIFAR variant, growth 32 (scaled by width).',
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0, 'growth': 32},
        'namespaces': (),
    },
    'mlg_densenet121': {
        'summary': 'CIFAR DenseNet-121 with generated convs (default 1-25-4-6-6) and an 8-bit FC.',
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0},
        'namespaces': ('mlg',),
    },
    'mlg_mobilenetv2': {
        'summary': ('CIFAR MobileNetV2, generation on every depthwise and pointwise conv (default '
                    '5-40-4-4-4).'),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0},
        'namespaces': ('mlg',),
    },
    'mlg_resnet18': {
        'summary': ('CIFAR ResNet-18, every conv generated (default 2-44-3-6-3) at 8 bits, 8-bit '
                    'FC.'),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0},
        'namespaces': ('mlg',),
    },
    'mobilenetv2': {
        'summary': ('MobileNetV2 (Sandler et al. 2018), CIFAR variant; width < 1 keeps the '
                    '1280-wide head.'),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0},
        'namespaces': (),
    },
    'pg_resnet20': {
        'summary': ('ResNet-20 with precision-gated conv1 per block (default w8/a3, 2-bit '
                    'prediction).'),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0},
        'namespaces': ('pg',),
    },
    'resnet18': {
        'summary': ('CIFAR ResNet-18 as used by MLG: 3x3 stride-1 stem, no max-pool, 1x1 '
                    'projections (B).'),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0, 'shortcut': 'B'},
        'namespaces': (),
    },
    'resnet20': {
        'summary': ('CIFAR ResNet-20 (He et al. 2016); default option-A zero-pad shortcuts as '
                    'dnn-gating.'),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0, 'shortcut': 'A'},
        'namespaces': (),
    },
    'resnet50': {
        'summary': 'ImageNet ResNet-50 v1.5 (224x224 input, torchvision layout).',
        'input_hw': (224, 224),
        'arguments': {'num_classes': 1000, 'in_channels': 3, 'width': 1.0, 'shortcut': 'B'},
        'namespaces': (),
    },
    'resnet56': {
        'summary': ("CIFAR ResNet-56 (He et al. 2016); default option A, ResRep's setting is "
                    'shortcut="B".'),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10, 'in_channels': 3, 'width': 1.0, 'shortcut': 'A'},
        'namespaces': (),
    },
    'resrep_resnet20': {
        'summary': ('CIFAR ResNet-20 with a compactor after the first conv of every block (9 '
                    'layers).'),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10,
                      'in_channels': 3,
                      'width': 1.0,
                      'shortcut': 'B',
                      'channels': None,
                      'converted': False},
        'namespaces': ('resrep',),
    },
    'resrep_resnet50': {
        'summary': ('ImageNet ResNet-50 with compactors after the first two convs of every '
                    'bottleneck (32).'),
        'input_hw': (224, 224),
        'arguments': {'num_classes': 1000,
                      'in_channels': 3,
                      'width': 1.0,
                      'shortcut': 'B',
                      'channels': None,
                      'converted': False},
        'namespaces': ('resrep',),
    },
    'resrep_resnet56': {
        'summary': ('CIFAR ResNet-56 with a compactor after the first conv of every block (the '
                    "seed's 27)."),
        'input_hw': (32, 32),
        'arguments': {'num_classes': 10,
                      'in_channels': 3,
                      'width': 1.0,
                      'shortcut': 'B',
                      'channels': None,
                      'converted': False},
        'namespaces': ('resrep',),
    },
}



def _plain(text: str) -> str:
    """A docstring line as plain text: reST literals (double backticks) dropped."""
    return re.sub(r"``(.*?)``", r"\1", text)


def live_models() -> dict:
    """The table ``MODELS`` read from the registry (imports torch)."""
    import models

    from .config import METHOD_NAMESPACES

    table = {}
    for name in models.list_models():
        arguments = models.model_arguments(name)
        doc = (models.model_builder(name).__doc__ or "").strip().splitlines()
        table[name] = {
            "summary": _plain(doc[0]) if doc else "",
            "input_hw": tuple(models.model_builder(name).input_hw),
            "arguments": {k: v for k, v in arguments.items() if k not in METHOD_NAMESPACES
                          and (v is None or isinstance(v, (bool, int, float, str)))},
            "namespaces": tuple(ns for ns in METHOD_NAMESPACES if ns in arguments),
        }
    return table


def check_model(name: str) -> str:
    """``name`` if it is a registered model, else a KeyError naming the closest ones."""
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise KeyError(f"unknown model {name!r}: {hint}available: {', '.join(MODELS)}")
    return name


def no_namespace(name: str, ns: str) -> str:
    """Why ``{ns}.*`` settings cannot go to model ``name``, and which models take them."""
    takers = [m for m, e in MODELS.items() if ns in e["namespaces"]]
    return f"model {name} has no {ns} settings; models that do: {', '.join(takers) or 'none yet'}"


def _source(table: dict) -> str:
    """``MODELS = {...}`` as Python source, lines within 100 characters."""
    lines = ["MODELS = {"]
    for name, entry in table.items():
        lines.append(f"    {name!r}: {{")
        for key, value in entry.items():
            head = f"        {key!r}: "
            text = pprint.pformat(value, width=99 - len(head), sort_dicts=False)
            lines.append(head + text.replace("\n", "\n" + " " * len(head)) + ",")
        lines.append("    },")
    return "\n".join([*lines, "}"])


if __name__ == "__main__":
    print(_source(live_models()))
