// Ring buffers: NativeRingBuffer reads records from one or more
// BPF_MAP_TYPE_RINGBUF maps through libbpf's ring_buffer (one epoll fd over
// all the rings, each ring mmapped).
//
// Everything here runs on the JS thread; nothing blocks and nothing spins:
//
// - consume(deliver) drains synchronously.
// - start(deliver, onError) watches ring_buffer__epoll_fd() with a libuv
//   uv_poll_t on the environment's own loop. When the epoll fd turns readable
//   (libbpf registered every ring with EPOLLIN, level-triggered), one pass
//   runs: at most `batch` records are taken from the rings, then handed to JS.
//   Records left in the ring keep the epoll fd readable, so the next loop
//   iteration comes back for them after timers and I/O had their turn.
//
// Records are copied out of the ring inside libbpf's sample callback (the
// pointer is only valid there) into one byte arena per pass, and JS is
// called only after ring_buffer__consume() has returned: a JS exception never
// unwinds through libbpf's C frames, and JS may call back into the reader
// (stop, close, add) without touching a ring that libbpf is walking.
//
// The pass size is bounded by returning a negative value from the sample
// callback once `batch` records are held: libbpf then stores the consumer
// position past that record and stops (ring_buffer__consume() returns the
// value), so nothing is lost or read twice.
//
// A record whose JS callback throws has been delivered (it counts); records
// taken in the same pass that were not yet delivered stay pending, in order,
// and go first on the next consume() or start(). On the asynchronous path
// the reader stops itself and calls onError(err).
//
// Lifetime: while started, the object holds a strong reference to itself
// (and to the JS callbacks) so a reader nobody else references keeps
// delivering, as a listening socket does; stop() or close() drops it. The
// uv_poll_t lives in a heap holder that outlives the reader until libuv's
// close callback, and an async cleanup hook closes it if the environment is
// torn down first (worker threads must not exit with open handles).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common.h"

namespace weir {

namespace {

// Returned by the sample callback to end a pass; any negative value makes
// libbpf stop after committing the consumer position of the current record.
constexpr int kPassFull = -ECANCELED;

class NativeRingBuffer;

struct PollHolder {
  uv_poll_t poll;
  NativeRingBuffer* owner = nullptr;  // null once the reader let go
  napi_async_cleanup_hook_handle hook = nullptr;
  bool closing = false;
};

void OnPollClosed(uv_handle_t* h) {
  auto* ph = static_cast<PollHolder*>(h->data);
  if (ph->hook) napi_remove_async_cleanup_hook(ph->hook);
  delete ph;
}

void ClosePoll(PollHolder* ph) {
  if (ph->closing) return;
  ph->closing = true;
  ph->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&ph->poll), OnPollClosed);
}

struct RingCtx {
  NativeRingBuffer* self;
  uint32_t index;
};

// Checks that fd is a ring buffer map, for a message better than libbpf's.
void CheckRingbufFd(Napi::Env env, int fd, const char* fn) {
  std::string kind;
  int r = FdKindOf(fd, &kind);
  if (r < 0) ThrowErrno(env, -r, "readlink", "inspect fd " + std::to_string(fd));
  NativeError e;
  e.err = EINVAL;
  e.syscall = fn;
  if (kind != "map") {
    e.message = "fd " + std::to_string(fd) + " is a BPF " + kind + ", not a ring buffer map (EINVAL)";
    ThrowBpfError(env, e);
  }
  struct bpf_map_info info;
  memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
    ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "map info (fd " + std::to_string(fd) + ")");
  }
  if (info.type != BPF_MAP_TYPE_RINGBUF) {
    e.message = std::string("map ") + (info.name[0] ? info.name : "(unnamed)") + " (id " +
                std::to_string(info.id) + ") has map type " + std::to_string(info.type) +
                ", not RINGBUF (27) (EINVAL)";
    ThrowBpfError(env, e);
  }
}

class NativeRingBuffer : public Napi::ObjectWrap<NativeRingBuffer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeRingBuffer",
                       {
                           InstanceMethod<&NativeRingBuffer::Add>("add"),
                           InstanceMethod<&NativeRingBuffer::Consume>("consume"),
                           InstanceMethod<&NativeRingBuffer::Start>("start"),
                           InstanceMethod<&NativeRingBuffer::Stop>("stop"),
                           InstanceMethod<&NativeRingBuffer::Kick>("kick"),
                           InstanceMethod<&NativeRingBuffer::Close>("close"),
                           InstanceMethod<&NativeRingBuffer::Stats>("stats"),
                       });
  }

  // new NativeRingBuffer(mapFd, batch): ring 0 is mapFd.
  NativeRingBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeRingBuffer>(info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0, "fd");
    batch_ = static_cast<uint32_t>(ArgInt(info, 1, "batch", 1, 1 << 20));
    CheckRingbufFd(env, fd, "ring_buffer__new");
    auto ctx = std::make_unique<RingCtx>(RingCtx{this, 0});
    LIBBPF_OPTS(ring_buffer_opts, opts);
    rb_ = ring_buffer__new(fd, OnSample, ctx.get(), &opts);
    if (!rb_) ThrowErrno(env, errno, "ring_buffer__new", "ring buffer reader for map fd " + std::to_string(fd));
    rings_.push_back(std::move(ctx));
  }

  ~NativeRingBuffer() override { FreeNative(); }

 private:
  struct Rec {
    uint32_t ring;
    size_t off;
    size_t len;
  };

  // --- libbpf / libuv callbacks ----------------------------------------------

  // Called by libbpf inside ring_buffer__consume(); must not throw.
  static int OnSample(void* ctx, void* data, size_t size) noexcept {
    auto* rc = static_cast<RingCtx*>(ctx);
    NativeRingBuffer* self = rc->self;
    try {
      const auto* p = static_cast<const uint8_t*>(data);
      size_t off = self->bytes_.size();
      self->bytes_.insert(self->bytes_.end(), p, p + size);
      self->recs_.push_back(Rec{rc->index, off, size});
    } catch (...) {
      // Out of memory: this record is consumed but lost; the pass reports ENOMEM.
      self->copyFailed_ = true;
      return kPassFull;
    }
    return self->recs_.size() >= self->budget_ ? kPassFull : 0;
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* ph = static_cast<PollHolder*>(h->data);
    NativeRingBuffer* self = ph->owner;
    if (!self) return;
    Napi::Env env = self->Env();
    self->inPoll_ = true;
    {
      Napi::HandleScope hs(env);
      Napi::Object keep = self->Value();  // alive for the whole pass, whatever JS does
      (void)keep;
      Napi::CallbackScope cs(env, *self->asyncCtx_);
      self->wakeups_++;
      if (status < 0) {
        NativeError e;
        e.err = -status;
        e.syscall = "uv_poll";
        e.context = "watch ring buffer epoll fd";
        self->Fail(MakeBpfError(env, e));
      } else {
        self->RunPass();
      }
    }
    self->inPoll_ = false;
    if (self->closed_) self->asyncCtx_.reset();
  }

  static void OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
    auto* ph = static_cast<PollHolder*>(arg);
    if (ph->owner) {
      ph->owner->running_ = false;
      ph->owner->poll_ = nullptr;
    }
    ClosePoll(ph);
  }

  // --- internals ----------------------------------------------------------------

  void CheckOpen(Napi::Env env, const char* op) {
    if (!closed_) return;
    NativeError e;
    e.err = EBADF;
    e.syscall = op;
    e.message = std::string("ring buffer reader is closed (") + op + ") (EBADF)";
    ThrowBpfError(env, e);
  }

  size_t Pending() const { return recs_.size() - next_; }

  // Takes up to `max` records from the rings into the arena (which must hold
  // no pending records). Returns how many were taken.
  size_t Fill(Napi::Env env, size_t max) {
    bytes_.clear();
    recs_.clear();
    next_ = 0;
    budget_ = max;
    copyFailed_ = false;
    int r = ring_buffer__consume(rb_);
    if (copyFailed_) ThrowErrno(env, ENOMEM, "ring_buffer__consume", "copy a ring buffer record");
    if (r < 0 && r != kPassFull) ThrowErrno(env, -r, "ring_buffer__consume", "read ring buffer");
    return recs_.size();
  }

  // Hands pending records to fn(buffer, ringIndex), in order. Stops early
  // when the reader is closed, or (async) stopped, by a callback. A throwing
  // callback propagates (as Napi::Error) with the rest still pending.
  uint64_t Deliver(Napi::Env env, Napi::Function fn, bool async) {
    struct Guard {
      bool& f;
      explicit Guard(bool& flag) : f(flag) { f = true; }
      ~Guard() { f = false; }
    } guard(delivering_);
    uint64_t n = 0;
    while (!closed_ && (!async || running_) && next_ < recs_.size()) {
      const Rec r = recs_[next_++];
      Napi::Buffer<uint8_t> b = CopyBuffer(env, bytes_.data() + r.off, r.len);
      records_++;
      n++;
      fn.Call({b, Napi::Number::New(env, r.ring)});
    }
    if (next_ >= recs_.size()) {
      recs_.clear();
      bytes_.clear();
      next_ = 0;
    }
    return n;
  }

  // One asynchronous pass: pending records, else up to batch_ fresh ones.
  // Errors stop the reader and go to onError.
  void RunPass() {
    if (!running_ || closed_ || delivering_) return;
    Napi::Env env = Env();
    Napi::Function fn = deliverRef_.Value();
    try {
      if (Pending() == 0) Fill(env, batch_);
      Deliver(env, fn, true);
    } catch (const Napi::Error& e) {
      Fail(e.Value());
    } catch (const std::exception& e) {
      Fail(Napi::Error::New(env, std::string("ring buffer reader: ") + e.what()).Value());
    }
  }

  // Stops the reader and reports err to onError; if there is none, or it
  // throws, the error becomes an uncaught exception.
  void Fail(Napi::Value err) {
    Napi::Env env = Env();
    Napi::Function onError;
    if (!errorRef_.IsEmpty()) onError = errorRef_.Value();
    StopPolling();
    if (onError.IsEmpty()) {
      napi_fatal_exception(env, err);
      return;
    }
    try {
      onError.Call({err});
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  void StopPolling() {
    if (running_ && poll_) uv_poll_stop(&poll_->poll);
    running_ = false;
    deliverRef_.Reset();
    errorRef_.Reset();
    if (selfRef_) {
      selfRef_ = false;
      Unref();
    }
  }

  // Frees the poll handle (asynchronously, through libuv) and the ring_buffer
  // (its epoll fd and mmaps). No JS here: also runs from the destructor.
  void FreeNative() {
    closed_ = true;
    running_ = false;
    if (poll_) {
      ClosePoll(poll_);
      poll_ = nullptr;
    }
    if (rb_) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
    }
    recs_.clear();
    recs_.shrink_to_fit();
    bytes_.clear();
    bytes_.shrink_to_fit();
    next_ = 0;
  }

  // --- JS methods -----------------------------------------------------------------

  // add(mapFd) -> ring index
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env, "ring_buffer__add");
    int fd = ArgFd(info, 0, "fd");
    CheckRingbufFd(env, fd, "ring_buffer__add");
    auto ctx = std::make_unique<RingCtx>(RingCtx{this, static_cast<uint32_t>(rings_.size())});
    int r = ring_buffer__add(rb_, fd, OnSample, ctx.get());
    if (r < 0) ThrowErrno(env, -r, "ring_buffer__add", "add map fd " + std::to_string(fd) + " to ring buffer reader");
    rings_.push_back(std::move(ctx));
    return Napi::Number::New(env, rings_.size() - 1);
  }

  // consume(deliver) -> records delivered. Drains in passes of batch_ until a
  // pass comes back short (the rings were empty when it ended).
  Napi::Value Consume(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env, "ring_buffer__consume");
    if (info.Length() < 1 || !info[0].IsFunction()) ThrowType(env, "consume: expected a callback");
    if (delivering_) {
      throw Napi::Error::New(env, "RingBuffer.consume() called from inside its own record callback");
    }
    Napi::Function fn = info[0].As<Napi::Function>();
    uint64_t total = 0;
    bool more = true;
    // Bounded: a producer as fast as JS would otherwise keep us here forever.
    // What is left stays in the ring for the next call.
    const int kMaxPasses = 64;
    for (int pass = 0; more && !closed_ && pass < kMaxPasses; pass++) {
      if (Pending() == 0) {
        size_t got = Fill(env, batch_);
        if (got == 0) break;
        more = got >= batch_;
      }
      total += Deliver(env, fn, false);
    }
    return Napi::Number::New(env, static_cast<double>(total));
  }

  // start(deliver, onError): idempotent; a second call replaces the callbacks.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env, "uv_poll_start");
    if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) {
      ThrowType(env, "start: expected (deliver, onError) callbacks");
    }
    if (!poll_) {
      uv_loop_t* loop = nullptr;
      if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
        throw Napi::Error::New(env, "ring buffer reader: no libuv loop for this environment");
      }
      auto ph = std::make_unique<PollHolder>();
      int r = uv_poll_init(loop, &ph->poll, ring_buffer__epoll_fd(rb_));
      if (r < 0) ThrowErrno(env, -r, "uv_poll_init", "watch ring buffer epoll fd " + std::to_string(ring_buffer__epoll_fd(rb_)));
      ph->poll.data = ph.get();
      ph->owner = this;
      PollHolder* raw = ph.release();  // from here on freed by OnPollClosed
      if (napi_add_async_cleanup_hook(env, OnEnvTeardown, raw, &raw->hook) != napi_ok) raw->hook = nullptr;
      poll_ = raw;
    }
    if (!asyncCtx_) asyncCtx_ = std::make_unique<Napi::AsyncContext>(env, "weir.RingBuffer");
    deliverRef_ = Napi::Persistent(info[0].As<Napi::Function>());
    errorRef_ = Napi::Persistent(info[1].As<Napi::Function>());
    if (!running_) {
      int r = uv_poll_start(&poll_->poll, UV_READABLE, OnPoll);
      if (r < 0) {
        deliverRef_.Reset();
        errorRef_.Reset();
        ThrowErrno(env, -r, "uv_poll_start", "watch ring buffer epoll fd");
      }
      running_ = true;
    }
    if (!selfRef_) {
      Ref();
      selfRef_ = true;
    }
    return Napi::Boolean::New(env, Pending() > 0);
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (!closed_) StopPolling();
    return info.Env().Undefined();
  }

  // kick(): one asynchronous pass now (the facade schedules it after start()
  // when records are pending, since an empty ring will not wake the poll).
  Napi::Value Kick(const Napi::CallbackInfo& info) {
    RunPass();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (!closed_) {
      StopPolling();
      FreeNative();
      if (!inPoll_) asyncCtx_.reset();
    }
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("records", Napi::Number::New(env, static_cast<double>(records_)));
    o.Set("wakeups", Napi::Number::New(env, static_cast<double>(wakeups_)));
    o.Set("pending", Napi::Number::New(env, static_cast<double>(Pending())));
    o.Set("rings", Napi::Number::New(env, static_cast<double>(rings_.size())));
    o.Set("running", Napi::Boolean::New(env, running_));
    o.Set("closed", Napi::Boolean::New(env, closed_));
    return o;
  }

  ring_buffer* rb_ = nullptr;
  std::vector<std::unique_ptr<RingCtx>> rings_;  // stable ctx pointers for libbpf
  PollHolder* poll_ = nullptr;
  std::unique_ptr<Napi::AsyncContext> asyncCtx_;
  Napi::FunctionReference deliverRef_, errorRef_;
  uint32_t batch_ = 1024;
  bool running_ = false, closed_ = false, delivering_ = false, selfRef_ = false, inPoll_ = false;

  // The current pass: copied records, the next one to deliver.
  std::vector<uint8_t> bytes_;
  std::vector<Rec> recs_;
  size_t next_ = 0;
  size_t budget_ = 0;
  bool copyFailed_ = false;

  uint64_t records_ = 0, wakeups_ = 0;
};

}  // namespace

void InitRingbuf(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeRingBuffer", NativeRingBuffer::Define(env));
}

}  // namespace weir
