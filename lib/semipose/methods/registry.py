"""The method registry: ``MODEL.NAME`` → the class that trains, exposes and evaluates that method.

Entries are ``"module:Class"`` strings, imported on first use, so this module imports nothing from
the package but the errors. Adding a method is one file (a ``Method`` subclass) plus one line in
``METHODS``; code outside the package (a test, a plug-in) calls ``register_method`` instead.
"""

import importlib

from semipose.common.errors import UserError

__all__ = ["METHODS", "UnknownMethodError", "register_method", "get_method_class", "method_names"]


class UnknownMethodError(UserError, KeyError):
    """MODEL.NAME names no registered method (a ``KeyError`` too, as before)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""

# MODEL.NAME -> "module:Class"
METHODS = {
    "pose_resnet": "semipose.methods.supervised:Supervised",
    "pose_hrnet": "semipose.methods.supervised:Supervised",
    "pose_cons": "semipose.methods.pose_cons:PoseConsMethod",
    "pose_dual": "semipose.methods.pose_dual:PoseDualMethod",
    "sspcm": "semipose.methods.sspcm:SSPCMMethod",
}


def register_method(name, cls):
    """Registers ``cls`` (a ``Method`` subclass or a ``"module:Class"`` string) under ``name``.

    Raises:
        KeyError: ``name`` is already registered to another class.
    """
    known = METHODS.get(name)
    if known is not None and known is not cls and known != cls:
        raise KeyError(f"method {name!r} is already registered as {known}")
    METHODS[name] = cls
    return cls


def method_names():
    """The registered MODEL.NAME values, sorted."""
    return sorted(METHODS)


def get_method_class(name):
    """The class registered under ``name``.

    Raises:
        KeyError: an unknown name (the message lists the registered ones).
    """
    if name not in METHODS:
        raise UnknownMethodError(f"unknown MODEL.NAME {name!r}; registered: {method_names()}")
    entry = METHODS[name]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry
