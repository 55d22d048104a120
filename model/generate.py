"""Generate certobs' semantic-convention code and docs from the registry in ``model/``.

Run through ``nox -s generate``, or directly: ``python model/generate.py [--check]``. With
``--check`` nothing is written; the exit code is 1 when a generated file differs from what the
registry gives.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import keyword
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import yaml

MODEL = Path(__file__).resolve().parent
ROOT = MODEL.parent
NAMING = ROOT / "src" / "certobs" / "semconv" / "_naming.py"

OUTPUTS = {
    "attributes.py.j2": ROOT / "src" / "certobs" / "semconv" / "attributes.py",
    "metrics.py.j2": ROOT / "src" / "certobs" / "semconv" / "metrics.py",
    "semantic-conventions.md.j2": ROOT / "docs" / "semantic-conventions.md",
}

INSTRUMENT_METHODS = {
    "counter": "create_counter",
    "updowncounter": "create_up_down_counter",
    "histogram": "create_histogram",
    "gauge": "create_observable_gauge",
}
INSTRUMENT_TYPES = {
    "counter": "Counter",
    "updowncounter": "UpDownCounter",
    "histogram": "Histogram",
    "gauge": "ObservableGauge",
}


def _load_naming() -> Any:
    spec = importlib.util.spec_from_file_location("_certobs_naming", NAMING)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {NAMING}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _groups() -> Iterator[dict[str, Any]]:
    for path in sorted(MODEL.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in data.get("groups", []):
            group["_file"] = path.relative_to(ROOT).as_posix()
            yield group


def _py(value: Any) -> str:
    """Spell a value as Python source, strings in double quotes as the formatter wants."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    return repr(value)


def _const(name: str) -> str:
    return name.upper().replace(".", "_")


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace(".", "_").split("_")) + "Values"


def _member_name(member_id: str) -> str:
    name = member_id.upper().replace(".", "_")
    return name + "_" if keyword.iskeyword(name.lower()) else name


def load_registry() -> dict[str, Any]:
    """Read every YAML file under ``model/`` and resolve metric attribute references.

    Returns:
        ``{"attributes": [...], "metrics": [...]}`` sorted by name, ready for the templates.

    Raises:
        ValueError: On a duplicate id or a reference to an attribute that does not exist.
    """
    naming = _load_naming()
    attributes: dict[str, dict[str, Any]] = {}
    metrics: list[dict[str, Any]] = []
    for group in _groups():
        if group["type"] == "attribute_group":
            for attr in group["attributes"]:
                if attr["id"] in attributes:
                    raise ValueError(f"{group['_file']}: attribute {attr['id']} defined twice")
                attr = dict(attr)
                attr["group"] = group["id"]
                attr["const"] = _const(attr["id"])
                attr["otel"] = group["id"].startswith("registry.otel")
                attr["note"] = (attr.get("note") or "").strip()
                attr["members"] = None
                if isinstance(attr["type"], dict):
                    attr["enum_class"] = _class_name(attr["id"])
                    attr["members"] = [
                        dict(m, const=_member_name(m["id"])) for m in attr["type"]["members"]
                    ]
                    attr["type_name"] = "enum"
                else:
                    attr["type_name"] = attr["type"]
                attributes[attr["id"]] = attr
        elif group["type"] == "metric":
            metrics.append(group)
    resolved = []
    for group in metrics:
        refs = []
        for ref in group.get("attributes", []):
            if ref["ref"] not in attributes:
                raise ValueError(f"{group['_file']}: {group['id']} refers to unknown {ref['ref']}")
            level = ref.get("requirement_level", "recommended")
            if isinstance(level, dict):
                ((kind, condition),) = level.items()
                level = f"{kind}: {condition}"
            refs.append({"attribute": attributes[ref["ref"]], "requirement_level": level})
        extra = (group.get("annotations") or {}).get("certobs", {})
        name = group["metric_name"]
        resolved.append(
            {
                "id": group["id"],
                "name": name,
                "const": _const(name),
                "helper": "create_" + name.replace(".", "_"),
                "instrument": group["instrument"],
                "method": INSTRUMENT_METHODS[group["instrument"]],
                "type": INSTRUMENT_TYPES[group["instrument"]],
                "unit": group["unit"],
                "brief": group["brief"].strip(),
                "note": (group.get("note") or "").strip(),
                "stability": group["stability"],
                "buckets": extra.get("buckets"),
                "metric_attributes": extra.get("metric_attributes", "low"),
                "refs": refs,
                "prometheus": naming.prometheus_metric_name(
                    name, group["unit"], group["instrument"]
                ),
            }
        )
    return {
        "attributes": sorted(attributes.values(), key=lambda a: a["id"]),
        "metrics": sorted(resolved, key=lambda m: m["name"]),
    }


def render() -> dict[Path, str]:
    """Render every template.

    Returns:
        The generated text of each output file, by path.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(MODEL / "templates"),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["py"] = _py
    env.filters["isort"] = lambda names: sorted(
        names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)
    )
    env.filters["oneline"] = lambda text: " ".join(str(text).split())
    registry = load_registry()
    out = {}
    for name, path in OUTPUTS.items():
        text = env.get_template(name).render(**registry)
        out[path] = _ruff_format(text) if path.suffix == ".py" else text
    return out


def _ruff_format(source: str) -> str:
    """Format generated Python with ruff, so generated and hand-written code look alike."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", "generated.py", "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ruff format failed on generated code: {result.stderr}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    """Write the generated files, or with ``--check`` report which ones are stale."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if not args.check:
            path.write_text(text, encoding="utf-8")
    for name in stale:
        print(("stale: " if args.check else "wrote: ") + name)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
