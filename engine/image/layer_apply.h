// Applies one tar layer onto a root file system directory, treating the
// archive as hostile. Image import uses it for rootfs tarballs and for each
// layer of an OCI image, bottom layer first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/bundle/bundle.h"

namespace ferry {

// What members named `.wh.NAME` mean.
enum class Whiteouts {
  // Nothing: they are extracted as ordinary files (a rootfs tarball from
  // `podman export` or `docker export`).
  kAsFiles,
  // OCI layer semantics (image-spec layer.md): `DIR/.wh.NAME` deletes NAME, and
  // `DIR/.wh..wh..opq` deletes everything in DIR, from what earlier layers left
  // in the tree -- never what this layer brings, whatever the member order.
  // The markers themselves are not extracted.
  kApply,
  // Onto a fresh overlayfs upperdir (a container's rootfs diff, restored):
  // markers become what overlayfs itself writes, applied once every other
  // member is, whatever the member order:
  //  * `DIR/.wh.NAME`: a 0:0 character device NAME in DIR (a whiteout). Where
  //    this layer has NAME itself, a directory NAME gets
  //    trusted.overlay.opaque="y" instead (the lower one is hidden, this
  //    layer's kept) and anything else stays as it is (it hides lower's NAME);
  //  * `DIR/.wh..wh..opq`: trusted.overlay.opaque="y" on DIR.
  // A missing DIR is created (0755, owned by the caller), as libarchive does
  // for any member's missing parents. Where DIR is a symlink or a
  // non-directory of this layer, the marker is ignored: in the upperdir that
  // entry already hides everything lower has below it. The markers
  // themselves are not extracted.
  kToOverlay,
};

// What an import may write, counted across calls (an image's layers): the
// apparent size of every member (a sparse file counts at its full size) and
// the archive bytes read, checked against `limits` by checkExpansion
// (bundle.h) as they grow, with `what` naming the input in the error.
struct ExtractBudget {
  BundleLimits limits;
  std::string what = "image";
  uint64_t raw = 0;   // apparent bytes of the members applied so far
  uint64_t wire = 0;  // archive bytes read by the calls so far
};

// Extracts the tar (plain, gzip, zstd, xz or bzip2) read from `archive_fd`,
// from its current offset, onto the directory `root_fd`, and returns its
// number of members. Both fds are borrowed.
//
// Applied: content (sparse members as sparse files), file types, hardlinks,
// owners, modes (set-id bits included), times, xattrs and ACLs. Directory
// times are set from the archive once all of it is applied, also for
// directories that already existed (the root itself is the member "." or
// "./"). Where overlayfs would show an upper layer's entry over a lower one,
// the lower one goes: a symlink standing where a member needs a parent
// directory is removed, and a non-directory member replaces a whole directory
// tree.
//
// Dropped: trusted.overlay.* and user.overlay.* xattrs (they would steer
// overlayfs once the tree is a layer; kToOverlay sets opaque only from
// markers), file flags such as immutable (they would make the tree impossible
// to remove), and security.selinux unless SELinux is enabled on this host
// (libselinux's is_selinux_enabled(), asked once per call): a label means
// nothing to a host that does not enforce it. Nothing is logged per file; the
// caller reports the host's SELinux mode.
//
// Rejected with Error kInvalidInput (context "archive member 'NAME'" where a
// member is at fault):
//  * input that is not a tar archive, or a corrupt one;
//  * member names that are empty, absolute or hold a ".." component;
//  * a non-directory as the archive root;
//  * hardlinks to the root, or to anything that does not already exist
//    beneath root_fd, reached without a symlink;
//  * with kApply or kToOverlay, a whiteout that names no file (".wh.",
//    ".wh..", ".wh...");
//  * with kToOverlay, a root_fd that is not empty;
//  * a member beneath a symlink this same archive made ("symlink, then a
//    file through it"); a symlink an earlier layer left is replaced instead,
//    as overlayfs shows a directory over a lower symlink.
//  * with a budget, a member whose declared size takes the total past
//    max_total_bytes (before any of it is written), or output past the
//    budget's ratio: the errors of checkExpansion.
// Disk trouble (ENOSPC, EDQUOT, EIO, ...) is kPermanent, with its errno.
//
// Guarantees: nothing outside root_fd is written, linked, chmodded or deleted,
// on success or failure, whatever the archive holds; deletions (kApply),
// whiteout devices and opaque xattrs (kToOverlay) go through fds opened
// beneath root_fd, never by path. On failure the tree is left partly
// applied: the caller discards it (image import extracts into a stage).
//
// Blocks until the whole archive is applied, in a helper thread whose cwd is
// the root: libarchive writes relative to the cwd, and the helper unshares
// CLONE_FS first so the cwd, and the umask libarchive sets to 0 around each
// member, stay private to it. The calling thread and the rest of the process
// see neither. Calls on different roots may run concurrently; nothing else
// may modify the tree under root_fd during a call, since the symlink checks
// assume only this call changes it.
// `budget` (may be null: no limit beyond the disk's) is updated as it goes.
size_t applyLayer(int archive_fd, int root_fd, Whiteouts whiteouts,
                  ExtractBudget* budget = nullptr);

}  // namespace ferry
