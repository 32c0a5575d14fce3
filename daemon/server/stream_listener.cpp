#include "server/stream_listener.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <new>

#include "base/errno_text.hpp"

namespace framed::server {
namespace {

// Long enough that a loop stuck at EMFILE costs nothing measurable, short
// enough that clients waiting in the backlog barely notice.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

bool is_resource_exhaustion(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

}  // namespace

StreamListener::StreamListener(reactor::Reactor& reactor, Owner& owner, base::UniqueFd fd, std::shared_ptr<const ListenerSettings> settings,
                               net::SocketAddress address, net::SocketFile socket_file)
    : owner_(owner),
      reactor_(reactor),
      fd_(std::move(fd)),
      settings_(std::move(settings)),
      address_(address),
      socket_file_(std::move(socket_file)) {
  token_ = reactor_.register_handler(*this);
}

StreamListener::~StreamListener() {
  if (backoff_timer_ != 0) reactor_.cancel_timer(backoff_timer_);
  reactor_.unregister_handler(token_);
  reactor_.close(fd_);
}

void StreamListener::start() { arm(); }

void StreamListener::arm() {
  if (stopping_ || !fd_ || accept_armed_) return;
  accept_armed_ = true;
  reactor_.accept(token_, 0, fd_.get());
}

void StreamListener::on_io(std::uint8_t /*tag*/, std::int32_t result, std::uint32_t flags) {
  if ((flags & reactor::kCompletionMore) == 0) accept_armed_ = false;
  if (result >= 0) {
    base::UniqueFd client(result);
    if (!stopping_) owner_.on_accepted(*this, std::move(client));
  } else if (result != -ECANCELED) {
    const int err = -result;
    owner_.on_accept_failed(*this, err, is_resource_exhaustion(err));
    if (!accept_armed_ && !stopping_ && backoff_timer_ == 0) {
      backoff_timer_ = reactor_.add_timer(reactor_.now() + kAcceptBackoff, [this] {
        backoff_timer_ = 0;
        arm();
      });
    }
    return;
  }
  if (stopping_) {
    if (!accept_armed_) reactor_.close(fd_);
    return;
  }
  // A single-shot completion (no kCompletionMore) leaves nothing armed.
  if (!accept_armed_) arm();
}

void StreamListener::on_allocation_failure() noexcept {
  if (stopping_ || accept_armed_) return;
  try {
    arm();
  } catch (const std::bad_alloc&) {
    // Not even that: the periodic accept backoff is all that is left, and
    // it needs memory too. The next completion of any kind tries again.
  }
}

void StreamListener::set_backlog(int backlog) noexcept {
  if (fd_ && ::listen(fd_.get(), backlog) != 0) {
    SPDLOG_WARN("{}: listen(backlog {}): {}", settings_->name, backlog, base::errno_text(errno));
  }
}

void StreamListener::stop() {
  if (stopping_) return;
  stopping_ = true;
  if (backoff_timer_ != 0) {
    reactor_.cancel_timer(backoff_timer_);
    backoff_timer_ = 0;
  }
  if (accept_armed_) {
    reactor_.cancel(fd_.get());  // the fd is closed when the cancel completes
  } else {
    reactor_.close(fd_);
  }
  socket_file_.remove();
}

base::UniqueFd StreamListener::duplicate_socket() const noexcept {
  return base::UniqueFd(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
}

}  // namespace framed::server
