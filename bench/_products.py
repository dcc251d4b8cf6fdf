"""Realistic, varied catalog product files and the git events that carry them.

Shaped like ``examples/products/trail-runner-gtx.md``: YAML frontmatter
(labels, annotations, price, tags, inventory) and a markdown body with
headings, emphasis, lists (nested), a numbered list, a quote, links, an image,
a thematic break and a fenced code block. Sections, list lengths and
paragraph lengths vary per product (deterministically from its number), so
files range from about 0.9 to 2 KiB.
"""

from __future__ import annotations

import random
import uuid

from gitstore_agents.envelopes import Blob, GitEvent, git_blob_oid

_NAMESPACE = uuid.UUID("0193f1c2-0000-7000-8000-00000000be9c")
REPOSITORY_ID = "0193f1c2-0000-7000-8000-00000000be9c"

_BRANDS = ("northwind", "alpenglow", "fjordline", "sierra-works", "coastal-co")
_CATEGORIES = {
    "footwear": ("Trail Runner", "Approach Shoe", "Hiking Boot", "Road Racer", "Sandal"),
    "apparel": ("Shell Jacket", "Fleece Hoodie", "Merino Tee", "Rain Pants", "Down Vest"),
    "gear": ("Daypack", "Trekking Pole", "Headlamp", "Water Filter", "Bivy Sack"),
}
_SUFFIXES = ("GTX", "Pro", "Lite", "2", "Alpine", "Ultra", "Mid", "X")
_ADJECTIVES = (
    "waterproof",
    "breathable",
    "lightweight",
    "durable",
    "recycled",
    "packable",
    "insulated",
    "grippy",
)
_TERRAIN = ("wet rock", "loose gravel", "alpine ridges", "muddy forest trails", "city streets")
_FEATURES = (
    "Taped seams and a waterproof membrane",
    "4 mm lugs for grip on `mud` and rock",
    "Recycled mesh upper",
    "PFC-free durable water repellent finish",
    "Reflective details for low light",
    "Replaceable insole with arch support",
    "Two-way zip with storm flap",
    "Hip belt pockets sized for a phone",
    "Rated to **-5 °C** comfort",
    "Packs into its own pocket",
)
_SUB_FEATURES = ("60% recycled polyester", "bluesign® approved", "PFC-free coating", "vegan")
_SEASONS = ("ss26", "fw26", "ss27")


def product_markdown(number: int) -> tuple[str, str]:
    """``(path, content)`` of product ``number``: a varied, realistic product file."""
    rng = random.Random(number)
    namespace = rng.choice(sorted(_CATEGORIES))
    base = rng.choice(_CATEGORIES[namespace])
    title = f"{base} {rng.choice(_SUFFIXES)} {number}"
    name = title.lower().replace(" ", "-")
    brand = rng.choice(_BRANDS)
    adjectives = rng.sample(_ADJECTIVES, 3)
    tags = sorted(set(rng.sample(_ADJECTIVES, rng.randint(2, 5))))
    price = f"{rng.randint(19, 499)}.{rng.choice(('00', '50', '90', '95'))}"
    lines = [
        "---",
        "apiVersion: catalog.gitstore.dev/v1beta1",
        "kind: Product",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {namespace}",
        "  labels:",
        f"    brand: {brand}",
        f"    season: {rng.choice(_SEASONS)}",
        "  annotations:",
        f'    gitstore.dev/owner: "team-{namespace}"',
        "spec:",
        f"  title: {title}",
        f"  description: A {adjectives[0]}, {adjectives[1]} {base.lower()} "
        f"for {rng.choice(_TERRAIN)}.",
        "  price:",
        f'    amount: "{price}"',
        f"    currency: {rng.choice(('EUR', 'USD', 'CHF'))}",
        f"  tags: [{', '.join(tags)}]",
        f"  sku: {brand[:2].upper()}-{number:06d}",
        f"  inventory: {rng.randint(0, 500)}",
        f"  active: {str(rng.random() > 0.1).lower()}",
        "---",
        f"# {title}",
        "",
        f"Built for **{rng.choice(_TERRAIN)}**. The *{adjectives[2]}* construction keeps "
        f"you going from the first light to the last mile, season after season.",
    ]
    for _ in range(rng.randint(0, 3)):
        lines += ["", _paragraph(rng)]
    lines += ["", "## Highlights", ""]
    for feature in rng.sample(_FEATURES, rng.randint(2, 6)):
        lines.append(f"- {feature}")
        if rng.random() < 0.3:
            lines += [f"  - {s}" for s in rng.sample(_SUB_FEATURES, 2)]
    if rng.random() < 0.7:
        lines += ["", "## Sizing", "", "1. Order your usual size.", "2. Between sizes? Go up."]
    if rng.random() < 0.5:
        lines += ["", f"> Tested on {rng.randint(100, 5000):,} km by the {brand} field team."]
    lines += [
        "",
        f'See the [care guide](https://{brand}.example/care "Care guide") before first use.',
        "",
        f"![{title}, side view](https://cdn.{brand}.example/{name}.jpg)",
    ]
    if rng.random() < 0.6:
        lines += [
            "",
            "---",
            "",
            "```yaml",
            f"weight: {rng.randint(90, 1800)}g",
            f"drop: {rng.randint(0, 12)}mm",
            "```",
        ]
    return f"products/{name}.md", "\n".join(lines) + "\n"


def _paragraph(rng: random.Random) -> str:
    words = (
        "trail",
        "grip",
        "comfort",
        "weather",
        "stable",
        "light",
        "tested",
        "mile",
        "summit",
        "pace",
        "layer",
        "dry",
    )
    sentences = []
    for _ in range(rng.randint(2, 5)):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(6, 14)))
        sentences.append(body.capitalize() + ".")
    return " ".join(sentences)


def product_event(number: int, *, run: str = "bench") -> GitEvent:
    """A push changing one product file; event ids are stable for (``run``, ``number``)."""
    path, content = product_markdown(number)
    return GitEvent(
        event_id=str(uuid.uuid5(_NAMESPACE, f"{run}-{number:07d}")),
        repository_id=REPOSITORY_ID,
        ref_name="refs/heads/main",
        old_commit_sha="0" * 40,
        new_commit_sha=f"{number:040x}",
        changed_paths=[path],
        actor_subject="user:bench@example.com",
        blobs=[Blob(path=path, blob_oid=git_blob_oid(content.encode()), content=content)],
        occurred_at="2026-11-29T08:00:00Z",
    )
