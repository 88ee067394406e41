"""Encrypted blob storage (transitional: the module became a package)."""

from chalicelib.services.blobs.service import *  # noqa: F403
from chalicelib.services.blobs.service import (
    _BLOB_ID_LABEL as _BLOB_ID_LABEL,
)
from chalicelib.services.blobs.service import (
    _derived_blob_id as _derived_blob_id,
)
from chalicelib.services.blobs.service import (
    _random_blob_id as _random_blob_id,
)
