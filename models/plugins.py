"""Named extension points of the training loop: extra loss terms, gradient hooks, initializers.

Methods register factories here (``@register_loss("kd")``) and configs name them, so the loop
never changes for a new method. Each factory receives the model and the parameters from its
config section and returns the callable the loop uses:

- loss term: ``factory(model, **params) -> fn(inputs, logits, targets) -> scalar tensor``
  (the term is added to the task loss; the factory applies its own weight);
- gradient hook: ``factory(model, **params) -> fn(step) -> None``, run after ``backward()`` and
  before the optimizer step (e.g. ResRep's penalty gradients);
- initializer: ``factory(model, **params) -> None``, run once before training starts on a fresh
  model (e.g. MLG's projection from a teacher); not run again on resume;
- metric: ``factory(model, **params) -> fn() -> dict``, called after every evaluation on the
  test set; its entries join that epoch's metrics row (e.g. gating sparsity).
"""

import difflib
import inspect
import math
from collections.abc import Callable

LOSSES: dict[str, Callable] = {}
GRAD_HOOKS: dict[str, Callable] = {}
INITIALIZERS: dict[str, Callable] = {}
METRICS: dict[str, Callable] = {}
_KINDS = {"loss": LOSSES, "grad_hook": GRAD_HOOKS, "init": INITIALIZERS, "metric": METRICS}


def _register(kind: str, name: str) -> Callable[[Callable], Callable]:
    table = _KINDS[kind]

    def decorate(factory: Callable) -> Callable:
        if name in table:
            raise ValueError(f"{kind} {name!r} is registered twice")
        table[name] = factory
        return factory

    return decorate


def register_loss(name: str) -> Callable[[Callable], Callable]:
    return _register("loss", name)


def register_grad_hook(name: str) -> Callable[[Callable], Callable]:
    return _register("grad_hook", name)


def register_init(name: str) -> Callable[[Callable], Callable]:
    return _register("init", name)


def register_metric(name: str) -> Callable[[Callable], Callable]:
    return _register("metric", name)


def lookup(kind: str, name: str) -> Callable:
    """The factory registered as ``name`` of ``kind`` (loss, grad_hook, init, metric)."""
    table = _KINDS[kind]
    if name not in table:
        close = difflib.get_close_matches(name, table, n=3, cutoff=0.4)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KeyError(f"unknown {kind} {name!r}{hint}; registered: {', '.join(sorted(table))}")
    return table[name]


def check_params(where: str, factory: Callable, params: dict) -> None:
    """``params`` fit ``factory``'s keyword arguments (after the model): every name known,
    every argument without a default given, plain annotated types (int, float, str, bool)
    matched and numbers finite. A problem is a one-line ValueError naming ``where.key``."""
    arguments = list(inspect.signature(factory).parameters.values())[1:]
    open_ended = any(a.kind is inspect.Parameter.VAR_KEYWORD for a in arguments)
    arguments = [a for a in arguments if a.kind not in (inspect.Parameter.VAR_KEYWORD,
                                                        inspect.Parameter.VAR_POSITIONAL)]
    names = [a.name for a in arguments]
    for key, value in params.items():
        if key not in names and open_ended:
            continue  # the factory checks its own **settings
        if key not in names:
            raise ValueError(f"{where}.{key}: unknown parameter; allowed: {', '.join(names)}")
        annotation = arguments[names.index(key)].annotation
        number = annotation in (int, float)
        if annotation in (int, float, str, bool) and (
                isinstance(value, bool) != (annotation is bool)
                or not isinstance(value, (int, float) if annotation is float else annotation)):
            raise ValueError(f"{where}.{key}: must be {annotation.__name__}, got {value!r}")
        if number and not math.isfinite(value):
            raise ValueError(f"{where}.{key}: must be a finite number, got {value!r}")
    missing = [a.name for a in arguments
               if a.default is inspect.Parameter.empty and a.name not in params]
    if missing:
        raise ValueError(f"{where}.{missing[0]}: required parameter missing")
