#pragma once
// The bytes framed-bench sends and reads: framed's json framing
// (../shared/PROTOCOL.md §1-2) and Redis RESP, so one client loop can measure
// both servers. Encoding appends to a caller's buffer; decoding is
// incremental: feed() takes the stream in any split (one byte at a time, or
// many replies glued together) and reports each complete reply in order.
// Pure code, no sockets; not thread-safe (one decoder per connection).

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "options.hpp"

namespace framed::bench {

// json: a reply header over this is treated as a broken stream. Replies to
// ping/echo are well under 100 bytes; 1 MiB only guards against garbage.
inline constexpr std::uint32_t kMaxReplyHeader = 1U << 20;
// A reply body larger than any request the bench can send means the stream
// is not what we think it is.
inline constexpr std::uint64_t kMaxReplyBody = 64ULL << 20;
// RESP: the longest status/error/length line accepted.
inline constexpr std::size_t kMaxRespLine = 64 * 1024;

struct RequestSpec {
  Protocol protocol = Protocol::json;
  Command command = Command::ping;
  ByteOrder byte_order = ByteOrder::big;
  std::span<const char> body;  // echo body (also what the reply must carry)
};

// Appends one request carrying `id` (json only; RESP has no ids) to `out`.
void append_request(std::vector<char>& out, const RequestSpec& spec, std::uint64_t id);

// The deterministic echo body: every byte value occurs, so a reply that was
// truncated, shifted or text-mangled does not compare equal.
std::vector<char> make_body(std::size_t size);

enum class ReplyKind { json, simple, error, integer, bulk, null_bulk };

// One decoded reply; string views stay valid only during on_reply().
struct Reply {
  ReplyKind kind = ReplyKind::json;
  bool ok = false;                 // json: "ok":true; RESP: anything but '-'
  std::optional<std::int64_t> id;  // json: an integer "id"
  std::string_view text;           // RESP simple/error/integer line; json header when !ok
  std::uint64_t body_size = 0;     // json total_size, RESP bulk length
  bool body_checked = false;       // body was compared with the expected bytes
  bool body_matches = true;
};

class ReplySink {
 public:
  virtual void on_reply(const Reply& reply) = 0;

 protected:
  ~ReplySink() = default;
};

class ReplyDecoder {
 public:
  virtual ~ReplyDecoder() = default;
  // Decodes `bytes`, calling sink.on_reply() once per complete reply.
  // Returns an error message once the stream can no longer be framed; the
  // decoder must not be fed again after that.
  virtual std::optional<std::string> feed(std::span<const char> bytes, ReplySink& sink) = 0;

  // Compare the body of the next reply against `expected` (when it has that
  // length). The span must outlive the decoder.
  void check_next_body(std::span<const char> expected) noexcept {
    expected_ = expected;
    check_pending_ = true;
  }

 protected:
  // Shared body handling: consumes up to body_left_ bytes from `bytes`.
  std::size_t consume_body(std::span<const char> bytes) noexcept;
  void start_body(Reply& reply, std::uint64_t size) noexcept;

  std::span<const char> expected_;
  bool check_pending_ = false;
  bool checking_ = false;
  std::uint64_t body_left_ = 0;
  std::uint64_t body_offset_ = 0;
  Reply reply_;
};

std::unique_ptr<ReplyDecoder> make_decoder(Protocol protocol, ByteOrder byte_order);

// Parses a json reply header into `reply` (kind json). Returns an error
// message for anything that is not a JSON object with a valid total_size.
std::optional<std::string> parse_json_header(std::string_view header, Reply& reply);

struct Expectation {
  Protocol protocol = Protocol::json;
  Command command = Command::ping;
  std::uint64_t body_size = 0;
  std::uint64_t id = 0;  // json only
};

// Why `reply` is not the right answer to the request described, or nullopt.
std::optional<std::string> check_reply(const Reply& reply, const Expectation& expected);

}  // namespace framed::bench
