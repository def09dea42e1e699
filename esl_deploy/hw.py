"""Hardware targets from hw_configs/*.json: every number carries its source; unknown numbers are null."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from esl_train.errors import UsageError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "hw_configs"


@dataclass
class Target:
    key: str
    name: str
    kind: str
    notes: str
    energy: dict  # name -> {"value": pJ or None, "source": ...}
    resources: dict

    def pj(self, name: str) -> float | None:
        return self.energy.get(name, {}).get("value")

    def res(self, name: str):
        return self.resources.get(name, {}).get("value")


def available() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load(key: str) -> Target:
    path = CONFIG_DIR / f"{key}.json"
    if not path.is_file():
        raise UsageError(f"unknown hardware {key!r}; choose one of {', '.join(available())} (files in {CONFIG_DIR})")
    d = json.loads(path.read_text())
    return Target(key, d["name"], d["kind"], d.get("notes", ""), d["energy_pJ"], d["resources"])
