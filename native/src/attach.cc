// Attaching programs to network devices: tc (clsact + cls_bpf direct-action
// filters, through libbpf's netlink helpers), XDP (bpf_xdp_attach), and tcx
// links (BPF_LINK_CREATE with BPF_TCX_INGRESS / BPF_TCX_EGRESS, kernel 6.6+).
//
// Network namespaces: every call takes an optional namespace path. The call
// runs on a dedicated short-lived std::thread that setns(CLONE_NEWNET)s into
// that namespace first and is joined before we return (see netns.cc). The
// namespace is per-thread state, so the Node main thread and the libuv pool
// never change namespace, and a failure half-way can never leave a shared
// thread in the wrong one. Netlink sockets and if_nametoindex are resolved
// in the namespace of the thread that makes them, which is what we need.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <cerrno>

#include "common.h"
#include "netns.h"

namespace weir {

static constexpr uint32_t kTcxIngress = 46;  // BPF_TCX_INGRESS (uapi 6.6)
static constexpr uint32_t kTcxEgress = 47;   // BPF_TCX_EGRESS

static std::string IfCtx(int ifindex) { return "ifindex " + std::to_string(ifindex); }

static enum bpf_tc_attach_point TcPoint(const Napi::CallbackInfo& info, size_t i) {
  std::string p = ArgString(info, i, "attachPoint");
  if (p == "ingress") return BPF_TC_INGRESS;
  if (p == "egress") return BPF_TC_EGRESS;
  ThrowType(info.Env(), "attachPoint must be 'ingress' or 'egress', got '" + p + "'");
}

static NativeError Fail(int err, const char* fn, const std::string& ctx) {
  NativeError e;
  e.err = err;
  e.syscall = fn;
  e.context = ctx;
  return e;
}

static void Check(Napi::Env env, const NativeError& e) {
  if (!e.ok()) ThrowBpfError(env, e);
}

// tcCreateHook(ifindex, netns): adds a clsact qdisc; an existing one is fine.
static Napi::Value TcCreateHook(const Napi::CallbackInfo& info) {
  int ifindex = static_cast<int>(ArgInt(info, 0, "ifindex", 1, INT32_MAX));
  std::string ns = OptString(info, 1);
  Check(info.Env(), RunInNetns(ns, [&]() {
          LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
          int r = bpf_tc_hook_create(&hook);
          if (r < 0 && r != -EEXIST) return Fail(-r, "bpf_tc_hook_create", "create clsact qdisc on " + IfCtx(ifindex));
          return NativeError{};
        }));
  return info.Env().Undefined();
}

// tcDestroyHook(ifindex, netns): removes clsact and every filter on it; a
// missing qdisc is fine.
static Napi::Value TcDestroyHook(const Napi::CallbackInfo& info) {
  int ifindex = static_cast<int>(ArgInt(info, 0, "ifindex", 1, INT32_MAX));
  std::string ns = OptString(info, 1);
  Check(info.Env(), RunInNetns(ns, [&]() {
          LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
                      .attach_point = static_cast<enum bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
          int r = bpf_tc_hook_destroy(&hook);
          // ENOENT: no ingress queue at all; EINVAL: the device's ingress slot
          // holds no clsact (the kernel's "Invalid handle" for a noop qdisc).
          if (r < 0 && r != -ENOENT && r != -EINVAL)
            return Fail(-r, "bpf_tc_hook_destroy", "remove clsact qdisc from " + IfCtx(ifindex));
          return NativeError{};
        }));
  return info.Env().Undefined();
}

// tcAttach(ifindex, point, progFd, priority, handle, replace, netns) -> { priority, handle }
static Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = static_cast<int>(ArgInt(info, 0, "ifindex", 1, INT32_MAX));
  enum bpf_tc_attach_point point = TcPoint(info, 1);
  int progFd = ArgFd(info, 2, "progFd");
  uint32_t priority = static_cast<uint32_t>(ArgInt(info, 3, "priority", 0, 0xffff));
  uint32_t handle = ArgU32(info, 4, "handle");
  bool replace = OptBool(info, 5, false);
  std::string ns = OptString(info, 6);
  const char* where = point == BPF_TC_INGRESS ? "ingress" : "egress";
  uint32_t outPrio = 0, outHandle = 0;
  Check(env, RunInNetns(ns, [&]() {
          LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
          int r = bpf_tc_hook_create(&hook);
          if (r < 0 && r != -EEXIST) return Fail(-r, "bpf_tc_hook_create", "create clsact qdisc on " + IfCtx(ifindex));
          LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = progFd, .flags = replace ? static_cast<__u32>(BPF_TC_F_REPLACE) : 0u,
                      .handle = handle, .priority = priority);
          r = bpf_tc_attach(&hook, &opts);
          if (r < 0) {
            std::string ctx = std::string("tc attach ") + where + " on " + IfCtx(ifindex) + " (priority " +
                              std::to_string(priority) + ", handle " + std::to_string(handle) + ")";
            if (r == -EEXIST) ctx += ": a filter already exists there; pass replace: true to replace it";
            return Fail(-r, "bpf_tc_attach", ctx);
          }
          outPrio = opts.priority;
          outHandle = opts.handle;
          return NativeError{};
        }));
  Napi::Object res = Napi::Object::New(env);
  res.Set("priority", outPrio);
  res.Set("handle", outHandle);
  return res;
}

// tcDetach(ifindex, point, priority, handle, netns)
static Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  int ifindex = static_cast<int>(ArgInt(info, 0, "ifindex", 1, INT32_MAX));
  enum bpf_tc_attach_point point = TcPoint(info, 1);
  uint32_t priority = static_cast<uint32_t>(ArgInt(info, 2, "priority", 1, 0xffff));
  uint32_t handle = static_cast<uint32_t>(ArgInt(info, 3, "handle", 1, UINT32_MAX));
  std::string ns = OptString(info, 4);
  Check(info.Env(), RunInNetns(ns, [&]() {
          LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
          LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
          int r = bpf_tc_detach(&hook, &opts);
          if (r < 0)
            return Fail(-r, "bpf_tc_detach",
                        std::string("tc detach ") + (point == BPF_TC_INGRESS ? "ingress" : "egress") + " on " +
                            IfCtx(ifindex) + " (priority " + std::to_string(priority) + ", handle " +
                            std::to_string(handle) + ")");
          return NativeError{};
        }));
  return info.Env().Undefined();
}

// tcQuery(ifindex, point, priority, handle, netns) -> progId | undefined
static Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = static_cast<int>(ArgInt(info, 0, "ifindex", 1, INT32_MAX));
  enum bpf_tc_attach_point point = TcPoint(info, 1);
  uint32_t priority = static_cast<uint32_t>(ArgInt(info, 2, "priority", 1, 0xffff));
  uint32_t handle = static_cast<uint32_t>(ArgInt(info, 3, "handle", 1, UINT32_MAX));
  std::string ns = OptString(info, 4);
  uint32_t progId = 0;
  bool found = false;
  Check(env, RunInNetns(ns, [&]() {
          LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
          LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
          int r = bpf_tc_query(&hook, &opts);
          // ENOENT: no such filter; EINVAL: no clsact qdisc on the device.
          if (r == -ENOENT || r == -EINVAL) return NativeError{};
          if (r < 0)
            return Fail(-r, "bpf_tc_query", std::string("tc query on ") + IfCtx(ifindex));
          found = true;
          progId = opts.prog_id;
          return NativeError{};
        }));
  if (!found) return env.Undefined();
  return Napi::Number::New(env, progId);
}

static uint32_t XdpModeFlag(const Napi::CallbackInfo& info, size_t i) {
  std::string m = OptString(info, i);
  if (m.empty()) return 0;
  if (m == "native") return XDP_FLAGS_DRV_MODE;
  if (m == "generic") return XDP_FLAGS_SKB_MODE;
  if (m == "offload") return XDP_FLAGS_HW_MODE;
  ThrowType(info.Env(), "xdp mode must be 'native', 'generic' or 'offload', got '" + m + "'");
}

static const char* XdpModeName(uint32_t flag) {
  switch (flag) {
    case XDP_FLAGS_DRV_MODE: return "native";
    case XDP_FLAGS_SKB_MODE: return "generic";
    case XDP_FLAGS_HW_MODE: return "offload";
    default: return "default";
  }
}

// xdpAttach(ifindex, progFd, mode, replace, netns)
static Napi::Value XdpAttach(const Napi::CallbackInfo& info) {
  int ifindex = static_cast<int>(ArgInt(info, 0, "ifindex", 1, INT32_MAX));
  int progFd = ArgFd(info, 1, "progFd");
  uint32_t mode = XdpModeFlag(info, 2);
  bool replace = OptBool(info, 3, false);
  std::string ns = OptString(info, 4);
  Check(info.Env(), RunInNetns(ns, [&]() {
          uint32_t flags = mode | (replace ? 0u : static_cast<uint32_t>(XDP_FLAGS_UPDATE_IF_NOEXIST));
          int r = bpf_xdp_attach(ifindex, progFd, flags, nullptr);
          if (r < 0) {
            std::string ctx = std::string("xdp attach (") + XdpModeName(mode) + " mode) on " + IfCtx(ifindex);
            if (r == -EBUSY) ctx += ": a program is already attached; pass replace: true to replace it";
            if (r == -EEXIST) ctx += ": a program is attached in another XDP mode; detach it first";
            if (r == -EOPNOTSUPP) ctx += ": the driver does not support this XDP mode";
            return Fail(-r, "bpf_xdp_attach", ctx);
          }
          return NativeError{};
        }));
  return info.Env().Undefined();
}

// xdpDetach(ifindex, mode, netns). Without a mode, detaches whatever mode is attached.
static Napi::Value XdpDetach(const Napi::CallbackInfo& info) {
  int ifindex = static_cast<int>(ArgInt(info, 0, "ifindex", 1, INT32_MAX));
  uint32_t mode = XdpModeFlag(info, 1);
  std::string ns = OptString(info, 2);
  Check(info.Env(), RunInNetns(ns, [&]() {
          uint32_t flags = mode;
          if (flags == 0) {
            LIBBPF_OPTS(bpf_xdp_query_opts, q);
            int r = bpf_xdp_query(ifindex, 0, &q);
            if (r < 0) return Fail(-r, "bpf_xdp_query", "xdp query on " + IfCtx(ifindex));
            if (q.attach_mode == XDP_ATTACHED_NONE) return NativeError{};
            if (q.attach_mode == XDP_ATTACHED_SKB) flags = XDP_FLAGS_SKB_MODE;
            else if (q.attach_mode == XDP_ATTACHED_HW) flags = XDP_FLAGS_HW_MODE;
            else if (q.attach_mode == XDP_ATTACHED_DRV) flags = XDP_FLAGS_DRV_MODE;
            else {
              // Several modes at once: remove each.
              for (uint32_t f : {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_HW_MODE}) {
                __u32 id = f == XDP_FLAGS_DRV_MODE ? q.drv_prog_id : f == XDP_FLAGS_SKB_MODE ? q.skb_prog_id : q.hw_prog_id;
                if (!id) continue;
                int rr = bpf_xdp_detach(ifindex, f, nullptr);
                if (rr < 0) return Fail(-rr, "bpf_xdp_detach", std::string("xdp detach (") + XdpModeName(f) + " mode) on " + IfCtx(ifindex));
              }
              return NativeError{};
            }
          }
          int r = bpf_xdp_detach(ifindex, flags, nullptr);
          if (r < 0)
            return Fail(-r, "bpf_xdp_detach", std::string("xdp detach (") + XdpModeName(flags) + " mode) on " + IfCtx(ifindex));
          return NativeError{};
        }));
  return info.Env().Undefined();
}

// xdpQuery(ifindex, netns) -> { progId, mode, drvProgId, skbProgId, hwProgId } | undefined
static Napi::Value XdpQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = static_cast<int>(ArgInt(info, 0, "ifindex", 1, INT32_MAX));
  std::string ns = OptString(info, 1);
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  Check(env, RunInNetns(ns, [&]() {
          int r = bpf_xdp_query(ifindex, 0, &q);
          if (r < 0) return Fail(-r, "bpf_xdp_query", "xdp query on " + IfCtx(ifindex));
          return NativeError{};
        }));
  const char* mode;
  uint32_t progId = q.prog_id;
  switch (q.attach_mode) {
    case XDP_ATTACHED_NONE: return env.Undefined();
    case XDP_ATTACHED_DRV: mode = "native"; break;
    case XDP_ATTACHED_SKB: mode = "generic"; break;
    case XDP_ATTACHED_HW: mode = "offload"; break;
    default:
      mode = "multi";
      progId = q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id ? q.skb_prog_id : q.hw_prog_id;
      break;
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("progId", progId);
  o.Set("mode", mode);
  o.Set("drvProgId", q.drv_prog_id);
  o.Set("skbProgId", q.skb_prog_id);
  o.Set("hwProgId", q.hw_prog_id);
  return o;
}

// tcxAttach(ifindex, point, progFd, netns) -> link fd
static Napi::Value TcxAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = static_cast<int>(ArgInt(info, 0, "ifindex", 1, INT32_MAX));
  enum bpf_tc_attach_point point = TcPoint(info, 1);
  int progFd = ArgFd(info, 2, "progFd");
  std::string ns = OptString(info, 3);
  int linkFd = -1;
  Check(env, RunInNetns(ns, [&]() {
          uint32_t type = point == BPF_TC_INGRESS ? kTcxIngress : kTcxEgress;
          // libbpf 1.1 has no tcx options, but its generic BPF_LINK_CREATE
          // path fills target_fd, which shares its slot with target_ifindex.
          int fd = bpf_link_create(progFd, ifindex, static_cast<enum bpf_attach_type>(type), nullptr);
          if (fd < 0)
            return Fail(errno, "bpf_link_create",
                        std::string("tcx attach ") + (point == BPF_TC_INGRESS ? "ingress" : "egress") + " on " +
                            IfCtx(ifindex));
          linkFd = fd;
          return NativeError{};
        }));
  return Napi::Number::New(env, linkFd);
}

// linkDetach(fd): BPF_LINK_DETACH — the link stays open but no longer attached.
static Napi::Value LinkDetach(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  if (bpf_link_detach(fd) < 0) ThrowErrno(info.Env(), errno, "bpf_link_detach", "detach link fd " + std::to_string(fd));
  return info.Env().Undefined();
}

void InitAttach(Napi::Env env, Napi::Object exports) {
  exports.Set("tcCreateHook", Napi::Function::New(env, TcCreateHook, "tcCreateHook"));
  exports.Set("tcDestroyHook", Napi::Function::New(env, TcDestroyHook, "tcDestroyHook"));
  exports.Set("tcAttach", Napi::Function::New(env, TcAttach, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New(env, TcDetach, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New(env, TcQuery, "tcQuery"));
  exports.Set("xdpAttach", Napi::Function::New(env, XdpAttach, "xdpAttach"));
  exports.Set("xdpDetach", Napi::Function::New(env, XdpDetach, "xdpDetach"));
  exports.Set("xdpQuery", Napi::Function::New(env, XdpQuery, "xdpQuery"));
  exports.Set("tcxAttach", Napi::Function::New(env, TcxAttach, "tcxAttach"));
  exports.Set("linkDetach", Napi::Function::New(env, LinkDetach, "linkDetach"));
}

}  // namespace weir
