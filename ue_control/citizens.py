"""Simulated citizens for the utility-control case study (Mazeika et al. 2025, "Utility control"; docs/method.md §9):
an assembly of N US adults sampled from published population statistics, each with a stable id and a persona
text that a simulator model role-plays.

Two sources:

- ``sample_citizens`` draws each attribute independently from the marginals in ``data/us_marginals.json``
  (American Community Survey 2022 for age, sex, race/ethnicity, education, household income; Census 2022
  estimates for region; 2020 Census for urban/rural; Gallup's 2023 annual party identification). Independent
  marginals are an approximation: real attributes are correlated.
- ``read_microdata`` samples rows of a user's CSV (one row per person, optional ``weight`` column), which keeps
  the joint distribution real.

Every draw comes from ``numpy.random.default_rng(seed)``; the seed is stored with each citizen.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json

ATTRIBUTES = ("age", "sex", "race", "education", "income", "region", "urbanicity", "party")
LABELS = {
    "age": "Age",
    "sex": "Sex",
    "race": "Race/ethnicity",
    "education": "Education",
    "income": "Household income",
    "region": "Region",
    "urbanicity": "Area",
    "party": "Political Party",
}
# The paper's fix for a simulator that gave Republican personas moderate stances (docs/method.md §9), verbatim.
REPUBLICAN_FIX = "When your Political Party is Republican, do not assume moderate ideologies."
PERSONA_HEAD = (
    "You are role-playing one adult living in the United States, described below. Answer every question as this "
    "person would, from their own background, interests, values and political views, not as an AI assistant."
)
PARTIES = ("Democrat", "Republican", "Independent")


@dataclass(frozen=True)
class Citizen:
    id: str
    attributes: dict[str, str]
    seed: int
    source: str  # "marginals:<file>" or "microdata:<file>"
    weight: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def party(self) -> str:
        return self.attributes.get("party", "")

    def persona(self, republican_fix: bool = True) -> str:
        """The system message the simulator receives for this citizen."""
        lines = [PERSONA_HEAD, ""]
        for key, value in self.attributes.items():
            lines.append(f"{LABELS.get(key, key.replace('_', ' ').capitalize())}: {value}")
        if republican_fix:
            lines += ["", REPUBLICAN_FIX]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Citizen:
        return cls(
            id=d["id"],
            attributes=dict(d["attributes"]),
            seed=int(d["seed"]),
            source=d["source"],
            weight=float(d.get("weight", 1.0)),
            extra=dict(d.get("extra", {})),
        )


def marginals_path() -> Path:
    return Path(str(resources.files("ue_control") / "data" / "us_marginals.json"))


def load_marginals(path: str | Path | None = None) -> dict[str, dict]:
    """``{attribute: {"shares": {value: share}, "source": ..., "year": ...}}`` (shares as published)."""
    path = Path(path) if path else marginals_path()
    data = read_json(path, lambda exc: f"{path}: cannot be read as a marginals JSON file ({exc}); fix or remove it")
    attrs = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(attrs, dict) or not attrs:
        raise UserError(f'{path}: expected {{"attributes": {{name: {{"shares": {{value: share}}}}}}}}')
    for name, spec in attrs.items():
        shares = spec.get("shares") if isinstance(spec, dict) else None
        if not isinstance(shares, dict) or not shares or not all(isinstance(v, (int, float)) and v >= 0 for v in shares.values()):
            raise UserError(f'{path}: attribute {name!r} needs "shares": a mapping of value to a non-negative number')
        if sum(shares.values()) <= 0:
            raise UserError(f"{path}: the shares of attribute {name!r} sum to zero")
    return attrs


def _citizen_id(seed: int, k: int, attributes: dict[str, str]) -> str:
    digest = hashlib.sha1(json.dumps([seed, k, attributes], sort_keys=True).encode()).hexdigest()[:6]
    return f"citizen-{k:04d}-{digest}"


def sample_citizens(n: int, seed: int = 0, marginals: str | Path | None = None) -> list[Citizen]:
    """``n`` citizens with attributes drawn independently from the marginals (deterministic for ``seed``)."""
    if n < 1:
        raise UserError(f"an assembly needs at least 1 citizen, got n_citizens={n}")
    attrs = load_marginals(marginals)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[str]] = {}
    for name, spec in attrs.items():  # one vectorised draw per attribute, in file order
        values = list(spec["shares"])
        p = np.array([spec["shares"][v] for v in values], dtype=float)
        draws[name] = [values[k] for k in rng.choice(len(values), size=n, p=p / p.sum())]
    source = f"marginals:{Path(marginals).name if marginals else 'us_marginals.json'}"
    out = []
    for k in range(n):
        a = {name: draws[name][k] for name in attrs}
        out.append(Citizen(id=_citizen_id(seed, k, a), attributes=a, seed=seed, source=source))
    return out


def read_microdata(
    path: str | Path, n: int, seed: int = 0, weight_column: str = "weight", id_column: str = "id"
) -> list[Citizen]:
    """Sample ``n`` people from a microdata CSV (one row per person; columns are persona attributes; a
    ``party`` column is needed for the partisan slices). Rows are drawn without replacement with probability
    proportional to ``weight`` when there are enough rows, else with replacement."""
    path = Path(path)
    if n < 1:
        raise UserError(f"an assembly needs at least 1 citizen, got n_citizens={n}")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot be read as a CSV file ({exc}); check the citizens_csv path") from None
    if not rows:
        raise UserError(f"{path}: has no data rows; give one row per person with a header line")
    if "party" not in columns:
        raise UserError(
            f"{path}: has no 'party' column (Democrat/Republican/Independent); add it so partisan slices can be measured"
        )
    attr_cols = [c for c in columns if c not in (weight_column, id_column)]
    weights = np.ones(len(rows))
    if weight_column in columns:
        for line, row in enumerate(rows, 2):
            try:
                weights[line - 2] = float(row[weight_column])
            except (TypeError, ValueError):
                raise UserError(
                    f"{path} line {line}: column {weight_column!r} must be a number, got {row[weight_column]!r}"
                ) from None
            if weights[line - 2] < 0:
                raise UserError(f"{path} line {line}: column {weight_column!r} must not be negative")
        if weights.sum() <= 0:
            raise UserError(f"{path}: all weights are zero")
    rng = np.random.default_rng(seed)
    replace = n > int((weights > 0).sum())
    picks = rng.choice(len(rows), size=n, replace=replace, p=weights / weights.sum())
    out = []
    for k, r in enumerate(picks.tolist()):
        row = rows[r]
        a = {c: (row[c] or "").strip() for c in attr_cols}
        cid = (
            f"{row[id_column]}#{k}"
            if replace and id_column in columns
            else (row[id_column] if id_column in columns else _citizen_id(seed, k, a))
        )
        out.append(Citizen(id=str(cid), attributes=a, seed=seed, source=f"microdata:{path.name}", extra={"row": int(r) + 2}))
    return out


def party_slice(party: str) -> str:
    """The partisan slice a party value belongs to (Democrat, Republican, Independent or other)."""
    low = party.strip().lower()
    if low.startswith("dem"):
        return "Democrat"
    if low.startswith("rep"):
        return "Republican"
    if low.startswith("ind"):
        return "Independent"
    return "other"


def write_citizens(citizens: list[Citizen], path: str | Path, republican_fix: bool) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for c in citizens:
            fh.write(json.dumps({**c.to_dict(), "persona": c.persona(republican_fix)}, ensure_ascii=False) + "\n")
