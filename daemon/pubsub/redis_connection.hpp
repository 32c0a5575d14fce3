#pragma once
// One hiredis async connection (hiredis/async.h), driven by the reactor: a
// non-blocking connect, then hiredis does its own reads and writes on the
// socket whenever the reactor says it is ready. Nothing here blocks: the
// host is numeric (config/redis_url.hpp), so hiredis's getaddrinfo does no
// lookup, and its connect is non-blocking (EINPROGRESS).
//
// Ownership. hiredis owns a redisAsyncContext from redisAsyncConnect until
// it frees it itself: after a failed connect, a connection that ended (an
// error, the server closing) or redisAsyncFree. Every path goes through the
// event adapter's cleanup hook, where this class lets go of the context
// (it never frees one that hiredis freed, nor touches it again) and takes
// over the socket: hiredis would close it at once, while the reactor may
// still be waiting on it (an io_uring poll holds the socket open until it is
// cancelled). The socket is closed only after its last wait has completed,
// as the reactor's contract asks.
//
// Reactor thread only. Not movable: hiredis holds pointers to it.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/redis_url.hpp"
#include "reactor/reactor.hpp"

struct redisAsyncContext;

namespace framed::pubsub {

class RedisConnection {
 public:
  struct Events {
    std::function<void()> connected;
    // The connect failed or timed out, or an open connection ended. The
    // context is gone; connect() may be called again (not from inside this
    // callback's caller: schedule it).
    std::function<void(const std::string& why)> lost;
  };

  RedisConnection(reactor::Reactor& reactor, Events events);
  // An open context is freed: hiredis answers its pending commands with
  // null replies (their callbacks must expect that), `lost` is not called.
  ~RedisConnection();

  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Starts connecting; `connected` or `lost` follows, from the reactor
  // loop (never from inside this call). Gives up after `timeout`.
  void connect(const config::RedisEndpoint& endpoint, std::chrono::milliseconds timeout);
  // Ends the connection, or the attempt, now, without `lost`.
  void close();

  // The context, for commands; null unless connected.
  [[nodiscard]] redisAsyncContext* context() const noexcept { return connected_ ? context_ : nullptr; }
  [[nodiscard]] bool connected() const noexcept { return connected_; }
  // Connecting or connected.
  [[nodiscard]] bool active() const noexcept { return context_ != nullptr; }

 private:
  class Watch;  // the event adapter of one context (redis_connection.cpp)

  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);
  // From the adapter's cleanup hook: hiredis is freeing the context.
  void on_context_freed(const std::string& why);
  void fail_soon(std::string why);
  void reap_retired();

  reactor::Reactor& reactor_;
  Events events_;
  redisAsyncContext* context_ = nullptr;  // hiredis's; null once it freed it
  bool connected_ = false;
  bool closing_ = false;  // close() or the destructor: no `lost`
  reactor::TimerId connect_timer_ = 0;
  std::unique_ptr<Watch> watch_;  // of context_
  // Adapters of freed contexts whose socket still has a wait in flight.
  std::vector<std::unique_ptr<Watch>> retired_;
  // Tells deferred work that this connection is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace framed::pubsub
