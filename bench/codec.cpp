#include "codec.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace framed::bench {
namespace {

void append(std::vector<char>& out, std::string_view text) { out.insert(out.end(), text.begin(), text.end()); }

void append_number(std::vector<char>& out, std::uint64_t value) {
  std::array<char, 24> digits{};  // 20 digits hold any u64
  const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  static_cast<void>(ec);  // cannot fail: the array fits UINT64_MAX
  out.insert(out.end(), digits.data(), end);
}

// The json request header is these pieces around the id (and, for echo,
// the body size): append_request() writes them, is_request_header()
// compares an echoed header with them, without building a string per reply.
constexpr std::string_view kPingHeaderStart = R"({"cmd":"ping","id":)";
constexpr std::string_view kEchoHeaderStart = R"({"cmd":"echo","id":)";
constexpr std::string_view kSizeKey = R"(,"total_size":)";

// Consumes `piece` from the front of `text`; false when text does not start with it.
bool take_prefix(std::string_view& text, std::string_view piece) noexcept {
  if (!text.starts_with(piece)) return false;
  text.remove_prefix(piece.size());
  return true;
}

bool take_number(std::string_view& text, std::uint64_t value) noexcept {
  std::array<char, 24> digits{};
  const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  static_cast<void>(ec);  // cannot fail: the array fits UINT64_MAX
  return take_prefix(text, std::string_view(digits.data(), static_cast<std::size_t>(end - digits.data())));
}

// Whether `header` is exactly the json header append_request() writes.
bool is_request_header(std::string_view header, Command command, std::uint64_t id, std::uint64_t body_size) noexcept {
  const bool echo = command == Command::echo;
  if (!take_prefix(header, echo ? kEchoHeaderStart : kPingHeaderStart) || !take_number(header, id)) return false;
  if (echo && (!take_prefix(header, kSizeKey) || !take_number(header, body_size))) return false;
  return header == "}";
}

void store_u32(char* p, std::uint32_t value, ByteOrder order) noexcept {
  for (int i = 0; i < 4; ++i) {
    const int shift = order == ByteOrder::big ? 24 - 8 * i : 8 * i;
    p[i] = static_cast<char>(static_cast<unsigned char>(value >> shift));
  }
}

std::uint32_t load_u32(const unsigned char* b, ByteOrder order) noexcept {
  if (order == ByteOrder::big) {
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
  }
  return (std::uint32_t{b[3]} << 24) | (std::uint32_t{b[2]} << 16) | (std::uint32_t{b[1]} << 8) | b[0];
}

// Just enough JSON to read a reply header: finds "ok", "id" and "total_size"
// at the top level and skips every other value, nested or not. Keys are
// compared as written, so an escaped spelling of those keys is not
// recognised (no server writes one).
class JsonScanner {
 public:
  explicit JsonScanner(std::string_view text) : text_(text) {}

  void skip_ws() noexcept {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  [[nodiscard]] bool at_end() const noexcept { return pos_ == text_.size(); }
  [[nodiscard]] char peek() const noexcept { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool consume(char c) noexcept {
    if (peek() != c || at_end()) return false;
    ++pos_;
    return true;
  }
  [[nodiscard]] std::size_t position() const noexcept { return pos_; }
  void rewind(std::size_t pos) noexcept { pos_ = pos; }

  // The characters between the quotes, escapes left as written.
  std::optional<std::string_view> raw_string() noexcept {
    if (!consume('"')) return std::nullopt;
    const std::size_t start = pos_;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '"') return text_.substr(start, pos_++ - start);
      if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;
      pos_ += c == '\\' ? 2 : 1;
    }
    return std::nullopt;
  }

  // An integer token; nullopt (position unchanged) for anything else,
  // including numbers with a fraction or exponent.
  std::optional<std::int64_t> integer() noexcept {
    const std::size_t start = pos_;
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text_.data() + pos_, text_.data() + text_.size(), value);
    const std::size_t stop = static_cast<std::size_t>(end - text_.data());
    if (ec != std::errc{} || (stop < text_.size() && (text_[stop] == '.' || text_[stop] == 'e' || text_[stop] == 'E'))) {
      pos_ = start;
      return std::nullopt;
    }
    pos_ = stop;
    return value;
  }

  std::optional<bool> boolean() noexcept {
    if (text_.substr(pos_).starts_with("true")) {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_).starts_with("false")) {
      pos_ += 5;
      return false;
    }
    return std::nullopt;
  }

  bool skip_value(int depth) noexcept {
    // Replies nest one level (an "error" object); 64 only stops a hostile
    // header from recursing the stack away.
    if (depth > 64) return false;
    skip_ws();
    const char c = peek();
    if (c == '"') return raw_string().has_value();
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++pos_;
      skip_ws();
      if (consume(close)) return true;
      while (true) {
        if (c == '{') {
          if (!raw_string()) return false;
          skip_ws();
          if (!consume(':')) return false;
        }
        if (!skip_value(depth + 1)) return false;
        skip_ws();
        if (consume(close)) return true;
        if (!consume(',')) return false;
        skip_ws();
      }
    }
    for (const std::string_view literal : {"true", "false", "null"}) {
      if (text_.substr(pos_).starts_with(literal)) {
        pos_ += literal.size();
        return true;
      }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      while (pos_ < text_.size() && std::string_view("+-0123456789.eE").find(text_[pos_]) != std::string_view::npos) {
        ++pos_;
      }
      return true;
    }
    return false;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

// echoed_requests: Protocol::echo, where each "reply" is a json request
// sent back as it was. The framing is the same; the header has no "ok" and
// is handed on whole (reply.text), for check_reply() to compare with the
// request's.
class JsonDecoder final : public ReplyDecoder {
 public:
  JsonDecoder(ByteOrder order, bool echoed_requests) : order_(order), echoed_requests_(echoed_requests) {}

  std::optional<std::string> feed(std::span<const char> bytes, ReplySink& sink) override {
    std::size_t pos = 0;
    while (pos < bytes.size()) {
      const auto rest = bytes.subspan(pos);
      switch (state_) {
        case State::length: {
          const std::size_t take = std::min(rest.size(), length_bytes_.size() - length_have_);
          std::memcpy(length_bytes_.data() + length_have_, rest.data(), take);
          length_have_ += take;
          pos += take;
          if (length_have_ < length_bytes_.size()) break;
          length_have_ = 0;
          header_size_ = load_u32(length_bytes_.data(), order_);
          if (header_size_ == 0) return "reply header length is 0";
          if (header_size_ > kMaxReplyHeader) {
            return "reply header length " + std::to_string(header_size_) + " is over the limit (wrong --byte-order?)";
          }
          header_.clear();
          state_ = State::header;
          break;
        }
        case State::header: {
          std::string_view header;
          if (header_.empty() && rest.size() >= header_size_) {
            // The common case: the whole header is in this read; no copy.
            header = std::string_view(rest.data(), header_size_);
            pos += header_size_;
          } else {
            const std::size_t take = std::min<std::size_t>(rest.size(), header_size_ - header_.size());
            header_.append(rest.data(), take);
            pos += take;
            if (header_.size() < header_size_) break;
            header = header_;
          }
          reply_ = Reply{};
          if (auto error = parse_json_header(header, reply_)) return "bad reply header: " + *error;
          if (reply_.body_size > kMaxReplyBody) {
            return "reply body of " + std::to_string(reply_.body_size) + " bytes is over the limit";
          }
          if (echoed_requests_) {
            // Copied: with an echo body the reply completes in a later feed().
            echoed_header_.assign(header);
            reply_.text = echoed_header_;
            reply_.ok = true;
          } else if (!reply_.ok) {
            // Kept for the error report; a prefix says enough.
            error_text_.assign(header.substr(0, 300));
            reply_.text = error_text_;
          }
          start_body(reply_, reply_.body_size);
          if (body_left_ == 0) {
            state_ = State::length;
            sink.on_reply(reply_);
          } else {
            state_ = State::body;
          }
          break;
        }
        case State::body:
          pos += consume_body(rest);
          if (body_left_ == 0) {
            state_ = State::length;
            sink.on_reply(reply_);
          }
          break;
      }
    }
    return std::nullopt;
  }

 private:
  enum class State { length, header, body };

  ByteOrder order_;
  bool echoed_requests_;
  State state_ = State::length;
  std::array<unsigned char, 4> length_bytes_{};
  std::size_t length_have_ = 0;
  std::uint32_t header_size_ = 0;
  std::string header_;  // only a header split across reads is copied here
  std::string error_text_;
  std::string echoed_header_;
};

class RespDecoder final : public ReplyDecoder {
 public:
  std::optional<std::string> feed(std::span<const char> bytes, ReplySink& sink) override {
    std::size_t pos = 0;
    while (pos < bytes.size()) {
      const auto rest = bytes.subspan(pos);
      switch (state_) {
        case State::line: {
          const auto* newline = static_cast<const char*>(std::memchr(rest.data(), '\n', rest.size()));
          const std::size_t take = newline == nullptr ? rest.size() : static_cast<std::size_t>(newline - rest.data()) + 1;
          if (line_.size() + take > kMaxRespLine) return "RESP line longer than " + std::to_string(kMaxRespLine);
          pos += take;
          std::string_view line;
          if (newline == nullptr) {
            line_.append(rest.data(), take);
            break;
          }
          if (line_.empty()) {
            line = std::string_view(rest.data(), take);
          } else {
            line_.append(rest.data(), take);
            line = line_;
          }
          if (line.size() < 2 || line[line.size() - 2] != '\r') return "RESP line does not end in CRLF";
          line.remove_suffix(2);
          auto error = on_line(line, sink);
          line_.clear();  // only now: the reply's text may have pointed into it
          if (error) return error;
          break;
        }
        case State::body:
          pos += consume_body(rest);
          if (body_left_ == 0) state_ = State::crlf;
          break;
        case State::crlf: {
          const char wanted = crlf_have_ == 0 ? '\r' : '\n';
          if (rest[0] != wanted) return "RESP bulk string not followed by CRLF";
          ++pos;
          if (++crlf_have_ == 2) {
            crlf_have_ = 0;
            state_ = State::line;
            sink.on_reply(reply_);
          }
          break;
        }
      }
    }
    return std::nullopt;
  }

 private:
  enum class State { line, body, crlf };

  std::optional<std::string> on_line(std::string_view line, ReplySink& sink) {
    if (line.empty()) return "empty RESP line";
    const std::string_view payload = line.substr(1);
    reply_ = Reply{};
    reply_.ok = true;
    switch (line[0]) {
      case '+':
        reply_.kind = ReplyKind::simple;
        break;
      case '-':
        reply_.kind = ReplyKind::error;
        reply_.ok = false;
        break;
      case ':':
        reply_.kind = ReplyKind::integer;
        break;
      case '$': {
        std::int64_t length = 0;
        const auto [end, ec] = std::from_chars(payload.data(), payload.data() + payload.size(), length);
        if (ec != std::errc{} || end != payload.data() + payload.size() || length < -1) {
          return "bad RESP bulk length '" + std::string(payload) + "'";
        }
        if (length == -1) {
          reply_.kind = ReplyKind::null_bulk;
          break;
        }
        if (static_cast<std::uint64_t>(length) > kMaxReplyBody) {
          return "RESP bulk of " + std::to_string(length) + " bytes is over the limit";
        }
        reply_.kind = ReplyKind::bulk;
        start_body(reply_, static_cast<std::uint64_t>(length));
        state_ = length == 0 ? State::crlf : State::body;
        return std::nullopt;  // the reply is complete after its body
      }
      default:
        // Aggregates (arrays, maps, pushes) never answer PING or ECHO, and
        // skipping them would need a stack of counts: treat as broken.
        return "unexpected RESP reply type '" + std::string(1, line[0]) + "'";
    }
    reply_.text = payload;
    sink.on_reply(reply_);
    return std::nullopt;
  }

  State state_ = State::line;
  std::string line_;  // only a line split across reads is copied here
  int crlf_have_ = 0;
};

}  // namespace

void ReplyDecoder::start_body(Reply& reply, std::uint64_t size) noexcept {
  reply.body_size = size;
  checking_ = check_pending_ && size == expected_.size();
  if (checking_) check_pending_ = false;
  reply.body_checked = checking_;
  reply.body_matches = true;
  body_left_ = size;
  body_offset_ = 0;
}

std::size_t ReplyDecoder::consume_body(std::span<const char> bytes) noexcept {
  const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, bytes.size()));
  if (checking_ && std::memcmp(bytes.data(), expected_.data() + body_offset_, take) != 0) {
    reply_.body_matches = false;
  }
  body_left_ -= take;
  body_offset_ += take;
  return take;
}

std::unique_ptr<ReplyDecoder> make_decoder(Protocol protocol, ByteOrder byte_order) {
  if (protocol == Protocol::resp) return std::make_unique<RespDecoder>();
  return std::make_unique<JsonDecoder>(byte_order, protocol == Protocol::echo);
}

std::optional<std::string> parse_json_header(std::string_view header, Reply& reply) {
  reply = Reply{};
  JsonScanner scan(header);
  scan.skip_ws();
  if (!scan.consume('{')) return "not a JSON object";
  scan.skip_ws();
  if (!scan.consume('}')) {
    while (true) {
      const auto key = scan.raw_string();
      if (!key) return "expected a key at byte " + std::to_string(scan.position());
      scan.skip_ws();
      if (!scan.consume(':')) return "expected ':' at byte " + std::to_string(scan.position());
      scan.skip_ws();
      if (*key == "ok") {
        const auto ok = scan.boolean();
        if (!ok) return "\"ok\" is not a boolean";
        reply.ok = *ok;
      } else if (*key == "id") {
        // A string id is legal JSON, but the bench only sends integers, so
        // check_reply() will report it as the wrong id.
        reply.id = scan.integer();
        if (!reply.id && !scan.skip_value(0)) return "bad \"id\" value";
      } else if (*key == "total_size") {
        const auto size = scan.integer();
        if (!size || *size < 0) return "\"total_size\" is not a non-negative integer";
        reply.body_size = static_cast<std::uint64_t>(*size);
      } else if (!scan.skip_value(0)) {
        return "bad value for \"" + std::string(*key) + "\"";
      }
      scan.skip_ws();
      if (scan.consume('}')) break;
      if (!scan.consume(',')) return "expected ',' or '}' at byte " + std::to_string(scan.position());
      scan.skip_ws();
    }
  }
  scan.skip_ws();
  if (!scan.at_end()) return "bytes after the object";
  return std::nullopt;
}

void append_request(std::vector<char>& out, const RequestSpec& spec, std::uint64_t id) {
  const bool echo = spec.command == Command::echo;
  // Protocol::echo sends the json request unchanged; the server sends it back.
  if (spec.protocol == Protocol::resp) {
    if (!echo) {
      append(out, "*1\r\n$4\r\nPING\r\n");
      return;
    }
    append(out, "*2\r\n$4\r\nECHO\r\n$");
    append_number(out, spec.body.size());
    append(out, "\r\n");
    out.insert(out.end(), spec.body.begin(), spec.body.end());
    append(out, "\r\n");
    return;
  }

  const std::size_t start = out.size();
  out.resize(start + 4);  // the length prefix, filled in once the header is written
  append(out, echo ? kEchoHeaderStart : kPingHeaderStart);
  append_number(out, id);
  if (echo) {
    append(out, kSizeKey);
    append_number(out, spec.body.size());
  }
  append(out, "}");
  store_u32(out.data() + start, static_cast<std::uint32_t>(out.size() - start - 4), spec.byte_order);
  if (echo) out.insert(out.end(), spec.body.begin(), spec.body.end());
}

std::vector<char> make_body(std::size_t size) {
  std::vector<char> body(size);
  for (std::size_t i = 0; i < size; ++i) {
    // 131 is odd, so each 256-byte run holds every byte value once; the
    // (i >> 8) term makes runs differ, so a 256-byte shift is caught too.
    body[i] = static_cast<char>(static_cast<unsigned char>(i * 131 + (i >> 8) * 7));
  }
  return body;
}

std::optional<std::string> check_reply(const Reply& reply, const Expectation& expected) {
  if (!reply.ok) return "error reply: " + std::string(reply.text);
  if (expected.protocol == Protocol::echo) {
    if (!is_request_header(reply.text, expected.command, expected.id, expected.body_size)) {
      return "echoed header differs from the request's: " + std::string(reply.text.substr(0, 200));
    }
  } else if (expected.protocol == Protocol::json) {
    if (!reply.id || *reply.id < 0 || static_cast<std::uint64_t>(*reply.id) != expected.id) {
      return "reply id " + (reply.id ? std::to_string(*reply.id) : std::string("(missing)")) + " where " +
             std::to_string(expected.id) + " was due";
    }
  } else if (expected.command == Command::ping) {
    if (reply.kind != ReplyKind::simple || reply.text != "PONG") return "unexpected reply to PING";
    return std::nullopt;
  } else if (reply.kind != ReplyKind::bulk) {
    return "unexpected reply to ECHO (not a bulk string)";
  }
  if (reply.body_size != expected.body_size) {
    return "reply body of " + std::to_string(reply.body_size) + " bytes where " +
           std::to_string(expected.body_size) + " were expected";
  }
  if (reply.body_checked && !reply.body_matches) return "echoed body differs from the one sent";
  return std::nullopt;
}

}  // namespace framed::bench
