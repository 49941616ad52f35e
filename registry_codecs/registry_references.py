"""Schema references: the named types a schema borrows from other subjects, put in parse order.

A registered schema may say "the type `com.acme.Money` is version 2 of subject `money`". A parser must
see that type's definition first, and the definitions it in turn uses before that. `resolve_references`
walks the references depth-first and lists each definition after its own dependencies, fetching every
(subject, version) once: diamonds (two references to one type) are listed once, and cycles, which a
registry should never store, end the walk instead of looping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from registry_codecs.errors import RegistryError
from registry_codecs.schemas import RegisteredSchema, SchemaReference

#: How deep references may nest before the client gives up (a registry bug, not a real schema).
MAX_REFERENCE_DEPTH = 32

Fetch = Callable[[SchemaReference], RegisteredSchema]


def resolve_references(
    references: Sequence[SchemaReference], fetch: Fetch, *, max_depth: int = MAX_REFERENCE_DEPTH
) -> tuple[tuple[str, str], ...]:
    """Return ``(name, schema_str)`` for every schema `references` use, transitively, dependencies first.

    Args:
        references: the references of the schema being resolved.
        fetch: returns the registered schema a reference points at (cached by the caller).
        max_depth: nesting beyond this raises instead of recursing further.

    Raises:
        RegistryError: references nest deeper than `max_depth`; or whatever `fetch` raises
            (SubjectNotFound, VersionNotFound, RegistryUnavailable).
    """
    ordered: list[tuple[str, str]] = []
    _visit(references, fetch, set(), ordered, 1, max_depth)
    return tuple(ordered)


def _visit(
    references: Sequence[SchemaReference],
    fetch: Fetch,
    seen: set[tuple[str, int]],
    ordered: list[tuple[str, str]],
    depth: int,
    max_depth: int,
) -> None:
    if depth > max_depth:
        raise RegistryError(f"schema references nest deeper than {max_depth} levels")
    for ref in references:
        key = (ref.subject, ref.version)
        if key in seen:
            continue
        seen.add(key)
        dependency = fetch(ref)
        _visit(dependency.references, fetch, seen, ordered, depth + 1, max_depth)
        ordered.append((ref.name, dependency.schema_str))  # after its own dependencies


__all__ = ["MAX_REFERENCE_DEPTH", "resolve_references"]
