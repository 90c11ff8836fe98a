// weir_native: the syscall layer of weir (node-addon-api over libbpf).
// Nothing but native/index.ts loads this module; see that file for the API.
#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>

#include "common.h"

namespace weir {

// ringbuf.cc (declared here rather than in common.h: nothing else calls it).
void InitRingbuf(Napi::Env env, Napi::Object exports);

// libbpf prints warnings to stderr by default. Every failure we care about
// comes back to JS as a BpfError, so only debug output is let through, and
// only when WEIR_LIBBPF_DEBUG is set.
static int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  static const bool debug = getenv("WEIR_LIBBPF_DEBUG") != nullptr;
  if (!debug) return 0;
  return vfprintf(stderr, fmt, args);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<AddonData>(new AddonData());
  libbpf_set_print(LibbpfPrint);
  InitErrors(env, exports);
  InitObjects(env, exports);
  InitMaps(env, exports);
  InitProgs(env, exports);
  InitNetns(env, exports);
  InitAttach(env, exports);
  InitRingbuf(env, exports);
  return exports;
}

}  // namespace weir

static Napi::Object InitWeirNative(Napi::Env env, Napi::Object exports) { return weir::Init(env, exports); }

NODE_API_MODULE(weir_native, InitWeirNative)
