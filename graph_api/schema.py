"""The GraphQL schema, assembled once; `python -m graph_api.schema` writes its SDL to
`graph_api/schema.graphql` (`--check` fails when that file is out of date)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig

from graph_api.complexity import BudgetedValidationCache, QueryBudget
from graph_api.errors import EngineErrors
from graph_api.limits import MAX_QUERY_ALIASES, MAX_QUERY_DEPTH, MAX_QUERY_TOKENS
from graph_api.mutations import Mutation
from graph_api.queries import Query
from graph_api.subscriptions import Subscription
from graph_api.types import BIG_INT, BigInt

SDL_PATH = Path(__file__).with_name("schema.graphql")


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Logging happens in `EngineErrors`: client mistakes and engine errors are not
        server faults, and unexpected ones are logged there with their traceback."""


class CachedParser(ParserCache):
    """`ParserCache` that leaves a document it cannot parse to Strawberry's own parse step:
    an error raised in an extension's hook would skip `EngineErrors` and reach the client
    without its code. Only good documents are cached, which is all a cache is for."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield


# Parsing and validating a document cost more than running a mutation: both are cached by
# query text (clients send the same few documents). The limiters' rules are built once, since
# the validation cache is keyed by the rule classes and a limiter makes new ones per instance.
_LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_QUERY_ALIASES).validation_rules,
]
CACHED_DOCUMENTS = 256

schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    config=StrawberryConfig(scalar_map={BigInt: BIG_INT}),
    extensions=[
        EngineErrors,
        lambda: MaxTokensLimiter(max_token_count=MAX_QUERY_TOKENS),
        lambda: AddValidationRules(_LIMIT_RULES),
        lambda: CachedParser(maxsize=CACHED_DOCUMENTS),
        QueryBudget,
        lambda: BudgetedValidationCache(maxsize=CACHED_DOCUMENTS),
    ],
)


def sdl() -> str:
    return schema.as_str() + "\n"


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if not SDL_PATH.exists() or SDL_PATH.read_text() != sdl():
            print(f"{SDL_PATH} is out of date: run python -m graph_api.schema", file=sys.stderr)
            return 1
        return 0
    SDL_PATH.write_text(sdl())
    print(f"wrote {SDL_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
