"""Scenario files: loading with every error at once, file:line for each.

The models are in harness.specs (re-exported here); this module builds the Scenario model
from the registries: the fault entries are a discriminated union built from the fault table
and the target a union built from the target table, so a plugin's settings and parameters
are validated like the built-ins'.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from yaml.constructor import SafeConstructor

from faults.base import AnyFault
from faults.registry import fault_kinds
from harness.errors import ScenarioError
from harness.specs import (
    DEFAULT_TIMEOUT_S,
    DEMO_LOCUSTFILE,
    OPEN_LOOP_SLACK_S,
    AnalysisSpec,
    Connections,
    FaultEntry,
    HealthSpec,
    LabSpec,
    LoadSpec,
    PathSpec,
    PhaseName,
    ProbeSpec,
    ResourcesSpec,
    Routing,
    ScenarioBase,
    SelectorSpec,
    SloSpec,
    StrictModel,
    TargetSpec,
    WorkloadSpec,
    open_loop_users,
)
from harness.targets import DEFAULT_KIND, target_kind, target_kinds


def _default_target() -> TargetSpec:
    return target_kind(DEFAULT_KIND).spec.model_validate({"kind": DEFAULT_KIND})


def _target_shorthand(value: object) -> object:
    """`target: swarm` for `target: {kind: swarm}`; the kind filled in, and checked."""
    value = {"kind": value} if isinstance(value, str) else value
    return _of_the_kind(value) if isinstance(value, Mapping) else value


def _fault_entry_model(kind: str, fault: type[AnyFault]) -> type[FaultEntry]:
    params = {
        name: (info.annotation, info) for name, info in fault.params_model.model_fields.items()
    }

    def _timing_rules(entry: FaultEntry) -> FaultEntry:
        if fault.has_duration and entry.duration is None:
            raise ValueError(f"{kind} lasts a while: give it a duration (e.g. duration: 10s)")
        if not fault.has_duration and entry.duration is not None:
            raise ValueError(f"{kind} is a one-off event: remove duration")
        if entry.times is not None and entry.every is None:
            raise ValueError("times needs every (the repeat period)")
        return entry

    return create_model(  # type: ignore[call-overload,no-any-return]
        f"{''.join(p.title() for p in kind.split('_'))}Fault",
        __base__=FaultEntry,
        __doc__=fault.summary,
        __validators__={"_timing_rules": model_validator(mode="after")(_timing_rules)},
        kind=(Literal[kind], ...),
        **params,
    )


def _of_the_kind(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A target mapping with its kind filled in; a field of another kind of target is an
    error that says so (rather than an unknown key)."""
    kind = value.get("kind", DEFAULT_KIND)
    kinds = target_kinds()
    if not isinstance(kind, str) or kind not in kinds:
        return value  # the union's tag check reports it
    own = kinds[kind].spec.model_fields
    others = {name for k in kinds.values() for name in k.spec.model_fields}
    problems = [
        f"target.{name} has no meaning for kind {kind}; remove it"
        for name in sorted(str(key) for key in value)
        if name not in own and name in others
    ]
    if problems:
        raise ValueError("; ".join(problems))
    return {**value, "kind": kind}


def target_union() -> Any:
    """The `target:` field's type: the registered kinds' settings, told apart by `kind`."""
    specs = tuple(kind.spec for kind in target_kinds().values())
    if len(specs) == 1:
        return specs[0]
    return Annotated[Union[specs], Field(discriminator="kind")]  # noqa: UP007


def scenario_model(kinds: Mapping[str, type[AnyFault]] | None = None) -> type[ScenarioBase]:
    """The Scenario model for the installed fault kinds (built once per set of kinds)."""
    kinds = fault_kinds() if kinds is None else kinds
    return _scenario_model(tuple(sorted(kinds.items())))


@functools.lru_cache(maxsize=8)
def _scenario_model(kinds: tuple[tuple[str, type[AnyFault]], ...]) -> type[ScenarioBase]:
    entries = tuple(_fault_entry_model(kind, cls) for kind, cls in kinds)
    entry_type: Any = (
        Annotated[Union[entries], Field(discriminator="kind")]  # noqa: UP007
        if len(entries) > 1
        else entries[0]
    )
    return create_model(  # type: ignore[call-overload,no-any-return]
        "Scenario",
        __base__=ScenarioBase,
        __validators__={
            "_target_shorthand": field_validator("target", mode="before")(_target_shorthand)
        },
        target=(target_union(), Field(default_factory=_default_target)),
        faults=(list[entry_type], Field(default_factory=list)),
    )


def fault_class(entry: FaultEntry) -> type[AnyFault]:
    return fault_kinds()[entry.kind]


def build_fault(entry: FaultEntry) -> AnyFault:
    """The fault object of one scenario entry, its params validated by the kind's model."""
    cls = fault_class(entry)
    return cls(cls.params_model.model_validate(entry.params_dict()))


# --- loading with file:line ------------------------------------------------------------------


def _line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """The 1-based line of the YAML node at `path`, or of its deepest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == key), None)
            if match is None:
                key_node = next((k for k, _ in node.value if k.value == key), None)
                return key_node.start_mark.line + 1 if key_node else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return line
            node = node.value[key]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def _data_path(loc: Sequence[str | int], data: object, tags: set[str]) -> list[str | int]:
    """Drop pydantic's union-tag segments (the fault kind) so the path matches the YAML."""
    path: list[str | int] = []
    for key in loc:
        if isinstance(data, Mapping) and key in tags and key not in data:
            continue
        path.append(key)
        if isinstance(data, Mapping):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            data = None
    return path


def _describe(error: Mapping[str, Any], kinds: Mapping[str, type[AnyFault]], data: object) -> str:
    message = str(error["msg"])
    if error["type"] == "union_tag_invalid" and tuple(error["loc"][:1]) == ("target",):
        tag = error.get("ctx", {}).get("tag", "")
        message = f"unknown target kind {_short(tag)}; allowed: {', '.join(target_kinds())}"
    elif error["type"] == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", "")
        message = f"unknown fault kind {_short(tag)}; allowed: {', '.join(sorted(kinds))}"
    elif error["type"] == "union_tag_not_found":
        message = f"a fault needs a kind; allowed: {', '.join(sorted(kinds))}"
    elif error["type"] == "extra_forbidden":
        message = f"unknown key {_short(error['loc'][-1])}"
        allowed = allowed_keys(error["loc"][:-1], data, kinds)
        if allowed:
            message += f"; allowed here: {', '.join(allowed)}"
    elif error["type"] == "missing":
        message = "required field is missing"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message


def _got(error: Mapping[str, Any], message: str) -> str:
    value = error.get("input")
    if error["type"] in {"missing", "extra_forbidden"} or isinstance(value, Mapping | list):
        return ""
    if "got " in message:
        return ""  # the message quotes the value already
    return f" (got {_short(value)})"


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


def _segment(key: str | int) -> str:
    """One step of a field's path as written: a plain key as is, any other quoted."""
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else _short(text, 40)


def _format_errors(
    source: str, root: yaml.Node | None, data: object, exc: ValidationError
) -> list[str]:
    kinds = fault_kinds()
    problems = []
    for error in exc.errors():
        path = _data_path(error["loc"], data, set(kinds) | set(target_kinds()))
        where = ".".join(_segment(p) for p in path) or "(top level)"
        line = _line_of(root, path) or 1
        message = _describe(error, kinds, data)
        problems.append(f"{source}:{line}: {where}: {message}{_got(error, message)}")
    return problems


# libyaml's parser where PyYAML has it (ten times faster; the same nodes, marks and errors)
YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_SCENARIO_BYTES = 1_000_000
MAX_SCENARIO_NODES = 100_000  # values in the document once YAML aliases are expanded


def parse_scenario(text: str, source: str = "<scenario>") -> ScenarioBase:
    """Validate scenario YAML text; raise ScenarioError listing every problem with file:line."""
    if len(text) > MAX_SCENARIO_BYTES:
        raise ScenarioError(
            [f"{source}:1: a scenario file holds at most {MAX_SCENARIO_BYTES:,} characters"]
        )
    root, data = _read_yaml(text, source)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ScenarioError(
            [f"{source}:1: a scenario is a mapping with at least 'name' (got {got})"]
        )
    try:
        return scenario_model().model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_errors(source, root, data, exc)) from exc


def _read_yaml(text: str, source: str) -> tuple[yaml.Node | None, object]:
    """The document's node tree (for lines) and its data; every failure a ScenarioError."""
    try:
        root = yaml.compose(text, Loader=YAML_LOADER)
        size = _expanded_size(root, {})
        if size > MAX_SCENARIO_NODES:
            raise ScenarioError(
                [
                    f"{source}:1: the document expands to {size:,} values through its aliases "
                    f"(at most {MAX_SCENARIO_NODES:,}): write the values out, or fewer aliases"
                ]
            )
        return root, None if root is None else SafeConstructor().construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{source}:{line}: not valid YAML: {problem}"]) from exc
    except RecursionError:
        raise ScenarioError(
            [f"{source}:1: the document is nested too deeply to read; a scenario is a few levels"]
        ) from None


def _expanded_size(node: yaml.Node | None, memo: dict[int, int]) -> int:
    """How many values `node` holds once aliases are expanded (a shared node counts each time
    it is used), without expanding them."""
    if node is None:
        return 0
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a cycle counts once
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = total
    return total


def load_scenario(path: Path) -> ScenarioBase:
    """Read and validate a scenario file; a relative locustfile is found beside the file."""
    try:
        if path.stat().st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError(
                [f"{path}: a scenario file holds at most {MAX_SCENARIO_BYTES:,} bytes"]
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ScenarioError([f"{path}: cannot read the scenario file: {reason}"]) from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            [
                f"{path}:{text_line_at(path, exc.start)}: not UTF-8 text (byte {exc.start}): "
                "a scenario is a YAML text file"
            ]
        ) from exc
    except ValueError as exc:  # a path with a NUL byte
        raise ScenarioError([f"{path!r}: not a usable file name: {exc}"]) from exc
    scenario = parse_scenario(text, str(path))
    return _with_locustfile_beside(scenario, path, text)


def text_line_at(path: Path, offset: int) -> int:
    """The 1-based line of byte `offset` in the file."""
    try:
        return path.read_bytes()[:offset].count(b"\n") + 1
    except OSError:
        return 1


def allowed_keys(
    loc: Sequence[str | int], data: object, kinds: Mapping[str, type[AnyFault]]
) -> list[str]:
    """The keys a mapping at `loc` (a pydantic error location) may hold, as written in YAML."""
    annotation: Any = scenario_model(kinds)
    tags = set(kinds) | set(target_kinds())
    node = data
    for key in loc:
        if isinstance(key, int):
            annotation = _item_type(annotation)
            node = node[key] if isinstance(node, list) and key < len(node) else None
            continue
        if isinstance(node, Mapping) and key not in node and key in tags:
            continue  # pydantic's union tag (the fault or target kind) is no key of the YAML
        model = _model_in(annotation, node, kinds)
        fields = getattr(model, "model_fields", {})
        info = next((f for n, f in fields.items() if key in (n, f.alias)), None)
        annotation = info.annotation if info is not None else None
        node = node.get(key) if isinstance(node, Mapping) else None
    fields = getattr(_model_in(annotation, node, kinds), "model_fields", None)
    if not fields:
        return []
    return [info.serialization_alias or info.alias or name for name, info in fields.items()]


def _item_type(annotation: object) -> object:
    """X of list[X] or Sequence[X] (through Optional)."""
    for arg in getattr(annotation, "__args__", ()) or ():
        if arg is not type(None):
            return arg
    return None


def _model_in(annotation: object, node: object, kinds: Mapping[str, type[AnyFault]]) -> Any:
    """The pydantic model a value of `annotation` is (through Optional, Annotated and unions;
    a fault entry's by the node's kind)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    options = (
        [getattr(annotation, "__origin__", None)] if hasattr(annotation, "__metadata__") else []
    )
    options += list(getattr(annotation, "__args__", ()) or ())
    models = [m for m in (_model_in(o, node, kinds) for o in options if o is not None) if m]
    kind = node.get("kind") if isinstance(node, Mapping) else None
    if models and all(issubclass(m, TargetSpec) for m in models):
        chosen = kind if isinstance(kind, str) else DEFAULT_KIND
        return next((m for m in models if m.model_fields["kind"].default == chosen), None)
    if any(issubclass(m, FaultEntry) for m in models):
        return (
            _fault_entry_model(kind, kinds[kind])
            if isinstance(kind, str) and kind in kinds
            else FaultEntry
        )
    return models[0] if models else None


def _with_locustfile_beside(scenario: ScenarioBase, path: Path, text: str = "") -> ScenarioBase:
    """A relative locustfile path is relative to the scenario file (as compose files do)."""
    name = scenario.load.locustfile
    if name == DEMO_LOCUSTFILE:
        return scenario
    where = f"{path}:{_line_in(text, ['load', 'locustfile'])}: load.locustfile"
    try:
        locustfile = Path(name)
        if not locustfile.is_absolute():
            locustfile = (path.parent / locustfile).resolve()
        found = locustfile.is_file()
    except (OSError, ValueError) as exc:
        raise ScenarioError([f"{where}: not a usable path {_short(name)}: {exc}"]) from exc
    if not found:
        raise ScenarioError(
            [
                f"{where}: no such file {_short(str(locustfile))} (a relative path is "
                "relative to the scenario file)"
            ]
        )
    load = scenario.load.model_copy(update={"locustfile": str(locustfile)})
    return scenario.model_copy(update={"load": load})


def _line_in(text: str, path: Sequence[str | int]) -> int:
    """The line of the value at `path` in YAML `text` that was already read once (1 if none)."""
    try:
        return _line_of(yaml.compose(text, Loader=YAML_LOADER), path) or 1
    except (yaml.YAMLError, RecursionError):
        return 1


def resolved_yaml(scenario: ScenarioBase) -> str:
    """The scenario with every default filled in, as YAML (kept in the run directory)."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)


def with_target(scenario: ScenarioBase, kind: str | None) -> ScenarioBase:
    """The scenario with its target kind replaced (the command line's --target)."""
    if kind is None:
        return scenario
    kinds = target_kinds()
    if kind not in kinds:
        raise ScenarioError([f"--target: unknown target {kind!r}; allowed: {', '.join(kinds)}"])
    if kind == scenario.target.kind:
        return scenario
    # Only the scenario's portable settings travel to another kind: a Swarm lab's shape
    # means nothing to Docker, so kind-specific fields are dropped, not silently misapplied.
    spec = kinds[kind].spec
    kept = {
        name: value
        for name, value in scenario.target.model_dump(exclude_unset=True).items()
        if name in spec.model_fields and name not in ("lab", "kind")
    }
    lab: LabSpec | None = getattr(scenario.target, "lab", None)
    if lab is not None and spec.lab_fields:  # a lab's shape carries over, Swarm <-> Kubernetes
        kept["lab"] = lab.model_dump(include=set(spec.lab_fields) & lab.model_fields_set)
    try:
        target = spec.model_validate({**kept, "kind": kind})
    except ValidationError as exc:
        raise ScenarioError([f"--target {kind}: {e['msg']}" for e in exc.errors()]) from exc
    return scenario.model_copy(update={"target": target})


def __getattr__(name: str) -> tuple[str, ...]:
    """TARGET_KINDS: the registered target kinds' names (read when asked: plugins count)."""
    if name == "TARGET_KINDS":
        return tuple(target_kinds())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DEMO_LOCUSTFILE",
    "OPEN_LOOP_SLACK_S",
    "AnalysisSpec",
    "Connections",
    "FaultEntry",
    "HealthSpec",
    "LabSpec",
    "LoadSpec",
    "PathSpec",
    "PhaseName",
    "ProbeSpec",
    "ResourcesSpec",
    "Routing",
    "ScenarioBase",
    "SelectorSpec",
    "SloSpec",
    "StrictModel",
    "TargetSpec",
    "WorkloadSpec",
    "allowed_keys",
    "build_fault",
    "fault_class",
    "load_scenario",
    "open_loop_users",
    "parse_scenario",
    "resolved_yaml",
    "scenario_model",
    "target_union",
    "text_line_at",
    "with_target",
]
