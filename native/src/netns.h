// Running a piece of work inside another network namespace.
#pragma once

#include <functional>
#include <string>

#include "common.h"

namespace weir {

// Runs fn on a dedicated short-lived std::thread that first setns()es into
// the network namespace at `path` (/run/netns/NAME, /proc/PID/ns/net), and
// joins it before returning. An empty path runs fn on the calling thread.
// fn must not touch JS (no Napi calls): it reports failure via NativeError.
NativeError RunInNetns(const std::string& path, const std::function<NativeError()>& fn);

}  // namespace weir
