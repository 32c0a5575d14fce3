#pragma once
// A listening stream socket (TCP or Unix) and its multishot accept.
//
// Accept errors never spin the loop: fd exhaustion (EMFILE, ENFILE) and
// kernel memory pressure (ENOBUFS, ENOMEM) pause accepting for a back-off
// and re-arm afterwards; pending clients wait in the kernel's backlog
// meanwhile, and are served as soon as descriptors free up.

#include <functional>
#include <memory>
#include <string>

#include "base/unique_fd.hpp"
#include "net/socket_address.hpp"
#include "net/socket_file.hpp"
#include "reactor/reactor.hpp"
#include "server/listener_settings.hpp"

namespace framed::server {

class StreamListener final : public reactor::IoHandler {
 public:
  // What a listener reports to (its shard).
  class Owner {
   public:
    virtual void on_accepted(StreamListener& listener, base::UniqueFd fd) = 0;
    // fd_exhausted: EMFILE and friends; accepting pauses for a moment.
    virtual void on_accept_failed(StreamListener& listener, int error, bool fd_exhausted) = 0;

   protected:
    ~Owner() = default;
  };

  StreamListener(reactor::Reactor& reactor, Owner& owner, base::UniqueFd fd, std::shared_ptr<const ListenerSettings> settings,
                 net::SocketAddress address, net::SocketFile socket_file);
  ~StreamListener();

  StreamListener(const StreamListener&) = delete;
  StreamListener& operator=(const StreamListener&) = delete;

  void start();
  // Stops accepting and closes the socket once the accept has completed;
  // removes the Unix socket file if this listener created it.
  void stop();
  [[nodiscard]] bool stopped() const noexcept { return !fd_ && !accept_armed_; }

  [[nodiscard]] const std::shared_ptr<const ListenerSettings>& settings() const noexcept { return settings_; }
  // A reload: connections accepted from now on get these settings; those
  // accepted before keep theirs.
  void set_settings(std::shared_ptr<const ListenerSettings> settings) noexcept { settings_ = std::move(settings); }
  // listen(2) again: the kernel takes a new backlog for a listening socket.
  void set_backlog(int backlog) noexcept;
  [[nodiscard]] const net::SocketAddress& address() const noexcept { return address_; }
  // A second descriptor of the listening socket (another reactor accepting
  // from the same one); invalid when it cannot be had (errno says why).
  [[nodiscard]] base::UniqueFd duplicate_socket() const noexcept;

  void on_io(std::uint8_t tag, std::int32_t result, std::uint32_t flags) override;
  // Accepting a connection ran out of memory (it was closed): accepting
  // goes on.
  void on_allocation_failure() noexcept override;

 private:
  void arm();

  Owner& owner_;
  reactor::Reactor& reactor_;
  base::UniqueFd fd_;
  reactor::IoToken token_;
  std::shared_ptr<const ListenerSettings> settings_;
  net::SocketAddress address_;
  net::SocketFile socket_file_;
  bool accept_armed_ = false;
  bool stopping_ = false;
  reactor::TimerId backoff_timer_ = 0;
};

}  // namespace framed::server
