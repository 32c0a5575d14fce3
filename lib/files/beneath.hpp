#pragma once
// Opening a checked name (file_name.hpp) beneath a root directory, so that no
// symlink — planted inside the root or racing a request — can lead outside
// it. openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
// where the kernel has it (5.6+); otherwise each component is opened with
// O_NOFOLLOW from the one before, which is as strict since a checked name
// has no "..", no empty and no absolute components.
//
// Errors come back as errno values: ELOOP (a symlink on the way, or the file
// itself is one), EXDEV (the kernel saw an escape), ENOENT, ENOTDIR, ...
// Blocking: for the worker pool only.

#include <sys/types.h>

#include <string>

#include "base/unique_fd.hpp"
#include "files/file_name.hpp"

namespace framed::files {

// The directory that holds the name's leaf, as an O_PATH descriptor; with
// `create`, missing directories are made (mode 0755) on the way.
base::UniqueFd open_parent_beneath(int root_fd, const CheckedName& name, bool create, int& error);

// The file itself, opened with `flags` (O_CLOEXEC and O_NOFOLLOW are added).
base::UniqueFd open_beneath(int root_fd, const CheckedName& name, int flags, int& error);

// The name as one relative path ("a/b/c").
std::string joined(const CheckedName& name);

}  // namespace framed::files
