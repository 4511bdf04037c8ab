"""JSON files a user may have edited by hand (config.json, bundle.json): read with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UserError


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; a UserError naming the file when it is not valid JSON or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} must hold a JSON object")
    return value
