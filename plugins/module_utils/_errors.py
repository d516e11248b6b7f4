# Private to the smartos.images collection: not a public API.
# The one exception family that crosses from module_utils into a module's main().
from __future__ import annotations


class ImageError(Exception):
    """A failure to report to the user, with the evidence that explains it."""

    def __init__(self, msg, **evidence):
        super().__init__(msg)
        self.msg = msg
        self.evidence = {k: v for k, v in evidence.items() if v is not None}


class InvalidParameter(ImageError):
    """Bad input, found before anything runs."""


class SourceError(ImageError):
    """An image server could not be asked, or answered something unusable."""


class ImageNotFound(SourceError):
    """No source has the image."""


class DownloadError(ImageError):
    """The image file did not arrive whole and as the manifest describes it."""


class CommandError(ImageError):
    """A host command (zfs, zoneadm) failed."""


class ImageInUse(ImageError):
    """An image cannot be removed because datasets depend on it."""


class UnsupportedImage(ImageError):
    """The image is of a kind this collection cannot install (yet)."""


def from_the_source(error):
    """Whether an import failed because of what one source sent (or failed to send): a checksum, size or
    Content-Length error, a download that broke off, a file answer that was an error, or bytes that do not
    decompress (an ImageError naming the source's url). Another source of the same image may do better; a host
    failure (zfs receive, a lock) would fail the same way from any source."""
    if isinstance(error, (DownloadError, SourceError)):
        return True
    return error.__class__ is ImageError and bool(error.evidence.get('url'))   # not a subclass: those say more
