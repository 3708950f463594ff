"""Checkpoint files: atomic writes, ``weights_only`` loading and strict key checking.

Ported from the original's lib/utils/utils.py::save_checkpoint and the loading code of
pose_estimation/valid.py (MIT). Differences: writes are atomic, loading refuses pickles that would
run code unless explicitly trusted, and a mismatching state_dict is an error that names the keys
(the original loaded with ``strict=False`` and silently skipped them).
"""

import logging
import os
import pickle
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Mapping

import numpy as np
import torch

from semipose.common.errors import DataFileError, UserError
from semipose.common.io import atomic_torch_save

logger = logging.getLogger(__name__)

__all__ = [
    "BEST_NAME",
    "CheckpointError",
    "StateDictMismatchError",
    "UnsafeCheckpointError",
    "atomic_save",
    "describe_state",
    "extract_net",
    "network_prefixes",
    "load_checkpoint",
    "load_model_state",
    "load_pretrained_state",
    "save_checkpoint",
    "to_plain",
    "unwrap_state_dict",
]

BEST_NAME = "model_best.pth.tar"


class UnsafeCheckpointError(UserError, RuntimeError):
    """The file holds pickled objects that ``weights_only=True`` loading refuses to rebuild."""


class CheckpointError(DataFileError):
    """The file is not a readable checkpoint: empty, not a PyTorch file, truncated or damaged."""


class StateDictMismatchError(UserError, RuntimeError):
    """A state_dict does not match a model; ``missing``/``unexpected``/``mismatched`` list keys."""

    def __init__(self, message, missing=(), unexpected=(), mismatched=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)


_PLAIN = (torch.Tensor, bool, int, float, complex, str, bytes, type(None))


def to_plain(obj, where="states"):
    """Returns ``obj`` with numpy scalars and 0-d arrays turned into Python numbers.

    Containers (dict, OrderedDict, Counter, list, tuple) are rebuilt with the same type; anything
    that ``torch.load(weights_only=True)`` could not rebuild raises.

    Raises:
        TypeError: an unsupported value; the message gives its location, e.g. ``states['perf']``.
    """
    if isinstance(obj, np.generic) or (isinstance(obj, np.ndarray) and obj.ndim == 0):
        return obj.item()  # before the plain check: np.float64 subclasses float
    if isinstance(obj, _PLAIN) or isinstance(obj, torch.Size):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, Mapping):
        if type(obj) not in (dict, OrderedDict, Counter):
            raise TypeError(f"{where} is a {type(obj).__name__}; store a plain dict instead")
        items = [(k, to_plain(v, f"{where}[{k!r}]")) for k, v in obj.items()]
        if all(new is old for (_, new), old in zip(items, obj.values())):
            return obj  # unchanged: keep the object (and a state_dict's _metadata)
        out = type(obj)(items)
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if type(obj) in (list, tuple):
        items = [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if all(new is old for new, old in zip(items, obj)):
            return obj
        return type(obj)(items)
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__name__}, which weights_only loading "
        "cannot rebuild; store tensors, Python numbers, strings, lists and dicts only"
    )


def atomic_save(obj, path):
    """``torch.save`` through a temporary file, fsync and ``os.replace`` (a crash mid-write leaves
    the previous file intact); ``semipose.common.io.atomic_torch_save`` under its engine name."""
    atomic_torch_save(obj, path)


def save_checkpoint(states, is_best, output_dir, filename="checkpoint.pth.tar"):
    """Saves ``states`` to ``output_dir/filename``; if ``is_best``, ``states['state_dict']`` alone
    to ``output_dir/model_best.pth.tar``. Both writes are atomic.

    Args:
        states: a dict of tensors, Python numbers, strings, lists and dicts (numpy scalars are
            converted; other objects raise TypeError so the file stays loadable with
            weights_only=True).
        is_best: also write the best-model file.
        output_dir: destination folder.
        filename: name of the full checkpoint.
    """
    states = to_plain(states)
    atomic_save(states, os.path.join(output_dir, filename))
    if is_best and "state_dict" in states:
        atomic_save(states["state_dict"], os.path.join(output_dir, BEST_NAME))


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_MAGIC = b"\x80"  # legacy torch.save format: a pickle, protocol >= 2
_INTERRUPTED = "possibly an interrupted save or copy"
# Messages of torch.load's RuntimeErrors that mean damaged bytes (not, e.g., a device problem).
_DAMAGE_HINTS = ("PytorchStreamReader", "unexpected EOF", "corrupted", "invalid load key")


def _check_checkpoint_file(path):
    """Raises CheckpointError when ``path`` is plainly not a checkpoint, before unpickling."""
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes; {_INTERRUPTED})")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            raise CheckpointError(
                f"checkpoint {path} is truncated: a PyTorch zip file without its end record "
                f"({size} bytes; {_INTERRUPTED})"
            )
    elif not head.startswith(_PICKLE_MAGIC):
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (it starts with {head[:8]!r}; expected a file "
            "written by torch.save)"
        )


def load_checkpoint(path, map_location="cpu", weights_only=True):
    """Loads a checkpoint file.

    Args:
        path: file to read.
        map_location: passed to ``torch.load``.
        weights_only: keep True unless the file is trusted: pickles that would run code are refused.

    Returns:
        The loaded object (usually a dict).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: ``path`` is empty, not a ``torch.save`` file, truncated or damaged; the
            message names the file and says which.
        UnsafeCheckpointError: the file needs arbitrary unpickling (only pass ``weights_only=False``
            for a file you trust, e.g. an original train.py checkpoint holding a numpy ``perf``).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    _check_checkpoint_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        if not weights_only:
            raise CheckpointError(f"checkpoint {path} is damaged ({_INTERRUPTED}): {err}") from err
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it contains pickled objects that weights_only loading "
            "does not allow (they could run code). Only if you trust this file, load it with "
            f"weights_only=False. Details: {err}"
        ) from err
    except (EOFError, KeyError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"checkpoint {path} is truncated or damaged ({_INTERRUPTED}): {err!r}"
        ) from err
    except RuntimeError as err:
        if not any(hint in str(err) for hint in _DAMAGE_HINTS):
            raise
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} is truncated or damaged ({_INTERRUPTED}): {first}"
        ) from err


def unwrap_state_dict(obj):
    """A bare state_dict or ``{'state_dict': ...}`` → an OrderedDict with any ``module.`` prefix
    stripped.

    Raises:
        TypeError: ``obj`` is not a mapping.
    """
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"expected a state_dict or a dict with 'state_dict', got {type(obj).__name__}"
        )
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    out = OrderedDict()
    for key, value in obj.items():
        out[key[len("module.") :] if key.startswith("module.") else key] = value
    return out


def load_pretrained_state(source):
    """Reads backbone initialisation weights with the original's prefix rules.

    Args:
        source: a path, or an already loaded checkpoint (bare state_dict or ``{'state_dict':
            ...}``).

    Returns:
        An OrderedDict: ``module.`` stripped; ``resnet.X`` → ``X``; ``resnet2.*`` dropped (the
            pose_dual
        builder loads the pair separately); other keys unchanged.

    Raises:
        FileNotFoundError: a path that does not exist (the message names it).
    """
    if not isinstance(source, Mapping):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"pretrained model file not found: {source}")
        source = load_checkpoint(source)
    state = unwrap_state_dict(source)
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith("resnet2."):
            continue
        out[key[len("resnet.") :] if key.startswith("resnet.") else key] = value
    return out


def extract_net(state_dict, prefix=None):
    """The entries under ``prefix`` with the prefix removed, e.g. net 1 of a pose_dual checkpoint.

    Lets valid.py evaluate a pose_dual/pose_cons checkpoint's net 1 with a single
    pose_resnet/pose_hrnet (the pose_dual head ``final_layer_1`` is renamed ``final_layer``).

    Args:
        state_dict: a checkpoint or its state_dict.
        prefix: e.g. ``'resnet.'`` (``Method.checkpoint_prefix``); None = the
            first network the file holds (``network_prefixes``).

    Raises:
        KeyError: no key starts with ``prefix`` (or the file holds no network under a prefix).
    """
    state_dict = unwrap_state_dict(state_dict)
    if prefix is None:
        nets = network_prefixes(state_dict)
        if not nets:
            raise KeyError("the state_dict holds no network under a prefix (a single network?)")
        prefix = nets[0] + "."
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(prefix):
            key = key[len(prefix) :]
            if key.startswith("final_layer_1."):
                key = "final_layer." + key[len("final_layer_1.") :]
            out[key] = value
    if not out:
        raise KeyError(f"no state_dict key starts with {prefix!r}")
    return out


#: the first modules of a network's own keys: a prefix whose keys start with one of these is a
#: network of a multi-network model (whatever the method calls it)
_NETWORK_MODULES = ("conv1.", "stem.", "layer1.", "transition1.", "final_layer")


def network_prefixes(keys):
    """The prefixes under which ``keys`` hold whole networks, in the order they first appear, e.g.
    ``['resnet', 'resnet2']`` for a pose_dual state_dict; ``[]`` for a single network (its first
    components are modules: ``conv1``, ``layer1``, ...). Read from the keys themselves, so a
    method's own attribute names need no table here."""
    found = OrderedDict()
    for key in keys:
        head, _, rest = key.partition(".")
        if rest and rest.startswith(_NETWORK_MODULES):
            found.setdefault(head, None)
    return list(found)
_RESNET_DEPTHS = {(2, 2, 2, 2, False): 18, (3, 4, 6, 3, False): 34, (3, 4, 6, 3, True): 50,
                  (3, 4, 23, 3, True): 101, (3, 8, 36, 3, True): 152}


def _network_kind(keys):
    """What one network's keys (no prefix) look like, e.g. ``'a ResNet-18 PoseResNet'``."""
    keys = list(keys)
    if any(k.startswith("transition1.") for k in keys):
        return "an HRNet"
    if any(k.startswith("lateral.") for k in keys) and any(k.startswith("stem.") for k in keys):
        return "a PoseLite"
    if any(k.startswith("layer1.") for k in keys):
        blocks = tuple(len({k.split(".")[1] for k in keys if k.startswith(f"layer{i}.")})
                       for i in range(1, 5))
        depth = _RESNET_DEPTHS.get(blocks + (any(".conv3." in k for k in keys),))
        head = "PoseResNet" if any(k.startswith("deconv_layers.") for k in keys) else "ResNet"
        return f"a ResNet-{depth} {head}" if depth else f"a {head}"
    return "an unknown network"


def describe_state(keys):
    """What a state_dict's keys look like: how many networks under which prefixes, and of which
    kind, e.g. ``'two networks (resnet., resnet2.: a ResNet-18 PoseResNet each), as pose_dual
    saves them'``.

    Args:
        keys: the state_dict's keys (``module.`` already stripped).
    """
    keys = list(keys)
    nets = network_prefixes(keys)
    if not nets:
        return f"a single network ({_network_kind(keys)}), as pose_resnet / pose_hrnet save it"
    kinds = [_network_kind(k[len(p) + 1:] for k in keys if k.startswith(p + ".")) for p in nets]
    if len(set(kinds)) == 1:
        kind = kinds[0] + (" each" if len(nets) > 1 else "")
    else:
        kind = "; ".join(f"{p}. {k}" for p, k in zip(nets, kinds))
    names = ", ".join(p + "." for p in nets)
    model = {1: "pose_cons", 2: "pose_dual", 3: "sspcm"}.get(len(nets), "a method")
    count = {1: "one network", 2: "two networks", 3: "three networks"}.get(
        len(nets), f"{len(nets)} networks")
    return f"{count} ({names}: {kind}), as {model} saves them"


def _some(keys, limit=10):
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_model_state(model, state_dict, strict=True, source=None):
    """Loads ``state_dict`` into ``model`` after checking names and shapes.

    Only a missing ``num_batches_tracked`` is tolerated (very old checkpoints lack it). With
    ``strict``, any other missing or unexpected key, or a shape mismatch, raises before anything is
    loaded; without it they are logged and the matching entries are loaded.

    Args:
        source: the file the state_dict came from, named in the error.

    Returns:
        ``(missing, unexpected)`` key lists (empty after a strict load).

    Raises:
        StateDictMismatchError: one line naming ``source``, what its keys look like and what the
            model is (``describe_state``), and at most 10 keys of each kind with the count of the
            rest.
    """
    state_dict = unwrap_state_dict(state_dict)
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and torch.is_tensor(v) and v.shape != own[k].shape
    ]
    if mismatched or (strict and (missing or unexpected)):
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_some(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_some(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches: {_some(mismatched)}")
        what = source or "the state_dict"
        raise StateDictMismatchError(
            f"{what} does not fit the model: it holds {describe_state(state_dict)}; the config "
            f"builds {describe_state(own)} ({type(model).__name__}). " + "; ".join(parts),
            missing,
            unexpected,
            mismatched,
        )
    if missing or unexpected:
        logger.warning(
            "non-strict load into %s: missing %s, unexpected %s",
            type(model).__name__,
            missing,
            unexpected,
        )
    loadable = OrderedDict((k, v) for k, v in state_dict.items() if k in own)
    model.load_state_dict(loadable, strict=False)
    return missing, unexpected
