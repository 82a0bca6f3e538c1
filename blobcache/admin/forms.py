"""The console's one form: a descriptor an operator writes into a repository's scope."""

from __future__ import annotations

from typing import Any

from django import forms

from blobcache import descriptor as descriptor_rules
from blobcache.descriptor import Descriptor
from blobcache.digest import validate_digest
from blobcache.exceptions import BlobCacheError


class DescriptorForm(forms.Form):
    """Checked by the same rules as the API's PUT, so the console cannot store what the API
    would refuse. The digest is the content's own: the console writes no alias entries."""

    digest = forms.CharField(
        strip=False,
        max_length=200,
        widget=forms.TextInput(attrs={"class": "vTextField", "spellcheck": "false"}),
        help_text="algorithm:hex, for example sha256:… (64 hex digits)",
    )
    size = forms.IntegerField(
        min_value=0,
        max_value=descriptor_rules.SIZE_MAX,
        help_text="The blob's size in bytes.",
    )
    media_type = forms.CharField(
        label="Media type",
        strip=False,
        max_length=descriptor_rules.MEDIA_TYPE_MAX_LENGTH,
        widget=forms.TextInput(attrs={"class": "vTextField", "spellcheck": "false"}),
        help_text="type/subtype, for example application/vnd.oci.image.layer.v1.tar+gzip",
    )

    def clean_digest(self) -> str:
        return _checked(validate_digest, self.cleaned_data["digest"])

    def clean_size(self) -> int:
        return _checked(descriptor_rules.validate_size, self.cleaned_data["size"])

    def clean_media_type(self) -> str:
        return _checked(descriptor_rules.validate_media_type, self.cleaned_data["media_type"])

    def descriptor(self) -> Descriptor:
        data = self.cleaned_data
        return Descriptor(data["digest"], data["size"], data["media_type"])


def _checked(rule: Any, value: Any) -> Any:
    try:
        return rule(value)
    except BlobCacheError as error:
        raise forms.ValidationError(error.message, code=error.code) from None
