"""The distribution service: pull, push and login, over the engine's image stores.

`Transfers` is what the API layer calls (`api/distribution.py`); it knows nothing of the Docker
API, only of references, credentials and the stores. Each operation gets its own
`RegistryClient` (its own connections and token cache); blocking work (ingesting, extracting,
hashing) runs on the service's thread pool, off the event loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from workbench.engine.registry.client import DOCKER_HUB, Credentials, RegistryClient, RegistryRequestError
from workbench.engine.registry.progress import Progress
from workbench.engine.registry.pull import PullJob, Puller, pull_reference
from workbench.engine.registry.push import PushJob, Pusher
from workbench.errors import InvalidArgument, NotFound
from workbench.oci import reference

__all__ = ["PreparedPull", "PreparedPush", "Transfers", "registry_domain"]

_HUB_NAMES = {"", "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


def registry_domain(server_address: str) -> str:
    """`https://index.docker.io/v1/` → `docker.io`; `http://127.0.0.1:5000/` → `127.0.0.1:5000`."""
    text = server_address.strip()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    host = text.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_NAMES else host


class PreparedPull:
    """A pull resolved up to its layers: iterate `events()` (once) to run it, then `aclose()`.

    With `more_tags` (a bare name: every tag) `job` is the first tag's, and the others are
    prepared one after another as the stream reaches them."""

    def __init__(self, puller: Puller, job: PullJob, more_tags: tuple[str, ...] | None = None,
                 platform: str | None = None) -> None:
        self._puller, self.job, self._more, self._platform = puller, job, more_tags, platform

    def events(self) -> AsyncIterator[Progress]:
        if self._more is None:
            return self._puller.run(self.job)
        return self._puller.run_tags(self.job.ref, self._jobs(self._more))

    async def _jobs(self, more: tuple[str, ...]) -> AsyncIterator[PullJob]:
        yield self.job
        repo = self.job.ref.repository
        for tag in more:
            yield await self._puller.prepare(reference.parse(f"{repo}:{tag}"), self.job.client, self._platform)

    async def aclose(self) -> None:
        """Close the registry connections (idempotent; also when `events()` never ran)."""
        await self.job.client.aclose()


class PreparedPush:
    """A push whose local images are resolved: iterate `events()` (once) to run it, then `aclose()`."""

    def __init__(self, pusher: Pusher, job: PushJob, client: RegistryClient) -> None:
        self._pusher, self.job, self._client = pusher, job, client

    def events(self) -> AsyncIterator[Progress]:
        return self._pusher.run(self.job, self._client)

    async def aclose(self) -> None:
        """Close the registry connections (idempotent; also when `events()` never ran)."""
        await self._client.aclose()


class Transfers:
    """Pull, push and login against registries, for one engine.

    Args:
        images: the ImageService (catalogue, content store, snapshots, metadata).
        image_io: the ImageIO (register, LayerIngester).
        insecure: registries (host, host:port or CIDR) reachable over plain HTTP besides loopback.
        workers: threads for ingesting and extracting layers.
    """

    def __init__(self, images: Any, image_io: Any, *, insecure: Iterable[str] = (), workers: int = 16) -> None:
        self.images = images
        self.image_io = image_io
        self.insecure = tuple(insecure)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transfer")
        # httpx logs every request at INFO: the daemon's log would list every blob of every pull
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))

    @functools.cached_property
    def puller(self) -> Puller:
        return Puller(self.images, self.image_io, self.pool)

    @functools.cached_property
    def pusher(self) -> Pusher:
        return Pusher(self.images, self.image_io)

    def client(self, domain: str, credentials: Credentials | None, scopes: Iterable[str] = ()) -> RegistryClient:
        return RegistryClient(domain, credentials, scopes=scopes, insecure=self.insecure)

    async def prepare_pull(self, from_image: str, tag: str | None = None, *, platform: str | None = None,
                           credentials: Credentials | None = None) -> PreparedPull:
        """Resolve what `fromImage`/`tag` names; raise (404, 500, ...) before any progress is sent.

        Refusals read as dockerd's do: the registry's 401 is a 500 (a 401 makes the docker CLI
        prompt for a login on stdin, where dockerd's answer lets it fail), and its 403 (`denied`)
        the 404 "pull access denied ... may require 'docker login'".
        """
        ref = pull_reference(from_image, tag)
        client = self.client(ref.domain, credentials, [f"repository:{ref.path}:pull"])
        try:
            if ref.tag or ref.digest:
                return PreparedPull(self.puller, await self.puller.prepare(ref, client, platform))
            tags = sorted(await client.tags(ref.path))     # a bare name: every tag, as dockerd does
            if not tags:
                raise NotFound(f"repository {ref.familiar_name} has no tags")
            first = await self.puller.prepare(reference.parse(f"{ref.repository}:{tags[0]}"), client, platform)
            return PreparedPull(self.puller, first, tuple(tags[1:]), platform)
        except RegistryRequestError as err:
            await client.aclose()
            if err.status == 401:
                raise RegistryRequestError(err.message, status=500, remote_status=err.remote_status,
                                           code=err.code) from err
            if err.status == 403 or err.code == "DENIED":
                raise NotFound(f"pull access denied for {ref.familiar_name}, repository does not exist or "
                               f"may require 'docker login': {err.message}") from err
            raise
        except BaseException:
            await client.aclose()
            raise

    def prepare_push(self, name: str, tag: str | None = None, *,
                     credentials: Credentials | None = None) -> PreparedPush:
        """Resolve the local images to push; raise 404 for an unknown tag before any progress."""
        job = self.pusher.prepare(name, tag)
        return PreparedPush(self.pusher, job, self.client(job.ref.domain, credentials, job.scopes()))

    async def login(self, server_address: str, credentials: Credentials) -> None:
        """Check credentials against a registry (`GET /v2/` and its challenge); raise 401 if refused."""
        if not credentials.username and not credentials.identity_token:
            raise InvalidArgument("a username is required to log in")
        async with self.client(registry_domain(server_address), credentials) as client:
            await client.ping()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
