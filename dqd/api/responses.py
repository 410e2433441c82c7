"""Responses that cannot fail on a file name which is not valid UTF-8 (dqd.pathtext's displayed form).

Such a name reaches the API as a ``str`` with lone surrogates, which neither
pydantic's JSON writer nor Starlette's UTF-8 encoding accepts; a listing that
holds one must not become a 500. Every JSON and HTML body goes through here.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError

from dqd.pathtext import displayable, displayable_json, for_display


class NameSafeJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return super().render(displayable(content))


class NameSafeHTML(HTMLResponse):
    def render(self, content: Any) -> bytes | memoryview:
        return super().render(for_display(content) if isinstance(content, str) else content)


def json_body(adapter: TypeAdapter[Any], value: Any) -> Response:
    """``value`` as ``adapter`` writes it; names that are not UTF-8 in their displayed form."""
    try:
        body = adapter.dump_json(value)
    except PydanticSerializationError:
        body = displayable_json(adapter.dump_python(value, mode="json")).encode()
    return Response(body, media_type="application/json")
