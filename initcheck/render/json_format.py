"""``--format json``: the documented document of docs/json-schema.md (one object per model)."""

from __future__ import annotations

import json

from ..report import Report
from . import finite_json


def render(reports: list[Report], options: dict) -> str:
    docs = [finite_json(r.to_json()) for r in reports]
    return json.dumps(docs[0] if len(docs) == 1 else {"schema": docs[0]["schema"], "models": docs},
                      indent=2, allow_nan=False) + "\n"
