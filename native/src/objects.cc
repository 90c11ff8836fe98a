// Generic BPF object plumbing: fds, pins, ids, and small system facts.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "common.h"

namespace weir {

static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  // Linux always releases the fd, even when close() reports EINTR: never retry.
  if (close(fd) < 0 && errno == EBADF) {
    ThrowErrno(info.Env(), errno, "close", "close fd " + std::to_string(fd));
  }
  return info.Env().Undefined();
}

static Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (nfd < 0) ThrowErrno(info.Env(), errno, "fcntl", "dup fd " + std::to_string(fd));
  return Napi::Number::New(info.Env(), nfd);
}

static Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  std::string path = ArgString(info, 1, "path");
  if (bpf_obj_pin(fd, path.c_str()) < 0) {
    ThrowErrno(info.Env(), errno, "bpf_obj_pin", "pin fd " + std::to_string(fd) + " at " + path);
  }
  return info.Env().Undefined();
}

static Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  uint32_t flags = OptU32(info, 1, "flags", 0);
  LIBBPF_OPTS(bpf_obj_get_opts, opts, .file_flags = flags);
  int fd = bpf_obj_get_opts(path.c_str(), &opts);
  if (fd < 0) ThrowErrno(info.Env(), errno, "bpf_obj_get", "open pinned object " + path);
  return Napi::Number::New(info.Env(), fd);
}

// fdById(kind, id): kind is "map" | "prog" | "btf" | "link".
static Napi::Value FdById(const Napi::CallbackInfo& info) {
  std::string kind = ArgString(info, 0, "kind");
  uint32_t id = ArgU32(info, 1, "id");
  int fd;
  const char* fn;
  if (kind == "map") { fd = bpf_map_get_fd_by_id(id); fn = "bpf_map_get_fd_by_id"; }
  else if (kind == "prog") { fd = bpf_prog_get_fd_by_id(id); fn = "bpf_prog_get_fd_by_id"; }
  else if (kind == "btf") { fd = bpf_btf_get_fd_by_id(id); fn = "bpf_btf_get_fd_by_id"; }
  else if (kind == "link") { fd = bpf_link_get_fd_by_id(id); fn = "bpf_link_get_fd_by_id"; }
  else ThrowType(info.Env(), "fdById: unknown kind " + kind);
  if (fd < 0) ThrowErrno(info.Env(), errno, fn, "open " + kind + " id " + std::to_string(id));
  return Napi::Number::New(info.Env(), fd);
}

int FdKindOf(int fd, std::string* kind) {
  char link[64], target[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return -errno;
  target[n] = 0;
  std::string t(target);
  *kind = "other";
  if (t == "anon_inode:bpf-map") *kind = "map";
  else if (t == "anon_inode:bpf-prog") *kind = "prog";
  else if (t == "anon_inode:btf") *kind = "btf";
  else if (t == "anon_inode:bpf_link") *kind = "link";
  return 0;
}

// fdKind(fd): "map" | "prog" | "btf" | "link" | "other", from the anon inode name.
static Napi::Value FdKind(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  std::string kind;
  int r = FdKindOf(fd, &kind);
  if (r < 0) ThrowErrno(info.Env(), -r, "readlink", "inspect fd " + std::to_string(fd));
  return Napi::String::New(info.Env(), kind);
}

static Napi::Value PossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(info.Env(), -n, "libbpf_num_possible_cpus", "read /sys/devices/system/cpu/possible");
  return Napi::Number::New(info.Env(), n);
}

void InitObjects(Napi::Env env, Napi::Object exports) {
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("dupFd", Napi::Function::New(env, DupFd, "dupFd"));
  exports.Set("objPin", Napi::Function::New(env, ObjPin, "objPin"));
  exports.Set("objGet", Napi::Function::New(env, ObjGet, "objGet"));
  exports.Set("fdById", Napi::Function::New(env, FdById, "fdById"));
  exports.Set("fdKind", Napi::Function::New(env, FdKind, "fdKind"));
  exports.Set("possibleCpus", Napi::Function::New(env, PossibleCpus, "possibleCpus"));
}

}  // namespace weir
