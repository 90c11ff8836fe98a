// Shared helpers for the weir native addon: argument validation and the
// error type every native failure is reported through.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace weir {

// A failure captured off the JS thread (worker pool or netns thread) and
// turned into a BpfError once we are back on the JS thread.
struct NativeError {
  int err = 0;             // positive errno; 0 means "no error"
  std::string syscall;     // libbpf / libc function that failed
  std::string context;     // human context: "map foo (fd 12)", "ifindex 3"...
  std::string log;         // verifier / BTF log, if any
  std::string message;     // full message override (empty: built from the rest)
  bool ok() const { return err == 0; }
};

// errno -> "ENOENT" (strerrorname_np), with the kernel-internal ones
// (ENOTSUPP 524 ...) named as the kernel names them.
std::string ErrnoName(int err);
// strerror that also knows the kernel-internal errnos.
std::string ErrnoText(int err);

// Builds a BpfError (the JS class registered by native/index.ts) or, if
// none was registered, a plain Error with the same properties.
Napi::Value MakeBpfError(Napi::Env env, const NativeError& e);
[[noreturn]] void ThrowBpfError(Napi::Env env, const NativeError& e);
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall,
                             const std::string& context);
// Standard message "<context>: <strerror> (<CODE>)".
std::string FormatMessage(const NativeError& e);

[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg);

// Argument helpers; each throws a TypeError naming the argument.
int32_t ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name,
               int64_t min, int64_t max);
uint32_t OptU32(const Napi::CallbackInfo& info, size_t i, const char* name,
                uint32_t def);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string OptString(const Napi::CallbackInfo& info, size_t i);
bool OptBool(const Napi::CallbackInfo& info, size_t i, bool def);

struct Bytes {
  const uint8_t* data = nullptr;
  size_t len = 0;
  bool present = false;
};
// A Uint8Array (Buffer) argument; optional ones accept undefined/null.
Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name);
Bytes OptBytes(const Napi::CallbackInfo& info, size_t i, const char* name);

// Object-property helpers for option bags.
uint32_t PropU32(Napi::Object o, const char* key, uint32_t def);
int64_t PropInt(Napi::Object o, const char* key, int64_t def, int64_t min, int64_t max);
std::string PropString(Napi::Object o, const char* key, const std::string& def);
Bytes PropBytes(Napi::Object o, const char* key);

// Which kind of BPF object an fd refers to ("map", "prog", "btf", "link",
// "other"); returns -errno on failure.
int FdKindOf(int fd, std::string* kind);

Napi::Buffer<uint8_t> CopyBuffer(Napi::Env env, const void* data, size_t len);

// Module parts register their functions here.
void InitErrors(Napi::Env env, Napi::Object exports);
void InitObjects(Napi::Env env, Napi::Object exports);
void InitMaps(Napi::Env env, Napi::Object exports);
void InitProgs(Napi::Env env, Napi::Object exports);
void InitNetns(Napi::Env env, Napi::Object exports);
void InitAttach(Napi::Env env, Napi::Object exports);

// Per-environment state (the addon may be loaded by several worker threads).
struct AddonData {
  Napi::FunctionReference errorCtor;
  Napi::FunctionReference mapCtor;
};
AddonData* Data(Napi::Env env);

}  // namespace weir
