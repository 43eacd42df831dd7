"""A record-aware diff of two schema versions, one line per change, for reviews."""

from __future__ import annotations

import json
from typing import Any


def _diff_nodes(old: Any, new: Any, path: str, lines: list[str]) -> None:
    """Record-aware diff: fields matched by name (or alias), types compared as JSON."""
    if isinstance(old, dict) and isinstance(new, dict) and old.get("type") == new.get("type") == "record":
        where = path or "/"
        old_name = _full_name(old)
        new_name = _full_name(new)
        if old_name != new_name:
            lines.append(f"~ {where}: record renamed {old_name} -> {new_name}")
        old_fields = {f["name"]: (i, f) for i, f in enumerate(old.get("fields", []))}
        matched: set[str] = set()
        for i, new_field in enumerate(new.get("fields", [])):
            field_path = f"{path}/fields/{i}"
            name = new_field["name"]
            source = old_fields.get(name)
            if source is None:
                for alias in new_field.get("aliases", []) or []:
                    if alias in old_fields:
                        source = old_fields[alias]
                        lines.append(f"~ {field_path}: field '{alias}' renamed to '{name}' (alias)")
                        break
            if source is None:
                default = f" default {json.dumps(new_field['default'])}" if "default" in new_field else " (no default)"
                lines.append(f"+ {field_path}: field '{name}' {json.dumps(new_field['type'])}{default}")
                continue
            old_index, old_field = source
            matched.add(old_field["name"])
            if old_index != i:
                lines.append(f"~ {field_path}: field '{name}' moved from /fields/{old_index}")
            _diff_field(old_field, new_field, field_path, lines)
        for name, (i, old_field) in old_fields.items():
            if name not in matched:
                lines.append(f"- {path}/fields/{i}: field '{name}' {json.dumps(old_field['type'])} removed")
        return
    if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
        lines.append(f"~ {path or '/'}: type {json.dumps(old)} -> {json.dumps(new)}")


def _diff_field(old: dict[str, Any], new: dict[str, Any], path: str, lines: list[str]) -> None:
    name = new["name"]
    if "default" in old or "default" in new:
        before = json.dumps(old["default"]) if "default" in old else "(none)"
        after = json.dumps(new["default"]) if "default" in new else "(none)"
        if before != after:
            lines.append(f"~ {path}: field '{name}' default {before} -> {after}")
    if old.get("doc") != new.get("doc"):
        lines.append(f"~ {path}: field '{name}' doc changed")
    _diff_nodes(old["type"], new["type"], f"{path}/type", lines)


def _full_name(record: dict[str, Any]) -> str:
    name = record.get("name", "")
    namespace = record.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"
