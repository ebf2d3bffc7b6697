"""Where enrolled originals live: the protocol, local and S3 backends, encryption at rest."""

from indexing.image_store.base import ImageNotFound, ImageStore, ImageStoreError, InvalidImageKey
from indexing.image_store.encrypted import EncryptedImageStore, ImageDecryptionError
from indexing.image_store.factory import build_image_store
from indexing.image_store.local import LocalImageStore
from indexing.image_store.s3 import S3ImageStore

__all__ = [
    "EncryptedImageStore",
    "ImageDecryptionError",
    "ImageNotFound",
    "ImageStore",
    "ImageStoreError",
    "InvalidImageKey",
    "LocalImageStore",
    "S3ImageStore",
    "build_image_store",
]
