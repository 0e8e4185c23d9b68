// A running process's anonymous memory, read without freezing it: the
// pages CRIU would write to pages-*.img, in address order (pre-copy sends
// them as content-addressed blocks before the freeze).
#pragma once

#include <sys/types.h>

#include "common/byte_stream.h"

namespace ferry {

// Writes the process's present, anonymous pages of private mappings into
// `sink`. A process that is gone, or a range that vanished while read, is
// skipped: pre-copy is an optimisation, the final dump is what counts.
// Blocks on /proc reads only.
void readProcessMemory(pid_t pid, ByteSink& sink);

}  // namespace ferry
