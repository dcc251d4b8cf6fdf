"""The module registry: digests in a real JetStream object store, verified and compiled once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from nats.aio.client import Client

from gitstore_agents.sandbox import (
    Limits,
    ModuleError,
    ModuleRegistry,
    ModuleStore,
    Outcome,
    Sandbox,
    UnknownModuleError,
    module_digest,
    provision_module_store,
)

from .hostile import wasm


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox()
    yield sb
    sb.close()


@pytest.fixture
async def store(nc: Client) -> AsyncIterator[ModuleStore]:
    bucket = f"modules-{id(nc):x}"
    yield await provision_module_store(nc.jetstream(), bucket)
    await nc.jetstream().delete_object_store(bucket)


async def test_push_is_idempotent_and_listed_by_digest(store: ModuleStore) -> None:
    echo = wasm("echo")
    digest = await store.push(echo, description="echo.wasm")
    assert digest == module_digest(echo)
    assert await store.push(echo, description="echo.wasm") == digest
    await store.push(wasm("spin"), description="spin.wasm")
    listed = await store.list()
    assert [m.digest for m in listed] == sorted([digest, module_digest(wasm("spin"))])
    (entry,) = [m for m in listed if m.digest == digest]
    assert (entry.size, entry.description) == (len(echo), "echo.wasm")
    assert await store.fetch(digest) == echo


async def test_provisioning_twice_binds_the_same_bucket(nc: Client, store: ModuleStore) -> None:
    digest = await store.push(wasm("echo"))
    again = await provision_module_store(nc.jetstream(), f"modules-{id(nc):x}")
    assert await again.fetch(digest) == wasm("echo")


async def test_registry_loads_an_unknown_digest_from_the_store(
    sandbox: Sandbox, store: ModuleStore
) -> None:
    digest = await store.push(wasm("echo"))
    registry = ModuleRegistry(sandbox, store)
    with pytest.raises(UnknownModuleError):
        registry.get(digest)  # not fetched yet
    module = await registry.load(digest)
    assert module.digest == digest
    assert registry.get(digest) is module  # compiled once, kept
    result = sandbox.run(module, b"from the bucket", Limits())
    assert result.stdout == b"from the bucket"


async def test_concurrent_loads_share_one_fetch(sandbox: Sandbox, store: ModuleStore) -> None:
    digest = await store.push(wasm("echo"))
    fetches: list[str] = []
    fetch = store.fetch

    async def counting_fetch(wanted: str) -> bytes:
        fetches.append(wanted)
        return await fetch(wanted)

    store.fetch = counting_fetch  # type: ignore[method-assign]
    registry = ModuleRegistry(sandbox, store)
    modules = await asyncio.gather(*(registry.load(digest) for _ in range(8)))
    assert {m.digest for m in modules} == {digest}
    assert fetches == [digest]


async def test_a_digest_not_in_the_store_is_unknown(sandbox: Sandbox, store: ModuleStore) -> None:
    registry = ModuleRegistry(sandbox, store)
    with pytest.raises(UnknownModuleError) as info:
        await registry.load("sha256:" + "0" * 64)
    assert info.value.retryable  # a push may still come
    assert "sha256:" + "0" * 64 in str(info.value)


async def test_stored_bytes_that_do_not_match_their_name_are_refused(
    nc: Client, sandbox: Sandbox, store: ModuleStore
) -> None:
    # Someone with raw bucket access stores spin under echo's digest.
    digest = module_digest(wasm("echo"))
    objects = await nc.jetstream().object_store(f"modules-{id(nc):x}")
    await objects.put(digest, wasm("spin"))
    with pytest.raises(ModuleError) as info:
        await ModuleRegistry(sandbox, store).load(digest)
    assert info.value.outcome is Outcome.DIGEST_MISMATCH
    assert sandbox.loaded(digest) is None


async def test_registry_without_a_store_uses_local_files_only(sandbox: Sandbox) -> None:
    registry = ModuleRegistry(sandbox)
    digest = registry.register(wasm("echo"))
    assert (await registry.load(digest)).digest == digest
    with pytest.raises(UnknownModuleError):
        await registry.load(module_digest(wasm("spin")))


def test_register_verifies_the_expected_digest(sandbox: Sandbox) -> None:
    with pytest.raises(ModuleError) as info:
        ModuleRegistry(sandbox).register(wasm("echo"), expected_digest=module_digest(b"other"))
    assert info.value.outcome is Outcome.DIGEST_MISMATCH
