"""Permission classes for root fields (Strawberry runs them before the resolver)."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from graph_api.context import Context
from jobs.errors import Unauthenticated


class IsAuthenticated(BasePermission):
    """A live API key (or authentication off). Failing raises `Unauthenticated`, whose
    message says what was wrong (missing, unknown or revoked key); code UNAUTHENTICATED."""

    message = "an API key is required"
    error_extensions = {"code": Unauthenticated.code}

    async def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        await info.context.principal()
        return True


AUTHENTICATED: list[type[BasePermission]] = [IsAuthenticated]
