// Network namespaces. The namespace is a per-thread attribute in Linux, so
// instead of switching the Node main thread (or a libuv pool thread, shared
// with everything else) we make a short-lived thread, move only that thread
// into the target namespace, run the netlink / ioctl work there, and join it.
// Sockets libbpf opens for netlink are created in the thread's namespace and
// closed before the thread ends.
#include "netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <exception>
#include <thread>

namespace weir {

NativeError RunInNetns(const std::string& path, const std::function<NativeError()>& fn) {
  if (path.empty()) return fn();
  NativeError result;
  std::thread t([&]() {
    int nsfd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
      result.err = errno;
      result.syscall = "open";
      result.context = "open network namespace " + path;
      return;
    }
    if (setns(nsfd, CLONE_NEWNET) < 0) {
      result.err = errno;
      result.syscall = "setns";
      result.context = "enter network namespace " + path;
      close(nsfd);
      return;
    }
    close(nsfd);
    try {
      result = fn();
    } catch (const std::exception& ex) {
      result.err = EIO;
      result.syscall = "netns worker";
      result.message = std::string("in network namespace ") + path + ": " + ex.what();
    }
  });
  t.join();
  if (!result.ok() && result.message.empty() && result.context.find(path) == std::string::npos)
    result.context += " in netns " + path;
  return result;
}

// ifindex(name, netns?) -> number
static Napi::Value Ifindex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "name");
  std::string ns = OptString(info, 1);
  if (name.empty() || name.size() >= IF_NAMESIZE) ThrowType(env, "ifindex: bad interface name '" + name + "'");
  unsigned idx = 0;
  NativeError e = RunInNetns(ns, [&]() {
    NativeError r;
    idx = if_nametoindex(name.c_str());
    if (idx == 0) {
      r.err = errno;
      r.syscall = "if_nametoindex";
      r.context = "no network interface named '" + name + "'";
    }
    return r;
  });
  if (!e.ok()) ThrowBpfError(env, e);
  return Napi::Number::New(env, idx);
}

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("ifindex", Napi::Function::New(env, Ifindex, "ifindex"));
}

}  // namespace weir
