"""Which storage to open: the registry's own ``storage`` section, or blobcache's settings.

An operator points blobcache at the ``config.yml`` the registry already runs with
(``blobcache_reconcile --registry-config``), or copies its ``storage`` section into
``BLOBCACHE["STORAGE"]`` for the API and the Python function; both are read by
:func:`storage_from_section`, with the registry's parameter names. ``BLOBCACHE["STORAGE_ROOT"]``
stays the shorthand for ``{"filesystem": {"rootdirectory": ...}}``.

A section names exactly one driver beside the registry's non-driver keys (``cache``,
``delete``, ``maintenance``, ``redirect``, ``tag``), as the registry requires. Drivers blobcache
cannot read (``gcs``, ``azure``, ``swift``, ``oss``, ``inmemory``, anything else) are refused by
name: reconciling against the wrong storage would clear entries it backs. Messages name
parameters, never their values, so a secret cannot reach a log.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from blobcache.storage import Storage, StorageUnconfigured

#: Keys of the registry's ``storage`` section that configure the registry, not a driver.
NOT_DRIVERS = frozenset({"cache", "delete", "maintenance", "redirect", "tag"})


def _filesystem(parameters: Mapping[str, Any]) -> Storage:
    from blobcache.storage.filesystem import FilesystemStorage

    # The registry's default root when the section gives none.
    root = parameters.get("rootdirectory") or "/var/lib/registry"
    if not isinstance(root, str | os.PathLike):
        raise StorageUnconfigured("storage.filesystem.rootdirectory must be a path")
    return FilesystemStorage.open(root)


def _s3(parameters: Mapping[str, Any]) -> Storage:
    from blobcache.storage.s3 import S3Storage

    storage = S3Storage.from_parameters(parameters)
    try:
        storage.check()
    except BaseException:
        storage.close()
        raise
    return storage


#: Driver name -> opener taking the driver's parameters and returning checked storage.
DRIVERS: dict[str, Callable[[Mapping[str, Any]], Storage]] = {
    "filesystem": _filesystem,
    "s3": _s3,
}


def driver_of(section: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The driver a ``storage`` section names and its parameters."""
    if not isinstance(section, Mapping):
        raise StorageUnconfigured("the storage configuration must be a mapping")
    drivers = sorted(str(key) for key in section if str(key) not in NOT_DRIVERS)
    if not drivers:
        raise StorageUnconfigured("the storage configuration names no driver")
    if len(drivers) > 1:
        raise StorageUnconfigured(
            f"the storage configuration names several drivers ({', '.join(drivers)}); "
            "the registry uses exactly one"
        )
    name = drivers[0]
    parameters = section[name]
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise StorageUnconfigured(f"the parameters of the storage driver {name!r} are no mapping")
    return name, parameters


def storage_from_section(section: Mapping[str, Any]) -> Storage:
    """Open and check the storage a registry's ``storage`` section describes."""
    name, parameters = driver_of(section)
    opener = DRIVERS.get(name)
    if opener is None:
        supported = " and ".join(sorted(DRIVERS))
        raise StorageUnconfigured(
            f"the storage driver {name!r} is not supported: blobcache reads {supported}"
        )
    return opener(parameters)


def read_registry_config(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The ``storage`` section of a registry's configuration file."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise StorageUnconfigured(
            f"cannot read the registry configuration {path}: {error.strerror or error}"
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        # The problem's position only: YAML's message can quote the line, and so a secret.
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise StorageUnconfigured(
            f"the registry configuration {path} is not valid YAML{where}"
        ) from None
    if not isinstance(document, Mapping) or "storage" not in document:
        raise StorageUnconfigured(f"the registry configuration {path} has no storage section")
    section = document["storage"]
    if not isinstance(section, Mapping):
        raise StorageUnconfigured(f"the storage section of {path} must be a mapping")
    return section


def storage_from_registry_config(path: str | os.PathLike[str]) -> Storage:
    """Open and check the storage the registry's configuration file uses."""
    return storage_from_section(read_registry_config(path))


def open_storage(
    storage: Storage | str | os.PathLike[str] | Mapping[str, Any] | None = None,
) -> Storage:
    """Checked storage: a :class:`Storage` as it is, a path as a filesystem root, a mapping as a
    ``storage`` section, and None as the configured one (:func:`configured_storage`)."""
    if isinstance(storage, Storage):
        return storage
    if isinstance(storage, Mapping):
        return storage_from_section(storage)
    if storage is None:
        return configured_storage()
    from blobcache.storage.filesystem import FilesystemStorage

    return FilesystemStorage.open(storage)


def is_configured() -> bool:
    from blobcache.conf import blobcache_settings

    return bool(blobcache_settings.STORAGE or blobcache_settings.STORAGE_ROOT)


def configured_description() -> str:
    """Where the configured storage is, from the settings alone (nothing is opened, so a page
    can show it cheaply); empty when nothing is configured. Never a credential."""
    from blobcache.conf import blobcache_settings

    section = blobcache_settings.STORAGE
    if not section:
        return str(blobcache_settings.STORAGE_ROOT or "")
    try:
        name, parameters = driver_of(section)
    except StorageUnconfigured as error:
        return error.message
    if name == "filesystem":
        return str(parameters.get("rootdirectory") or "/var/lib/registry")
    if name == "s3":
        root = str(parameters.get("rootdirectory") or "").strip("/")
        where = f"s3://{parameters.get('bucket', '')}/{root}".rstrip("/")
        endpoint = parameters.get("regionendpoint")
        return f"{where} at {endpoint}" if endpoint else where
    return f"{name} (not supported)"


def configured_storage() -> Storage:
    """The storage blobcache's settings name: ``BLOBCACHE["STORAGE"]`` (a registry ``storage``
    section), else ``BLOBCACHE["STORAGE_ROOT"]`` (a filesystem root). Every caller (the API,
    the command, the admin console) resolves it here."""
    from blobcache.conf import blobcache_settings

    section = blobcache_settings.STORAGE
    if section:
        return storage_from_section(section)
    root = blobcache_settings.STORAGE_ROOT
    if root:
        from blobcache.storage.filesystem import FilesystemStorage

        return FilesystemStorage.open(root)
    raise StorageUnconfigured(
        "reconciliation needs BLOBCACHE['STORAGE'] (the registry's storage section) or "
        "BLOBCACHE['STORAGE_ROOT'] (the registry's storage.filesystem.rootdirectory)"
    )
