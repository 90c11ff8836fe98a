// Argument validation for the native layer. The TypeScript facade validates
// first; these checks make sure a bad call from anywhere is a TypeError and
// never a crash or a wild pointer handed to the kernel.
#include <cmath>
#include <limits>

#include "common.h"

namespace weir {

static std::string Where(size_t i, const char* name) {
  return std::string("argument ") + std::to_string(i) + " (" + name + ")";
}

static int64_t ToInt(Napi::Env env, Napi::Value v, const std::string& what,
                     int64_t min, int64_t max) {
  if (!v.IsNumber()) ThrowType(env, what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) ThrowType(env, what + " must be an integer");
  if (d < static_cast<double>(min) || d > static_cast<double>(max)) {
    ThrowRange(env, what + " out of range [" + std::to_string(min) + ", " +
                        std::to_string(max) + "]: " + std::to_string(static_cast<long long>(d)));
  }
  return static_cast<int64_t>(d);
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name,
               int64_t min, int64_t max) {
  if (info.Length() <= i) ThrowType(info.Env(), Where(i, name) + " is missing");
  return ToInt(info.Env(), info[i], Where(i, name), min, max);
}

int32_t ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return static_cast<int32_t>(ArgInt(info, i, name, 0, std::numeric_limits<int32_t>::max()));
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return static_cast<uint32_t>(ArgInt(info, i, name, 0, std::numeric_limits<uint32_t>::max()));
}

uint32_t OptU32(const Napi::CallbackInfo& info, size_t i, const char* name, uint32_t def) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return def;
  return ArgU32(info, i, name);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) ThrowType(info.Env(), Where(i, name) + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) ThrowType(info.Env(), Where(i, name) + " must not contain NUL");
  return s;
}

std::string OptString(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return "";
  return ArgString(info, i, "string");
}

bool OptBool(const Napi::CallbackInfo& info, size_t i, bool def) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return def;
  if (!info[i].IsBoolean()) ThrowType(info.Env(), Where(i, "flag") + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

static Bytes ToBytes(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsTypedArray()) ThrowType(env, what + " must be a Buffer / Uint8Array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) ThrowType(env, what + " must be a Buffer / Uint8Array");
  Napi::Uint8Array u = v.As<Napi::Uint8Array>();
  Bytes b;
  b.data = u.Data();
  b.len = u.ByteLength();
  b.present = true;
  return b;
}

Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i) ThrowType(info.Env(), Where(i, name) + " is missing");
  return ToBytes(info.Env(), info[i], Where(i, name));
}

Bytes OptBytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Bytes{};
  return ArgBytes(info, i, name);
}

int64_t PropInt(Napi::Object o, const char* key, int64_t def, int64_t min, int64_t max) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  return ToInt(o.Env(), v, std::string("option ") + key, min, max);
}

uint32_t PropU32(Napi::Object o, const char* key, uint32_t def) {
  return static_cast<uint32_t>(PropInt(o, key, def, 0, std::numeric_limits<uint32_t>::max()));
}

std::string PropString(Napi::Object o, const char* key, const std::string& def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsString()) ThrowType(o.Env(), std::string("option ") + key + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) ThrowType(o.Env(), std::string("option ") + key + " must not contain NUL");
  return s;
}

Bytes PropBytes(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return Bytes{};
  return ToBytes(o.Env(), v, std::string("option ") + key);
}

Napi::Buffer<uint8_t> CopyBuffer(Napi::Env env, const void* data, size_t len) {
  return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(data), len);
}

}  // namespace weir
