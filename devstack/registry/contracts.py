"""Data contracts: the ``metadata`` and ``ruleSet`` a schema is registered with, as Confluent keeps them.

The registry stores both and serves them back with the schema; it executes nothing (neither does
Confluent's registry: its clients run the rules). What it must get right is identity, as Confluent does
(``Schema.updateHash`` in confluentinc/schema-registry hashes the schema text, the references, the
metadata and the rule set into the MD5 that ids hang on): the same schema text registered with another
rule set or other metadata is another schema, with its own id and a new version. A registration that
sends neither inherits them from the subject's latest live version (``maybeSetMetadataRuleSet``), so
re-registering the plain text does not drop the rules. A lookup that sends neither matches the newest
version with the same schema whatever its contract, and answers with that version's contract.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from devstack.registry.errors import ApiError
from devstack.registry.schemas import SchemaDoc

__all__ = [
    "RULE_GROUPS",
    "Contract",
    "contract_from_body",
    "contract_state",
    "stored_object",
    "with_contract",
]

RULE_GROUPS = ("migrationRules", "domainRules", "encodingRules")
_KINDS = ("CONDITION", "TRANSFORM")
_MIGRATION_MODES = ("UPGRADE", "DOWNGRADE", "UPDOWN")
_DOMAIN_MODES = ("WRITE", "READ", "WRITEREAD")


@dataclasses.dataclass(frozen=True, slots=True)
class Contract:
    """What a request body says about the contract: None for a member it does not send."""

    metadata: dict[str, Any] | None = None
    rule_set: dict[str, Any] | None = None

    @property
    def given(self) -> bool:
        """The body sent a metadata or a rule set (else a lookup matches any contract)."""
        return self.metadata is not None or self.rule_set is not None


def contract_from_body(body: dict[str, Any]) -> Contract:
    """Validate the ``metadata`` and ``ruleSet`` members of a register, lookup or compatibility body.

    Raises:
        ApiError: 42201 when either is not an object, a rule group is not a list of rule objects, a rule
            has no name, a duplicate name, an unknown kind, or a mode its group does not allow.
    """
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _invalid("metadata must be an object")
    rule_set = body.get("ruleSet")
    if rule_set is not None:
        _check_rule_set(rule_set)
    return Contract(metadata, rule_set)


def with_contract(doc: SchemaDoc, contract: Contract, inherited: SchemaDoc | None = None) -> SchemaDoc:
    """`doc` with the contract of the request, or (for members it does not send) of `inherited`.

    The identity gains the contract, so a different one is a different schema; without one it stays
    the schema's own identity, which state files written before contracts existed hold.
    """
    metadata = contract.metadata
    rule_set = contract.rule_set
    if inherited is not None:
        metadata = inherited.metadata if metadata is None else metadata
        rule_set = inherited.rule_set if rule_set is None else rule_set
    if metadata is None and rule_set is None:
        return doc
    key = json.dumps({"metadata": metadata, "ruleSet": rule_set}, sort_keys=True, separators=(",", ":"))
    base = doc.schema_identity
    return dataclasses.replace(
        doc, metadata=metadata, rule_set=rule_set, identity=f"{base}\n{key}", base_identity=base
    )


def contract_state(doc: SchemaDoc) -> dict[str, Any]:
    """The contract members of a schema's entry in the state file."""
    # Only written when there is a contract: files of schemas without one stay as they were.
    state: dict[str, Any] = {}
    if doc.metadata is not None:
        state["metadata"] = doc.metadata
    if doc.rule_set is not None:
        state["ruleSet"] = doc.rule_set
    if doc.base_identity:
        state["baseIdentity"] = doc.base_identity
    return state


def stored_object(value: Any) -> dict[str, Any] | None:
    """A metadata or ruleSet read back from the state file (ValueError when it is not an object)."""
    if value is None or isinstance(value, dict):
        return value
    raise ValueError(f"a stored metadata or ruleSet is not an object: {value!r:.80}")


def _check_rule_set(rule_set: Any) -> None:
    if not isinstance(rule_set, dict):
        raise _invalid("ruleSet must be an object")
    names: set[str] = set()
    for group in RULE_GROUPS:
        rules = rule_set.get(group)
        if rules is None:
            continue
        if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
            raise _invalid(f"ruleSet.{group} must be a list of rule objects")
        for rule in rules:
            _check_rule(group, rule, names)


def _check_rule(group: str, rule: dict[str, Any], names: set[str]) -> None:
    name = rule.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid(f"a rule in ruleSet.{group} has no name")
    if name in names:
        raise _invalid(f"Found rule with duplicate name '{name}'")
    names.add(name)
    kind = rule.get("kind", "TRANSFORM")
    if kind not in _KINDS:
        raise _invalid(f"rule '{name}' has an unknown kind {kind!r}")
    modes = _MIGRATION_MODES if group == "migrationRules" else _DOMAIN_MODES
    mode = rule.get("mode", modes[0] if group == "migrationRules" else "WRITEREAD")
    if mode not in modes:
        raise _invalid(f"rule '{name}' in {group} cannot have mode {mode!r} (one of {', '.join(modes)})")


def _invalid(message: str) -> ApiError:
    return ApiError(422, 42201, f"Invalid schema: {message}")
