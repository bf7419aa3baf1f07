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
    sqs_poller_policy: list[str] = field(default_factory=list)  # functions given it (check_iam)
    pending: list[str] = field(default_factory=list)  # function crates not written yet (check_files)
    events: int = 0  # sample events read (check_events)

    @property
    def res(self) -> dict[str, Any]:
        return self.cfn["Resources"]


# ------------------------------------------------------------ intrinsics
class Unresolvable(Exception):
    pass


PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "mdp",
    "AWS::URLSuffix": "amazonaws.com",
}


def resolve(node: Any, params: dict[str, Any]) -> Any:
    """Evaluates the intrinsics the template uses, with parameter values;
    a resource stands for "<Name>" (Ref) or "<Name.Attr>" (GetAtt)."""
    if isinstance(node, list):
        return [resolve(v, params) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
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
            items = resolve(items, params)
            return str(sep).join(str(i) for i in items)
        if key == "Fn::Split":
            sep, value = arg
            return str(resolve(value, params)).split(sep)
        if key == "Fn::Select":
            index, items = arg
            return resolve(items, params)[int(resolve(index, params))]
        if key == "Fn::Sub":
            text, names = (arg, {}) if isinstance(arg, str) else arg
            names = {k: resolve(v, params) for k, v in names.items()}

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
    return {k: resolve(v, params) for k, v in node.items()}


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
