#pragma once

#include <sys/types.h>

namespace syncmesh::benchmarks {

/// CPU seconds (user + system, all threads) process `pid` has used so far,
/// from /proc/PID/stat; 0 if it cannot be read.
double process_cpu_seconds(pid_t pid);

/// The peak resident set size of process `pid` in MiB (VmHWM in
/// /proc/PID/status); 0 if it cannot be read.
double process_peak_rss_mib(pid_t pid);

} // namespace syncmesh::benchmarks
