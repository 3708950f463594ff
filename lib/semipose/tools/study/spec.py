"""The study file: a YAML file of rows (a base config + overrides), seeds, baselines, claims and
the protocol, read and checked into a ``Study`` (the package's docstring describes the keys)."""

import collections
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STUDIES_DIR = Path("experiments/studies")
TRAIN_SCRIPT = Path("pose_estimation/train.py")
HEADS = ("net1", "net2", "ensemble", "mean", "papers")


def project_root():
    """The project folder the studies' relative paths start from: the current directory when it
    holds ``pose_estimation/train.py``, else the checkout this package lives in."""
    here = Path.cwd()
    if (here / TRAIN_SCRIPT).is_file():
        return here.resolve()
    return Path(__file__).resolve().parents[4]


REPO = project_root()


class StudyError(Exception):
    """A study file that cannot be run; the message names the file and the key."""


@dataclass
class Row:
    """One row of a study: its base config and overrides, and how the report names it."""

    name: str
    cfg: Path
    opts: list
    method: str
    aug: str = "—"
    cost: float = 1.0
    seeds: list = None


@dataclass
class Study:
    """A parsed study file (module docstring)."""

    name: str
    path: Path
    rows: dict
    title: str = ""
    setting: str = ""
    seeds: list = field(default_factory=lambda: [1])
    output: Path = Path("output/studies")
    results: Path = None
    plot: Path = None
    head: str = "net1"
    baselines: list = field(default_factory=list)
    pretrain: dict = None
    opts: list = field(default_factory=list)
    average_last: int = 1
    claims: list = field(default_factory=list)
    regime_row: str = None
    regime_tolerance: float = 0.005
    prepare: list = field(default_factory=list)


def _mapping_list(value, where, key, keys):
    """``value`` (a study file's list ``key`` of mappings with ``keys``) as a list; None: []."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise StudyError(f"{where}: {key} must be a list of {{{', '.join(keys)}}} mappings")
    return value


def _prepare(value, where):
    """A study's ``prepare``: commands that make its data, ``[{command: [tokens], creates:
    [paths]}]`` (``python`` as the first token is this interpreter)."""
    steps = []
    for i, step in enumerate(_mapping_list(value, where, "prepare", ("command", "creates"))):
        if (not isinstance(step, dict) or set(step) - {"command", "creates"}
                or not isinstance(step.get("command"), list) or not step["command"]):
            raise StudyError(f"{where}: prepare[{i}] needs a command (a list of tokens) and "
                             f"optionally creates (paths); got {step!r}")
        creates = step.get("creates") or []
        creates = [creates] if isinstance(creates, str) else list(creates)
        steps.append({"command": [str(t) for t in step["command"]],
                      "creates": [Path(str(c)) for c in creates]})
    return steps


def _int_list(value, where):
    if not isinstance(value, list) or not value or not all(isinstance(s, int) for s in value):
        raise StudyError(f"{where} must be a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise StudyError(f"{where} repeats a seed: {value!r}")
    return list(value)


def _claims(value, rows, where):
    """A study's ``claims``: a list of ``{claim: text, row: NAME, over: NAME}``, each read as
    "row scores higher than over"."""
    out = []
    for i, item in enumerate(_mapping_list(value, where, "claims", ("claim", "row", "over"))):
        if not isinstance(item, dict) or set(item) != {"claim", "row", "over"}:
            raise StudyError(f"{where}: claims[{i}] needs exactly the keys claim, row, over; got "
                             f"{item!r}")
        for key in ("row", "over"):
            if item[key] not in rows:
                raise StudyError(f"{where}: claims[{i}].{key} {item[key]!r} is not a row "
                                 f"({', '.join(rows)})")
        out.append({k: str(v) for k, v in item.items()})
    return out


def _opt_value(value):
    """A YAML value as the string a yacs ``KEY VALUE`` override takes (lists and booleans as
    Python literals, strings as they are)."""
    return value if isinstance(value, str) else repr(value)


def _opts_list(opts, where):
    """A row's ``opts`` (a mapping, or a flat KEY VALUE list) as a flat list of strings."""
    if opts is None:
        return []
    if isinstance(opts, dict):
        return [s for k, v in opts.items() for s in (str(k), _opt_value(v))]
    if isinstance(opts, list) and len(opts) % 2 == 0:
        return [str(o) if i % 2 == 0 else _opt_value(o) for i, o in enumerate(opts)]
    raise StudyError(f"{where}: opts must be a mapping KEY: VALUE (or a KEY VALUE list), got "
                     f"{opts!r}")


def _repo_path(value, where, must_exist=True):
    path = Path(str(value))
    full = path if path.is_absolute() else REPO / path
    if must_exist and not full.is_file():
        raise StudyError(f"{where}: no such file {value}")
    return path


def find_study(name):
    """The study file of ``name``: a path to a YAML file, or ``experiments/studies/<name>.yaml``."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and (path.is_file() or (REPO / path).is_file()):
        return path if path.is_file() else REPO / path
    candidate = REPO / STUDIES_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in (REPO / STUDIES_DIR).glob("*.yaml"))
    raise StudyError(f"no study {name!r}: not a YAML file, and {STUDIES_DIR}/{name}.yaml does not "
                     f"exist; studies: {', '.join(known) or 'none'}")


def _read_rows(data, path):
    """A study file's ``rows`` as ``{name: Row}`` in file order."""
    default_cfg = data.get("cfg")
    rows = collections.OrderedDict()
    for row_name, spec in data["rows"].items():
        where = f"{path}: rows.{row_name}"
        spec = spec or {}
        if not isinstance(spec, dict):
            raise StudyError(f"{where}: must be a mapping (cfg, opts, method, aug, cost)")
        extra = sorted(set(spec) - {"cfg", "opts", "method", "aug", "cost", "seeds"})
        if extra:
            raise StudyError(f"{where}: unknown keys {extra}")
        cfg = spec.get("cfg", default_cfg)
        if not cfg:
            raise StudyError(f"{where}: no cfg (and no study-level cfg)")
        rows[str(row_name)] = Row(
            name=str(row_name), cfg=_repo_path(cfg, f"{where}.cfg"),
            opts=_opts_list(spec.get("opts"), where), method=str(spec.get("method", row_name)),
            aug=str(spec.get("aug", "—")), cost=float(spec.get("cost", 1.0)),
            seeds=(None if spec.get("seeds") is None
                   else _int_list(spec["seeds"], f"{where}.seeds")),
        )
    return rows


def _read_pretrain(pretrain, path):
    """A study file's ``pretrain`` mapping checked and with its paths and opts read; None stays
    None."""
    if pretrain is None:
        return None
    if not isinstance(pretrain, dict) or not pretrain.get("cfg") or not pretrain.get("file"):
        raise StudyError(f"{path}: pretrain needs cfg and file")
    pseeds = pretrain.get("seeds")
    if pseeds is not None and (not isinstance(pseeds, list) or len(pseeds) not in (1, 2)
                               or not all(isinstance(x, int) for x in pseeds)):
        raise StudyError(f"{path}: pretrain.seeds must be a list of one or two integers, "
                         f"got {pseeds!r}")
    return dict(pretrain, cfg=_repo_path(pretrain["cfg"], f"{path}: pretrain.cfg"),
                file=Path(str(pretrain["file"])),
                opts=_opts_list(pretrain.get("opts"), f"{path}: pretrain"))


def load_study(name):
    """Reads and checks a study file (``find_study``).

    Raises:
        StudyError: unreadable YAML, a missing or ill-typed key, a row's config file missing, a
            baseline that is not a row; the message names the file and the key.
    """
    path = find_study(name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StudyError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rows"), dict) or not data["rows"]:
        raise StudyError(f"{path}: needs a 'rows' mapping of row name -> row")
    known = {"title", "setting", "seeds", "output", "results", "plot", "head", "baselines", "cfg",
             "pretrain", "rows", "opts", "average_last", "claims", "regime", "prepare"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise StudyError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    rows = _read_rows(data, path)
    seeds = _int_list(data.get("seeds", [1]), f"{path}: seeds")
    last = data.get("average_last", 1)
    if not isinstance(last, int) or last < 1:
        raise StudyError(f"{path}: average_last must be an integer >= 1, got {last!r}")
    regime = data.get("regime") or {}
    if not isinstance(regime, dict) or set(regime) - {"row", "tolerance"} or (
            regime and regime.get("row") not in rows):
        raise StudyError(f"{path}: regime must be {{row: <a row>, tolerance: <AP>}}, got "
                         f"{regime!r}")
    head = data.get("head", "net1")
    if head not in HEADS:
        raise StudyError(f"{path}: head must be one of {list(HEADS)}, got {head!r}")
    baselines = list(data.get("baselines") or [])
    missing = [b for b in baselines if b not in rows]
    if missing:
        raise StudyError(f"{path}: baselines {missing} are not rows ({', '.join(rows)})")
    pretrain = _read_pretrain(data.get("pretrain"), path)
    stem = path.stem
    return Study(
        name=stem, path=path, rows=rows, title=str(data.get("title", stem)),
        setting=str(data.get("setting", "")).strip(), seeds=seeds,
        output=Path(str(data.get("output", f"output/studies/{stem}"))),
        results=Path(str(data.get("results", f"docs/results/study_{stem}.md"))),
        plot=Path(str(data.get("plot", f"docs/study_{stem}.png"))), head=head,
        baselines=baselines, pretrain=pretrain, opts=_opts_list(data.get("opts"), f"{path}: opts"),
        average_last=last, claims=_claims(data.get("claims"), rows, str(path)),
        regime_row=regime.get("row"), regime_tolerance=float(regime.get("tolerance", 0.005)),
        prepare=_prepare(data.get("prepare"), str(path)),
    )


def relative(path):
    """``path`` relative to the repository when it lies inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)
