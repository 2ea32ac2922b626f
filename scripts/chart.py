#!/usr/bin/env python3
"""Lint and render the Helm chart with Helm's own Go library (PyPI helm-python-sdk), no helm binary.

    python3 scripts/chart.py lint [--values FILE]...
    python3 scripts/chart.py render --values FILE... --out DIR [--name NAME] [--namespace NS]

`lint` is `helm lint --strict` once per values file (by default every `ci/*-values.yaml` of the
chart, the value sets CI installs). `render` is `helm template`: the values files are merged in
order as `helm -f` does, checked against values.schema.json, and the chart is rendered offline.
It writes each rendered template to DIR/<path under templates/> (NOTES.txt included) and
DIR/manifests.json, the list of every Kubernetes object as {"template": ..., "object": ...}.

Exit status: 0 when Helm accepts the chart; 1 when Helm refuses it (the reason on stderr);
2 for a usage error or a missing dependency. scripts/test.sh installs helm-python-sdk.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

CHART = Path(__file__).resolve().parent.parent / "charts" / "bichito"
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}

try:
    import helm_python
    import yaml
except ImportError as err:
    print(
        f"chart.py: the Python module {err.name} is missing: `bash scripts/test.sh` installs it "
        "(or: python3 -m pip install helm-python-sdk)",
        file=sys.stderr,
    )
    sys.exit(2)


def read_values(path: Path) -> dict[str, Any]:
    """A values file, parsed by Helm's own YAML reader."""
    return helm_python.values_from_yaml(path.read_text())


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`helm -f a -f b`: maps merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merged_values(files: list[Path]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in files:
        values = merge(values, read_values(path))
    return values


def lint(args: argparse.Namespace) -> int:
    files = args.values or sorted((CHART / "ci").glob("*-values.yaml"))
    if not files:
        print(f"chart.py: no values file to lint with in {CHART / 'ci'}", file=sys.stderr)
        return 2
    failed = False
    for path in files:
        report = helm_python.lint(CHART, read_values(path), strict=True, namespace=args.namespace)
        messages = report["messages"] + [
            {"severity": 3, "path": "chart", "error": error}
            for error in report.get("errors") or []
            if not any(error in message["error"] for message in report["messages"])
        ]
        for message in messages:
            level = SEVERITY.get(message["severity"], "UNKNOWN")
            print(f"[{level}] {path.name}: {message['path']}: {message['error']}")
        problems = [message for message in messages if message["severity"] >= 2]
        if problems:
            failed = True
            print(f"lint FAILED with {path.name}: {len(problems)} problem(s)", file=sys.stderr)
        else:
            print(f"lint passed with {path.name}")
    return 1 if failed else 0


def render(args: argparse.Namespace) -> int:
    values = merged_values(args.values)
    out = args.out
    with helm_python.Chart.load(CHART) as chart:
        try:
            chart.validate_schema(chart.merge_values(values))
            rendered = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
        except helm_python.HelmError as err:
            print(f"helm refused the chart with these values: {err}", file=sys.stderr)
            return 1
    prefix = f"{CHART.name}/templates/"
    objects = []
    for template, text in sorted(rendered.items()):
        if not text.strip():
            continue  # a template that renders nothing with these values
        relative = template.removeprefix(prefix)
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if not relative.endswith(".yaml"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects.append({"template": relative, "object": document})
    (out / "manifests.json").write_text(json.dumps(objects, indent=1))
    print(f"rendered {len(objects)} objects into {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    lint_parser = commands.add_parser("lint", help="helm lint --strict, once per values file")
    lint_parser.add_argument("--values", action="append", type=Path, default=[])
    lint_parser.add_argument("--namespace", default="bichito")
    lint_parser.set_defaults(run=lint)

    render_parser = commands.add_parser("render", help="helm template into a directory")
    render_parser.add_argument("--values", action="append", type=Path, default=[])
    render_parser.add_argument("--out", type=Path, required=True)
    render_parser.add_argument("--name", default="bichito")
    render_parser.add_argument("--namespace", default="bichito")
    render_parser.set_defaults(run=render)

    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
