// Programs and BTF: BPF_PROG_LOAD (on the libuv pool, with the verifier log),
// BPF_PROG_TEST_RUN (on the libuv pool), program info, BTF load and info.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "common.h"

namespace weir {

static constexpr size_t kLogStart = 1u << 20;   // 1 MiB
static constexpr size_t kLogMax = 64u << 20;    // 64 MiB

static std::string TagHex(const uint8_t* tag, size_t n) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += hex[tag[i] >> 4];
    s += hex[tag[i] & 15];
  }
  return s;
}

static std::string LogString(const std::vector<char>& buf) {
  if (buf.empty()) return "";
  return std::string(buf.data(), strnlen(buf.data(), buf.size()));
}

// --- progLoad(opts) -> Promise<{ fd, log }> ----------------------------------

class LoadWorker : public Napi::AsyncWorker {
 public:
  explicit LoadWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  uint32_t type = 0;
  std::string name, license;
  std::vector<uint8_t> insns, funcInfo, lineInfo;
  uint32_t funcInfoRecSize = 0, lineInfoRecSize = 0;
  uint32_t expectedAttachType = 0, btfFd = 0, flags = 0, kernVersion = 0;
  uint32_t logLevel = 0;
  size_t logSize = kLogStart;

  void Execute() override {
    uint32_t level = logLevel;
    size_t size = logSize;
    bool retriedForLog = false;
    for (;;) {
      LIBBPF_OPTS(bpf_prog_load_opts, opts);
      opts.expected_attach_type = static_cast<enum bpf_attach_type>(expectedAttachType);
      opts.prog_btf_fd = btfFd;
      opts.prog_flags = flags;
      opts.kern_version = kernVersion;
      if (!funcInfo.empty()) {
        opts.func_info = funcInfo.data();
        opts.func_info_rec_size = funcInfoRecSize;
        opts.func_info_cnt = static_cast<uint32_t>(funcInfo.size() / funcInfoRecSize);
      }
      if (!lineInfo.empty()) {
        opts.line_info = lineInfo.data();
        opts.line_info_rec_size = lineInfoRecSize;
        opts.line_info_cnt = static_cast<uint32_t>(lineInfo.size() / lineInfoRecSize);
      }
      if (level > 0) {
        log_.assign(size, 0);
        opts.log_buf = log_.data();
        opts.log_size = static_cast<uint32_t>(size);
        opts.log_level = level;
      } else {
        log_.clear();
      }
      int fd = bpf_prog_load(static_cast<enum bpf_prog_type>(type), name.empty() ? nullptr : name.c_str(),
                             license.c_str(), reinterpret_cast<const struct bpf_insn*>(insns.data()),
                             insns.size() / sizeof(struct bpf_insn), &opts);
      if (fd >= 0) {
        fd_ = fd;
        return;
      }
      int e = errno;
      // The log did not fit: grow it and verify again.
      if (level > 0 && e == ENOSPC && size < kLogMax) {
        size = std::min(size * 4, kLogMax);
        continue;
      }
      // Failed without a log: load once more with logLevel 1 to get one.
      if (level == 0 && !retriedForLog) {
        retriedForLog = true;
        level = 1;
        continue;
      }
      err_.err = e;
      err_.syscall = "bpf_prog_load";
      err_.log = LogString(log_);
      std::string msg = "load program " + (name.empty() ? std::string("(unnamed)") : name) + ": " + ErrnoText(e) +
                        " (" + ErrnoName(e) + ")";
      if (e == ENOSPC && level > 0) msg += " [verifier log truncated at " + std::to_string(size) + " bytes]";
      msg += "\nverifier log:\n" + (err_.log.empty() ? std::string("(the kernel wrote no log)") : err_.log);
      err_.message = msg;
      return;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!err_.ok()) {
      deferred_.Reject(MakeBpfError(env, err_));
      return;
    }
    Napi::Object res = Napi::Object::New(env);
    res.Set("fd", fd_);
    res.Set("log", LogString(log_));
    deferred_.Resolve(res);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  // The kernel reads btfFd and the map fds inside ld_imm64 instructions on the
  // pool thread. Duplicate them now, on the JS thread, so a caller closing a
  // handle during the load (and the number being reused) cannot change which
  // objects the program binds to. An fd that cannot be duplicated is left as
  // it is, so the kernel reports it in its own words.
  void HoldFds() {
    std::map<int, int> dups;
    auto hold = [&](int fd) -> int {
      if (fd <= 0) return fd;
      auto it = dups.find(fd);
      if (it != dups.end()) return it->second;
      int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (d < 0) return fd;
      held_.push_back(d);
      dups[fd] = d;
      return d;
    };
    btfFd = static_cast<uint32_t>(hold(static_cast<int>(btfFd)));
    const size_t n = insns.size() / 8;
    for (size_t i = 0; i + 1 < n; i++) {
      uint8_t* insn = &insns[i * 8];
      if (insn[0] != 0x18) continue;  // BPF_LD | BPF_IMM | BPF_DW
      uint8_t src = insn[1] >> 4;
      if (src == 1 || src == 2) {  // BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE
        int32_t imm;
        memcpy(&imm, insn + 4, 4);
        int32_t held = hold(imm);
        memcpy(insn + 4, &held, 4);
      }
      i++;  // second half of the 16-byte instruction
    }
  }

  ~LoadWorker() override {
    for (int fd : held_) close(fd);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<char> log_;
  std::vector<int> held_;
  NativeError err_;
  int fd_ = -1;
};

static std::vector<uint8_t> ToVec(const Bytes& b) { return std::vector<uint8_t>(b.data, b.data + b.len); }

static Napi::Value ProgLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowType(env, "progLoad: expected an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto* w = new LoadWorker(env);
  try {
    w->type = PropU32(o, "type", 0);
    w->name = PropString(o, "name", "");
    if (w->name.size() > BPF_OBJ_NAME_LEN - 1) w->name.resize(BPF_OBJ_NAME_LEN - 1);
    w->license = PropString(o, "license", "");
    if (w->license.empty()) ThrowType(env, "progLoad: option license is required");
    Bytes insns = PropBytes(o, "insns");
    if (!insns.present || insns.len == 0 || insns.len % 8 != 0)
      ThrowType(env, "progLoad: option insns must be a non-empty Buffer of 8-byte instructions");
    w->insns = ToVec(insns);
    w->expectedAttachType = PropU32(o, "expectedAttachType", 0);
    w->btfFd = PropU32(o, "btfFd", 0);
    w->flags = PropU32(o, "flags", 0);
    w->kernVersion = PropU32(o, "kernVersion", 0);
    w->logLevel = static_cast<uint32_t>(PropInt(o, "logLevel", 0, 0, 7));
    w->logSize = static_cast<size_t>(PropInt(o, "logSize", kLogStart, 128, kLogMax));
    Bytes fi = PropBytes(o, "funcInfo");
    if (fi.present && fi.len) {
      w->funcInfoRecSize = PropU32(o, "funcInfoRecSize", 0);
      if (w->funcInfoRecSize == 0 || fi.len % w->funcInfoRecSize)
        ThrowType(env, "progLoad: funcInfo length must be a multiple of funcInfoRecSize");
      w->funcInfo = ToVec(fi);
    }
    Bytes li = PropBytes(o, "lineInfo");
    if (li.present && li.len) {
      w->lineInfoRecSize = PropU32(o, "lineInfoRecSize", 0);
      if (w->lineInfoRecSize == 0 || li.len % w->lineInfoRecSize)
        ThrowType(env, "progLoad: lineInfo length must be a multiple of lineInfoRecSize");
      w->lineInfo = ToVec(li);
    }
    w->HoldFds();
  } catch (...) {
    delete w;
    throw;
  }
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// --- progTestRun(fd, opts) -> Promise<{ retval, durationNs, data, ctx? }> -----

class TestRunWorker : public Napi::AsyncWorker {
 public:
  explicit TestRunWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  ~TestRunWorker() override {
    if (fd >= 0) close(fd);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  int fd = -1;  // our own dup: the program may be closed by JS while we run
  std::vector<uint8_t> dataIn, ctxIn, dataOut, ctxOut;
  bool hasData = false, hasCtx = false, wantCtx = false;
  uint32_t repeat = 0, flags = 0;

  void Execute() override {
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    if (hasData) {
      opts.data_in = dataIn.data();
      opts.data_size_in = static_cast<uint32_t>(dataIn.size());
    }
    if (!dataOut.empty()) {
      opts.data_out = dataOut.data();
      opts.data_size_out = static_cast<uint32_t>(dataOut.size());
    }
    if (hasCtx) {
      opts.ctx_in = ctxIn.data();
      opts.ctx_size_in = static_cast<uint32_t>(ctxIn.size());
    }
    if (wantCtx && !ctxOut.empty()) {
      opts.ctx_out = ctxOut.data();
      opts.ctx_size_out = static_cast<uint32_t>(ctxOut.size());
    }
    opts.repeat = static_cast<int>(repeat);
    opts.flags = flags;
    if (bpf_prog_test_run_opts(fd, &opts) < 0) {
      err_.err = errno;
      err_.syscall = "bpf_prog_test_run_opts";
      err_.context = "test run of program fd " + std::to_string(fd);
      if (err_.err == ENOSPC) err_.context += " (output larger than dataSizeOut " + std::to_string(dataOut.size()) + ")";
      return;
    }
    retval_ = opts.retval;
    duration_ = opts.duration;
    dataOutLen_ = std::min<size_t>(opts.data_size_out, dataOut.size());
    ctxOutLen_ = std::min<size_t>(opts.ctx_size_out, ctxOut.size());
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!err_.ok()) {
      deferred_.Reject(MakeBpfError(env, err_));
      return;
    }
    Napi::Object res = Napi::Object::New(env);
    res.Set("retval", Napi::Number::New(env, retval_));
    res.Set("durationNs", Napi::Number::New(env, duration_));
    res.Set("data", CopyBuffer(env, dataOut.data(), dataOutLen_));
    if (wantCtx) res.Set("ctx", CopyBuffer(env, ctxOut.data(), ctxOutLen_));
    deferred_.Resolve(res);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  NativeError err_;
  uint32_t retval_ = 0, duration_ = 0;
  size_t dataOutLen_ = 0, ctxOutLen_ = 0;
};

static Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (info.Length() < 2 || !info[1].IsObject()) ThrowType(env, "progTestRun: expected an options object");
  Napi::Object o = info[1].As<Napi::Object>();
  auto* w = new TestRunWorker(env);
  try {
    w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (w->fd < 0) ThrowErrno(env, errno, "fcntl", "test run: dup program fd " + std::to_string(fd));
    Bytes data = PropBytes(o, "data");
    if (data.present) {
      w->hasData = true;
      w->dataIn = ToVec(data);
    }
    size_t outSize = static_cast<size_t>(PropInt(o, "dataSizeOut", data.len + 256, 0, 1 << 30));
    w->dataOut.assign(outSize, 0);
    Bytes ctx = PropBytes(o, "ctx");
    if (ctx.present) {
      w->hasCtx = true;
      w->ctxIn = ToVec(ctx);
    }
    size_t ctxOut = static_cast<size_t>(PropInt(o, "ctxSizeOut", ctx.len, 0, 1 << 20));
    w->wantCtx = ctx.present || ctxOut > 0;
    w->ctxOut.assign(ctxOut, 0);
    w->repeat = PropU32(o, "repeat", 0);
    w->flags = PropU32(o, "flags", 0);
  } catch (...) {
    delete w;
    throw;
  }
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// --- progInfo(fd) -------------------------------------------------------------

static Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct bpf_prog_info pi;
  memset(&pi, 0, sizeof pi);
  uint32_t len = sizeof pi;
  if (bpf_obj_get_info_by_fd(fd, &pi, &len) < 0)
    ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "program info (fd " + std::to_string(fd) + ")");
  std::vector<uint32_t> ids(pi.nr_map_ids);
  if (pi.nr_map_ids > 0) {
    uint32_t n = pi.nr_map_ids;
    memset(&pi, 0, sizeof pi);
    pi.nr_map_ids = n;
    pi.map_ids = reinterpret_cast<uint64_t>(ids.data());
    len = sizeof pi;
    if (bpf_obj_get_info_by_fd(fd, &pi, &len) < 0)
      ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "program map ids (fd " + std::to_string(fd) + ")");
    ids.resize(std::min(n, pi.nr_map_ids));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", pi.id);
  o.Set("name", std::string(pi.name, strnlen(pi.name, sizeof pi.name)));
  o.Set("type", pi.type);
  o.Set("tag", TagHex(pi.tag, sizeof pi.tag));
  o.Set("btfId", pi.btf_id);
  Napi::Array arr = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); i++) arr.Set(static_cast<uint32_t>(i), ids[i]);
  o.Set("mapIds", arr);
  o.Set("xlatedProgLen", pi.xlated_prog_len);
  o.Set("jitedProgLen", pi.jited_prog_len);
  o.Set("verifiedInsns", pi.verified_insns);
  o.Set("runTimeNs", Napi::Number::New(env, static_cast<double>(pi.run_time_ns)));
  o.Set("runCnt", Napi::Number::New(env, static_cast<double>(pi.run_cnt)));
  return o;
}

// --- btfLoad(blob, logLevel) -> { fd, log } ------------------------------------

static Napi::Value BtfLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes blob = ArgBytes(info, 0, "blob");
  uint32_t level = static_cast<uint32_t>(info.Length() > 1 && !info[1].IsUndefined() ? ArgInt(info, 1, "logLevel", 0, 7) : 0);
  if (blob.len == 0) ThrowType(env, "btfLoad: blob is empty");
  size_t size = kLogStart;
  bool retried = false;
  std::vector<char> log;
  for (;;) {
    LIBBPF_OPTS(bpf_btf_load_opts, opts);
    if (level > 0) {
      log.assign(size, 0);
      opts.log_buf = log.data();
      opts.log_size = static_cast<uint32_t>(size);
      opts.log_level = level;
    } else {
      log.clear();
    }
    int fd = bpf_btf_load(blob.data, blob.len, &opts);
    if (fd >= 0) {
      Napi::Object res = Napi::Object::New(env);
      res.Set("fd", fd);
      res.Set("log", LogString(log));
      return res;
    }
    int e = errno;
    if (level > 0 && e == ENOSPC && size < kLogMax) {
      size = std::min(size * 4, kLogMax);
      continue;
    }
    if (level == 0 && !retried) {
      retried = true;
      level = 1;
      continue;
    }
    NativeError ne;
    ne.err = e;
    ne.syscall = "bpf_btf_load";
    ne.log = LogString(log);
    ne.message = "load BTF (" + std::to_string(blob.len) + " bytes): " + ErrnoText(e) + " (" + ErrnoName(e) +
                 ")\nBTF log:\n" + (ne.log.empty() ? std::string("(the kernel wrote no log)") : ne.log);
    ThrowBpfError(env, ne);
  }
}

// BTF object info; with `blob`, the kernel also copies the raw BTF into it.
static struct bpf_btf_info GetBtfInfo(Napi::Env env, int fd, std::vector<uint8_t>* blob) {
  struct bpf_btf_info bi;
  memset(&bi, 0, sizeof bi);
  if (blob) {
    bi.btf = reinterpret_cast<uint64_t>(blob->data());
    bi.btf_size = static_cast<uint32_t>(blob->size());
  }
  uint32_t len = sizeof bi;
  if (bpf_obj_get_info_by_fd(fd, &bi, &len) < 0) {
    int e = errno;
    ThrowErrno(env, e, "bpf_obj_get_info_by_fd", std::string(blob ? "BTF blob" : "BTF info") + " (fd " + std::to_string(fd) + ")");
  }
  return bi;
}

static Napi::Value BtfInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct bpf_btf_info bi = GetBtfInfo(env, ArgFd(info, 0, "fd"), nullptr);
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", bi.id);
  o.Set("size", bi.btf_size);
  return o;
}

// btfRaw(fd) -> Buffer: the BTF blob the kernel holds (for comparing a pinned
// map's key/value layout with what a new object expects).
static Napi::Value BtfRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  std::vector<uint8_t> blob(GetBtfInfo(env, fd, nullptr).btf_size);
  struct bpf_btf_info bi = GetBtfInfo(env, fd, &blob);
  return Napi::Buffer<uint8_t>::Copy(env, blob.data(), std::min<size_t>(blob.size(), bi.btf_size));
}

// --- linkInfo(fd) ---------------------------------------------------------------

static Napi::Value LinkInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct bpf_link_info li;
  memset(&li, 0, sizeof li);
  uint32_t len = sizeof li;
  if (bpf_obj_get_info_by_fd(fd, &li, &len) < 0)
    ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "link info (fd " + std::to_string(fd) + ")");
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", li.id);
  o.Set("type", li.type);
  o.Set("progId", li.prog_id);
  return o;
}

void InitProgs(Napi::Env env, Napi::Object exports) {
  exports.Set("progLoad", Napi::Function::New(env, ProgLoad, "progLoad"));
  exports.Set("progTestRun", Napi::Function::New(env, ProgTestRun, "progTestRun"));
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo, "progInfo"));
  exports.Set("btfLoad", Napi::Function::New(env, BtfLoad, "btfLoad"));
  exports.Set("btfInfo", Napi::Function::New(env, BtfInfo, "btfInfo"));
  exports.Set("btfRaw", Napi::Function::New(env, BtfRaw, "btfRaw"));
  exports.Set("linkInfo", Napi::Function::New(env, LinkInfo, "linkInfo"));
}

}  // namespace weir
