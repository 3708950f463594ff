"""Training methods: each one a ``Method`` subclass in its own file, found through the registry.

``build_method(cfg)`` gives the method of ``cfg.MODEL.NAME``; ``build_model(cfg, is_train)`` its
network module.
"""

from semipose.methods.base import Method
from semipose.methods.registry import METHODS, get_method_class, method_names, register_method

__all__ = [
    "METHODS",
    "Method",
    "build_method",
    "build_model",
    "get_method_class",
    "method_names",
    "register_method",
]


def build_method(cfg):
    """The ``Method`` instance for ``cfg.MODEL.NAME``.

    Raises:
        KeyError: an unknown MODEL.NAME (the message lists the registered ones).
    """
    return get_method_class(cfg.MODEL.NAME)(cfg)


def build_model(cfg, is_train):
    """The network module of ``cfg.MODEL.NAME``; with ``is_train`` also initialised
    (MODEL.INIT_WEIGHTS with a non-empty MODEL.PRETRAINED loads that file, else random init)."""
    return build_method(cfg).build_model(is_train)
