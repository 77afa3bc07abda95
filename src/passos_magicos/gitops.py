"""GitOps edits of the Kubernetes manifests (`k8s/`), used by `cd.yml` and `deploy-model.yml`.

Three edits, one per command of `passos-magicos gitops`:

- `set_image`: the tag of every container/initContainer image of ours, in every manifest
  (Deployments, CronJobs, multi-document files);
- `bump_reload`: the `mlops.passos-magicos/reload-at` annotation of the API Deployment's pod
  template (a changed pod template is what makes Kubernetes roll the API);
- `set_model_version`: the `mlops.passos-magicos/model-version` annotation, next to it.

How the files are edited: ruamel.yaml's composer gives the node tree of every document with the
exact character span of every scalar, and only that span is rewritten, in the quoting it had
(or quoted when a plain scalar would read as a number, a date or a boolean). Comments, key
order, indentation, document separators and line endings stay byte for byte. The edited text is
then parsed again and compared with the original data plus the intended change: an edit that
would change anything else is refused and nothing is written.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver

IMAGE_NAMES: Final = (
    "passos-magicos-api",
    "passos-magicos-jobs",
    "passos-magicos-dashboard",
)
API_DEPLOYMENT: Final = "passos-magicos-api"
RELOAD_ANNOTATION: Final = "mlops.passos-magicos/reload-at"
MODEL_VERSION_ANNOTATION: Final = "mlops.passos-magicos/model-version"
CONTAINER_LISTS: Final = ("initContainers", "containers", "ephemeralContainers")

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_REPOSITORY_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = re.compile(rf"[a-z0-9.-]+(?::[0-9]+)?(?:/{_REPOSITORY_PART})*")
_IMAGE_NAME = re.compile(
    rf"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_REPOSITORY_PART}(?:/{_REPOSITORY_PART})*"
)
_MODEL_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@+:-]*")
# Node properties before a scalar: an anchor (&name) and/or a tag (!!str, !custom).
_PROPERTIES = re.compile(r"(?:[&!]\S*\s+)*")
_STR_TAG: Final = "tag:yaml.org,2002:str"
_RESOLVERS: Final = (VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2)))

Key = str | int
DataPath = tuple[Key, ...]


class GitOpsError(Exception):
    """The target is missing or a value is refused; the message (pt-BR) says which."""


class EditCheckError(GitOpsError):
    """The edited text would not be the original plus exactly the intended change."""


@dataclass(frozen=True)
class Change:
    """One value changed in one file (what the command prints)."""

    path: Path
    line: int  # 1-based, where the value is
    target: str  # e.g. "Deployment/passos-magicos-api, contêiner api"
    old: str | None  # None: the key was added
    new: str

    def describe(self, root: Path | None = None) -> str:
        where = _display(self.path, root)
        before = "(ausente)" if self.old is None else self.old
        return f"{where}:{self.line}  {self.target}: {before} → {self.new}"


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _Expect:
    document: int
    path: DataPath
    value: str


@dataclass
class Manifest:
    """One YAML file: its text and the node tree of each of its documents."""

    path: Path
    text: str
    bom: bool
    documents: list[Node]
    edits: list[_Edit] = field(default_factory=list)
    expects: list[_Expect] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    _edited_nodes: set[int] = field(default_factory=set)

    def line_of(self, index: int) -> int:
        return self.text.count("\n", 0, index) + 1

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"

    def new_text(self) -> str:
        text = self.text
        for edit in sorted(self.edits, key=lambda e: (e.start, e.end), reverse=True):
            text = text[: edit.start] + edit.text + text[edit.end :]
        return text

    def replace_scalar(
        self, document: int, data_path: DataPath, node: ScalarNode, value: str, change: Change
    ) -> None:
        """Rewrite one scalar in place (once per node: an aliased node is edited once)."""
        self.expects.append(_Expect(document, data_path, value))
        if id(node) in self._edited_nodes:
            return
        self._edited_nodes.add(id(node))
        self.edits.append(_scalar_edit(self, node, value))
        self.changes.append(change)

    def insert(
        self, document: int, data_path: DataPath, index: int, text: str, change: Change
    ) -> None:
        self.expects.append(_Expect(document, data_path, change.new))
        self.edits.append(_Edit(index, index, text))
        self.changes.append(change)


@dataclass
class Plan:
    """What a command would change; `write()` applies it, `diff()` shows it."""

    directory: Path
    manifests: list[Manifest]
    summary: str

    @property
    def changes(self) -> list[Change]:
        return [change for manifest in self.manifests for change in manifest.changes]

    @property
    def changed_files(self) -> list[Manifest]:
        return [manifest for manifest in self.manifests if manifest.edits]

    def diff(self, root: Path | None = None) -> str:
        chunks: list[str] = []
        for manifest in self.changed_files:
            name = _display(manifest.path, root)
            lines = difflib.unified_diff(
                manifest.text.splitlines(keepends=True),
                manifest.new_text().splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
            chunks.extend(line if line.endswith("\n") else f"{line}\n" for line in lines)
        return "".join(chunks)

    def describe(self, root: Path | None = None) -> list[str]:
        return [change.describe(root) for change in self.changes] + [self.summary]

    def apply(self, dry_run: bool = False) -> str:
        """Write the files (or only show the diff, with `dry_run`); what to print."""
        if not dry_run:
            self.write()
        lines = self.describe()
        return (self.diff() if dry_run else "") + "".join(f"{line}\n" for line in lines)

    def write(self) -> None:
        for manifest in self.changed_files:
            content = ("\ufeff" if manifest.bom else "") + manifest.new_text()
            temporary = manifest.path.with_name(f".{manifest.path.name}.gitops-tmp")
            try:
                temporary.write_bytes(content.encode("utf-8"))
                temporary.chmod(manifest.path.stat().st_mode & 0o7777)
                temporary.replace(manifest.path)
            except OSError as exc:
                temporary.unlink(missing_ok=True)
                raise GitOpsError(f"{manifest.path}: não foi possível gravar ({exc})") from None


# ---------------------------------------------------------------------------------------------
# the three edits


def set_image(
    directory: Path,
    tag: str,
    names: Sequence[str] = IMAGE_NAMES,
    registry: str | None = None,
) -> Plan:
    """Set `tag` on every container image named in `names` (repository base name, or a full
    repository when the name has a '/'); with `registry`, move them to `registry/<name>` too.
    Every name must be used by at least one container."""
    registry = _check_image_arguments(tag, names, registry)
    manifests = load_manifests(directory)
    found = dict.fromkeys(names, 0)
    for manifest in manifests:
        for document, root in enumerate(manifest.documents):
            for container, data_path, list_key in _containers(root, ()):
                image = _get(container, "image")
                if not isinstance(image, ScalarNode):
                    continue
                name = _matching_name(image.value, names)
                if name is None:
                    continue
                found[name] += 1
                new = _retagged(image.value, tag, registry)
                if new == image.value:
                    continue
                label = _container_label(root, container, list_key)
                change = Change(
                    manifest.path, manifest.line_of(image.start_mark.index), label, image.value, new
                )
                manifest.replace_scalar(document, (*data_path, "image"), image, new, change)
    missing = [name for name, count in found.items() if count == 0]
    if missing:
        raise GitOpsError(
            f"nenhum contêiner usa a imagem {', '.join(missing)} nos manifestos de "
            f"{directory}/; confira o campo image dos Deployments e CronJobs"
        )
    plan = Plan(directory, manifests, "")
    verify(plan)
    total, changed = sum(found.values()), len(plan.changes)
    where = f" para {registry}/" if registry else ""
    plan.summary = (
        f"{changed} de {total} imagens atualizadas{where} com a tag {tag} em "
        f"{len(plan.changed_files)} arquivo(s)"
        if changed
        else f"nada mudou: as {total} imagens já estão na tag {tag}"
    )
    return plan


def _check_image_arguments(tag: str, names: Sequence[str], registry: str | None) -> str | None:
    if not _TAG.fullmatch(tag):
        raise GitOpsError(
            f"tag inválida: {tag!r} (letras, dígitos, '_', '.', '-'; até 128; não começa com "
            "'.' ou '-')"
        )
    if registry is not None:
        registry = registry.rstrip("/")
        if not _REGISTRY.fullmatch(registry):
            raise GitOpsError(
                f"registro inválido: {registry!r} (ex.: docker.io/passosmagicos, em minúsculas)"
            )
    if not names:
        raise GitOpsError("nenhuma imagem indicada (--image)")
    for name in names:
        if not _IMAGE_NAME.fullmatch(name):
            raise GitOpsError(
                f"nome de imagem inválido: {name!r} (sem tag; ex.: passos-magicos-api ou "
                "docker.io/passosmagicos/passos-magicos-api)"
            )
    return registry


def bump_reload(
    directory: Path, at: datetime | None = None, deployment: str = API_DEPLOYMENT
) -> Plan:
    """Set the reload annotation of the API Deployment's pod template (default: now, UTC)."""
    moment = (at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    value = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return _annotate(directory, deployment, RELOAD_ANNOTATION, value)


def set_model_version(directory: Path, version: str, deployment: str = API_DEPLOYMENT) -> Plan:
    """Record the model version served by the API in its pod template annotation."""
    if not _MODEL_VERSION.fullmatch(version):
        raise GitOpsError(
            f"versão do modelo inválida: {version!r} (ex.: 3; letras, dígitos, '.', '_', '-')"
        )
    return _annotate(directory, deployment, MODEL_VERSION_ANNOTATION, version)


def parse_moment(value: str) -> datetime:
    """An ISO 8601 date-time for `--at`; without a time zone it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise GitOpsError(
            f"data/hora inválida: {value!r} (ISO 8601, ex.: 2025-03-01T12:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# reading


def load_manifests(directory: Path) -> list[Manifest]:
    if not directory.is_dir():
        raise GitOpsError(f"pasta de manifestos não encontrada: {directory}")
    paths = sorted(
        path for path in directory.rglob("*") if path.suffix in {".yaml", ".yml"} and path.is_file()
    )
    if not paths:
        raise GitOpsError(f"nenhum manifesto .yaml/.yml em {directory}")
    return [_read(path) for path in paths]


def _read(path: Path) -> Manifest:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise GitOpsError(f"{path}: não é texto UTF-8") from None
    bom = text.startswith("\ufeff")
    text = text.removeprefix("\ufeff")
    try:
        documents = list(YAML().compose_all(text))
        _load_all(text)  # duplicate keys and other errors the composer lets through
    except YAMLError as exc:
        raise GitOpsError(f"{path}: YAML inválido: {exc}") from None
    return Manifest(path, text, bom, documents)


def _load_all(text: str) -> list[Any]:
    return list(YAML(typ="safe", pure=True).load_all(text))


def _pair(node: Node | None, key: str) -> tuple[ScalarNode, Node] | None:
    if not isinstance(node, MappingNode):
        return None
    for key_node, value in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value
    return None


def _get(node: Node | None, key: str) -> Node | None:
    pair = _pair(node, key)
    return None if pair is None else pair[1]


def _text(node: Node | None) -> str | None:
    return node.value if isinstance(node, ScalarNode) else None


def _containers(node: Node, path: DataPath) -> Iterator[tuple[MappingNode, DataPath, str]]:
    """Every container mapping in a document, wherever the pod spec is (Pod, Deployment,
    StatefulSet, Job, CronJob's jobTemplate, ...), with its path in the loaded data."""
    if isinstance(node, MappingNode):
        for key_node, value in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                continue
            if key in CONTAINER_LISTS and isinstance(value, SequenceNode):
                for index, item in enumerate(value.value):
                    if isinstance(item, MappingNode):
                        yield item, (*path, key, index), key
            else:
                yield from _containers(value, (*path, key))
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _containers(item, (*path, index))


def _split_image(reference: str) -> tuple[str, str | None]:
    """`repository[:tag][@digest]` → (repository, tag); a digest is dropped (it names the old
    content, so it cannot stay next to a new tag)."""
    reference = reference.split("@", 1)[0]
    slash, colon = reference.rfind("/"), reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, None


def _normalized(repository: str) -> str:
    parts = repository.split("/")
    if len(parts) == 1 or not ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts.insert(0, "docker.io")
    if parts[0] == "index.docker.io":
        parts[0] = "docker.io"
    if parts[0] == "docker.io" and len(parts) == 2:
        parts.insert(1, "library")
    return "/".join(parts)


def _matching_name(reference: str, names: Sequence[str]) -> str | None:
    repository, _ = _split_image(reference)
    for name in names:
        if "/" in name:
            if _normalized(repository) == _normalized(name):
                return name
        elif repository.rsplit("/", 1)[-1] == name:
            return name
    return None


def _retagged(reference: str, tag: str, registry: str | None) -> str:
    repository, _ = _split_image(reference)
    if registry is not None:
        repository = f"{registry}/{repository.rsplit('/', 1)[-1]}"
    return f"{repository}:{tag}"


def _describe_document(root: Node) -> str:
    kind = _text(_get(root, "kind")) or "documento"
    name = _text(_get(_get(root, "metadata"), "name"))
    return f"{kind}/{name}" if name else kind


def _container_label(root: Node, container: MappingNode, list_key: str) -> str:
    kind = {"containers": "contêiner", "initContainers": "initContainer"}.get(list_key, list_key)
    name = _text(_get(container, "name")) or "?"
    return f"{_describe_document(root)}, {kind} {name}"


# ---------------------------------------------------------------------------------------------
# annotations of the API pod template


def _annotate(directory: Path, deployment: str, key: str, value: str) -> Plan:
    manifests = load_manifests(directory)
    found = 0
    for manifest in manifests:
        for document, root in enumerate(manifest.documents):
            if not isinstance(root, MappingNode) or _text(_get(root, "kind")) != "Deployment":
                continue
            if _text(_get(_get(root, "metadata"), "name")) != deployment:
                continue
            found += 1
            _annotate_template(manifest, document, root, key, value)
    if not found:
        raise GitOpsError(
            f"Deployment {deployment} não encontrado nos manifestos de {directory}/ "
            "(kind: Deployment, metadata.name)"
        )
    plan = Plan(directory, manifests, "")
    verify(plan)
    where = f"no Deployment {deployment}" + (f" ({found} documentos)" if found > 1 else "")
    plan.summary = (
        f"{key}={value} {where}" if plan.changes else f"nada mudou: {key} já é {value} {where}"
    )
    return plan


def _annotate_template(
    manifest: Manifest, document: int, root: MappingNode, key: str, value: str
) -> None:
    where = f"{manifest.path}: {_describe_document(root)}"
    template = _get(_get(root, "spec"), "template")
    metadata_key, metadata = _pair(template, "metadata") or (None, None)
    if metadata_key is None or not isinstance(metadata, MappingNode):
        raise GitOpsError(f"{where} sem spec.template.metadata")
    data_path: DataPath = ("spec", "template", "metadata", "annotations", key)
    label = f"{_describe_document(root)}, anotação {key}"
    annotations = _get(metadata, "annotations")
    if annotations is None:
        entry = _Entry(key, value, label, data_path)
        _add_block(manifest, document, metadata, entry, parent=metadata_key)
        return
    if not isinstance(annotations, MappingNode):
        raise GitOpsError(f"{where}: spec.template.metadata.annotations não é um mapa")
    current = _get(annotations, key)
    if isinstance(current, ScalarNode):
        if current.value == value and _resolves_to_str(current):
            return
        line = manifest.line_of(current.start_mark.index)
        change = Change(manifest.path, line, label, current.value, value)
        manifest.replace_scalar(document, data_path, current, value, change)
    elif current is not None:
        raise GitOpsError(f"{where}: a anotação {key} não é um texto")
    elif annotations.flow_style:
        _add_flow(manifest, document, annotations, _Entry(key, value, label, data_path))
    else:
        _add_block(manifest, document, annotations, _Entry(key, value, label, data_path))


@dataclass(frozen=True)
class _Entry:
    key: str
    value: str
    label: str
    data_path: DataPath


def _add_flow(manifest: Manifest, document: int, mapping: MappingNode, entry: _Entry) -> None:
    """`{a: b}` → `{a: b, key: value}`; `{}` → `{key: value}`."""
    start, end = mapping.start_mark.index, mapping.end_mark.index
    inside = manifest.text[start + 1 : end - 1]
    index = start + 1 + len(inside.rstrip())
    pair = f"{_render(entry.key, None)}: {_render(entry.value, _sibling_style(mapping))}"
    addition = f", {pair}" if inside.strip() else pair
    change = Change(manifest.path, manifest.line_of(index), entry.label, None, entry.value)
    manifest.insert(document, entry.data_path, index, addition, change)


def _add_block(
    manifest: Manifest,
    document: int,
    mapping: MappingNode,
    entry: _Entry,
    parent: ScalarNode | None = None,
) -> None:
    """A new line `key: value` after the mapping's last entry, at its indentation; with
    `parent` (the `metadata` key), a new `annotations:` entry holding it instead."""
    if mapping.flow_style or not mapping.value:
        raise GitOpsError(
            f"{manifest.path}:{manifest.line_of(mapping.start_mark.index)}: mapa em estilo de "
            f"fluxo ({{...}}) não suportado para adicionar {entry.key}"
        )
    nl = manifest.newline
    column = mapping.value[0][0].start_mark.column
    if parent is None:
        pair = f"{_render(entry.key, None)}: {_render(entry.value, _sibling_style(mapping))}"
        block, offset = f"{' ' * column}{pair}{nl}", 0
    else:
        inner = column + max(column - parent.start_mark.column, 1)
        pair = f"{_render(entry.key, None)}: {_render(entry.value, None)}"
        block, offset = f"{' ' * column}annotations:{nl}{' ' * inner}{pair}{nl}", 1
    index = _after_last_entry(manifest.text, mapping)
    if index == len(manifest.text) and not manifest.text.endswith("\n"):
        block = nl + block
        offset += 1
    line = manifest.line_of(index) + offset
    change = Change(manifest.path, line, entry.label, None, entry.value)
    manifest.insert(document, entry.data_path, index, block, change)


def _last_scalar(node: Node) -> Node:
    while True:
        if isinstance(node, MappingNode) and node.value and not node.flow_style:
            node = node.value[-1][1]
        elif isinstance(node, SequenceNode) and node.value and not node.flow_style:
            node = node.value[-1]
        else:
            return node


def _after_last_entry(text: str, mapping: MappingNode) -> int:
    """The start of the line after the mapping's last entry (before any comment below it)."""
    last = _last_scalar(mapping.value[-1][1])
    end: int = last.end_mark.index
    if end > 0 and text[end - 1] == "\n":  # block scalars end at the next line's start
        return end
    newline = text.find("\n", end)
    return len(text) if newline < 0 else newline + 1


def _sibling_style(mapping: MappingNode) -> str | None:
    for _, value in mapping.value:
        if isinstance(value, ScalarNode) and value.style in {"'", '"'}:
            return value.style  # type: ignore[no-any-return]
    return None


# ---------------------------------------------------------------------------------------------
# scalars


def _resolves_to_str(node: ScalarNode) -> bool:
    return node.style is not None or _plain_is_str(node.value)


def _plain_is_str(value: str) -> bool:
    """Read as a string both by YAML 1.2 and by YAML 1.1 parsers (kubectl's go-yaml)."""
    return (
        bool(_PLAIN_SAFE.fullmatch(value))
        and not value.endswith(":")
        and all(
            str(resolver.resolve(ScalarNode, value, (True, False))) == _STR_TAG
            for resolver in _RESOLVERS
        )
    )


def _render(value: str, style: str | None) -> str:
    if "\n" in value or "\r" in value:
        raise GitOpsError(f"valor com quebra de linha não suportado: {value!r}")
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style is None and _plain_is_str(value):
        return value
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _scalar_edit(manifest: Manifest, node: ScalarNode, value: str) -> _Edit:
    if node.style in {"|", ">"}:
        raise GitOpsError(
            f"{manifest.path}:{manifest.line_of(node.start_mark.index)}: valor em bloco "
            "(| ou >) não suportado"
        )
    start, end = node.start_mark.index, node.end_mark.index
    properties = _PROPERTIES.match(manifest.text, start, end)
    if properties is not None:
        start = properties.end()
    return _Edit(start, end, _render(value, node.style))


# ---------------------------------------------------------------------------------------------
# checking an edit


def verify(plan: Plan) -> None:
    """Parse every edited file again: its data must be the original plus exactly the intended
    values. Raises EditCheckError otherwise (nothing is written)."""
    for manifest in plan.changed_files:
        before = _load_all(manifest.text)
        try:
            after = _load_all(manifest.new_text())
        except YAMLError as exc:
            raise EditCheckError(
                f"{manifest.path}: a edição produziria YAML inválido ({exc}); nada foi gravado"
            ) from None
        expected = copy.deepcopy(before)
        for expect in manifest.expects:
            _assign(expected[expect.document], expect.path, expect.value)
        if after != expected:
            raise EditCheckError(
                f"{manifest.path}: a edição mudaria mais do que o pretendido "
                "(âncoras/aliases YAML?); nada foi gravado"
            )


def _assign(data: Any, path: DataPath, value: str) -> None:
    for key in path[:-1]:
        if isinstance(data, dict) and data.get(key) is None:
            data[key] = {}
        data = data[key]
    data[path[-1]] = value


def _display(path: Path, root: Path | None) -> str:
    base = (root or Path.cwd()).resolve()
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()
