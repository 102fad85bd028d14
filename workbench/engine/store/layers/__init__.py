"""Layer tars: safe apply onto a directory, and directory (or overlay upper) → OCI layer tar.

Apply (`apply_layer`) reads an *uncompressed* tar stream entry by entry with tarfile in stream mode
and does all path handling itself (tarfile's extract functions are never used):

- Names are cleaned lexically; a leading `/` is stripped (as Docker does) and any name that still
  climbs out (`../x`, `a/../../x`, `/../x`) is rejected.
- Parent directories are resolved component by component, securejoin-style, inside `dest`. A
  symlink that was *already in dest* (flatten mode onto an existing tree) is followed with `dest`
  as the root: absolute targets are taken relative to `dest` and `..` stops at `dest`, so it can
  never lead outside. A symlink *created by the same archive* is never followed: an entry beneath
  it is rejected (bsdtar's and GNU tar's policy; no tar written by walking a tree has such entries).
- Regular files are created with O_EXCL|O_NOFOLLOW after removing whatever was at the path, so a
  final-component symlink is replaced, never written through.
- Hardlink targets must already exist inside dest (earlier in this archive, or in the tree).
- Device nodes are refused unless `allow_devices`; fifos are always allowed.
- `trusted.overlay.*` xattrs in an archive are ignored (they would change how overlayfs reads it).

OCI whiteouts: in mode "overlay" (each layer unpacked into its own snapshot directory, later
stacked as an overlay lowerdir) `.wh.name` becomes a char device 0:0 named `name` and
`.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory; in mode "flatten" (applying onto
an existing tree) they delete `name` / remove everything in the directory that this layer did not
itself put there. Other `.wh..wh.*` entries (aufs metadata) are skipped.

Any bad archive raises `InvalidArgument`; the caller throws the partial directory away.
"""

from workbench.engine.store.layers.apply import (
    OPAQUE,
    OPAQUE_XATTR,
    WHITEOUT_PREFIX,
    ApplyStats,
    Readable,
    apply_layer,
)
from workbench.engine.store.layers.changes import Change, ChangeKind, changes
from workbench.engine.store.layers.tarwrite import diff_to_tar, dir_to_tar

__all__ = ["OPAQUE", "OPAQUE_XATTR", "WHITEOUT_PREFIX", "ApplyStats", "Change", "ChangeKind", "Readable",
           "apply_layer", "changes", "diff_to_tar", "dir_to_tar"]
