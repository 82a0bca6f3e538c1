"""Cursor pagination over Redis SCAN/SSCAN: the cursor in the URL is Redis's own.

DRF's ``CursorPagination`` needs an ordered queryset and its page-number and limit-offset
classes count and slice; none fits a cursor-driven walk whose guarantee (every element present
for the whole walk appears) holds only if pages are exactly what SCAN returned.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from blobcache.api.exceptions import CURSOR_INVALID, PAGINATION_NUMBER_INVALID, RegistryError
from blobcache.listing import CURSOR_MAX, Page

Walk = Callable[[int, int], Page[Any]]

_DIGITS = re.compile(r"[0-9]+")


class ScanCursorPagination(BasePagination):
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    page_size = 100
    max_page_size = 1000

    request: Request | None = None
    next_cursor: int = 0

    def get_cursor(self, request: Request) -> int:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None or raw == "":
            return 0
        # Checked here because Redis answers an out-of-range cursor with an error reply.
        if not _DIGITS.fullmatch(raw) or len(raw) > 20 or int(raw) > CURSOR_MAX:
            raise RegistryError(
                CURSOR_INVALID,
                f"cursor must be the decimal cursor of a previous page's next link, got "
                f"{raw[:40]!r}",
                detail={"parameter": self.cursor_query_param},
            )
        return int(raw)

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        digits = raw.lstrip("0") if _DIGITS.fullmatch(raw) else ""
        if not digits:
            raise RegistryError(
                PAGINATION_NUMBER_INVALID,
                f"page_size must be a positive integer, got {raw[:40]!r}",
                detail={"parameter": self.page_size_query_param},
            )
        # Compared as text first: int() of a few thousand digits is refused by Python.
        if len(digits) > len(str(self.max_page_size)):
            return self.max_page_size
        return min(int(digits), self.max_page_size)

    def paginate_queryset(self, queryset: Walk, request: Request, view: Any = None) -> list[Any]:
        """``queryset`` is a walk ``(cursor, page_size) -> Page``; parameters are checked first."""
        cursor = self.get_cursor(request)
        page_size = self.get_page_size(request)
        page = queryset(cursor, page_size)
        self.request = request
        self.next_cursor = page.cursor
        return page.items

    def get_next_link(self) -> str | None:
        if not self.next_cursor or self.request is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, self.next_cursor)

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {
                    "type": "string",
                    "format": "uri",
                    "nullable": True,
                    "description": "The next page, or null when the walk is complete.",
                },
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": (
                    "The cursor of the previous page's next link (absent or 0: start)."
                ),
                "schema": {"type": "string", "pattern": r"^[0-9]{1,20}$"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": (
                    f"Wanted page size, default {self.page_size}, capped at {self.max_page_size};"
                    " a page may hold a few more because SCAN counts are hints."
                ),
                "schema": {"type": "integer", "minimum": 1},
            },
        ]
