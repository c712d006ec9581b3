"""Canary files: decoys the agent places at the root of each watched share, and nothing else writes.

The default name, ".dcguard-canary.docx", is hidden from casual listings,
says what it is to an administrator who finds it, and is a real (tiny) Word
document, so ransomware that picks documents picks it, and a backup or a
restore drill sees an ordinary file that never changes. The file belongs to
the owner of the directory it is in (a share user's encryption reaches it)
and is never rewritten by the agent once it exists: its content at the
first start stays. Turning canaries off ([security.ransomware] canary =
false) leaves existing ones in place; delete them by hand if wanted.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import posixpath
import zipfile

__all__ = ["DEFAULT_NAME", "canary_bytes", "place"]

log = logging.getLogger(__name__)

DEFAULT_NAME = ".dcguard-canary.docx"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_DOCUMENT = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    "<w:body><w:p><w:r><w:t>dcguard canary: this file is watched; any change to it "
    "raises a ransomware alert. Leave it in place.</w:t></w:r></w:p></w:body></w:document>"
)


def canary_bytes() -> bytes:
    """A small valid .docx (a ZIP holding the two parts Word needs)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("word/document.xml", _DOCUMENT)
    return buffer.getvalue()


def place(directory: str, name: str) -> str | None:
    """Make sure directory/name exists (created if absent); its path, or None if it cannot be."""
    path = posixpath.join(directory, name)
    try:
        st_dir = os.lstat(directory)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        return path if posixpath.isfile(path) and not posixpath.islink(path) else None
    except OSError as exc:
        # Under the shipped unit the file system is read-only to the agent: one line
        # saying how to have canaries, and the watcher goes on without this one.
        log.warning(
            "ransomware: no canary in %s: %s (allow it with ReadWritePaths=%s in a drop-in "
            "of the agent's unit, see docs/ransomware.md, or set canary = false)",
            directory,
            exc.strerror or exc,
            directory,
        )
        return None
    try:
        os.write(fd, canary_bytes())
        os.fchmod(fd, 0o644)  # not the agent's umask (0077 under its unit): a plain document
        # The share's owner, so a share user's encryption reaches it (needs root or CAP_CHOWN).
        with contextlib.suppress(PermissionError):
            os.fchown(fd, st_dir.st_uid, st_dir.st_gid)
    finally:
        os.close(fd)
    return path
