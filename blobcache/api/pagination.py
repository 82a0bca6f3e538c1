"""Cursor pagination over Redis SCAN/SSCAN: the cursor in the URL is an opaque walk position.

DRF's ``CursorPagination`` needs an ordered queryset and its page-number and limit-offset
classes count and slice; none fits a cursor-driven walk whose guarantee (every element present
for the whole walk appears) holds only if the position carries what SCAN's own cursor cannot:
the surplus of a reply that did not fit the page (see ``blobcache.listing``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from blobcache.exceptions import CursorInvalid, PaginationNumberInvalid
from blobcache.listing import MAX_PAGE_SIZE, Page, PositionInvalid, ScanPosition

Walk = Callable[[ScanPosition, int], Page[Any]]

_DIGITS = re.compile(r"[0-9]+")


class ScanCursorPagination(BasePagination):
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    page_size = 100
    max_page_size = MAX_PAGE_SIZE

    request: Request | None = None
    next_position: ScanPosition | None = None

    def get_position(self, request: Request) -> ScanPosition:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None or raw == "":
            return ScanPosition()
        try:
            return ScanPosition.decode(raw)
        except PositionInvalid:
            raise CursorInvalid(
                f"cursor must be the cursor of a previous page's next link, got {raw[:40]!r}",
                detail={"parameter": self.cursor_query_param},
            ) from None

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        digits = raw.lstrip("0") if _DIGITS.fullmatch(raw) else ""
        if not digits:
            raise PaginationNumberInvalid(
                f"page_size must be a positive integer, got {raw[:40]!r}",
                detail={"parameter": self.page_size_query_param},
            )
        # Compared as text first: int() of a few thousand digits is refused by Python. Refused
        # rather than clamped: a client asking for more learns the limit instead of guessing it.
        if len(digits) > len(str(self.max_page_size)) or int(digits) > self.max_page_size:
            raise PaginationNumberInvalid(
                f"page_size must be at most {self.max_page_size}, got {raw[:40]!r}",
                detail={"parameter": self.page_size_query_param},
            )
        return int(digits)

    def paginate_queryset(self, queryset: Walk, request: Request, view: Any = None) -> list[Any]:
        """``queryset`` is a walk ``(position, page_size) -> Page``; parameters checked first."""
        position = self.get_position(request)
        page_size = self.get_page_size(request)
        page = queryset(position, page_size)
        self.request = request
        self.next_position = page.next
        return page.items

    def get_next_link(self) -> str | None:
        if self.next_position is None or self.request is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, self.next_position.encode())

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
                "description": "The cursor of the previous page's next link (absent: start).",
                "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": (
                    f"The most items a page holds, default {self.page_size}, at most "
                    f"{self.max_page_size}; a page may hold fewer (even none) and still have a "
                    "next link, because one request looks at a bounded part of Redis."
                ),
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]
