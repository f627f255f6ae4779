"""Fixtures of the query tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCHEMAS = Path(__file__).parent / "stac_schemas"


@pytest.fixture
def offline_stac_validator():
    """pystac's validator with the extension schemas of stac_schemas/ and no network.

    pystac's core schemas ship with it; any other schema asked for is an error here
    instead of an HTTP request.
    """
    import pystac
    from pystac.validation import JsonSchemaSTACValidator, RegisteredValidator, set_validator
    from pystac.validation.stac_validator import GetSchemaError

    class Offline(JsonSchemaSTACValidator):
        def _get_schema(self, schema_uri: str) -> dict:
            if schema_uri not in self.schema_cache:
                raise GetSchemaError(schema_uri, LookupError("not bundled; no network here"))
            return self.schema_cache[schema_uri]

    validator = Offline()
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        validator.schema_cache[schema["$id"].rstrip("#")] = schema
    previous = RegisteredValidator.get_validator()
    set_validator(validator)
    yield pystac
    set_validator(previous)
