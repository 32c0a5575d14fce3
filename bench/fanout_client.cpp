#include "fanout_client.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>

#include "base/unique_fd.hpp"
#include "codec.hpp"

namespace framed::bench {
namespace {

using base::UniqueFd;

// One read per readiness event; a subscriber thread shares it between its
// connections. Event frames are ~100 bytes, so this holds thousands.
constexpr std::size_t kReadChunk = 256 * 1024;
constexpr int kMaxEvents = 512;
// Connections being set up at once per thread: enough to hide the round
// trips, few enough that the daemon's accept backlog never overflows (an
// overflow costs a 1 s SYN retransmission).
constexpr std::size_t kSetupWindow = 256;
constexpr std::chrono::milliseconds kPoll{20};
constexpr std::size_t kMaxErrorSamples = 5;
// A json header longer than this is not one of ours.
constexpr std::uint32_t kMaxHeader = 64 * 1024;
constexpr std::size_t kShownBytes = 160;

std::string errno_text(int error) { return std::strerror(error); }

void append(std::vector<char>& out, std::string_view text) { out.insert(out.end(), text.begin(), text.end()); }

void append_number(std::vector<char>& out, std::uint64_t value) {
  std::array<char, 24> digits{};
  const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  static_cast<void>(ec);  // 24 chars hold any u64
  out.insert(out.end(), digits.data(), end);
}

void store_u32(char* p, std::uint32_t value, ByteOrder order) noexcept {
  for (int i = 0; i < 4; ++i) {
    const int shift = order == ByteOrder::big ? 24 - 8 * i : 8 * i;
    p[i] = static_cast<char>(static_cast<unsigned char>(value >> shift));
  }
}

std::uint32_t load_u32(const char* p, ByteOrder order) noexcept {
  std::uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    const int shift = order == ByteOrder::big ? 24 - 8 * i : 8 * i;
    value |= std::uint32_t{static_cast<unsigned char>(p[i])} << shift;
  }
  return value;
}

// Starts a json frame at the end of `out`; finish_json() fills in its length.
std::size_t begin_json(std::vector<char>& out) {
  const std::size_t start = out.size();
  out.resize(start + 4);
  return start;
}
void finish_json(std::vector<char>& out, std::size_t start, ByteOrder order) {
  store_u32(out.data() + start, static_cast<std::uint32_t>(out.size() - start - 4), order);
}

void append_resp_bulk(std::vector<char>& out, std::string_view bytes) {
  append(out, "$");
  append_number(out, bytes.size());
  append(out, "\r\n");
  append(out, bytes);
  append(out, "\r\n");
}

// Bytes as a reader can take them in an error message.
std::string printable(std::span<const char> bytes) {
  std::string text;
  for (const char c : bytes.first(std::min(bytes.size(), kShownBytes))) {
    text += (c >= 0x20 && c < 0x7f) ? c : '.';
  }
  if (bytes.size() > kShownBytes) text += "...";
  return text;
}

// A json frame complete at the front of `bytes`.
struct JsonFrame {
  std::string_view header;
  Reply reply;
  std::size_t size = 0;  // length prefix + header + body
};

// nullopt with `error` empty: incomplete, read more.
std::optional<JsonFrame> next_json_frame(std::span<const char> bytes, ByteOrder order, std::string& error) {
  if (bytes.size() < 4) return std::nullopt;
  const std::uint32_t header_size = load_u32(bytes.data(), order);
  if (header_size == 0 || header_size > kMaxHeader) {
    error = "frame header length " + std::to_string(header_size) + " (wrong --byte-order?)";
    return std::nullopt;
  }
  if (bytes.size() < 4 + std::size_t{header_size}) return std::nullopt;
  JsonFrame frame;
  frame.header = std::string_view(bytes.data() + 4, header_size);
  if (auto problem = parse_json_header(frame.header, frame.reply)) {
    error = "bad frame header: " + *problem + ": " + printable(frame.header);
    return std::nullopt;
  }
  frame.size = 4 + std::size_t{header_size} + frame.reply.body_size;
  if (bytes.size() < frame.size) return std::nullopt;
  return frame;
}

// The socket of one connection, connected (Unix, or TCP at once) or with
// a non-blocking TCP connect in progress (`in_progress`).
UniqueFd open_connection(const Target& target, bool& in_progress, std::string& error) {
  const int flags = SOCK_STREAM | SOCK_CLOEXEC | (target.tcp ? SOCK_NONBLOCK : 0);
  UniqueFd fd(::socket(target.address.ss_family, flags, 0));
  if (!fd.valid()) {
    error = "socket: " + errno_text(errno);
    return {};
  }
  if (target.tcp) {
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  } else {
    // A Unix connect() cannot be non-blocking (EAGAIN is "backlog full").
    const timeval timeout{2, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  }
  const int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&target.address), target.length);
  in_progress = rc != 0 && target.tcp && errno == EINPROGRESS;
  if (rc != 0 && !in_progress) {
    error = "connect to " + target.description + ": " + errno_text(errno);
    return {};
  }
  if (!target.tcp) {
    const timeval none{0, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
    if (const int fl = ::fcntl(fd.get(), F_GETFL); fl < 0 || ::fcntl(fd.get(), F_SETFL, fl | O_NONBLOCK) != 0) {
      error = "fcntl(O_NONBLOCK): " + errno_text(errno);
      return {};
    }
  }
  return fd;
}

// Writes what the kernel takes now; false on a broken connection.
bool send_some(int fd, std::vector<char>& out, std::string& error) {
  std::size_t sent_total = 0;
  while (sent_total < out.size()) {
    const ssize_t sent = ::send(fd, out.data() + sent_total, out.size() - sent_total, MSG_NOSIGNAL);
    if (sent > 0) {
      sent_total += static_cast<std::size_t>(sent);
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    error = "send: " + errno_text(errno);
    return false;
  }
  out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(sent_total));
  return true;
}

struct Window {
  Clock::time_point begin;
  Clock::time_point end;
  Clock::time_point drain_end;
};

Window window_from(Clock::rep start_ticks, const FanoutTimes& times) {
  const auto to_clock = [](std::chrono::duration<double> d) { return std::chrono::duration_cast<Clock::duration>(d); };
  Window window;
  window.begin = Clock::time_point(Clock::duration(start_ticks)) + to_clock(times.warmup);
  window.end = window.begin + to_clock(times.duration);
  window.drain_end = window.end + to_clock(times.drain);
  return window;
}

class ErrorLog {
 public:
  ErrorLog(std::uint64_t& count, std::vector<std::string>& samples) : count_(count), samples_(samples) {}
  void record(std::string message) {
    ++count_;
    if (samples_.size() < kMaxErrorSamples) samples_.push_back(std::move(message));
  }

 private:
  std::uint64_t& count_;
  std::vector<std::string>& samples_;
};

// ---------------------------------------------------------------- subscribers

enum class SubState { waiting, connecting, confirming, streaming, closed };

struct Subscription {
  explicit Subscription(unsigned index_in) : index(index_in) {}
  unsigned index;
  UniqueFd fd;
  SubState state = SubState::waiting;
  // The confirmation being assembled, then the start of an event frame
  // that has not fully arrived.
  std::vector<char> pending;
  std::uint64_t received = 0;  // events, == the next sequence number expected
  std::uint64_t in_window = 0;
};

class SubscriberThread {
 public:
  SubscriberThread(const SubscriberConfig& config, SubscriberResult& result)
      : config_(config),
        options_(*config.options),
        shared_(*config.shared),
        result_(result),
        errors_(result.errors, result.error_samples),
        read_buffer_(kReadChunk) {
    if (options_.protocol == Protocol::json) {
      const std::size_t start = begin_json(subscribe_request_);
      append(subscribe_request_, R"({"cmd":"subscribe","id":1,"channel":")");
      append(subscribe_request_, options_.channel);
      append(subscribe_request_, R"("})");
      finish_json(subscribe_request_, start, options_.byte_order);
    } else {
      append(subscribe_request_, "*2\r\n$9\r\nSUBSCRIBE\r\n");
      append_resp_bulk(subscribe_request_, options_.channel);
      // RESP is canonical: the confirmation and every event are known bytes.
      append(resp_confirmation_, "*3\r\n$9\r\nsubscribe\r\n");
      append_resp_bulk(resp_confirmation_, options_.channel);
      append(resp_confirmation_, ":1\r\n");
      append(reference_, "*3\r\n$7\r\nmessage\r\n");
      append_resp_bulk(reference_, options_.channel);
      const std::vector<char> payload = make_payload(options_.size, 0);
      append_resp_bulk(reference_, std::string_view(payload.data(), payload.size()));
      sequence_offset_ = reference_.size() - 2 - options_.size;
    }
  }

  void run() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) {
      errors_.record("epoll_create1: " + errno_text(errno));
      shared_.setup_failures.fetch_add(static_cast<unsigned>(config_.connection_ids.size()));
      return;
    }
    subscriptions_.reserve(config_.connection_ids.size());
    for (const unsigned id : config_.connection_ids) subscriptions_.push_back(std::make_unique<Subscription>(id));

    std::array<epoll_event, kMaxEvents> events{};
    std::optional<Window> window;
    while (!shared_.stop.load(std::memory_order_relaxed)) {
      start_more();
      const int ready = ::epoll_wait(epoll_.get(), events.data(), kMaxEvents, static_cast<int>(kPoll.count()));
      if (ready < 0 && errno != EINTR) {
        errors_.record("epoll_wait: " + errno_text(errno));
        break;
      }
      if (!window) {
        if (const Clock::rep start = shared_.start.load(std::memory_order_acquire); start != 0) {
          window = window_from(start, config_.times);
        }
      }
      const Clock::time_point now = Clock::now();
      in_window_ = window && now >= window->begin && now < window->end;
      for (int i = 0; i < ready; ++i) {
        auto* subscription = static_cast<Subscription*>(events[static_cast<std::size_t>(i)].data.ptr);
        on_event(*subscription, events[static_cast<std::size_t>(i)].events);
      }
      if (window && (all_received() || now >= window->drain_end)) break;
    }
    finish();
  }

 private:
  void start_more() {
    while (next_to_start_ < subscriptions_.size() && setting_up_ < kSetupWindow) {
      Subscription& subscription = *subscriptions_[next_to_start_++];
      ++setting_up_;
      bool in_progress = false;
      std::string error;
      subscription.fd = open_connection(*config_.target, in_progress, error);
      if (!subscription.fd.valid()) {
        fail(subscription, error);
        continue;
      }
      epoll_event event{};
      event.events = in_progress ? EPOLLOUT : EPOLLIN;
      event.data.ptr = &subscription;
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, subscription.fd.get(), &event) != 0) {
        fail(subscription, "epoll_ctl: " + errno_text(errno));
        continue;
      }
      subscription.state = SubState::connecting;
      if (!in_progress) on_connected(subscription);
    }
  }

  void on_connected(Subscription& subscription) {
    ++result_.connected;
    subscription.state = SubState::confirming;
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP;
    event.data.ptr = &subscription;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, subscription.fd.get(), &event) != 0) {
      fail(subscription, "epoll_ctl: " + errno_text(errno));
      return;
    }
    // Tens of bytes into an empty socket buffer: it goes in one send.
    const ssize_t sent =
        ::send(subscription.fd.get(), subscribe_request_.data(), subscribe_request_.size(), MSG_NOSIGNAL);
    if (sent != static_cast<ssize_t>(subscribe_request_.size())) {
      fail(subscription, sent < 0 ? "send: " + errno_text(errno) : std::string("short send of the subscribe request"));
    }
  }

  void on_event(Subscription& subscription, std::uint32_t events) {
    if (subscription.state == SubState::closed) return;
    if (subscription.state == SubState::connecting) {
      int error = 0;
      socklen_t length = sizeof error;
      if (::getsockopt(subscription.fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      if (error != 0) {
        fail(subscription, "connect to " + config_.target->description + ": " + errno_text(error));
      } else if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
        on_connected(subscription);
      }
      return;
    }
    const ssize_t got = ::recv(subscription.fd.get(), read_buffer_.data(), read_buffer_.size(), 0);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      fail(subscription, "recv: " + errno_text(errno));
      return;
    }
    if (got == 0) {
      std::string message = "the server closed the connection after " + std::to_string(subscription.received) +
                            " events";
      if (!subscription.pending.empty()) message += "; unread: " + printable(subscription.pending);
      fail(subscription, message);
      return;
    }
    const std::span<const char> bytes(read_buffer_.data(), static_cast<std::size_t>(got));
    if (subscription.state == SubState::confirming) {
      on_confirmation_bytes(subscription, bytes);
    } else {
      on_event_bytes(subscription, bytes);
    }
  }

  void on_confirmation_bytes(Subscription& subscription, std::span<const char> bytes) {
    subscription.pending.insert(subscription.pending.end(), bytes.begin(), bytes.end());
    std::size_t used = 0;
    if (options_.protocol == Protocol::json) {
      std::string error;
      const auto frame = next_json_frame(subscription.pending, options_.byte_order, error);
      if (!frame) {
        if (!error.empty()) fail(subscription, "subscribe reply: " + error);
        return;
      }
      if (!frame->reply.ok || frame->reply.id != 1) {
        fail(subscription, "subscribe failed: " + printable(frame->header));
        return;
      }
      used = frame->size;
    } else {
      const std::size_t have = std::min(subscription.pending.size(), resp_confirmation_.size());
      if (std::memcmp(subscription.pending.data(), resp_confirmation_.data(), have) != 0) {
        fail(subscription, "SUBSCRIBE failed: " + printable(subscription.pending));
        return;
      }
      if (have < resp_confirmation_.size()) return;
      used = resp_confirmation_.size();
    }
    subscription.pending.erase(subscription.pending.begin(),
                               subscription.pending.begin() + static_cast<std::ptrdiff_t>(used));
    subscription.state = SubState::streaming;
    --setting_up_;
    shared_.ready.fetch_add(1, std::memory_order_release);
    if (!subscription.pending.empty()) {
      // Nothing is published before everyone is subscribed; check it anyway.
      std::vector<char> rest;
      rest.swap(subscription.pending);
      on_event_bytes(subscription, rest);
    }
  }

  void on_event_bytes(Subscription& subscription, std::span<const char> bytes) {
    if (reference_.empty()) {
      // json: the first event this thread sees is parsed field by field
      // and becomes the frame every later one is compared with.
      subscription.pending.insert(subscription.pending.end(), bytes.begin(), bytes.end());
      std::string error;
      if (!learn_reference(subscription.pending, error)) {
        if (!error.empty()) fail(subscription, "first event: " + error);
        return;
      }
      std::vector<char> all;
      all.swap(subscription.pending);
      count_frames(subscription, all);
      return;
    }
    count_frames(subscription, bytes);
  }

  // Parses the first json event; true once `reference_` is set.
  bool learn_reference(std::span<const char> bytes, std::string& error) {
    const auto frame = next_json_frame(bytes, options_.byte_order, error);
    if (!frame) return false;
    std::string want_channel = R"("channel":")";
    want_channel.append(options_.channel);
    want_channel.append("\"");
    if (frame->header.find(R"("event":"message")") == std::string_view::npos ||
        frame->header.find(want_channel) == std::string_view::npos || frame->reply.body_size != options_.size) {
      error = "not a message event of " + std::to_string(options_.size) + " bytes on channel " + options_.channel +
              ": " + printable(frame->header);
      return false;
    }
    const std::size_t body_offset = frame->size - options_.size;
    const std::vector<char> payload = make_payload(options_.size, 0);
    if (std::memcmp(bytes.data() + body_offset, payload.data(), payload.size()) != 0) {
      error = "the body is not message 0: " + printable(bytes.subspan(body_offset, options_.size));
      return false;
    }
    reference_.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(frame->size));
    sequence_offset_ = body_offset;
    return true;
  }

  // Every event frame has the reference's size: messages = bytes / size,
  // and each is compared with the reference but for its sequence number,
  // which must be the next one.
  void count_frames(Subscription& subscription, std::span<const char> bytes) {
    const std::size_t frame_size = reference_.size();
    std::uint64_t frames = 0;
    std::size_t pos = 0;
    std::vector<char>& partial = subscription.pending;
    if (!partial.empty()) {
      const std::size_t take = std::min(frame_size - partial.size(), bytes.size());
      partial.insert(partial.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
      pos = take;
      if (partial.size() < frame_size) return;
      if (!check_frame(subscription, partial.data(), subscription.received)) return;
      partial.clear();
      frames = 1;
    }
    for (; bytes.size() - pos >= frame_size; pos += frame_size) {
      if (!check_frame(subscription, bytes.data() + pos, subscription.received + frames)) return;
      ++frames;
    }
    partial.assign(bytes.begin() + static_cast<std::ptrdiff_t>(pos), bytes.end());
    subscription.received += frames;
    if (in_window_) subscription.in_window += frames;
  }

  bool check_frame(Subscription& subscription, const char* frame, std::uint64_t sequence) {
    const std::size_t digits_end = sequence_offset_ + kSequenceDigits;
    bool same = std::memcmp(frame, reference_.data(), sequence_offset_) == 0 &&
                std::memcmp(frame + digits_end, reference_.data() + digits_end, reference_.size() - digits_end) == 0;
    std::uint64_t got = 0;
    if (same) {
      const auto [end, ec] = std::from_chars(frame + sequence_offset_, frame + digits_end, got, 16);
      same = ec == std::errc{} && end == frame + digits_end;
    }
    if (same && got == sequence) return true;
    std::string message = "event " + std::to_string(sequence);
    if (same) {
      message += " carries message " + std::to_string(got) + " (out of order or lost)";
    } else {
      message += " is not the expected frame: " + printable({frame, reference_.size()});
    }
    fail(subscription, message);
    return false;
  }

  [[nodiscard]] bool all_received() const {
    const std::int64_t published = shared_.published.load(std::memory_order_acquire);
    if (published < 0) return false;
    return std::all_of(subscriptions_.begin(), subscriptions_.end(), [published](const auto& subscription) {
      return subscription->state == SubState::closed ||
             subscription->received >= static_cast<std::uint64_t>(published);
    });
  }

  void finish() {
    const std::int64_t published = shared_.published.load(std::memory_order_acquire);
    const bool interrupted = shared_.stop.load(std::memory_order_relaxed);
    for (const auto& subscription : subscriptions_) {
      result_.in_window += subscription->in_window;
      result_.min_in_window = std::min(result_.min_in_window, subscription->in_window);
      result_.max_in_window = std::max(result_.max_in_window, subscription->in_window);
      result_.min_received = std::min(result_.min_received, subscription->received);
      result_.max_received = std::max(result_.max_received, subscription->received);
      if (subscription->state == SubState::closed) continue;
      if (published >= 0 && subscription->received != static_cast<std::uint64_t>(published)) {
        errors_.record("connection " + std::to_string(subscription->index) + ": received " +
                       std::to_string(subscription->received) + " of " + std::to_string(published) + " messages");
      } else if (published < 0 && !interrupted) {
        errors_.record("connection " + std::to_string(subscription->index) + ": the run ended before publishing did");
      }
      subscription->fd.reset();
      subscription->state = SubState::closed;
    }
    result_.event_frame = reference_;
  }

  void fail(Subscription& subscription, const std::string& message) {
    errors_.record("connection " + std::to_string(subscription.index) + ": " + message);
    if (subscription.state == SubState::waiting || subscription.state == SubState::connecting ||
        subscription.state == SubState::confirming) {
      --setting_up_;
      shared_.setup_failures.fetch_add(1, std::memory_order_release);
    }
    subscription.fd.reset();  // also leaves the epoll set
    subscription.state = SubState::closed;
  }

  const SubscriberConfig& config_;
  const FanoutOptions& options_;
  FanoutShared& shared_;
  SubscriberResult& result_;
  ErrorLog errors_;
  UniqueFd epoll_;
  std::vector<std::unique_ptr<Subscription>> subscriptions_;  // stable: epoll data points at them
  std::vector<char> read_buffer_;
  std::vector<char> subscribe_request_;
  std::vector<char> resp_confirmation_;
  std::vector<char> reference_;  // the event frame of message 0
  std::size_t sequence_offset_ = 0;
  std::size_t next_to_start_ = 0;
  std::size_t setting_up_ = 0;
  bool in_window_ = false;  // of the events being read now
};

// ---------------------------------------------------------------- publisher

class PublisherThread {
 public:
  PublisherThread(const PublisherConfig& config, PublisherResult& result)
      : config_(config),
        options_(*config.options),
        shared_(*config.shared),
        result_(result),
        errors_(result.errors, result.error_samples),
        payload_(make_payload(options_.size, 0)) {}

  void run() {
    // Every publish is answered by how many subscribers took it; the
    // bench stops publishing on the first error, and so do the subscribers.
    if (!publish_all()) shared_.stop.store(true, std::memory_order_relaxed);
    shared_.published.store(static_cast<std::int64_t>(result_.published), std::memory_order_release);
  }

 private:
  bool publish_all() {
    bool in_progress = false;
    std::string error;
    fd_ = open_connection(*config_.target, in_progress, error);
    if (!fd_.valid()) return fail(error);
    if (in_progress) {
      pollfd connecting{fd_.get(), POLLOUT, 0};
      int so_error = 0;
      socklen_t length = sizeof so_error;
      if (::poll(&connecting, 1, 5000) != 1 ||
          ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &so_error, &length) != 0 || so_error != 0) {
        return fail("publisher: connect to " + config_.target->description + ": " +
                    (so_error != 0 ? errno_text(so_error) : std::string("timed out")));
      }
    }
    Clock::rep start = 0;
    while ((start = shared_.start.load(std::memory_order_acquire)) == 0) {
      if (shared_.stop.load(std::memory_order_relaxed)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const Window window = window_from(start, config_.times);

    std::vector<char> out;
    std::vector<char> in;
    std::vector<char> chunk(64 * 1024);
    while (!shared_.stop.load(std::memory_order_relaxed)) {
      const Clock::time_point now = Clock::now();
      const bool sending = now < window.end;
      // Closed loop: a reply makes room for the next publish.
      while (sending && next_sequence_ - result_.published < options_.pipeline) append_publish(out);
      if (!send_some(fd_.get(), out, error)) return fail("publisher: " + error);
      const std::uint64_t due = next_sequence_ - result_.published;
      if (!sending && due == 0) return true;
      if (now >= window.drain_end) {
        return fail("publisher: " + std::to_string(due) + " publishes unanswered after the drain time");
      }
      pollfd ready{fd_.get(), static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
      const int polled = ::poll(&ready, 1, static_cast<int>(kPoll.count()));
      if (polled < 0 && errno != EINTR) return fail("publisher: poll: " + errno_text(errno));
      if (polled <= 0 || (ready.revents & (POLLIN | POLLERR | POLLHUP)) == 0) continue;
      const ssize_t got = ::recv(fd_.get(), chunk.data(), chunk.size(), 0);
      if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return fail("publisher: recv: " + errno_text(errno));
      }
      if (got == 0) return fail("publisher: the server closed the connection");
      in.insert(in.end(), chunk.data(), chunk.data() + got);
      const Clock::time_point received_at = Clock::now();
      const bool counted = received_at >= window.begin && received_at < window.end;
      const auto used = read_replies(in, counted);
      if (!used) return false;
      in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(*used));
    }
    return true;
  }

  void append_publish(std::vector<char>& out) {
    const std::uint64_t sequence = next_sequence_++;
    std::size_t start = 0;
    if (options_.protocol == Protocol::json) {
      start = begin_json(out);
      append(out, R"({"cmd":"publish","id":)");
      append_number(out, sequence + 1);
      append(out, R"(,"channel":")");
      append(out, options_.channel);
      append(out, R"(","total_size":)");
      append_number(out, options_.size);
      append(out, "}");
      finish_json(out, start, options_.byte_order);
      start = out.size();
      out.insert(out.end(), payload_.begin(), payload_.end());
    } else {
      append(out, "*3\r\n$7\r\nPUBLISH\r\n");
      append_resp_bulk(out, options_.channel);
      append(out, "$");
      append_number(out, options_.size);
      append(out, "\r\n");
      start = out.size();
      out.insert(out.end(), payload_.begin(), payload_.end());
      append(out, "\r\n");
    }
    char digits[kSequenceDigits + 1];
    std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(sequence));
    std::memcpy(out.data() + start, digits, kSequenceDigits);
  }

  // Handles every complete reply in `in`; returns the bytes used, or
  // nullopt after an error.
  std::optional<std::size_t> read_replies(std::span<const char> in, bool counted) {
    std::size_t pos = 0;
    while (pos < in.size()) {
      std::uint64_t receivers = 0;
      if (options_.protocol == Protocol::json) {
        std::string error;
        const auto frame = next_json_frame(in.subspan(pos), options_.byte_order, error);
        if (!frame) {
          if (!error.empty()) return fail_none("publisher: " + error);
          break;
        }
        const std::uint64_t expected_id = result_.published + 1;
        const std::string_view header = frame->header;
        constexpr std::string_view kKey = R"("receivers":)";
        const std::size_t key = header.find(kKey);
        if (!frame->reply.ok || frame->reply.id != static_cast<std::int64_t>(expected_id) ||
            key == std::string_view::npos ||
            std::from_chars(header.data() + key + kKey.size(), header.data() + header.size(), receivers).ec !=
                std::errc{}) {
          return fail_none("publisher: unexpected reply to publish " + std::to_string(expected_id) + ": " +
                           printable(header));
        }
        pos += frame->size;
      } else {
        const std::string_view rest(in.data() + pos, in.size() - pos);
        const std::size_t eol = rest.find("\r\n");
        if (eol == std::string_view::npos) break;
        const std::string_view line = rest.substr(0, eol);
        if (line.empty() || line[0] != ':' ||
            std::from_chars(line.data() + 1, line.data() + line.size(), receivers).ec != std::errc{}) {
          return fail_none("publisher: unexpected reply to PUBLISH: " + printable(line));
        }
        pos += eol + 2;
      }
      if (receivers != options_.subscribers) {
        return fail_none("publisher: message " + std::to_string(result_.published) + " reached " +
                         std::to_string(receivers) + " subscribers, not " + std::to_string(options_.subscribers));
      }
      ++result_.published;
      if (counted) ++result_.in_window;
    }
    return pos;
  }

  bool fail(const std::string& message) {
    errors_.record(message);
    return false;
  }
  std::optional<std::size_t> fail_none(const std::string& message) {
    errors_.record(message);
    return std::nullopt;
  }

  const PublisherConfig& config_;
  const FanoutOptions& options_;
  FanoutShared& shared_;
  PublisherResult& result_;
  ErrorLog errors_;
  UniqueFd fd_;
  std::vector<char> payload_;  // message 0; each publish writes its own sequence
  std::uint64_t next_sequence_ = 0;
};

}  // namespace

std::vector<char> make_payload(std::size_t size, std::uint64_t sequence) {
  std::vector<char> payload = make_body(size);
  char digits[kSequenceDigits + 1];
  std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(sequence));
  std::memcpy(payload.data(), digits, std::min(size, kSequenceDigits));
  return payload;
}

void run_subscriber_thread(const SubscriberConfig& config, SubscriberResult& result) noexcept {
  try {
    SubscriberThread thread(config, result);
    thread.run();
  } catch (const std::exception& e) {
    ++result.errors;
    result.error_samples.push_back(std::string("subscriber thread failed: ") + e.what());
    config.shared->stop.store(true);
  }
}

void run_publisher_thread(const PublisherConfig& config, PublisherResult& result) noexcept {
  try {
    PublisherThread thread(config, result);
    thread.run();
  } catch (const std::exception& e) {
    ++result.errors;
    result.error_samples.push_back(std::string("publisher thread failed: ") + e.what());
    config.shared->stop.store(true);
    config.shared->published.store(static_cast<std::int64_t>(result.published));
  }
}

}  // namespace framed::bench
