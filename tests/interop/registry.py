"""A real distribution registry on loopback: its launcher, a client speaking its HTTP API, and
images to push. The fixtures that start one per test are in ``conftest.py``.

blobcache must stay byte-compatible with the registry, so the interop tests run Debian's
``docker-registry`` (distribution 2.8) itself instead of imitating it.
``RegistryServer.garbage_collect`` runs the offline sweep on the same configuration, ``restart``
brings the server back on the same port, ``storage_root`` is the folder a reconciliation walks,
and ``NotificationEndpoint`` points the registry's notifications at a receiver.

The launcher stays in the test suite rather than in the app: it needs mirakuru and port-for,
which are test dependencies, and it writes a configuration only a test would want.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import port_for
import yaml
from mirakuru import HTTPExecutor
from mirakuru.exceptions import AlreadyRunning, ExecutorError

OCTET_STREAM = "application/octet-stream"
REGISTRY_BINARY_VARIABLE = "BLOBCACHE_DOCKER_REGISTRY"
INSTALL_HINT = (
    "install Debian's registry with `apt-get install docker-registry` "
    f"(or set {REGISTRY_BINARY_VARIABLE} to a distribution 2.8 `registry` binary)"
)
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
GARBAGE_COLLECT_TIMEOUT = 120.0

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def find_registry_binary() -> str | None:
    """``BLOBCACHE_DOCKER_REGISTRY``, else ``docker-registry`` on PATH (Debian's name for it)."""
    explicit = os.environ.get(REGISTRY_BINARY_VARIABLE)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("docker-registry")


def registry_version(binary: str) -> str:
    """The version the binary reports, such as ``2.8.2`` for ``... distribution 2.8.2+ds1``."""
    result = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    found = re.search(r"\b(\d+\.\d+\.\d+)", result.stdout + result.stderr)
    return found.group(1) if found else "unknown"


def registry_environment(environment: Mapping[str, str] | None = None) -> dict[str, str]:
    # REGISTRY_* variables override the configuration file; a stray one in the caller's
    # environment must not send the test registry to another storage folder or Redis. The
    # registry's AWS SDK panics at start ("unable to load custom CA bundle") when AWS_CA_BUNDLE
    # is set and its s3 endpoint is plain HTTP, as the test server's is.
    source = os.environ if environment is None else environment
    return {
        name: value
        for name, value in source.items()
        if not name.startswith("REGISTRY_") and name != "AWS_CA_BUNDLE"
    }


@dataclass(frozen=True)
class NotificationEndpoint:
    """One entry of the registry's ``notifications.endpoints`` list (the 2.8 field names)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    name: str = "blobcache"
    timeout: str = "1s"
    threshold: int = 3
    backoff: str = "1s"
    #: Events whose target has one of these media types are not sent. Blob and manifest
    #: ``delete`` events carry no media type, so they always get through. (2.8.2 also reads
    #: no ``ignore.actions``: a configured one is silently dropped and pulls are still sent.)
    ignored_media_types: Sequence[str] = ()

    def as_config(self) -> dict[str, Any]:
        endpoint: dict[str, Any] = {
            "name": self.name,
            "url": self.url,
            # The registry reads headers as Go's http.Header: every value is a list.
            "headers": {header: [value] for header, value in self.headers.items()},
            "timeout": self.timeout,
            "threshold": self.threshold,
            "backoff": self.backoff,
        }
        if self.ignored_media_types:
            endpoint["ignoredmediatypes"] = list(self.ignored_media_types)
        return endpoint


def registry_config(
    *,
    storage_root: Path,
    http_port: int,
    redis_host: str,
    redis_port: int,
    notifications: Sequence[NotificationEndpoint] = (),
    driver: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A distribution 2.8 configuration with the Redis blob descriptor cache on the test Redis.

    ``driver`` replaces the filesystem driver, e.g. ``{"s3": {...}}``.
    """
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
        "storage": {
            **(driver or {"filesystem": {"rootdirectory": str(storage_root)}}),
            "cache": {"blobdescriptor": "redis"},
            "delete": {"enabled": True},
            # Nothing may change storage behind a test's back, and blobs are served directly.
            "maintenance": {"uploadpurging": {"enabled": False}},
            "redirect": {"disable": True},
        },
        "redis": {
            "addr": f"{redis_host}:{redis_port}",
            "db": 0,
            # Without timeouts a stalled Redis hangs every registry request until it resumes.
            "dialtimeout": "1s",
            "readtimeout": "1s",
            "writetimeout": "1s",
            # redigo closes every connection after use when maxidle is 0, the default.
            "pool": {"maxidle": 4, "maxactive": 16, "idletimeout": "60s"},
        },
        "http": {
            "addr": f"127.0.0.1:{http_port}",
            # A fixed secret silences the start-up warning about a generated one.
            "secret": "blobcache-interop-tests",
        },
        "health": {"storagedriver": {"enabled": False}},
    }
    if notifications:
        config["notifications"] = {
            "endpoints": [endpoint.as_config() for endpoint in notifications]
        }
    return config


@dataclass(frozen=True)
class RegistryResponse:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    #: False when the registry closed the connection before sending Content-Length bytes,
    #: which is how 2.8 serves a blob whose cached descriptor outlived its data (after GC).
    complete: bool = True

    def json(self) -> Any:
        return json.loads(self.body)

    def describe(self) -> str:
        return f"{self.status} {self.body[:500]!r}"


class RegistryError(AssertionError):
    """The registry refused a step that a test needs to succeed (a push or an upload)."""


def _expect(response: RegistryResponse, status: int, what: str) -> RegistryResponse:
    if response.status != status:
        raise RegistryError(f"{what}: expected {status}, got {response.describe()}")
    return response


def _with_query(location: str, **parameters: str) -> str:
    # The upload Location already carries the registry's `_state` query; keep it and add ours.
    parts = urlsplit(location)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(parameters.items())
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


@dataclass(frozen=True)
class Image:
    """A one-layer image whose bytes, and so digests, depend only on ``text``."""

    config: bytes
    layers: tuple[bytes, ...]
    oci: bool = False

    @property
    def config_digest(self) -> str:
        return digest_of(self.config)

    @property
    def layer_digests(self) -> tuple[str, ...]:
        return tuple(digest_of(layer) for layer in self.layers)

    @property
    def manifest_media_type(self) -> str:
        return OCI_MANIFEST if self.oci else DOCKER_MANIFEST

    @cached_property
    def manifest(self) -> bytes:
        layer_type = OCI_LAYER if self.oci else DOCKER_LAYER
        document: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.manifest_media_type}
        document["config"] = {
            "mediaType": OCI_CONFIG if self.oci else DOCKER_CONFIG,
            "size": len(self.config),
            "digest": self.config_digest,
        }
        document["layers"] = [
            {"mediaType": layer_type, "size": len(layer), "digest": digest_of(layer)}
            for layer in self.layers
        ]
        return json.dumps(document, indent=3).encode()

    @property
    def manifest_digest(self) -> str:
        return digest_of(self.manifest)


def make_image(text: str, *, oci: bool = False) -> Image:
    """A real image: a gzipped tar holding one file, and a config naming its diff id."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        content = text.encode()
        member = tarfile.TarInfo("hello.txt")
        member.size = len(content)
        member.mtime = 0
        tar.addfile(member, io.BytesIO(content))
    layer_tar = archive.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(layer_tar)]},
        },
        sort_keys=True,
    ).encode()
    return Image(config=config, layers=(layer,), oci=oci)


class RegistryClient:
    """The registry v2 HTTP API, one connection per request, with the standard library only."""

    def __init__(self, host: str, port: int, timeout: float = REQUEST_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> RegistryResponse:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request(method, target, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            try:
                return RegistryResponse(response.status, response.headers, response.read())
            except http.client.IncompleteRead as truncated:
                return RegistryResponse(
                    response.status, response.headers, truncated.partial, complete=False
                )
        finally:
            connection.close()

    # Blobs -----------------------------------------------------------------------------

    def push_blob(self, repository: str, data: bytes, as_digest: str | None = None) -> str:
        """Upload ``data`` the way docker does: open a session, then commit it in one PUT.

        The single-request ``POST ...?digest=`` upload is not used: 2.8.2 ignores its body and
        only opens a session (answering 202). ``as_digest`` commits under another
        algorithm's digest; the registry still answers (and stores) the sha256 one.
        """
        digest = digest_of(data)
        opened = _expect(
            self.request("POST", f"/v2/{repository}/blobs/uploads/"),
            202,
            f"opening an upload in {repository}",
        )
        committed = _expect(
            self.request(
                "PUT",
                _with_query(opened.headers["Location"], digest=as_digest or digest),
                body=data,
                headers={"Content-Type": OCTET_STREAM, "Content-Length": str(len(data))},
            ),
            201,
            f"committing {digest} in {repository}",
        )
        if committed.headers["Docker-Content-Digest"] != digest:
            raise RegistryError(f"the registry stored {committed.headers} for {digest}")
        return digest

    def mount_blob(self, repository: str, digest: str, source: str) -> RegistryResponse:
        """Cross-repository mount; 201 when ``source`` holds the blob, 202 (an upload) if not."""
        query = urlencode({"mount": digest, "from": source})
        return self.request("POST", f"/v2/{repository}/blobs/uploads/?{query}")

    def head_blob(self, repository: str, digest: str) -> RegistryResponse:
        return self.request("HEAD", f"/v2/{repository}/blobs/{digest}")

    def get_blob(self, repository: str, digest: str) -> RegistryResponse:
        return self.request("GET", f"/v2/{repository}/blobs/{digest}")

    def delete_blob(self, repository: str, digest: str) -> RegistryResponse:
        return self.request("DELETE", f"/v2/{repository}/blobs/{digest}")

    # Manifests and images --------------------------------------------------------------

    def push_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        response = _expect(
            self.request(
                "PUT",
                f"/v2/{repository}/manifests/{reference}",
                body=body,
                headers={"Content-Type": media_type},
            ),
            201,
            f"pushing manifest {reference} to {repository}",
        )
        return response.headers["Docker-Content-Digest"]

    def head_manifest(
        self, repository: str, reference: str, accept: str = DOCKER_MANIFEST
    ) -> RegistryResponse:
        return self.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", headers=_accept(accept)
        )

    def get_manifest(
        self, repository: str, reference: str, accept: str = DOCKER_MANIFEST
    ) -> RegistryResponse:
        return self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", headers=_accept(accept)
        )

    def delete_manifest(self, repository: str, digest: str) -> RegistryResponse:
        return self.request("DELETE", f"/v2/{repository}/manifests/{digest}")

    def push_image(self, repository: str, tag: str, image: Image) -> str:
        """Push the config, the layers and the manifest; return the manifest digest."""
        for blob in (image.config, *image.layers):
            self.push_blob(repository, blob)
        digest = self.push_manifest(repository, tag, image.manifest, image.manifest_media_type)
        if digest != image.manifest_digest:
            raise RegistryError(f"manifest stored as {digest}, expected {image.manifest_digest}")
        return digest

    def pull_image(
        self, repository: str, reference: str, accept: str = DOCKER_MANIFEST
    ) -> tuple[RegistryResponse, dict[str, RegistryResponse]]:
        """GET the manifest, then every blob it names; the caller checks statuses and bytes."""
        manifest = _expect(
            self.get_manifest(repository, reference, accept),
            200,
            f"pulling {repository}:{reference}",
        )
        document = manifest.json()
        digests = [document["config"]["digest"]] + [layer["digest"] for layer in document["layers"]]
        return manifest, {digest: self.get_blob(repository, digest) for digest in digests}


def assert_pulls_every_byte(client: RegistryClient, repository: str, image: Image) -> None:
    """The image's manifest and every blob it names come back whole (200, all the bytes)."""
    manifest, blobs = client.pull_image(repository, "latest", accept=image.manifest_media_type)
    assert (manifest.status, manifest.body, manifest.complete) == (200, image.manifest, True)
    expected = {image.config_digest: image.config, image.layer_digests[0]: image.layers[0]}
    assert {digest: (got.status, got.body, got.complete) for digest, got in blobs.items()} == {
        digest: (200, data, True) for digest, data in expected.items()
    }



def push_healthy_images(
    client: RegistryClient, first_repository: str, second_repository: str, label: str = ""
) -> tuple[Image, Image]:
    """A docker image in the first repository and an OCI one in the second, which also mounts
    the first one's layer and reads it (the read fills its repository hash); both pull whole."""
    first = make_image(f"a healthy image{label}\n")
    second = make_image(f"another healthy image{label}\n", oci=True)
    client.push_image(first_repository, "latest", first)
    client.push_image(second_repository, "latest", second)
    layer = first.layer_digests[0]
    assert client.mount_blob(second_repository, layer, source=first_repository).status == 201
    assert client.head_blob(second_repository, layer).status == 200
    assert_pulls_every_byte(client, first_repository, first)
    assert_pulls_every_byte(client, second_repository, second)
    return first, second

def _accept(media_type: str) -> dict[str, str]:
    return {"Accept": media_type}


class _RegistryExecutor(HTTPExecutor):
    @property
    def envvars(self) -> dict[str, str]:
        return registry_environment(super().envvars)


class RegistryServer:
    """One ``docker-registry serve`` process with its own storage folder and configuration."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        redis_host: str,
        redis_port: int,
        notifications: Sequence[NotificationEndpoint] = (),
        driver: Mapping[str, Any] | None = None,
    ) -> None:
        self.binary = binary
        self.driver = driver
        self.workdir = workdir
        self.storage_root = workdir / "storage"
        self.config_path = workdir / "registry.yml"
        self.log_path = workdir / "registry.log"
        self.redis_host = redis_host
        self.redis_port = redis_port
        self.notifications = tuple(notifications)
        self.port: int | None = None
        self._executor: _RegistryExecutor | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._require_port()}"

    @property
    def client(self) -> RegistryClient:
        return RegistryClient("127.0.0.1", self._require_port())

    @property
    def running(self) -> bool:
        return self._executor is not None and self._executor.running()

    def _require_port(self) -> int:
        if self.port is None:
            raise RuntimeError("the registry has not been started")
        return self.port

    def write_config(self) -> dict[str, Any]:
        config = registry_config(
            storage_root=self.storage_root,
            http_port=self._require_port(),
            redis_host=self.redis_host,
            redis_port=self.redis_port,
            notifications=self.notifications,
            driver=self.driver,
        )
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return config

    def start(self, attempts: int = 3) -> None:
        """Start on a free loopback port; later starts (``restart``) keep the same port."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_root.mkdir(exist_ok=True)
        if self.port is not None:
            self._launch()
            return
        for attempt in range(attempts):
            self.port = port_for.select_random()
            self.write_config()
            try:
                self._launch()
                return
            except ExecutorError as error:
                # Another process took the port between select_random() and the bind.
                taken = isinstance(error, AlreadyRunning) or (
                    "address already in use" in self.log_text()
                )
                if attempt == attempts - 1 or not taken:
                    raise

    def _launch(self) -> None:
        self._log = self.log_path.open("ab")
        self._executor = _RegistryExecutor(
            [self.binary, "serve", str(self.config_path)],
            f"{self.url}/v2/",
            status=200,
            method="GET",
            timeout=START_TIMEOUT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._executor.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.stop()
            self._executor = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def garbage_collect(
        self, *, delete_untagged: bool = False, dry_run: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the offline sweep on this registry's configuration and storage."""
        command = [self.binary, "garbage-collect"]
        if delete_untagged:
            command.append("--delete-untagged")
        if dry_run:
            command.append("--dry-run")
        command.append(str(self.config_path))
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=GARBAGE_COLLECT_TIMEOUT,
            env=registry_environment(),
            check=False,
        )
        if check and result.returncode != 0:
            raise RegistryError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")


RegistryFactory = Callable[..., RegistryServer]
