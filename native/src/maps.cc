// Maps: creation and a NativeMap handle that knows the map's real key and
// value sizes (read from the kernel with BPF_OBJ_GET_INFO_BY_FD when the
// handle is made), so every buffer handed to bpf(2) is checked here and the
// kernel never reads or writes past a JS Buffer.
//
// The handle does not own the fd: the TypeScript Fd object does. The facade
// calls invalidate() when it closes the fd so a stale handle cannot touch
// whatever object later reuses the fd number.
//
// mmap() of a BPF_F_MMAPABLE array: see MapRegion below for why a mapping
// can never become a dangling pointer under a JS Buffer.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "common.h"

namespace weir {

static const char* const kMapTypeNames[] = {
    "UNSPEC", "HASH", "ARRAY", "PROG_ARRAY", "PERF_EVENT_ARRAY", "PERCPU_HASH",
    "PERCPU_ARRAY", "STACK_TRACE", "CGROUP_ARRAY", "LRU_HASH", "LRU_PERCPU_HASH",
    "LPM_TRIE", "ARRAY_OF_MAPS", "HASH_OF_MAPS", "DEVMAP", "SOCKMAP", "CPUMAP",
    "XSKMAP", "SOCKHASH", "CGROUP_STORAGE", "REUSEPORT_SOCKARRAY",
    "PERCPU_CGROUP_STORAGE", "QUEUE", "STACK", "SK_STORAGE", "DEVMAP_HASH",
    "STRUCT_OPS", "RINGBUF", "INODE_STORAGE", "TASK_STORAGE", "BLOOM_FILTER",
    "USER_RINGBUF", "CGRP_STORAGE", "ARENA"};

static std::string MapTypeName(uint32_t t) {
  if (t < sizeof(kMapTypeNames) / sizeof(kMapTypeNames[0])) return kMapTypeNames[t];
  return "type " + std::to_string(t);
}

static bool IsPerCpu(uint32_t t) {
  return t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_ARRAY ||
         t == BPF_MAP_TYPE_LRU_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

// --- mapCreate(opts) -> fd -------------------------------------------------

static Napi::Value MapCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowType(env, "mapCreate: expected an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  uint32_t type = PropU32(o, "type", 0);
  std::string name = PropString(o, "name", "");
  if (name.size() > BPF_OBJ_NAME_LEN - 1) name.resize(BPF_OBJ_NAME_LEN - 1);
  uint32_t keySize = PropU32(o, "keySize", 0);
  uint32_t valueSize = PropU32(o, "valueSize", 0);
  uint32_t maxEntries = PropU32(o, "maxEntries", 0);

  LIBBPF_OPTS(bpf_map_create_opts, opts);
  opts.map_flags = PropU32(o, "flags", 0);
  opts.btf_fd = PropU32(o, "btfFd", 0);
  opts.btf_key_type_id = PropU32(o, "btfKeyTypeId", 0);
  opts.btf_value_type_id = PropU32(o, "btfValueTypeId", 0);
  opts.inner_map_fd = PropU32(o, "innerMapFd", 0);
  opts.numa_node = PropU32(o, "numaNode", 0);
  Napi::Value extra = o.Get("mapExtra");
  if (extra.IsBigInt()) {
    bool lossless = true;
    opts.map_extra = extra.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowRange(env, "option mapExtra must fit in 64 bits");
  } else if (!extra.IsUndefined() && !extra.IsNull()) {
    opts.map_extra = PropU32(o, "mapExtra", 0);
  }

  int fd = bpf_map_create(static_cast<enum bpf_map_type>(type), name.empty() ? nullptr : name.c_str(),
                          keySize, valueSize, maxEntries, &opts);
  if (fd < 0) {
    ThrowErrno(env, errno, "bpf_map_create",
               "create map " + (name.empty() ? std::string("(unnamed)") : name) + " (type " +
                   MapTypeName(type) + ", key " + std::to_string(keySize) + ", value " +
                   std::to_string(valueSize) + ", max_entries " + std::to_string(maxEntries) +
                   ", flags " + std::to_string(opts.map_flags) + ")");
  }
  return Napi::Number::New(env, fd);
}

// --- mmap regions ------------------------------------------------------------

// One shared mapping of a map's values, handed to JS as an external Buffer.
// The Buffer's finalizer is the only place the address range is unmapped, so
// the Buffer's memory stays valid for as long as JS can reach it. Releasing
// the mapping early (MapMapping.close(), or closing the map) swaps the range
// for private anonymous zero pages in place (MAP_FIXED, atomic): the map loses
// this reference at once (an old inner map can be freed), and a stale Buffer
// reads zeros and writes nowhere instead of faulting.
struct MapRegion {
  void* addr = nullptr;
  size_t len = 0;
  bool released = false;  // no longer backed by the map
  bool unmapped = false;  // the Buffer was collected; the range is gone

  // Returns 0 or an errno.
  int Release() {
    if (released || unmapped) return 0;
    void* p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) return errno;
    released = true;
    return 0;
  }
};

static void FinalizeRegion(Napi::Env, uint8_t*, std::shared_ptr<MapRegion>* hint) {
  MapRegion& r = **hint;
  if (!r.unmapped) munmap(r.addr, r.len);
  r.unmapped = true;
  delete hint;
}

// --- NativeMap ---------------------------------------------------------------

class NativeMap : public Napi::ObjectWrap<NativeMap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeMap",
                       {
                           InstanceMethod<&NativeMap::Info>("info"),
                           InstanceMethod<&NativeMap::Invalidate>("invalidate"),
                           InstanceMethod<&NativeMap::Lookup>("lookup"),
                           InstanceMethod<&NativeMap::Update>("update"),
                           InstanceMethod<&NativeMap::Delete>("delete"),
                           InstanceMethod<&NativeMap::NextKey>("nextKey"),
                           InstanceMethod<&NativeMap::LookupAndDelete>("lookupAndDelete"),
                           InstanceMethod<&NativeMap::LookupBatch>("lookupBatch"),
                           InstanceMethod<&NativeMap::UpdateBatch>("updateBatch"),
                           InstanceMethod<&NativeMap::DeleteBatch>("deleteBatch"),
                           InstanceMethod<&NativeMap::Freeze>("freeze"),
                           InstanceMethod<&NativeMap::Mmap>("mmap"),
                           InstanceMethod<&NativeMap::Unmap>("unmap"),
                       });
  }

  // new NativeMap(fd)
  NativeMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeMap>(info) {
    Napi::Env env = info.Env();
    fd_ = ArgFd(info, 0, "fd");
    std::string kind;
    int r = FdKindOf(fd_, &kind);
    if (r < 0) ThrowErrno(env, -r, "readlink", "inspect fd " + std::to_string(fd_));
    if (kind != "map") {
      NativeError e;
      e.err = EINVAL;
      e.syscall = "bpf_obj_get_info_by_fd";
      e.message = "fd " + std::to_string(fd_) + " is a BPF " + kind + ", not a map (EINVAL)";
      ThrowBpfError(env, e);
    }
    memset(&info_, 0, sizeof info_);
    uint32_t len = sizeof info_;
    if (bpf_obj_get_info_by_fd(fd_, &info_, &len) < 0) {
      ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "map info (fd " + std::to_string(fd_) + ")");
    }
    keySize_ = info_.key_size;
    valueSize_ = info_.value_size;
    if (IsPerCpu(info_.type)) {
      int cpus = libbpf_num_possible_cpus();
      if (cpus < 0) ThrowErrno(env, -cpus, "libbpf_num_possible_cpus", "per-CPU value size");
      valueBufSize_ = ((static_cast<size_t>(valueSize_) + 7) / 8) * 8 * static_cast<size_t>(cpus);
    } else {
      valueBufSize_ = valueSize_;
    }
  }

 private:
  std::string Ctx() const {
    std::string n = info_.name[0] ? std::string(info_.name) : std::string("(unnamed)");
    return "map " + n + " (id " + std::to_string(info_.id) + ", fd " + std::to_string(fd_) + ")";
  }

  void CheckOpen(Napi::Env env) const {
    if (fd_ < 0) {
      NativeError e;
      e.err = EBADF;
      e.syscall = "bpf";
      e.message = Ctx() + ": map fd is closed (EBADF)";
      ThrowBpfError(env, e);
    }
  }

  // A key argument: exactly key_size bytes; maps without keys (queue, stack,
  // bloom filter) take an empty Buffer or undefined, passed to the kernel as NULL.
  const void* KeyArg(const Napi::CallbackInfo& info, size_t i, const char* what) const {
    Bytes k = OptBytes(info, i, "key");
    if (keySize_ == 0) {
      if (k.present && k.len != 0)
        ThrowRange(info.Env(), std::string(what) + ": " + Ctx() + " has no keys (key_size 0) but got a " +
                                   std::to_string(k.len) + "-byte key");
      return nullptr;
    }
    if (!k.present) ThrowType(info.Env(), std::string(what) + ": key is required for " + Ctx());
    if (k.len != keySize_)
      ThrowRange(info.Env(), std::string(what) + ": key is " + std::to_string(k.len) + " bytes but " + Ctx() +
                                 " has key_size " + std::to_string(keySize_));
    return k.data;
  }

  const void* ValueArg(const Napi::CallbackInfo& info, size_t i, const char* what) const {
    Bytes v = ArgBytes(info, i, "value");
    if (v.len != valueBufSize_) {
      std::string extra = valueBufSize_ != valueSize_
                              ? " (per-CPU: roundup(" + std::to_string(valueSize_) + ", 8) * possible CPUs = " +
                                    std::to_string(valueBufSize_) + ")"
                              : "";
      ThrowRange(info.Env(), std::string(what) + ": value is " + std::to_string(v.len) + " bytes but " + Ctx() +
                                 " needs " + std::to_string(valueBufSize_) + extra);
    }
    return v.data;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", info_.id);
    o.Set("name", std::string(info_.name, strnlen(info_.name, sizeof info_.name)));
    o.Set("type", info_.type);
    o.Set("keySize", info_.key_size);
    o.Set("valueSize", info_.value_size);
    o.Set("maxEntries", info_.max_entries);
    o.Set("flags", info_.map_flags);
    o.Set("btfId", info_.btf_id);
    o.Set("btfKeyTypeId", info_.btf_key_type_id);
    o.Set("btfValueTypeId", info_.btf_value_type_id);
    o.Set("mapExtra", Napi::BigInt::New(env, static_cast<uint64_t>(info_.map_extra)));
    o.Set("valueBufferSize", Napi::Number::New(env, static_cast<double>(valueBufSize_)));
    return o;
  }

  // Closing the map releases its mappings too (see MapRegion).
  Napi::Value Invalidate(const Napi::CallbackInfo& info) {
    fd_ = -1;
    for (auto& r : regions_) r->Release();
    regions_.clear();
    return info.Env().Undefined();
  }

  // mmap() -> Buffer over the values of an ARRAY created with
  // BPF_F_MMAPABLE, always read-write: a read-only mapping under a JS Buffer
  // would turn a stray write into SIGSEGV. The kernel lays values out at a stride of
  // roundup(value_size, 8); the length is that times max_entries, rounded
  // up to a page (the kernel refuses any other length).
  Napi::Value Mmap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    if (info_.type != BPF_MAP_TYPE_ARRAY || !(info_.map_flags & BPF_F_MMAPABLE)) {
      NativeError e;
      e.err = EINVAL;
      e.syscall = "mmap";
      e.message = "mmap: " + Ctx() + " is " + MapTypeName(info_.type) +
                  (info_.type == BPF_MAP_TYPE_ARRAY ? " without BPF_F_MMAPABLE (flags " + std::to_string(info_.map_flags) + ")"
                                                    : " (not an ARRAY)") +
                  "; only ARRAY maps created with MapFlags.MMAPABLE can be mapped (EINVAL)";
      ThrowBpfError(env, e);
    }
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t stride = (static_cast<size_t>(valueSize_) + 7) / 8 * 8;
    size_t len = (stride * info_.max_entries + page - 1) / page * page;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      std::string why = e == EPERM ? " (frozen, or opened read-only: mappings are read-write; use lookup)" : "";
      ThrowErrno(env, e, "mmap", "mmap " + std::to_string(len) + " bytes of " + Ctx() + why);
    }
    auto region = std::make_shared<MapRegion>();
    region->addr = p;
    region->len = len;
    regions_.erase(std::remove_if(regions_.begin(), regions_.end(), [](const std::shared_ptr<MapRegion>& r) { return r->unmapped; }),
                   regions_.end());
    regions_.push_back(region);
    auto* hint = new std::shared_ptr<MapRegion>(region);
    try {
      return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(p), len, FinalizeRegion, hint);
    } catch (...) {
      regions_.pop_back();
      munmap(p, len);
      delete hint;
      throw;
    }
  }

  // unmap(buffer) -> boolean: releases the mapping behind a Buffer from
  // mmap() (false when it was not one of this map's live mappings). Works on
  // a closed map (its mappings are already released then).
  Napi::Value Unmap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Bytes b = ArgBytes(info, 0, "buffer");
    for (auto it = regions_.begin(); it != regions_.end(); ++it) {
      MapRegion& r = **it;
      if (r.addr != b.data || r.unmapped) continue;
      int e = r.Release();
      if (e != 0) ThrowErrno(env, e, "mmap", "release the mapping of " + Ctx());
      regions_.erase(it);
      return Napi::Boolean::New(env, true);
    }
    return Napi::Boolean::New(env, false);
  }

  // lookup(key, flags) -> Buffer | undefined
  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    const void* key = KeyArg(info, 0, "lookup");
    uint64_t flags = OptU32(info, 1, "flags", 0);
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, valueBufSize_);
    int r = bpf_map_lookup_elem_flags(fd_, key, out.Data(), flags);
    if (r < 0) {
      if (errno == ENOENT) return env.Undefined();
      ThrowErrno(env, errno, "bpf_map_lookup_elem", "lookup in " + Ctx());
    }
    return out;
  }

  // update(key, value, flags)
  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    const void* key = KeyArg(info, 0, "update");
    const void* value = ValueArg(info, 1, "update");
    uint64_t flags = OptU32(info, 2, "flags", BPF_ANY);
    if (bpf_map_update_elem(fd_, key, value, flags) < 0) {
      int e = errno;
      std::string why;
      if (e == EEXIST && (flags & 3) == BPF_NOEXIST) why = " (flag NOEXIST: the key already exists)";
      else if (e == ENOENT && (flags & 3) == BPF_EXIST) why = " (flag EXIST: the key does not exist)";
      else if (e == E2BIG) why = " (map is full: max_entries " + std::to_string(info_.max_entries) + ")";
      ThrowErrno(env, e, "bpf_map_update_elem", "update in " + Ctx() + why);
    }
    return env.Undefined();
  }

  // delete(key) -> boolean (false when absent)
  Napi::Value Delete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    const void* key = KeyArg(info, 0, "delete");
    if (bpf_map_delete_elem(fd_, key) < 0) {
      if (errno == ENOENT) return Napi::Boolean::New(env, false);
      ThrowErrno(env, errno, "bpf_map_delete_elem", "delete in " + Ctx());
    }
    return Napi::Boolean::New(env, true);
  }

  // nextKey(key | undefined) -> Buffer | undefined
  Napi::Value NextKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    const void* key = nullptr;
    if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) key = KeyArg(info, 0, "nextKey");
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, std::max<size_t>(keySize_, 1));
    if (bpf_map_get_next_key(fd_, key, out.Data()) < 0) {
      if (errno == ENOENT) return env.Undefined();
      ThrowErrno(env, errno, "bpf_map_get_next_key", "next key in " + Ctx());
    }
    if (keySize_ == 0) return Napi::Buffer<uint8_t>::New(env, 0);
    return out;
  }

  // lookupAndDelete(key) -> Buffer | undefined (queue/stack: key empty = pop)
  Napi::Value LookupAndDelete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    const void* key = KeyArg(info, 0, "lookupAndDelete");
    uint64_t flags = OptU32(info, 1, "flags", 0);
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, valueBufSize_);
    if (bpf_map_lookup_and_delete_elem_flags(fd_, key, out.Data(), flags) < 0) {
      if (errno == ENOENT) return env.Undefined();
      ThrowErrno(env, errno, "bpf_map_lookup_and_delete_elem", "lookup and delete in " + Ctx());
    }
    return out;
  }

  [[noreturn]] void ThrowBatch(Napi::Env env, int e, const char* fn, const std::string& op, uint32_t done) {
    NativeError ne;
    ne.err = e;
    ne.syscall = fn;
    if (e == 524 /* ENOTSUPP */ || e == EOPNOTSUPP ||
        (e == EINVAL && (info_.type == BPF_MAP_TYPE_LPM_TRIE || info_.type == BPF_MAP_TYPE_RINGBUF ||
                         info_.type == BPF_MAP_TYPE_QUEUE || info_.type == BPF_MAP_TYPE_STACK ||
                         info_.type == BPF_MAP_TYPE_BLOOM_FILTER || info_.type == BPF_MAP_TYPE_USER_RINGBUF))) {
      ne.message = op + " on " + Ctx() + ": batch ops are not supported for map type " + MapTypeName(info_.type) +
                   "; use lookup/update per key (" + ErrnoName(e) + ": " + ErrnoText(e) + ")";
    } else {
      ne.context = op + " on " + Ctx();
      if (done > 0) ne.context += " after " + std::to_string(done) + " elements";
    }
    ThrowBpfError(env, ne);
  }

  // lookupBatch(batchSize) -> { keys: Buffer, values: Buffer, count }
  // Walks the whole map with BPF_MAP_LOOKUP_BATCH; grows the chunk when a
  // hash bucket holds more entries than fit (ENOSPC).
  Napi::Value LookupBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    uint32_t batch = static_cast<uint32_t>(ArgInt(info, 0, "batchSize", 1, 1 << 20));
    size_t ks = keySize_, vs = valueBufSize_;
    size_t tokSize = std::max<size_t>(ks, 8);
    std::vector<uint8_t> inTok(tokSize), outTok(tokSize);
    std::vector<uint8_t> keys, vals;
    size_t total = 0;
    bool first = true;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    for (;;) {
      keys.resize((total + batch) * ks);
      vals.resize((total + batch) * vs);
      uint32_t count = batch;
      int r = bpf_map_lookup_batch(fd_, first ? nullptr : inTok.data(), outTok.data(), keys.data() + total * ks,
                                   vals.data() + total * vs, &count, &opts);
      int e = r < 0 ? errno : 0;
      if (e != 0 && e != ENOENT) {
        if (e == ENOSPC && count == 0 && batch < (1u << 20)) {
          batch *= 2;
          continue;
        }
        ThrowBatch(env, e, "bpf_map_lookup_batch", "lookup batch", static_cast<uint32_t>(total));
      }
      total += count;
      if (e == ENOENT) break;
      inTok = outTok;
      first = false;
    }
    Napi::Object res = Napi::Object::New(env);
    res.Set("keys", CopyBuffer(env, keys.data(), total * ks));
    res.Set("values", CopyBuffer(env, vals.data(), total * vs));
    res.Set("count", Napi::Number::New(env, static_cast<double>(total)));
    return res;
  }

  // updateBatch(keys concatenated, values concatenated, count, flags) -> count
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    Bytes keys = ArgBytes(info, 0, "keys");
    Bytes vals = ArgBytes(info, 1, "values");
    uint32_t n = ArgU32(info, 2, "count");
    uint64_t flags = OptU32(info, 3, "flags", BPF_ANY);
    if (keys.len != static_cast<size_t>(n) * keySize_ || vals.len != static_cast<size_t>(n) * valueBufSize_)
      ThrowRange(env, "updateBatch: " + std::to_string(n) + " elements need " + std::to_string(n * keySize_) +
                          " key bytes and " + std::to_string(n * valueBufSize_) + " value bytes for " + Ctx());
    if (n == 0) return Napi::Number::New(env, 0);
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
    uint32_t count = n;
    if (bpf_map_update_batch(fd_, keys.data, vals.data, &count, &opts) < 0) {
      int e = errno;
      ThrowBatch(env, e, "bpf_map_update_batch", "update batch", e == EFAULT || count >= n ? 0 : count);
    }
    return Napi::Number::New(env, count);
  }

  // deleteBatch(keys concatenated, count) -> number deleted. Keys that are
  // absent are skipped (the kernel stops at the first one; we resume after it).
  Napi::Value DeleteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    Bytes keys = ArgBytes(info, 0, "keys");
    uint32_t n = ArgU32(info, 1, "count");
    if (keySize_ == 0 || keys.len != static_cast<size_t>(n) * keySize_)
      ThrowRange(env, "deleteBatch: " + std::to_string(n) + " keys need " + std::to_string(n * keySize_) +
                          " bytes for " + Ctx());
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    uint32_t done = 0, deleted = 0;
    while (done < n) {
      uint32_t count = n - done;
      int r = bpf_map_delete_batch(fd_, keys.data + static_cast<size_t>(done) * keySize_, &count, &opts);
      if (r == 0) {
        deleted += count;
        break;
      }
      int e = errno;
      if (e == ENOENT && count < n - done) {
        deleted += count;
        done += count + 1;
        continue;
      }
      ThrowBatch(env, e, "bpf_map_delete_batch", "delete batch", deleted);
    }
    return Napi::Number::New(env, deleted);
  }

  Napi::Value Freeze(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    if (bpf_map_freeze(fd_) < 0) {
      int e = errno;
      ThrowErrno(env, e, "bpf_map_freeze", "freeze " + Ctx() + (e == EBUSY ? " (a writable mapping of it exists)" : ""));
    }
    return env.Undefined();
  }

  int fd_ = -1;
  struct bpf_map_info info_;
  uint32_t keySize_ = 0, valueSize_ = 0;
  size_t valueBufSize_ = 0;
  std::vector<std::shared_ptr<MapRegion>> regions_;  // live mappings made by mmap()
};

void InitMaps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapCreate", Napi::Function::New(env, MapCreate, "mapCreate"));
  Napi::Function ctor = NativeMap::Define(env);
  Data(env)->mapCtor = Napi::Persistent(ctor);
  exports.Set("NativeMap", ctor);
}

}  // namespace weir
