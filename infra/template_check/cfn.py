"""Shared machinery: loading template.yaml, the SAM transform, cfn-lint, the
intrinsic-function helpers and the problem collector.

Every check module builds on this one: check() records a problem instead of
stopping, so one run reports everything wrong; resolve() and referenced()
read the translated CloudFormation the way the assertions need it; Context
carries the templates and what earlier checks found to the later ones.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"

# samtranslator asks boto3 for the region to pick the partition of the ARNs it
# writes; pin it so the check is the same on every machine (no network use).
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_REGION", None)
os.environ.pop("AWS_PROFILE", None)

problems: list[str] = []


def check(ok: Any, message: str) -> bool:
    if not ok:
        problems.append(message)
    return bool(ok)


@dataclass
class Context:
    """What the checks read (the templates, the parameter defaults) and what
    some of them report for the summary or for checks that run after them."""

    sam: dict[str, Any]
    params: dict[str, Any]
    cfn: dict[str, Any]  # the translated template; {} if the transform failed
    warnings: list[str] = field(default_factory=list)  # cfn-lint warnings
    schedule: str | None = None  # logical id of the schedule (check_schedule)
    roles: dict[str, str] = field(default_factory=dict)  # function -> its execution role (check_iam)
    pending: list[str] = field(default_factory=list)  # function crates not written yet (check_files)
    events: int = 0  # sample events read (check_events)
    glue_table: str | None = None  # <database>.<table> of the lake's Athena table (check_glue)

    @property
    def res(self) -> dict[str, Any]:
        return self.cfn["Resources"]

    def conditions(self, params: dict[str, Any] | None = None) -> dict[str, bool]:
        """The template's conditions with these parameter values (the
        defaults when None)."""
        return evaluate_conditions(self.cfn or self.sam, self.params if params is None else params)

    def resolve(self, node: Any, params: dict[str, Any] | None = None) -> Any:
        """resolve() with these parameter values (the defaults when None) and
        the conditions they make true."""
        params = self.params if params is None else params
        return resolve(node, params, self.conditions(params))


# ------------------------------------------------------------ intrinsics
class Unresolvable(Exception):
    pass


class _NoValue:
    """Ref AWS::NoValue: the property or list item is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "mdp",
    "AWS::URLSuffix": "amazonaws.com",
}


def resolve(node: Any, params: dict[str, Any], conditions: dict[str, bool] | None = None) -> Any:
    """Evaluates the intrinsics the template uses, with parameter values;
    a resource stands for "<Name>" (Ref) or "<Name.Attr>" (GetAtt). Fn::If
    needs the values of the conditions (Context.conditions()); a property or
    list item that is Ref AWS::NoValue is dropped (NO_VALUE at the top)."""
    if isinstance(node, list):
        items = [resolve(v, params, conditions) for v in node]
        return [v for v in items if v is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Fn::If":
            if conditions is None:
                raise Unresolvable("Fn::If without the values of the conditions")
            name, then, otherwise = arg
            if name not in conditions:
                raise Unresolvable(f"Fn::If on an unknown condition {name}")
            return resolve(then if conditions[name] else otherwise, params, conditions)
        if key == "Ref" and arg == "AWS::NoValue":
            return NO_VALUE
        if key == "Ref":
            if arg in params:
                return params[arg]
            if arg in PSEUDO:
                return PSEUDO[arg]
            return f"<{arg}>"
        if key == "Fn::GetAtt":
            name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
            return f"<{name}.{attr}>"
        if key == "Fn::Join":
            sep, items = arg
            items = resolve(items, params, conditions)
            return str(sep).join(str(i) for i in items)
        if key == "Fn::Split":
            sep, value = arg
            return str(resolve(value, params, conditions)).split(sep)
        if key == "Fn::Select":
            index, items = arg
            return resolve(items, params, conditions)[int(resolve(index, params, conditions))]
        if key == "Fn::Sub":
            text, names = (arg, {}) if isinstance(arg, str) else arg
            names = {k: resolve(v, params, conditions) for k, v in names.items()}

            def sub(m: re.Match[str]) -> str:
                inner = m.group(1)
                if inner.startswith("!"):
                    return "${" + inner[1:] + "}"
                if inner in names:
                    return str(names[inner])
                if inner in params:
                    return str(params[inner])
                if inner in PSEUDO:
                    return PSEUDO[inner]
                return f"<{inner}>"

            return re.sub(r"\$\{([^}]+)\}", sub, text)
        if key.startswith("Fn::") or key == "Condition":
            raise Unresolvable(key)
    out = {k: resolve(v, params, conditions) for k, v in node.items()}
    return {k: v for k, v in out.items() if v is not NO_VALUE}


def evaluate_conditions(template: dict[str, Any], params: dict[str, Any]) -> dict[str, bool]:
    """The value of every condition of the template's Conditions section
    (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition) with these parameter
    values."""
    defs = template.get("Conditions") or {}
    done: dict[str, bool] = {}

    def value(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (key, arg), = node.items()
            if key == "Condition":
                return named(arg, stack)
            if key == "Fn::Equals":
                a, b = (value(v, stack) for v in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not value(arg[0], stack)
            if key == "Fn::And":
                return all(value(v, stack) for v in arg)
            if key == "Fn::Or":
                return any(value(v, stack) for v in arg)
        return resolve(node, params)

    def named(name: str, stack: tuple[str, ...] = ()) -> bool:
        if name in stack or name not in defs:
            raise Unresolvable(f"condition {name}")
        if name not in done:
            done[name] = bool(value(defs[name], stack + (name,)))
        return done[name]

    for name in defs:
        named(name)
    return done


def referenced(node: Any) -> set[str]:
    """Logical ids and parameters a value refers to (Ref, GetAtt, Sub)."""
    out: set[str] = set()
    if isinstance(node, list):
        for v in node:
            out |= referenced(v)
    elif isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                out.add((v if isinstance(v, list) else v.split("."))[0])
            elif k == "Fn::Sub":
                text, names = (v, {}) if isinstance(v, str) else v
                for m in re.findall(r"\$\{([^}!][^}]*)\}", text):
                    base = m.split(".")[0]
                    if base not in names:
                        out.add(base)
                out |= referenced(names)
            else:
                out |= referenced(v)
    return {r for r in out if not r.startswith("AWS::")}


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


# ------------------------------------------------------------ transform
def load_template() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(TEMPLATE.read_text())


def sam_transform(sam: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    class NoManagedPolicyLookup:
        """The template names managed policies by ARN or uses SAM policy
        templates only, which need no name-to-ARN map from IAM."""

        def load(self) -> dict[str, str]:
            raise RuntimeError("the template names a managed policy by name: use its ARN")

    doc = copy.deepcopy(sam)
    for resource in doc.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = "s3://offline-check/" + props["CodeUri"].strip("./")
    try:
        return transform(doc, {}, NoManagedPolicyLookup())
    except InvalidDocumentException as e:
        for cause in e.causes:
            problems.append(f"SAM transform: {cause.message}")
        return {}


# ------------------------------------------------------------ cfn-lint
def lint(translated: dict[str, Any]) -> list[str]:
    # Imported after the samtranslator run on purpose: cfn-lint relaxes
    # samtranslator's own resource validation when it is imported.
    from cfnlint.api import ManualArgs, lint as lint_str, lint_file

    config = ManualArgs(regions=["us-east-1"])
    warnings = []
    runs = [
        ("template.yaml", lint_file(TEMPLATE, config=config)),
        ("translated template", lint_str(json.dumps(translated), config=config)),
    ]
    for label, matches in runs:
        for m in matches:
            where = f"{label}:{m.linenumber}" if m.linenumber else label
            line = f"cfn-lint {m.rule.id} {where}: {m.message}"
            if m.rule.id.startswith("E"):
                problems.append(line)
            else:
                warnings.append(line)
    return warnings
