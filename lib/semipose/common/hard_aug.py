"""The settings of the hard-view augmentations, declared once.

Every setting an op factory of ``models.augment_ops`` reads is one ``declare_setting`` call here
(or in a plug-in module): its name (the ``HardAugSettings`` attribute and the ``HardViewModel``
keyword), its default, its config key and what it does. From this one list

- ``HardAugSettings(**values)`` takes exactly the declared names (the others keep their defaults);
- the config's ``HARD_AUG`` node gets a key with the declared default for every setting whose key
  lies under ``HARD_AUG.`` (``config_defaults``; ``get_cfg`` adds the ones declared later);
- ``setting_values(cfg)`` reads every keyed setting of a config for the model builders.

This module imports nothing (the config and the models both read it).
"""

from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "SETTINGS",
    "HardAugSettings",
    "Setting",
    "config_defaults",
    "declare_setting",
    "setting_values",
]

#: the config node that holds the hard-augmentation keys
NODE = "HARD_AUG"


@dataclass(frozen=True)
class Setting:
    """One declared hard-augmentation setting.

    Attributes:
        name: the ``HardAugSettings`` attribute and ``HardViewModel`` keyword.
        default: the value when nothing sets it (the config default for a ``HARD_AUG.`` key).
        key: the config key it is read from (``'HARD_AUG.X'`` or a top-level key); None: not
            read from the config (given by the builder, e.g. ``trained_joints``).
        doc: one line on what it does.
    """

    name: str
    default: object
    key: str = None
    doc: str = ""


#: name -> Setting, in declaration order (also the order of the HARD_AUG keys)
SETTINGS = OrderedDict()


def declare_setting(name, default, key=None, doc=""):
    """Declares one setting (see ``Setting``); a plug-in op calls it next to its registration.

    Returns:
        the ``Setting``.

    Raises:
        KeyError: ``name`` (or ``key``) is already declared differently.
    """
    setting = Setting(name, default, key, doc)
    known = SETTINGS.get(name)
    if known is not None and known != setting:
        raise KeyError(f"hard-augmentation setting {name!r} is already declared as {known}")
    if key is not None and any(s.key == key and s.name != name for s in SETTINGS.values()):
        raise KeyError(f"config key {key} already belongs to another hard-augmentation setting")
    SETTINGS[name] = setting
    return setting


# JC (joint cutout) reads the original's top-level keys, which HardViewModel's own cutout shares
declare_setting("mask_joint_num", 5, "MASK_JOINT_NUM", "JC boxes per image")
declare_setting("mask_joint_fix", False, "MASK_JOINT_FIX",
                "JC's intended clamp, joints among trained_joints")
declare_setting("mask_joint_relative", False, "MASK_JOINT_RELATIVE",
                "JC sizes and jitter scaled by input width / 192")
declare_setting("jo_joint_num", 2, "HARD_AUG.JO_JOINT_NUM",
                "JO/SSCO joint pairs per image (MultiAugs KP_CutMix_JOINT_NUM)")
declare_setting("co_holes", 5, "HARD_AUG.CO_HOLES",
                "CutOut boxes per image (MultiAugs MASK_HOLES_NUM_CO)")
declare_setting("cm_holes", 2, "HARD_AUG.CM_HOLES",
                "CutMix boxes per image (MultiAugs MASK_HOLES_NUM_CM)")
declare_setting("jccm_cm_holes", 0, "HARD_AUG.JCCM_CM_HOLES",
                "CutMix boxes in JCCM (0 = CM_HOLES; MultiAugs' PoseDual: 5)")
declare_setting("mixup_alpha", 0.2, "HARD_AUG.MIXUP_ALPHA",
                "MixUp lambda ~ Beta(a, a); image weight 1 - 0.25 * lambda")
declare_setting("jo_fix", False, "HARD_AUG.JO_FIX",
                "centre JO boxes on the joints (published: x, y transposed)")
declare_setting("hole_fix", False, "HARD_AUG.HOLE_FIX",
                "CutOut/CutMix centres and clamps with the right H/W")
declare_setting("box_relative", False, "HARD_AUG.RELATIVE",
                "JO/CO/CM half-sizes (and JO jitter) x input width / 192")
declare_setting("joint_pool_fix", False, "HARD_AUG.JOINT_POOL_FIX",
                "JC/JO joints among trained channels, no replacement")
declare_setting("trained_joints", None, None,
                "channel indices the labeled set trains (None = all channels)")


class HardAugSettings:
    """The values of every declared setting, read as attributes (immutable).

    Args:
        **values: declared names; the others take their defaults.

    Raises:
        TypeError: a name no ``declare_setting`` declared.
    """

    __slots__ = ("_values",)

    def __init__(self, **values):
        unknown = sorted(set(values) - set(SETTINGS))
        if unknown:
            raise TypeError(f"undeclared hard-augmentation settings {unknown}; "
                            f"declared: {list(SETTINGS)}")
        merged = {name: values.get(name, s.default) for name, s in SETTINGS.items()}
        object.__setattr__(self, "_values", merged)

    def __getattr__(self, name):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        if name in SETTINGS:  # declared after this object was made
            return SETTINGS[name].default
        raise AttributeError(f"no hard-augmentation setting {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError("HardAugSettings is immutable")

    def __eq__(self, other):
        return isinstance(other, HardAugSettings) and self._values == other._values

    def __hash__(self):
        return hash(tuple(sorted((k, repr(v)) for k, v in self._values.items())))

    def __repr__(self):
        return "HardAugSettings(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"

    def as_dict(self):
        """``{name: value}`` of every declared setting."""
        return dict(self._values)

    def jc_pool(self):
        """The joints JC draws from: ``trained_joints`` with either fix, else all (None)."""
        use = self.mask_joint_fix or self.joint_pool_fix
        return self.trained_joints if use else None

    def jo_pool(self):
        """The joints JO draws from: ``trained_joints`` with ``joint_pool_fix``, else all."""
        return self.trained_joints if self.joint_pool_fix else None


def config_defaults():
    """``OrderedDict(key under HARD_AUG -> default)`` of the declared ``HARD_AUG.`` settings."""
    prefix = NODE + "."
    return OrderedDict((s.key[len(prefix):], s.default) for s in SETTINGS.values()
                       if s.key and s.key.startswith(prefix))


def setting_values(cfg):
    """``{name: value}`` of every declared setting with a config key, read from ``cfg``.

    Raises:
        KeyError: ``cfg`` lacks a declared key.
    """
    out = {}
    for name, s in SETTINGS.items():
        if s.key is None:
            continue
        node = cfg
        for part in s.key.split("."):
            node = node[part]
        out[name] = node
    return out
