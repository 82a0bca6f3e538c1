"""Signals sent after a successful write or clear, so a portal can audit cache changes."""

from django.dispatch import Signal

#: Sent after a descriptor was written. Arguments: ``digest``, ``descriptor``, ``repository``
#: (``None`` for the global service).
descriptor_set = Signal()

#: Sent after a descriptor was cleared. Arguments: ``digest``, ``repository`` (``None`` for global).
descriptor_cleared = Signal()

#: Sent after a whole repository scope was cleared. Arguments: ``repository``, ``cleared``.
repository_cleared = Signal()
