"""Request parsing and response negotiation: JSON in, JSON out, nothing that can crash."""

from __future__ import annotations

import json
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.utils.json import strict_constant


class DescriptorJSONParser(JSONParser):
    """DRF's JSON parser, hardened against bodies built to crash a server.

    ``json.load`` raises ``RecursionError`` (not a ``ValueError``) on deeply nested arrays, and
    DRF's parser lets that through as a 500; every failure here is a parse error instead.
    """

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        raw = stream.read()
        try:
            text = raw.decode("utf-8")
            return json.loads(text, parse_constant=strict_constant)
        except (ValueError, RecursionError) as error:
            reason = "nesting too deep" if isinstance(error, RecursionError) else str(error)
            raise ParseError(f"the request body is not valid JSON: {reason[:200]}") from None


class JSONOnlyNegotiation(BaseContentNegotiation):
    """Always answer JSON: a registry client that asks for something else still gets an answer.

    DRF's default negotiation answers 406 for an ``Accept`` it cannot meet and 404 for an
    unknown ``?format=``; neither helps a client that only reads the error envelope.
    """

    def select_parser(self, request: Request, parsers: list[BaseParser]) -> BaseParser | None:
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = renderers[0]
        return renderer, renderer.media_type
