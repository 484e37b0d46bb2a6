"""Collects the parametrized vectors of packaging's own tests without pytest.

A stand-in `pytest` module records every `@pytest.mark.parametrize`, so the
test modules import as they are; nothing of them runs.
"""

import importlib
import itertools
import sys
import types


class _Param:
    def __init__(self, *values, **kwargs):
        self.values = values
        self.marks = kwargs.get("marks", ())


def _parametrize(argnames, argvalues, **_kwargs):
    names = [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else list(argnames)

    def decorate(function):
        rows = []
        for value in argvalues:
            if isinstance(value, _Param):
                value = value.values
            if len(names) == 1:
                value = (value,)
            rows.append(dict(zip(names, value)))
        function.__dict__.setdefault("_upshift_params", []).append(rows)
        return function

    return decorate


class _Mark:
    parametrize = staticmethod(_parametrize)

    def __getattr__(self, _name):
        return lambda *a, **k: (lambda f: f)


class _Raises:
    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True


def install_stand_in():
    pytest = types.ModuleType("pytest")
    pytest.mark = _Mark()
    pytest.param = _Param
    pytest.raises = _Raises
    pytest.warns = _Raises
    pytest.fixture = lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f))
    pytest.skip = lambda *a, **k: None
    pytest.importorskip = lambda name, *a, **k: importlib.import_module(name)
    sys.modules["pytest"] = pytest
    # Test helpers the modules import but no vector needs.
    for helper in ("pretend",):
        if helper not in sys.modules:
            try:
                importlib.import_module(helper)
            except ImportError:
                stub = types.ModuleType(helper)
                stub.__getattr__ = lambda name: (lambda *a, **k: None)
                sys.modules[helper] = stub


def vectors(module_name):
    """(test name, args) for every parametrized combination of a test module."""
    module = importlib.import_module(module_name)
    functions = []
    for name, item in vars(module).items():
        if isinstance(item, type):
            functions += [(f"{name}.{n}", f) for n, f in vars(item).items() if callable(f)]
        elif callable(item):
            functions.append((name, item))
    for name, function in functions:
        tables = getattr(function, "_upshift_params", None)
        if not tables:
            continue
        for combination in itertools.product(*tables):
            args = {}
            for part in combination:
                args.update(part)
            yield name, args
