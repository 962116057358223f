#!/usr/bin/env python3
"""Validates compose files against the Compose specification's JSON schema (compose/compose-spec/compose-spec.json,
vendored from compose-spec/compose-spec, Apache-2.0): what `docker compose config` would refuse, without a
Docker engine. Usage: validate-compose.py FILE..."""
import json
import pathlib
import sys

import jsonschema
import yaml

schema_path = pathlib.Path(__file__).resolve().parent.parent / "compose" / "compose-spec" / "compose-spec.json"
schema = json.loads(schema_path.read_text())
validator = jsonschema.Draft7Validator(schema)
failed = False
for name in sys.argv[1:]:
    document = yaml.safe_load(pathlib.Path(name).read_text())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    for e in errors:
        where = "/".join(str(p) for p in e.path) or "(top)"
        print(f"{name}: {where}: {e.message}")
    failed |= bool(errors)
    if not errors:
        print(f"{name}: valid")
sys.exit(1 if failed else 0)
