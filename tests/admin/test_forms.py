"""The console's descriptor form applies the API's rules, field by field."""

from __future__ import annotations

import pytest

from blobcache import Descriptor
from blobcache.admin.forms import DescriptorForm

D1 = "sha256:" + "1" * 64
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def form(**changes: object) -> DescriptorForm:
    return DescriptorForm({"digest": D1, "size": "42", "media_type": LAYER, **changes})


def test_a_valid_form_gives_the_descriptor() -> None:
    valid = form()
    assert valid.is_valid(), valid.errors
    assert valid.descriptor() == Descriptor(D1, 42, LAYER)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("digest", "sha256:" + "1" * 63, "DIGEST_INVALID"),
        ("digest", "SHA256:" + "1" * 64, "DIGEST_INVALID"),
        ("digest", f" {D1}", "DIGEST_INVALID"),  # not stripped: the API does not strip either
        ("digest", "", "required"),
        ("size", "-1", "min_value"),
        ("size", str(2**63), "max_value"),
        ("size", "4k", "invalid"),
        ("media_type", "text", "DESCRIPTOR_INVALID"),
        ("media_type", "text/plain; charset=utf-8", "DESCRIPTOR_INVALID"),
        ("media_type", "a/" + "b" * 254, "max_length"),
    ],
)
def test_each_rule_names_its_field(field: str, value: str, code: str) -> None:
    invalid = form(**{field: value})
    assert not invalid.is_valid()
    assert list(invalid.errors) == [field]
    assert [error.code for error in invalid.errors.as_data()[field]] == [code]
