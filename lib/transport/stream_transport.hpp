#pragma once
// One stream socket (TCP or Unix) as bytes in and bytes out, for whatever
// protocol sits on top (the request pipeline, later HTTP). It knows nothing
// of frames: it receives into input(), sends what is appended to output(),
// and closes without losing what was sent.
//
// Life (State):
//   open       receiving (unless stopped or paused by the handler) and sending;
//   lingering  everything is sent and our write side is shut: read and
//              discard until the peer closes (or a short deadline), so that
//              unread bytes of theirs do not turn our close into a reset that
//              would destroy the replies still in flight to them;
//   closing    the socket's operations are being cancelled; the fd is closed,
//              and the handler told, only after their last completion.
//
// Flow control is the handler's: it pauses reading while it is behind
// (pending replies, a slow body consumer) and the transport adds its own
// bound, output_full(), on bytes not yet sent.
//
// Buffers: input_ receives (a recv in flight writes into it, so the handler
// touches it only from its callbacks, when no recv is in flight); output_
// collects bytes while sending_ is in the kernel's hands, and the two swap
// when sending_ is done — the memory a send points at never moves under it.
//
// TLS (optional, given at construction): the recv brings ciphertext into
// tls_input_, the session decrypts it into input_; what the handler appends
// to output_ is plaintext, encrypted into sending_ when sending_ is free.
// Above the transport nothing changes: input(), output(), bytes_sent(),
// unsent_bytes() and output_full() count plaintext (bytes_sent() advances
// when a batch's ciphertext has all been sent), finish() sends close_notify
// before shutting the write side, and a handshake or record failure sends
// OpenSSL's alert and closes. kernel_queued_input() counts ciphertext.
//
// Reactor thread only.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <sys/socket.h>
#include <sys/uio.h>

#include "base/clock.hpp"
#include "base/unique_fd.hpp"
#include "buffer/byte_buffer.hpp"
#include "buffer/memory_budget.hpp"
#include "reactor/reactor.hpp"
#include "transport/tls_context.hpp"
#include "transport/tls_session.hpp"

namespace framed::transport {

struct StreamTransportOptions {
  // Sized for many mostly-idle connections: 10000 clients cost 160 MiB of
  // receive buffers at most; a large frame grows the buffer (reserve_input)
  // and an idle buffer above shrink_above gives the memory back.
  std::size_t initial_input_capacity = 16 * 1024;
  std::size_t initial_output_capacity = 4 * 1024;
  // A buffer that grew past this is given back once it is empty; below it,
  // keeping the memory is cheaper than reallocating for every batch.
  std::size_t shrink_above = 1024 * 1024;
  // The least free space a recv is offered, so reads are never tiny.
  std::size_t min_recv_space = 4 * 1024;
  // The most one recv may bring, however much room a large frame has made:
  // the copy out of the kernel (and the page faults of fresh buffer memory)
  // is one uninterrupted step of the reactor, and other connections wait
  // for it. At loopback speed this is a fraction of a millisecond.
  std::size_t max_recv_size = 512 * 1024;
  // Unsent bytes at which output_full() turns true.
  std::size_t output_high_water = 4 * 1024 * 1024;
  // How long a closing connection keeps draining the peer's unread bytes.
  std::chrono::nanoseconds linger_time = std::chrono::seconds(2);
  // The daemon-wide budget the buffers are counted in (null: none). While
  // it is exhausted no buffer grows for more input: a connection that
  // needs more room to go on stops reading (budget_stalled()).
  buffer::MemoryBudget* budget = nullptr;
};

class StreamTransport final : public reactor::IoHandler {
 public:
  // The protocol on top. Every callback runs on the reactor thread and may
  // call any method of the transport, close() included.
  class Handler {
   public:
    // `bytes` more are at the end of input(); consume what was used.
    virtual void on_input(std::size_t bytes) = 0;
    // The peer shut down its side (recv returned 0): no more input.
    virtual void on_peer_closed() = 0;
    // `bytes` of output left; bytes_sent() has advanced.
    virtual void on_sent(std::size_t bytes) = 0;
    // The fd is closed and nothing is in flight. The transport may be
    // destroyed, but not from inside this call (defer it).
    virtual void on_closed() = 0;

   protected:
    ~Handler() = default;
  };

  enum class State : std::uint8_t { open, lingering, closing };

  // `tls`: this connection speaks TLS as the server of that context.
  StreamTransport(reactor::Reactor& reactor, base::UniqueFd fd, Handler& handler,
                  const StreamTransportOptions& options = {}, const TlsServerContext* tls = nullptr);
  ~StreamTransport();

  StreamTransport(const StreamTransport&) = delete;
  StreamTransport& operator=(const StreamTransport&) = delete;

  // Starts receiving.
  void start() { arm_recv(); }

  // Received bytes. Touch only while input_available(): a recv in flight
  // writes into this buffer.
  [[nodiscard]] buffer::ByteBuffer& input() noexcept { return input_; }
  [[nodiscard]] bool input_available() const noexcept { return !recv_in_flight_; }
  // The handler knows the next message needs `total` bytes: room for it
  // grows ahead of the bytes, at most as much again as have arrived (and
  // never less than initial_input_capacity), instead of read by read. Never
  // the announced size at once: an announcement alone allocates nothing (a
  // 40-byte header may announce 64 MiB and send none of it).
  void reserve_input(std::size_t total);
  // Room for the next recv to bring at least `bytes` (a body streamed to a
  // sink, read in larger pieces while it arrives fast). Only while
  // input_available().
  // Not while the budget is spent (the reads stay as large as the buffer).
  void ensure_recv_room(std::size_t bytes);
  // Bytes to send: append, then flush().
  [[nodiscard]] buffer::ByteBuffer& output() noexcept { return output_; }
  void flush();

  // Flow control: no recv is armed while paused.
  void pause_reading() noexcept { reading_paused_ = true; }
  void resume_reading();
  // No more input is wanted, ever. A recv already in flight stays: what it
  // brings is still delivered (a client's last request gets its reply).
  void stop_reading() noexcept { reading_stopped_ = true; }
  // The handler has nothing more to send: once the output is sent, shut the
  // write side and linger (or close, if the peer has already shut its
  // side). Call again from on_sent while output remains; idempotent.
  void finish();
  // Closes now, dropping whatever is unsent.
  void close();
  // Reading stopped because the input needed memory the budget did not
  // have; retry_reading() tries again (the shard's sweep, once the budget
  // has room).
  [[nodiscard]] bool budget_stalled() const noexcept { return budget_stalled_; }
  void retry_reading();
  // Gives back the input buffer's memory, dropping what it holds (the
  // connection is being shed and will read nothing more). Only while
  // input_available().
  void release_input();
  // Memory the buffers take now (what the budget counts for this
  // connection).
  [[nodiscard]] std::size_t allocated_bytes() const noexcept {
    return input_.capacity() + output_.capacity() + sending_.capacity() + tls_input_.capacity();
  }
  // Ends lingering past its deadline; the periodic sweep calls it.
  void check_linger(base::TimePoint now);

  [[nodiscard]] State state() const noexcept { return state_; }
  [[nodiscard]] bool open() const noexcept { return state_ == State::open; }
  [[nodiscard]] bool peer_closed() const noexcept { return peer_closed_; }
  [[nodiscard]] std::size_t unsent_bytes() const noexcept {
    return output_.readable_size() + (tls_ ? sending_plaintext_ : sending_.readable_size());
  }
  [[nodiscard]] bool output_full() const noexcept { return unsent_bytes() >= options_.output_high_water; }
  // Bytes the kernel holds in this socket's receive queue now (FIONREAD),
  // not yet read; 0 when it cannot tell. Never blocks.
  [[nodiscard]] std::size_t kernel_queued_input() const noexcept;
  // Received bytes not yet consumed plus bytes not yet sent: what this
  // connection holds of its peer's data now (stats' bytes_buffered).
  [[nodiscard]] std::size_t buffered_bytes() const noexcept { return input_.readable_size() + unsent_bytes(); }
  [[nodiscard]] std::uint64_t bytes_sent() const noexcept { return bytes_sent_; }
  // TLS: whether this connection speaks it, whether its handshake is still
  // under way (the handler's deadline), and who the peer proved to be.
  [[nodiscard]] bool tls() const noexcept { return tls_ != nullptr; }
  [[nodiscard]] bool tls_handshaking() const noexcept { return tls_ && !tls_->handshake_done() && !tls_->failed(); }
  [[nodiscard]] bool tls_failed() const noexcept { return tls_ && tls_->failed(); }
  [[nodiscard]] const TlsPeerIdentity* tls_peer() const noexcept { return tls_ ? &tls_->peer() : nullptr; }
  [[nodiscard]] const TlsSession* tls_session() const noexcept { return tls_.get(); }
  // The last time bytes moved either way.
  [[nodiscard]] base::TimePoint last_activity() const noexcept { return last_activity_; }

  void on_io(std::uint8_t tag, std::int32_t result, std::uint32_t flags) override;
  // An allocation failed while handling this connection: it is closed (the
  // connection pays for it, not the daemon).
  void on_allocation_failure() noexcept override { close(); }

 private:
  enum Tag : std::uint8_t { kRecv = 1, kSend = 2 };

  void arm_recv();
  // The budget is spent: room for more input may not be allocated now.
  [[nodiscard]] bool budget_exhausted() const noexcept {
    return options_.budget != nullptr && options_.budget->exhausted();
  }
  void on_recv(std::int32_t result);
  void on_send(std::int32_t result);
  void start_lingering();
  void on_tls_recv(std::size_t bytes);
  // Moves plaintext from output_ through the session, and whatever
  // ciphertext it holds, into the free sending_.
  void fill_tls_sending();
  void finalize_if_idle();

  reactor::Reactor& reactor_;
  base::UniqueFd fd_;
  Handler& handler_;
  StreamTransportOptions options_;
  reactor::IoToken token_;

  State state_ = State::open;
  bool recv_in_flight_ = false;
  bool send_in_flight_ = false;
  bool reading_paused_ = false;
  bool reading_stopped_ = false;
  bool peer_closed_ = false;
  bool budget_stalled_ = false;

  buffer::ByteBuffer input_;
  buffer::ByteBuffer output_;
  buffer::ByteBuffer sending_;
  iovec send_iov_{};
  msghdr send_msg_{};
  std::uint64_t bytes_sent_ = 0;

  std::unique_ptr<TlsSession> tls_;
  buffer::ByteBuffer tls_input_;          // ciphertext as received; emptied into the session at once
  std::size_t sending_plaintext_ = 0;     // plaintext bytes whose ciphertext is in sending_

  base::TimePoint last_activity_;
  base::TimePoint linger_deadline_{};
};

}  // namespace framed::transport
