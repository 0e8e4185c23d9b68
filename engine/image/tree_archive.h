// Writes a directory tree as a pax tar: a container's rootfs diff (its
// overlayfs upperdir, as an OCI layer with whiteouts) or a plain tree such as
// a named volume. applyLayer (layer_apply.h) is the way back.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/byte_stream.h"
#include "common/fs.h"

namespace ferry {

enum class TreeKind {
  // An overlayfs upperdir: whiteouts and opaque directories become OCI layer
  // markers (image-spec layer.md).
  kOverlayUpper,
  // Any tree, taken as it is.
  kPlain,
};

// One path of the merged view that an upperdir changes.
struct TreeChange {
  char mark;         // 'A' added, 'C' changed (the path exists in lower), 'D' deleted
  std::string path;  // relative to the root, no leading "./"
};

struct TreeArchiveStats {
  uint64_t entries = 0;     // archive members written, markers included
  uint64_t data_bytes = 0;  // file data stored: holes and hardlinked copies not counted
};

// Writes the tree under `root` to `out` as one pax tar (uncompressed; the
// caller's sink compresses) and returns what it wrote. Each file's data is
// read once, straight into the sink; no temporary files.
//
// Members: the root itself as "./", then every entry by name ("etc/",
// "etc/passwd"), sorted byte-wise within each directory, each directory
// before its children. Nothing in the archive depends on the host or the
// time of the call: the same tree gives the same bytes.
//
// Kept: regular files, directories, symlinks, character and block devices,
// fifos; uid/gid as numbers (no user or group names), mode with set-id and
// sticky bits, mtime and atime with nanoseconds, and every xattr
// (security.selinux, security.capability, user.*, trusted.*, POSIX ACLs as
// their system.* xattrs) except trusted.overlay.* and user.overlay.*.
// Converted:
//  * sparse files (found with SEEK_DATA/SEEK_HOLE) become GNU sparse 1.0
//    entries: holes are not stored;
//  * the second and later paths of a non-directory inode become tar hardlink
//    entries to the first path, in member order;
//  * kOverlayUpper only: a 0:0 character device (an overlay whiteout) becomes
//    an empty regular file "DIR/.wh.NAME" (mode 0600, owner and times of the
//    whiteout), and a directory whose trusted.overlay.opaque (or
//    user.overlay.opaque) is "y" is followed at once by an empty
//    "DIR/.wh..wh..opq" member, then its children as usual.
// Skipped: sockets (a copy cannot be bound anyway). Mount points inside the
// tree are descended like any directory: the caller passes a tree without.
//
// Changes: with `lower` non-empty and `changes` non-null, appends in member
// order, for the merged view of `lower` under `root`:
//  * each non-directory of the tree: 'C' if `lower` has anything at that path
//    (reached without symlinks), else 'A';
//  * each directory where `lower` has no directory: 'A' if `lower` has nothing
//    there, 'C' if it has a non-directory;
//  * each whiteout (kOverlayUpper): 'D' at the path it hides;
//  * each path of `lower` hidden by an opaque directory (or by a directory
//    inside one) and not in the tree: 'D' (a directory as one path, its
//    contents not listed).
// With kPlain nothing is a whiteout or opaque, so only 'A' and 'C' appear.
//
// Errors (Error, with context naming the path at fault):
//  * kIncompatible, kOverlayUpper: a name starting with ".wh." (an OCI layer
//    cannot carry it), or a trusted/user.overlay.metacopy or .redirect xattr
//    (the data or name would live in the lower layer: mount without metacopy
//    and redirect_dir);
//  * kRetryable: a file that shrank while being read;
//  * errors of the file system as throwErrno classifies them, and the sink's
//    own errors unchanged.
// On failure `out` has received part of an archive; the caller discards it.
//
// Blocks on reading the tree and on out.write. Nothing else may modify the
// tree during the call (a container's upperdir: stopped or frozen). The tree
// is never written; files and directories are opened with O_NOATIME where
// the caller may (owner or CAP_FOWNER), but readlink still sets symlink
// atimes on a file system that records them. Thread-safe for different sinks.
TreeArchiveStats writeTreeArchive(const fs::path& root, TreeKind kind, ByteSink& out,
                                  const fs::path& lower = {},
                                  std::vector<TreeChange>* changes = nullptr);

}  // namespace ferry
