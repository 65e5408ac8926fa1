"""A GraphQL document's cost, bounded before validation runs.

Validation (and the depth and alias limiters with it) walks every fragment spread as if it
were written out, so a document of a few hundred bytes in which each fragment spreads the
previous one twice (`fragment F22 on Query { ...F21 ...F21 }`) costs 2^22 visits. The budget
here is computed on the parsed document without expanding anything: each fragment's size is
counted once and memoised, so the check is linear in the document's length. A document over
budget, or with a fragment cycle, never reaches validation.

>>> expanded_size(parse("{ ...A } fragment A on Query { __typename }"))   # doctest: +SKIP
2
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension, ValidationCache

from graph_api.errors import REQUEST_CODE
from graph_api.limits import MAX_EXPANDED_SELECTIONS, MAX_FRAGMENTS
from jobs.errors import QueryTooComplex


@dataclass(frozen=True, slots=True)
class _Body:
    """One operation or fragment: its own selections, and the fragments it spreads."""

    selections: int
    spreads: Counter[str]


def _body(selection_set: SelectionSetNode | None) -> _Body:
    """Selections counted with an explicit stack: nesting cannot exhaust Python's. An empty
    selection set (`{ }`, which the parser accepts) is refused here: Strawberry's depth
    limiter takes the max of nothing on it."""
    count = 0
    spreads: Counter[str] = Counter()
    stack = [selection_set] if selection_set is not None else []
    while stack:
        selections = stack.pop().selections
        if not selections:
            raise _invalid("a selection set must select at least one field")
        for selection in selections:
            count += 1
            if isinstance(selection, FragmentSpreadNode):
                spreads[selection.name.value] += 1
            elif (
                isinstance(selection, FieldNode | InlineFragmentNode)
                and selection.selection_set is not None
            ):
                stack.append(selection.selection_set)
    return _Body(count, spreads)


class _Refused(Exception):
    def __init__(self, error: GraphQLError) -> None:
        self.error = error


def _invalid(message: str) -> _Refused:
    return _Refused(GraphQLError(message, extensions={"code": REQUEST_CODE}))


def _too_complex(message: str) -> _Refused:
    return _Refused(GraphQLError(message, original_error=QueryTooComplex(message)))


def expanded_size(document: DocumentNode) -> int:
    """Fields, inline fragments and spreads the document's operations reach, every spread
    written out; `_Refused` for too many fragments, a duplicate name or a cycle."""
    fragments: dict[str, _Body] = {}
    operations: list[_Body] = []
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            name = definition.name.value
            if name in fragments:
                raise _invalid(f"there can be only one fragment named {name!r}")
            fragments[name] = _body(definition.selection_set)
            if len(fragments) > MAX_FRAGMENTS:
                raise _too_complex(
                    f"the document defines more than {MAX_FRAGMENTS} fragments: merge some"
                )
        elif isinstance(definition, OperationDefinitionNode):
            operations.append(_body(definition.selection_set))

    sizes: dict[str, int] = {}
    visiting: list[str] = []

    def size(name: str) -> int:
        # Recursion depth is bounded by the number of fragments (at most MAX_FRAGMENTS).
        if name in sizes:
            return sizes[name]
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise _invalid(f"fragment {name!r} spreads itself ({cycle})")
        body = fragments.get(name)
        if body is None:
            return 0  # unknown fragment: validation reports it
        visiting.append(name)
        total = body.selections + sum(n * size(s) for s, n in body.spreads.items())
        visiting.pop()
        sizes[name] = total
        return total

    return sum(op.selections + sum(n * size(s) for s, n in op.spreads.items()) for op in operations)


def budget_error(document: DocumentNode) -> GraphQLError | None:
    """Why `document` must not be validated, or None when it fits the budget."""
    try:
        total = expanded_size(document)
    except _Refused as refused:
        return refused.error
    if total > MAX_EXPANDED_SELECTIONS:
        return _too_complex(
            f"the query expands to {total} fields and fragment spreads; at most "
            f"{MAX_EXPANDED_SELECTIONS} are accepted: spread fewer fragments"
        ).error
    return None


class QueryBudget(SchemaExtension):
    """Refuses a document over budget before validation; `BudgetedValidationCache` then
    skips validating it."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors is None and context.graphql_document is not None:
            error = budget_error(context.graphql_document)
            if error is not None:
                context.pre_execution_errors = [error]
        yield


class BudgetedValidationCache(ValidationCache):
    """`ValidationCache` that leaves alone a document already refused (it validates
    unconditionally otherwise, and validation is what the budget protects)."""

    def on_validate(self) -> Iterator[None]:
        if self.execution_context.pre_execution_errors is not None:
            yield
            return
        yield from super().on_validate()
