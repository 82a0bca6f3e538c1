"""The registry's filesystem storage read directly: the root check, the paths of the registry 2.8
layout, links (alias links included) and the errors that must never read as "absent".

No Redis here: reconciliation against the same trees is in test_reconcile.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from blobcache.exceptions import BlobCacheError
from blobcache.storage import RegistryStorage, StorageInvalid, StorageUnavailable
from tests.helpers.entries import D1, D2, digest
from tests.helpers.storage_tree import APP, StorageTree


@pytest.fixture()
def storage(tree: StorageTree) -> RegistryStorage:
    return RegistryStorage.open(tree.root)


class TestOpen:
    def test_a_registry_root_opens(self, tree: StorageTree) -> None:
        storage = RegistryStorage.open(str(tree.root))
        assert storage.root == tree.root
        assert storage.v2 == tree.root / "docker" / "registry" / "v2"

    @pytest.mark.parametrize(
        ("shape", "message"),
        [
            ("", "the storage root must not be empty"),
            ("missing", "the storage root {root} does not exist"),
            ("file", "the storage root {root} is not a directory"),
            (
                "empty",
                "{root} has no docker/registry/v2 folder: give the registry's "
                "storage.filesystem.rootdirectory (a registry creates that folder on its first "
                "push)",
            ),
            (
                "v2 is a file",
                "{root} has no docker/registry/v2 folder: give the registry's "
                "storage.filesystem.rootdirectory (a registry creates that folder on its first "
                "push)",
            ),
        ],
    )
    def test_anything_else_is_refused_with_what_to_give(
        self, tmp_path: Path, shape: str, message: str
    ) -> None:
        root = tmp_path / shape if shape else Path("")
        if shape == "file":
            root.write_text("x")
        elif shape == "empty":
            root.mkdir()
        elif shape == "v2 is a file":
            (root / "docker" / "registry").mkdir(parents=True)
            (root / "docker" / "registry" / "v2").write_text("x")
        with pytest.raises(StorageInvalid) as caught:
            RegistryStorage.open("" if not shape else root)
        assert str(caught.value) == message.format(root=root)
        assert caught.value.code == "STORAGE_INVALID"
        assert isinstance(caught.value, BlobCacheError)

    def test_an_unreadable_root_is_unavailable_not_invalid(self, tmp_path: Path) -> None:
        loop = tmp_path / "loop"
        os.symlink(loop, loop)
        with pytest.raises(StorageUnavailable) as caught:
            RegistryStorage.open(loop)
        assert str(caught.value).startswith(f"cannot read {loop}: ")
        assert caught.value.code == "STORAGE_UNAVAILABLE"


class TestPaths:
    def test_the_registry_layout(self, storage: RegistryStorage) -> None:
        v2 = str(storage.v2)
        hex_part = D1.partition(":")[2]
        assert storage.blob_data_path(D1) == f"{v2}/blobs/sha256/{hex_part[:2]}/{hex_part}/data"
        assert storage.layer_link_path("library/alpine", D1) == (
            f"{v2}/repositories/library/alpine/_layers/sha256/{hex_part}/link"
        )
        assert storage.revision_link_path("library/alpine", D1) == (
            f"{v2}/repositories/library/alpine/_manifests/revisions/sha256/{hex_part}/link"
        )

    @pytest.mark.parametrize("name", ["../etc", "a/../../b", "a//b", "a/./b", "/a", "a/"])
    def test_a_repository_path_never_leaves_the_tree(
        self, storage: RegistryStorage, name: str
    ) -> None:
        with pytest.raises(ValueError, match="cannot be a repository folder"):
            storage.repository_path(name)


class TestQuestions:
    def test_blob_data(self, tree: StorageTree, storage: RegistryStorage) -> None:
        tree.blob(D1)
        assert storage.has_blob_data(D1) is True
        assert storage.has_blob_data(D2) is False

    def test_layer_and_revision_links(self, tree: StorageTree, storage: RegistryStorage) -> None:
        tree.layer(APP, D1)
        tree.revision(APP, D2)
        assert (storage.linked_blob(APP, D1), storage.links(APP, D1)) == (D1, True)
        assert (storage.linked_blob(APP, D2), storage.links(APP, D2)) == (D2, True)
        unlinked = digest(3)
        assert (storage.linked_blob(APP, unlinked), storage.links(APP, unlinked)) == (None, False)
        assert storage.linked_blob("team/other", D1) is None

    def test_a_deleted_link_keeps_its_folder_and_is_unlinked(
        self, tree: StorageTree, storage: RegistryStorage
    ) -> None:
        # A registry blob DELETE removes the link file only.
        tree.layer(APP, D1).unlink()
        assert storage.linked_blob(APP, D1) is None

    def test_an_alias_link_names_its_canonical_blob(
        self, tree: StorageTree, storage: RegistryStorage
    ) -> None:
        alias = digest(1, "sha512")
        tree.alias(APP, alias, D1)
        assert storage.linked_blob(APP, alias) == D1
        assert storage.links(APP, alias) is True

    @pytest.mark.parametrize("content", ["not a digest", "", "sha256:" + "A" * 64, "x" * 500])
    def test_a_link_whose_content_is_no_digest_stands_for_its_own_digest(
        self, tree: StorageTree, storage: RegistryStorage, content: str
    ) -> None:
        tree.layer(APP, D1).write_text(content)
        assert storage.linked_blob(APP, D1) == D1

    def test_surrounding_whitespace_in_a_link_is_ignored(
        self, tree: StorageTree, storage: RegistryStorage
    ) -> None:
        tree.layer(APP, digest(5, "sha384")).write_text(f"  {D2}\n")
        assert storage.linked_blob(APP, digest(5, "sha384")) == D2

    def test_an_unreadable_path_is_unavailable_never_absent(
        self, tree: StorageTree, storage: RegistryStorage
    ) -> None:
        # A symlink loop stands for any error other than "no such file": permissions, I/O.
        loop = tree.v2 / "blobs" / "sha256"
        loop.parent.mkdir(parents=True)
        os.symlink(loop, loop)
        data_path = storage.blob_data_path(D1)
        with pytest.raises(StorageUnavailable, match=re.escape(f"cannot read {data_path}: ")):
            storage.has_blob_data(D1)
        link_folder = tree.v2 / "repositories" / APP / "_layers"
        link_folder.parent.mkdir(parents=True)
        os.symlink(link_folder, link_folder)
        with pytest.raises(
            StorageUnavailable, match=re.escape(f"cannot read {storage.layer_link_path(APP, D1)}: ")
        ):
            storage.linked_blob(APP, D1)

    def test_a_file_on_the_way_reads_as_absent(
        self, tree: StorageTree, storage: RegistryStorage
    ) -> None:
        # ENOTDIR: what stands where a folder should be is not a blob the registry stores.
        hex_part = D1.partition(":")[2]
        shard = tree.v2 / "blobs" / "sha256" / hex_part[:2]
        shard.parent.mkdir(parents=True)
        shard.write_text("x")
        assert storage.has_blob_data(D1) is False
