"""Configuration: ``get_cfg``, ``update_config`` and ``get_model_name``.

Ported in spirit from the original's lib/core/config.py (MIT); the tree itself is in
``defaults.py``.
"""
import copy
import os

import yaml
from yacs.config import CfgNode as CN

from semipose.config.defaults import _C, EXTRA_KEYS, HRNET_EXTRA

__all__ = ["get_cfg", "update_config", "get_model_name", "load_config", "ConfigError"]

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


class ConfigError(KeyError):
    """An unknown or malformed configuration key; the message names the key and its source."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def get_cfg():
    """Returns a fresh, mutable copy of the default configuration."""
    return _C.clone()


def _as_pair(value):
    """An int size ``n`` becomes ``[n, n]`` (as the original's update_config does)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value, value]
    return value


def _check_extra(extra, source):
    if not isinstance(extra, dict):
        raise ConfigError(f"MODEL.EXTRA must be a mapping (in {source})")
    for key, value in extra.items():
        if key not in EXTRA_KEYS:
            raise ConfigError(f"unknown config key 'MODEL.EXTRA.{key}' (in {source})")
        if key.startswith("STAGE"):
            if not isinstance(value, dict):
                raise ConfigError(f"MODEL.EXTRA.{key} must be a mapping (in {source})")
            for sub in value:
                if sub not in _STAGE_KEYS:
                    raise ConfigError(f"unknown config key 'MODEL.EXTRA.{key}.{sub}' (in {source})")
        if key == "HEATMAP_SIZE":
            extra[key] = _as_pair(value)


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


def _coerce(default, value, full, source):
    """Checks that ``value`` may replace ``default`` (yacs' type rules, no literal_eval)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, int):
        return float(value)
    elif isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return list(value)
    elif isinstance(value, type(default)):
        return value
    raise ConfigError(
        f"config key '{full}' expects {type(default).__name__}, got {value!r} (in {source})"
    )


def _assign(node, data, prefix, source):
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(node[key], CN):
            _assign(node[key], value, full + ".", source)
        else:
            node[key] = _coerce(node[key], value, full, source)


def _merge_file(cfg, path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"cannot parse YAML {path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    _merge_dict(cfg, data, path)


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
                for sub, subval in value.items():
                    cfg.MODEL.EXTRA[key][sub] = subval
            else:
                cfg.MODEL.EXTRA[key] = value
        del data["MODEL"]["EXTRA"]
    _merge_dict(cfg, data, "command-line overrides")


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

    Raises:
        ConfigError: an unknown key; the message names the key and the file (or the overrides).
    """
    cfg.defrost()
    if getattr(args, "cfg", None):
        _merge_file(cfg, args.cfg)
    opts = getattr(args, "opts", None) or []
    if opts:
        _merge_opts(cfg, list(opts))
    for attr, key in (("modelDir", "OUTPUT_DIR"), ("logDir", "LOG_DIR"), ("dataDir", "DATA_DIR")):
        value = getattr(args, attr, "")
        if value:
            cfg[key] = value
    _join_data_dir(cfg)
    if getattr(args, "pretrained_model", ""):
        cfg.MODEL.PRETRAINED = args.pretrained_model
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

    Raises:
        ValueError: MODEL.NAME is not one of pose_resnet, pose_dual, pose_cons, pose_hrnet.
    """
    name = cfg.MODEL.NAME
    if name not in ("pose_resnet", "pose_dual", "pose_cons", "pose_hrnet"):
        raise ValueError(f"get_model_name: unknown MODEL.NAME '{name}'")
    extra = cfg.MODEL.EXTRA
    if "NUM_LAYERS" in extra:
        depth = extra.NUM_LAYERS
    else:
        depth = extra.STAGE2.NUM_CHANNELS[0]
    name = f"{name}_{depth}"
    width, height = cfg.MODEL.IMAGE_SIZE
    deconv = "".join(f"d{n}" for n in extra.get("NUM_DECONV_FILTERS", []))
    return name, f"{height}x{width}_{name}_{deconv}"
