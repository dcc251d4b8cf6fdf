"""What the catalog task modules print: compiled resources and validation errors.

These are module *outputs* (stdout documents), not envelopes: they carry no
``schema_version`` of their own and travel inside ``ValidationRequest.output``
as canonical JSON. The Structs check them and describe them for the Go side;
pass the raw output bytes along rather than re-encoding a decoded Struct, so
fields a newer module adds are never dropped.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ._types import Name, RepoPath

API_VERSION = "catalog.gitstore.dev/v1beta1"
RESOURCE_KINDS = ("Product", "Variant", "Category", "Collection")

# Exit code of a module that rejected its input; stdout holds ``ValidationErrors``.
EXIT_REJECTED = 65


class MdastNode(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One node of the markdown body, in the mdast shape (github.com/syntax-tree/mdast).

    Parents have ``children``, literals have ``value``; the other attributes
    belong to particular node types (``depth`` to ``heading``, ``url`` to
    ``link`` and ``image``, …). Unknown attributes are tolerated, so a module
    may add positions or new node types without breaking readers.

    Attributes:
        type: Node type: ``root``, ``paragraph``, ``heading``, ``text``, ``list``, …
        children: Child nodes (parents only).
        value: Text of a literal (``text``, ``code``, ``inlineCode``, ``html``).
        depth: Heading level, 1 to 6.
        ordered: Whether a ``list`` is numbered.
        start: First number of an ordered list.
        spread: Whether a list or item is loose (blank lines between items).
        checked: Task-list item state (``null`` when not a task item).
        lang: Info-string language of fenced ``code``.
        meta: Rest of the info string of fenced ``code``.
        url: Target of a ``link`` or ``image``.
        title: Title of a ``link`` or ``image``.
        alt: Alternative text of an ``image``.
    """

    type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    children: list[MdastNode] | msgspec.UnsetType = msgspec.UNSET
    value: str | msgspec.UnsetType = msgspec.UNSET
    depth: Annotated[int, msgspec.Meta(ge=1, le=6)] | msgspec.UnsetType = msgspec.UNSET
    ordered: bool | msgspec.UnsetType | None = msgspec.UNSET
    start: int | msgspec.UnsetType | None = msgspec.UNSET
    spread: bool | msgspec.UnsetType | None = msgspec.UNSET
    checked: bool | msgspec.UnsetType | None = msgspec.UNSET
    lang: str | msgspec.UnsetType | None = msgspec.UNSET
    meta: str | msgspec.UnsetType | None = msgspec.UNSET
    url: str | msgspec.UnsetType = msgspec.UNSET
    title: str | msgspec.UnsetType | None = msgspec.UNSET
    alt: str | msgspec.UnsetType | None = msgspec.UNSET


# The body stays a plain JSON object (lossless for attributes this version does
# not know); its schema points at MdastNode, and decoding checks it against it.
MdastRoot = Annotated[
    dict[str, Any],
    msgspec.Meta(
        description="The markdown body as an mdast tree; its root node has type 'root'.",
        extra_json_schema={"$ref": "#/$defs/MdastNode"},
    ),
]


class ResourceMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """Identity and labels of a catalog resource (from its YAML frontmatter).

    Attributes:
        name: Resource name, unique per kind within the namespace.
        namespace: Catalog namespace, e.g. ``footwear``.
        labels: String labels (selectors).
        annotations: String annotations (free-form notes, owners).
    """

    name: Name
    namespace: Name
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)


class CatalogResource(msgspec.Struct, frozen=True, kw_only=True):
    """A catalog resource as the control plane validates it.

    Attributes:
        api_version: ``apiVersion``, e.g. ``catalog.gitstore.dev/v1beta1``.
        kind: ``Product``, ``Variant``, ``Category`` or ``Collection``.
        metadata: Name, namespace, labels, annotations.
        spec: Kind-specific fields, verbatim from the frontmatter (decimals as strings).
    """

    api_version: Name = msgspec.field(name="apiVersion")
    kind: Name
    metadata: ResourceMetadata
    spec: dict[str, Any] = msgspec.field(default_factory=dict)


class CompiledSource(msgspec.Struct, frozen=True, kw_only=True):
    """Where a compiled resource came from.

    Attributes:
        path: Repository-relative path of the markdown file.
    """

    path: RepoPath


class CompiledResource(msgspec.Struct, frozen=True, kw_only=True):
    """stdout of ``markdown.compile``: the resource, its markdown body as mdast, its source.

    Attributes:
        body: The markdown after the frontmatter, as an mdast ``root`` node.
        resource: ``apiVersion``, ``kind``, ``metadata`` and ``spec`` from the frontmatter.
        source: The file it was compiled from.
    """

    body: MdastRoot
    resource: CatalogResource
    source: CompiledSource


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    """One reason a module rejected its input, in GitStore's validation error shape.

    Attributes:
        constraint: Which rule failed, e.g. ``required``, ``syntax``, ``max_length``.
        field: Path of the offending field, e.g. ``spec.price.amount`` or ``frontmatter``.
        file_path: Repository-relative file the error is about.
        message: What is wrong, for a human (names the line where it helps).
    """

    constraint: Name
    field: Annotated[str, msgspec.Meta(max_length=4096)]
    file_path: Annotated[str, msgspec.Meta(max_length=4096)]
    message: Annotated[str, msgspec.Meta(max_length=65536)]


class ValidationErrors(msgspec.Struct, frozen=True, kw_only=True):
    """stdout of a module that rejected its input (exit code 65).

    Attributes:
        errors: At least one error, sorted by field.
    """

    errors: Annotated[list[FieldError], msgspec.Meta(min_length=1)]
