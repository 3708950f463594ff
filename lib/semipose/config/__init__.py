"""Configuration: ``get_cfg``, ``update_config`` and ``get_model_name``.

Ported in spirit from the original's lib/core/config.py (MIT); the tree itself is in
``defaults.py``.
"""
import copy
import os
import re

import yaml
from yacs.config import CfgNode as CN

from semipose.common.errors import UserError
from semipose.common.hard_aug import config_defaults as hard_aug_config_defaults
from semipose.config.defaults import _C, EXTRA_KEYS, HRNET_EXTRA

__all__ = [
    "get_cfg", "update_config", "get_model_name", "load_config", "ConfigError", "config_source",
]

# Keys whose non-empty value is prefixed with DATA_DIR (the original's update_dir, without its
# AI_ROOT bug).
_DATA_DIR_KEYS = (
    ("DATASET", "ROOT"),
    ("DATASET", "AI_ROOT"),
    ("DATASET", "PSEUDO_ANNO"),
    ("DATASET", "UNSUP_BBOX_FILE"),
    ("TEST", "COCO_BBOX_FILE"),
    ("TEST", "MODEL_FILE"),
    ("MODEL", "PRETRAINED"),
    ("MODEL", "TCH_PRETRAINED"),
    ("MODEL", "SEG_PRETRAINED"),
    (None, "OUTPUT_DIR"),
)
_SIZE_KEYS = ("IMAGE_SIZE", "HEATMAP_SIZE")
_STAGE_KEYS = frozenset(HRNET_EXTRA.STAGE2.keys())

# List keys whose length and element type are fixed: key (``STAGE*`` for any HRNet stage) ->
# (length or None for any, element type, what the elements are).
_LIST_SPECS = {
    "MODEL.IMAGE_SIZE": (2, int, "[width, height] in pixels"),
    "MODEL.EXTRA.HEATMAP_SIZE": (2, int, "[width, height] in heatmap pixels"),
    "DATASET.SYNTHETIC.IMAGE_SIZE": (2, int, "[width, height] in pixels"),
    "TRAIN.LR_STEP": (None, int, "epochs"),
    "MODEL.EXTRA.NUM_DECONV_FILTERS": (None, int, "channels per deconv stage"),
    "MODEL.EXTRA.NUM_DECONV_KERNELS": (None, int, "kernel per deconv stage"),
    "MODEL.EXTRA.PRETRAINED_LAYERS": (None, str, "layer names"),
    "MODEL.EXTRA.STAGE*.NUM_BLOCKS": (None, int, "blocks per branch"),
    "MODEL.EXTRA.STAGE*.NUM_CHANNELS": (None, int, "channels per branch"),
}
# Keys whose elements must also be > 0 (sizes and widths).
_POSITIVE = frozenset(
    ("MODEL.IMAGE_SIZE", "MODEL.EXTRA.HEATMAP_SIZE", "DATASET.SYNTHETIC.IMAGE_SIZE",
     "MODEL.EXTRA.NUM_DECONV_FILTERS", "MODEL.EXTRA.NUM_DECONV_KERNELS",
     "MODEL.EXTRA.STAGE*.NUM_BLOCKS", "MODEL.EXTRA.STAGE*.NUM_CHANNELS")
)  # fmt: skip
# Defaults of every MODEL.EXTRA key (SimpleBaseline + HRNet), the reference for their types.
_EXTRA_DEFAULTS = {**dict(_C.MODEL.EXTRA), **dict(HRNET_EXTRA)}
# A decimal number as Python writes it: YAML 1.1 reads '1e-3', '1e6' or '1.0e30' as strings.
_FLOAT_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class ConfigError(UserError, KeyError):
    """An unknown or malformed configuration key; the message names the key and its source."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def get_cfg():
    """Returns a fresh, mutable copy of the default configuration (with a ``HARD_AUG`` key for a
    hard-augmentation setting declared after this module was imported, e.g. by a plug-in op)."""
    cfg = _C.clone()
    for key, default in hard_aug_config_defaults().items():
        if key not in cfg.HARD_AUG:
            cfg.HARD_AUG[key] = default
    return cfg


def _as_pair(value):
    """An int size ``n`` becomes ``[n, n]`` (as the original's update_config does)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value, value]
    return value


def _check_extra(extra, source):
    """Checks the keys and value types of a ``MODEL.EXTRA`` mapping, normalising it in place."""
    if not isinstance(extra, dict):
        raise ConfigError(f"MODEL.EXTRA must be a mapping (in {source})")
    for key, value in extra.items():
        full = f"MODEL.EXTRA.{key}"
        if key not in EXTRA_KEYS:
            raise ConfigError(f"unknown config key '{full}' (in {source})")
        if key.startswith("STAGE"):
            if not isinstance(value, dict):
                raise ConfigError(f"{full} must be a mapping (in {source})")
            for sub, subval in value.items():
                if sub not in _STAGE_KEYS:
                    raise ConfigError(f"unknown config key '{full}.{sub}' (in {source})")
                value[sub] = _coerce(HRNET_EXTRA.STAGE2[sub], subval, f"{full}.{sub}", source)
            continue
        if key == "HEATMAP_SIZE":
            value = _as_pair(value)
        if key == "SIGMA":
            extra[key] = _positive_number(value, full, source)
        else:
            extra[key] = _coerce(_EXTRA_DEFAULTS[key], value, full, source)


def _positive_number(value, full, source):
    """An int or float > 0 (a string in Python float syntax is converted)."""
    if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"config key '{full}' expects a number > 0, got {value!r} (in {source})")
    return value


def _check_tree(node, data, prefix, source):
    """Raises ConfigError for every key of ``data`` that ``node`` does not define."""
    for key, value in data.items():
        full = f"{prefix}{key}"
        if full == "MODEL.EXTRA":
            _check_extra(value, source)
            continue
        if key not in node:
            raise ConfigError(f"unknown config key '{full}' (in {source})")
        if isinstance(node[key], CN):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{full}' must be a mapping (in {source})")
            _check_tree(node[key], value, full + ".", source)
        elif key in _SIZE_KEYS:
            data[key] = _as_pair(value)


def _merge_dict(cfg, data, source):
    data = copy.deepcopy(data)
    _check_tree(cfg, data, "", source)
    extra = data.get("MODEL", {}).pop("EXTRA", None)
    if extra is not None:
        # The YAML's EXTRA replaces the default one wholesale (the HRNet YAML has no deconv keys).
        cfg.MODEL.EXTRA = CN(extra, new_allowed=True)
    _assign(cfg, data, "", source)


def _check_list(value, full, source):
    """Checks the length and element types of a list key listed in ``_LIST_SPECS``."""
    spec_key = re.sub(r"\.STAGE\d\.", ".STAGE*.", full)
    spec = _LIST_SPECS.get(spec_key)
    if spec is None:
        return value
    length, kind, meaning = spec
    positive = spec_key in _POSITIVE
    ok = length is None or len(value) == length
    for item in value:
        if isinstance(item, bool) or not isinstance(item, kind) or (positive and item <= 0):
            ok = False
    if not ok:
        count = "a list of" if length is None else f"a list of {length}"
        what = f"{'positive ' if positive else ''}{kind.__name__}s"
        raise ConfigError(
            f"config key '{full}' expects {count} {what} ({meaning}), got {value!r} (in {source})"
        )
    return value


def _coerce(default, value, full, source):
    """Checks that ``value`` may replace ``default`` (yacs' type rules, no literal_eval).

    On top of yacs' rules, a float key accepts an int and a string in Python float syntax (YAML
    1.1 reads ``1e-3`` as a string), and the list keys of ``_LIST_SPECS`` have their length and
    element types checked.
    """
    if default is None or value is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, int):
        return float(value)
    elif isinstance(default, float) and isinstance(value, str) and _FLOAT_RE.fullmatch(value):
        return float(value)
    elif isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return _check_list(list(value), full, source)
    elif isinstance(value, type(default)):
        return value
    raise ConfigError(
        f"config key '{full}' expects {_type_name(default)}, got {value!r} (in {source})"
    )


def _type_name(default):
    if isinstance(default, (list, tuple)):
        return "a list"
    if isinstance(default, float):
        return "float (e.g. 0.001 or 1e-3)"
    return type(default).__name__


def _assign(node, data, prefix, source):
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(node[key], CN):
            _assign(node[key], value, full + ".", source)
        else:
            node[key] = _coerce(node[key], value, full, source)


def _merge_file(cfg, path):
    """Merges the YAML file ``path``; returns its (checked) mapping."""
    if os.path.isdir(path):
        raise ConfigError(f"--cfg {path} is a directory; give an experiment YAML file (e.g. one "
                          f"of the .yaml files in it)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ConfigError(f"cannot parse YAML {path}: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the config file {path}: {err}") from None
    if data is None or data == {}:
        raise ConfigError(
            f"the config file {path} is empty: it sets no key, so every default would apply "
            f"(MODEL.NAME {_C.MODEL.NAME}, DATASET.TRAIN_DATASET {_C.DATASET.TRAIN_DATASET}); "
            "give it at least the dataset and the model"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    _merge_dict(cfg, data, path)
    return data


def _flat_keys(data, prefix=""):
    """The dotted leaf keys of a nested mapping (``MODEL.EXTRA.SIGMA``, ...)."""
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flat_keys(value, full + ".")
        else:
            yield full


def config_source(cfg, key):
    """Where the value of ``key`` came from: the YAML file, the command line or the defaults."""
    sources = getattr(cfg, "_semipose_sources", None) or {}
    while key:
        if key in sources:
            return sources[key]
        key = key.rpartition(".")[0]  # MODEL.EXTRA set wholesale by a YAML
    return "the defaults"


def _decode_override(cfg, parts, raw):
    """Parses a command-line value with YAML rules, keeping it a string where the default is one."""
    if not isinstance(raw, str):
        return raw
    default = cfg
    for part in parts:
        default = default.get(part) if isinstance(default, CN) else None
    if isinstance(default, str):
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return raw if value is None else value


def _merge_opts(cfg, opts):
    if len(opts) % 2:
        raise ConfigError(f"overrides must be KEY VALUE pairs, got an odd list: {opts}")
    data = {}
    for key, raw in zip(opts[0::2], opts[1::2]):
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _decode_override(cfg, parts, raw)
    extra = data.get("MODEL", {}).get("EXTRA")
    if extra is not None:
        # An override of one EXTRA key must not replace the whole EXTRA block.
        _check_extra(extra, "command-line overrides")
        for key, value in extra.items():
            if isinstance(value, dict):
                if key not in cfg.MODEL.EXTRA:
                    raise ConfigError(
                        f"cannot override 'MODEL.EXTRA.{key}.*': the YAML's MODEL.EXTRA has no "
                        f"{key} (it is an HRNet key; in command-line overrides)"
                    )
                for sub, subval in value.items():
                    cfg.MODEL.EXTRA[key][sub] = subval
            else:
                cfg.MODEL.EXTRA[key] = value
        del data["MODEL"]["EXTRA"]
    _merge_dict(cfg, data, "command-line overrides")


def _check_consistency(cfg, source):
    """Checks that per-stage lists match their stage counts (deconv stages, HRNet branches)."""
    extra = cfg.MODEL.EXTRA
    if "NUM_DECONV_LAYERS" in extra:
        n = extra.NUM_DECONV_LAYERS
        for key in ("NUM_DECONV_FILTERS", "NUM_DECONV_KERNELS"):
            if key in extra and len(extra[key]) != n:
                raise ConfigError(
                    f"config key 'MODEL.EXTRA.{key}' has {len(extra[key])} entries but "
                    f"MODEL.EXTRA.NUM_DECONV_LAYERS is {n} (in {source})"
                )
    for stage in ("STAGE2", "STAGE3", "STAGE4"):
        if stage not in extra:
            continue
        n = extra[stage].NUM_BRANCHES
        for key in ("NUM_BLOCKS", "NUM_CHANNELS"):
            if len(extra[stage][key]) != n:
                raise ConfigError(
                    f"config key 'MODEL.EXTRA.{stage}.{key}' has {len(extra[stage][key])} entries "
                    f"but MODEL.EXTRA.{stage}.NUM_BRANCHES is {n} (in {source})"
                )


def _join_data_dir(cfg):
    if not cfg.DATA_DIR:
        return
    for section, key in _DATA_DIR_KEYS:
        node = cfg if section is None else cfg[section]
        if node[key]:
            node[key] = os.path.join(cfg.DATA_DIR, node[key])


def update_config(cfg, args):
    """Merges ``args.cfg`` (YAML) then ``args.opts`` (KEY VALUE list) into ``cfg`` and freezes it.

    Optional attributes of ``args``: ``modelDir``, ``logDir``, ``dataDir`` (set OUTPUT_DIR, LOG_DIR
    and DATA_DIR, as the original's update_dir) and ``pretrained_model`` (sets MODEL.PRETRAINED
    after the DATA_DIR join, so it is taken as given). Non-empty paths are prefixed with DATA_DIR.

    Values are type-checked against the defaults: float keys also take Python float syntax
    (``1e-3``), the fixed-length list keys (``MODEL.IMAGE_SIZE``, ``MODEL.EXTRA.HEATMAP_SIZE``,
    ...) their length and element type, ``MODEL.EXTRA`` values the type of their default.

    Raises:
        ConfigError: an unknown key or a value of the wrong type or length; the message names the
            key and the file (or the overrides).
        FileNotFoundError: ``args.cfg`` does not exist.
    """
    cfg.defrost()
    key_sources = {}
    if getattr(args, "cfg", None):
        data = _merge_file(cfg, args.cfg)
        key_sources.update(dict.fromkeys(_flat_keys(data), str(args.cfg)))
    opts = getattr(args, "opts", None) or []
    if opts:
        _merge_opts(cfg, list(opts))
        key_sources.update(dict.fromkeys(map(str, list(opts)[0::2]), "the command line"))
    for attr, key in (("modelDir", "OUTPUT_DIR"), ("logDir", "LOG_DIR"), ("dataDir", "DATA_DIR")):
        value = getattr(args, attr, "")
        if value:
            cfg[key] = value
            key_sources[key] = f"the command line (--{attr})"
    sources = [getattr(args, "cfg", None), opts and "command-line overrides"]
    sources = [src for src in sources if src]
    _check_consistency(cfg, " + ".join(sources) or "defaults")
    _join_data_dir(cfg)
    if getattr(args, "pretrained_model", ""):
        cfg.MODEL.PRETRAINED = args.pretrained_model
        key_sources["MODEL.PRETRAINED"] = "the command line (--pretrained_model)"
    object.__setattr__(cfg, "_semipose_sources", key_sources)  # read by config_source
    cfg.freeze()
    return cfg


def load_config(path=None, opts=()):
    """Convenience: a frozen config from a YAML path and overrides (no DATA_DIR CLI arguments)."""

    class _Args:
        pass

    args = _Args()
    args.cfg = path
    args.opts = list(opts)
    return update_config(get_cfg(), args)


def get_model_name(cfg):
    """Returns ``(name, full_name)`` as the original.

    For example ``('pose_dual_18', '256x192_pose_dual_18_d256d256d256')``.
    MODEL.NAME itself is checked where the method is built (``semipose.methods``' registry).
    """
    name = cfg.MODEL.NAME
    extra = cfg.MODEL.EXTRA
    if cfg.MODEL.BACKBONE == "lite":  # the light CPU backbone
        depth = f"lite{extra.get('BASE_WIDTH', 32)}"
    elif "NUM_LAYERS" in extra:
        depth = extra.NUM_LAYERS
    else:
        depth = extra.STAGE2.NUM_CHANNELS[0]
    name = f"{name}_{depth}"
    width, height = cfg.MODEL.IMAGE_SIZE
    deconv = "".join(f"d{n}" for n in extra.get("NUM_DECONV_FILTERS", []))
    return name, f"{height}x{width}_{name}_{deconv}"
