#include "pubsub/redis_connection.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "base/unique_fd.hpp"

namespace framed::pubsub {
namespace {

constexpr std::uint8_t kTagReadable = 1;
constexpr std::uint8_t kTagWritable = 2;

}  // namespace

// hiredis's event hooks for one context, on the reactor's readiness waits.
// hiredis expects level-triggered events while it wants them (addRead /
// addWrite, until delRead / delWrite): after each completion the wait is
// submitted again if still wanted. A wait cannot be withdrawn alone, so a
// completion nobody wants any more is ignored.
class RedisConnection::Watch final : private reactor::IoHandler {
 public:
  Watch(reactor::Reactor& reactor, RedisConnection& owner, redisAsyncContext* context)
      : reactor_(reactor), owner_(owner), context_(context), fd_(context->c.fd) {
    token_ = reactor_.register_handler(*this);
    context->ev.data = this;
    context->ev.addRead = [](void* self) {
      auto* watch = static_cast<Watch*>(self);
      watch->want(watch->read_, kTagReadable);
    };
    context->ev.delRead = [](void* self) { static_cast<Watch*>(self)->read_.wanted = false; };
    context->ev.addWrite = [](void* self) {
      auto* watch = static_cast<Watch*>(self);
      watch->want(watch->write_, kTagWritable);
    };
    context->ev.delWrite = [](void* self) { static_cast<Watch*>(self)->write_.wanted = false; };
    context->ev.cleanup = [](void* self) { static_cast<Watch*>(self)->on_cleanup(); };
  }

  ~Watch() {
    if (owned_fd_ && (read_.pending || write_.pending)) {
      // Destroyed with a wait in flight (the bridge went while the loop
      // runs): shutting the socket down ends the wait at once, so that the
      // kernel lets go of the socket; the completion finds no handler.
      ::shutdown(owned_fd_.get(), SHUT_RDWR);
    }
    reactor_.close(owned_fd_);
    reactor_.unregister_handler(token_);
  }

  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  // The context is gone and the socket closed: this adapter may go.
  [[nodiscard]] bool finished() const noexcept { return context_ == nullptr && !owned_fd_; }

 private:
  struct Direction {
    bool wanted = false;
    bool pending = false;
  };
  void want(Direction& direction, std::uint8_t tag) {
    direction.wanted = true;
    arm(direction, tag);
  }

  void arm(Direction& direction, std::uint8_t tag) {
    if (context_ == nullptr || !direction.wanted || direction.pending) return;
    direction.pending = true;
    if (tag == kTagReadable) {
      reactor_.wait_readable(token_, tag, fd_);
    } else {
      reactor_.wait_writable(token_, tag, fd_);
    }
  }

  void on_io(std::uint8_t tag, std::int32_t /*result*/, std::uint32_t /*flags*/) override {
    Direction& direction = tag == kTagReadable ? read_ : write_;
    direction.pending = false;
    if (context_ == nullptr) {
      close_when_idle();
      return;
    }
    // An error or a hang-up (POLLERR, POLLHUP) is hiredis's to find: its
    // read or write then fails and it ends the connection.
    if (direction.wanted) {
      if (tag == kTagReadable) {
        redisAsyncHandleRead(context_);
      } else {
        redisAsyncHandleWrite(context_);
      }
    }
    // hiredis may have freed the context meanwhile (on_cleanup).
    if (context_ == nullptr) {
      close_when_idle();
      return;
    }
    arm(direction, tag);
  }

  // hiredis frees the context: the socket is ours from here on (hiredis
  // closes c.fd unless it is -1), closed once no wait is in flight.
  void on_cleanup() {
    std::string why = context_->errstr != nullptr && context_->err != 0 ? context_->errstr : "connection closed";
    owned_fd_ = base::UniqueFd(context_->c.fd);
    context_->c.fd = -1;
    context_->ev.data = nullptr;
    context_ = nullptr;
    if (read_.pending || write_.pending) reactor_.cancel(owned_fd_.get());
    close_when_idle();
    owner_.on_context_freed(why);  // last: it may move this adapter into its retired list
  }

  void close_when_idle() {
    if (read_.pending || write_.pending) return;
    reactor_.close(owned_fd_);
    owner_.reap_retired();
  }

  reactor::Reactor& reactor_;
  RedisConnection& owner_;
  redisAsyncContext* context_;  // null once hiredis freed it
  int fd_;                      // the socket (hiredis's until on_cleanup)
  base::UniqueFd owned_fd_;     // the socket after on_cleanup, until closed
  reactor::IoToken token_;
  Direction read_;
  Direction write_;
};

RedisConnection::RedisConnection(reactor::Reactor& reactor, Events events)
    : reactor_(reactor), events_(std::move(events)) {}

RedisConnection::~RedisConnection() {
  *alive_ = false;
  close();
}

void RedisConnection::connect(const config::RedisEndpoint& endpoint, std::chrono::milliseconds timeout) {
  if (context_ != nullptr) return;
  closing_ = false;
  redisAsyncContext* context = redisAsyncConnect(endpoint.host.c_str(), endpoint.port);
  if (context == nullptr) return fail_soon("out of memory");
  if (context->err != 0) {
    // Refused before any event was hooked (no socket, a bad address):
    // nothing was handed to the reactor, so freeing here is all there is.
    std::string why = context->errstr;
    redisAsyncFree(context);
    return fail_soon(std::move(why));
  }
  context_ = context;
  context->data = this;
  watch_ = std::make_unique<Watch>(reactor_, *this, context);
  redisAsyncSetDisconnectCallback(context, &RedisConnection::on_disconnect);
  // Hooks the first write event (the connect completing): after the adapter.
  redisAsyncSetConnectCallback(context, &RedisConnection::on_connect);
  connect_timer_ = reactor_.add_timer(reactor_.now() + timeout, [this] {
    connect_timer_ = 0;
    if (context_ == nullptr || connected_) return;
    redisAsyncContext* attempt = context_;
    closing_ = true;  // the timeout says why, not the free
    redisAsyncFree(attempt);
    closing_ = false;
    if (events_.lost) events_.lost("connect timed out");
  });
}

void RedisConnection::close() {
  if (connect_timer_ != 0) reactor_.cancel_timer(connect_timer_);
  connect_timer_ = 0;
  if (context_ == nullptr) return;
  closing_ = true;
  redisAsyncFree(context_);  // runs on_context_freed before it returns
}

void RedisConnection::on_connect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<RedisConnection*>(context->data);
  if (self == nullptr || status != REDIS_OK) return;  // a failure ends in on_context_freed
  if (self->connect_timer_ != 0) self->reactor_.cancel_timer(self->connect_timer_);
  self->connect_timer_ = 0;
  self->connected_ = true;
  if (self->events_.connected) self->events_.connected();
}

// Only for a connection that was up; its end is told by on_context_freed,
// which every free reaches.
void RedisConnection::on_disconnect(const redisAsyncContext* /*context*/, int /*status*/) {}

void RedisConnection::on_context_freed(const std::string& why) {
  if (connect_timer_ != 0) reactor_.cancel_timer(connect_timer_);
  connect_timer_ = 0;
  context_ = nullptr;
  connected_ = false;
  if (watch_) retired_.push_back(std::move(watch_));
  reap_retired();
  if (closing_) return;
  // Told from the loop, not from inside hiredis (which is freeing the
  // context on this stack).
  fail_soon(why);
}

void RedisConnection::fail_soon(std::string why) {
  reactor_.defer([this, alive = alive_, why = std::move(why)] {
    if (*alive && events_.lost) events_.lost(why);
  });
}

void RedisConnection::reap_retired() {
  // Not now: the adapter may be on the stack (its on_io or on_cleanup).
  reactor_.defer([this, alive = alive_] {
    if (!*alive) return;
    std::erase_if(retired_, [](const std::unique_ptr<Watch>& watch) { return watch->finished(); });
  });
}

}  // namespace framed::pubsub
