// Errors: every native failure becomes a BpfError carrying errno, its name,
// the failing syscall / libbpf function, and (for loads) the kernel's log.
#include <cerrno>
#include <cstring>

#include "common.h"

namespace weir {

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

std::string ErrnoName(int err) {
  switch (err) {
    // Kernel-internal errnos (include/linux/errno.h) that leak to user space
    // through bpf(2), and which glibc does not name.
    case 512: return "ERESTARTSYS";
    case 524: return "ENOTSUPP";
    case 525: return "ETOOSMALL";
    default: break;
  }
  const char* n = strerrorname_np(err);
  if (n) return n;
  return "E" + std::to_string(err);
}

std::string ErrnoText(int err) {
  switch (err) {
    case 524: return "Operation not supported by this object";
    case 525: return "Buffer or request is too small";
    default: break;
  }
  return std::strerror(err);
}

std::string FormatMessage(const NativeError& e) {
  if (!e.message.empty()) return e.message;
  std::string m = e.context.empty() ? e.syscall : e.context;
  m += ": " + ErrnoText(e.err) + " (" + ErrnoName(e.err) + ")";
  return m;
}

Napi::Value MakeBpfError(Napi::Env env, const NativeError& e) {
  std::string msg = FormatMessage(e);
  Napi::Object props = Napi::Object::New(env);
  props.Set("errno", Napi::Number::New(env, e.err));
  props.Set("code", Napi::String::New(env, ErrnoName(e.err)));
  props.Set("syscall", Napi::String::New(env, e.syscall));
  if (!e.log.empty()) props.Set("log", Napi::String::New(env, e.log));
  AddonData* d = Data(env);
  if (d && !d->errorCtor.IsEmpty()) {
    return d->errorCtor.New({Napi::String::New(env, msg), props});
  }
  Napi::Error err = Napi::Error::New(env, msg);
  Napi::Object o = err.Value();
  for (const char* k : {"errno", "code", "syscall", "log"}) {
    if (props.Has(k)) o.Set(k, props.Get(k));
  }
  return o;
}

void ThrowBpfError(Napi::Env env, const NativeError& e) {
  throw Napi::Error(env, MakeBpfError(env, e));
}

void ThrowErrno(Napi::Env env, int err, const std::string& syscall,
                const std::string& context) {
  NativeError e;
  e.err = err;
  e.syscall = syscall;
  e.context = context;
  ThrowBpfError(env, e);
}

void ThrowType(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}

void ThrowRange(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

// setErrorClass(ctor): ctor is called as `new ctor(message, props)`.
static Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowType(env, "setErrorClass: expected a constructor");
  Data(env)->errorCtor = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

// errnoName(n) / errnoText(n): exposed so the facade names errors the same way.
static Napi::Value JsErrnoName(const Napi::CallbackInfo& info) {
  int n = static_cast<int>(ArgInt(info, 0, "errno", 0, 4095));
  return Napi::String::New(info.Env(), ErrnoName(n));
}
static Napi::Value JsErrnoText(const Napi::CallbackInfo& info) {
  int n = static_cast<int>(ArgInt(info, 0, "errno", 0, 4095));
  return Napi::String::New(info.Env(), ErrnoText(n));
}

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  exports.Set("errnoName", Napi::Function::New(env, JsErrnoName, "errnoName"));
  exports.Set("errnoText", Napi::Function::New(env, JsErrnoText, "errnoText"));
}

}  // namespace weir
