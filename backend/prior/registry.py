"""Named priors (``--prior default|cmu|PATH``) and what their weights may be used for.

One registry maps a prior's name to its weights file and licence; the training data is read
from the metadata that :func:`backend.prior.model.save_prior` stores in every weights file
(``extra.data``: training source -> poses used; ``extra.init``: the prior a fine-tune started
from, with its own sources). For a file given by path, the licence is derived from those sources:

* only CMU Graphics Lab mocap (mappings ``cmu*``) -> commercial use OK (the CMU data itself may
  not be resold);
* any Human3.6M (``h36m``) or Bandai-Namco (``@bandai``) source -> research only;
* anything else, or no training metadata -> licence unknown ("check your training data").

A fine-tuned file inherits the sources of the prior it started from (``--init``); a file whose
``init`` prior's sources are not recorded cannot be derived and is "unknown".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from backend.prior.model import WEIGHTS_DIR

#: Licence classes -> the words the add-on shows.
RESEARCH = "research only"
COMMERCIAL = "commercial use OK"
UNKNOWN = "licence unknown — check your training data"

DATASETS = {
    "h36m": ("Human3.6M (S1 S5 S6 S7 S8)", RESEARCH,
             "Human3.6M licence: research, non-commercial"),
    "bandai": ("Bandai-Namco Research Motion Dataset", RESEARCH, "CC BY-NC 4.0 (non-commercial)"),
    "cmu": ("CMU Graphics Lab Motion Capture Database", COMMERCIAL,
            "free for research and commercial use; the data itself may not be resold"),
}


@dataclass(frozen=True)
class NamedPrior:
    """A prior shipped with PoseDiff: its weights file and licence text."""

    name: str
    file: Path
    licence: str
    commercial: bool
    description: str


NAMED: dict[str, NamedPrior] = {
    "default": NamedPrior(
        "default", WEIGHTS_DIR / "prior.safetensors",
        "research only (non-commercial): trained on Human3.6M (research, non-commercial licence) and the "
        "Bandai-Namco Research Motion Dataset (CC BY-NC 4.0) besides CMU mocap; poses it makes may not be "
        "used in commercial work", False,
        "the research prior (Human3.6M + Bandai-Namco + CMU): most accurate on Human3.6M"),
    "cmu": NamedPrior(
        "cmu", WEIGHTS_DIR / "prior_cmu.safetensors",
        "commercial use OK: trained only on CMU Graphics Lab mocap (free for research and commercial use; "
        "the CMU data itself may not be resold)", True,
        "the CMU-only prior: usable in commercial work"),
}


class PriorChoiceError(FileNotFoundError):
    """``--prior`` names no known prior or a missing file; the message names ``--prior`` and the fix.

    A :class:`FileNotFoundError`, so callers that handle missing weights handle it too.
    """


@dataclass
class PriorInfo:
    """What ``GET /v1/info`` says about the loaded prior.

    Attributes:
        name: ``default``, ``cmu`` or the file's path as given.
        path: the weights file.
        training_data: ``[{"source", "dataset", "poses"}]`` from the file's metadata (fine-tune
            starting points included, ``"via": "init"``).
        licence: one sentence: may the prior's output be used commercially, and why.
        licence_summary: ``research only`` / ``commercial use OK`` / ``licence unknown ...``.
        commercial: True / False, None when unknown.
    """

    name: str
    path: Path
    version: str = ""
    training_data: list[dict] = field(default_factory=list)
    licence: str = UNKNOWN
    licence_summary: str = UNKNOWN
    commercial: bool | None = None

    def as_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path), "version": self.version,
                "training_data": self.training_data, "licence": self.licence,
                "licence_summary": self.licence_summary, "commercial": self.commercial}


def choices() -> str:
    """The names ``--prior`` takes, for help and error texts."""
    return "|".join(NAMED) + "|PATH"


def resolve(choice: str | Path | None) -> tuple[str, Path]:
    """``default`` / ``cmu`` / a path (None or "" = ``default``) -> (name, weights file).

    Raises:
        PriorChoiceError: an unknown name (not a known prior, not a file), or a named prior whose
            file is missing.
    """
    if choice is None or str(choice).strip() == "":
        choice = "default"
    s = str(choice).strip()
    if s in NAMED:
        path = NAMED[s].file
        if not path.exists():
            raise PriorChoiceError(f"--prior {s}: its weights {path} are missing (reinstall PoseDiff or train them "
                                   "with 'posediff train')")
        return s, path
    path = Path(s).expanduser()
    if path.is_file():
        return s, path
    if path.exists():
        raise PriorChoiceError(f"--prior {s}: not a file; give {' or '.join(NAMED)} or a .safetensors weights file")
    if path.suffix == ".safetensors" or "/" in s or "\\" in s:
        raise PriorChoiceError(f"--prior {s}: no such file; give {' or '.join(NAMED)} or an existing .safetensors file")
    raise PriorChoiceError(f"--prior {s}: unknown prior; choose {' or '.join(NAMED)}, or give the path of a "
                           ".safetensors weights file")


def read_metadata(path: Path) -> tuple[dict, dict]:
    """(config, extra) stored in a weights file's safetensors metadata (empty dicts when absent)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    out = []
    for key in ("config", "extra"):
        try:
            v = json.loads(meta.get(key, "{}"))
        except json.JSONDecodeError:
            v = {}
        out.append(v if isinstance(v, dict) else {})
    return out[0], out[1]


def dataset_of(source: str) -> str | None:
    """Which dataset a training source (``extra.data`` key) is: ``h36m`` / ``bandai`` / ``cmu`` / None.

    Sources are ``h36m`` or ``PATH@MAPPING``; the mapping names the mocap's skeleton (``bandai``,
    ``cmu``, ``cmu_amc``, ...), which for the shipped mappings identifies the dataset.
    """
    if source == "h36m":
        return "h36m"
    mapping = source.rsplit("@", 1)[1] if "@" in source else ""
    mapping = Path(mapping).stem.lower()
    if mapping == "bandai":
        return "bandai"
    if mapping == "cmu" or mapping.startswith("cmu_"):
        return "cmu"
    return None


def training_sources(extra: dict) -> tuple[list[dict], bool]:
    """The sources a prior saw, its fine-tuning starting points' included.

    Returns:
        (``[{"source", "dataset", "poses"(, "via")}]``, complete): ``complete`` is False when the
        metadata lists no data or names an ``init`` prior whose sources it does not record.
    """
    rows: list[dict] = []
    data = extra.get("data")
    complete = isinstance(data, dict) and bool(data)
    for src, n in (data or {}).items() if isinstance(data, dict) else ():
        ds = dataset_of(src)
        rows.append({"source": src, "dataset": DATASETS[ds][0] if ds else "unknown", "poses": n})
    init = extra.get("init")
    if init:
        sub, sub_complete = training_sources(init if isinstance(init, dict) else {})
        complete = complete and sub_complete
        rows += [{**r, "via": "init"} for r in sub]
    return rows, complete


def describe(choice: str | Path | None) -> PriorInfo:
    """Name, file, training data and licence of a prior (see the module docstring).

    Raises:
        PriorChoiceError: as :func:`resolve`.
    """
    name, path = resolve(choice)
    cfg, extra = read_metadata(path)
    rows, complete = training_sources(extra)
    info = PriorInfo(name, path, str(cfg.get("version", "")), rows)
    if name in NAMED:
        p = NAMED[name]
        info.licence, info.commercial = p.licence, p.commercial
        info.licence_summary = COMMERCIAL if p.commercial else RESEARCH
        return info
    kinds = {dataset_of(r["source"]) for r in rows}
    if kinds & {"h36m", "bandai"}:
        used = ", ".join(f"{DATASETS[k][0]} ({DATASETS[k][2]})" for k in ("h36m", "bandai") if k in kinds)
        info.licence = f"research only (non-commercial): trained on {used}"
        info.licence_summary, info.commercial = RESEARCH, False
    elif complete and kinds == {"cmu"}:
        info.licence = "commercial use OK: trained only on CMU Graphics Lab mocap (" + DATASETS["cmu"][2] + ")"
        info.licence_summary, info.commercial = COMMERCIAL, True
    else:
        info.licence = UNKNOWN if rows else UNKNOWN + " (the file records no training data)"
    return info
