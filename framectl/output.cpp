#include "output.hpp"

#include <unistd.h>

#include <cerrno>

#include "base/errno_text.hpp"
#include "failure.hpp"
#include "proto/json_writer.hpp"

namespace framed::framectl {
namespace {

void indent(std::string& out, int depth) {
  out.push_back('\n');
  out.append(static_cast<std::size_t>(depth) * 2, ' ');
}

void append_pretty(std::string& out, simdjson::dom::element value, int depth) {
  switch (value.type()) {
    case simdjson::dom::element_type::OBJECT: {
      const simdjson::dom::object object = value.get_object().value_unsafe();
      if (object.size() == 0) {
        out.append("{}");
        return;
      }
      out.push_back('{');
      bool first = true;
      for (const auto field : object) {
        if (!first) out.push_back(',');
        first = false;
        indent(out, depth + 1);
        proto::append_json_string(out, field.key);
        out.append(": ");
        append_pretty(out, field.value, depth + 1);
      }
      indent(out, depth);
      out.push_back('}');
      return;
    }
    case simdjson::dom::element_type::ARRAY: {
      const simdjson::dom::array array = value.get_array().value_unsafe();
      if (array.size() == 0) {
        out.append("[]");
        return;
      }
      out.push_back('[');
      bool first = true;
      for (const auto item : array) {
        if (!first) out.push_back(',');
        first = false;
        indent(out, depth + 1);
        append_pretty(out, item, depth + 1);
      }
      indent(out, depth);
      out.push_back(']');
      return;
    }
    case simdjson::dom::element_type::STRING:
      proto::append_json_string(out, value.get_string().value_unsafe());
      return;
    case simdjson::dom::element_type::INT64:
      proto::append_json_int(out, value.get_int64().value_unsafe());
      return;
    case simdjson::dom::element_type::UINT64:
      proto::append_json_uint(out, value.get_uint64().value_unsafe());
      return;
    case simdjson::dom::element_type::DOUBLE:
    case simdjson::dom::element_type::BOOL:
    case simdjson::dom::element_type::NULL_VALUE:
      // simdjson writes these as the shortest text that reads back the same.
      out.append(simdjson::minify(value));
      return;
  }
}

}  // namespace

void write_all(int fd, std::string_view bytes, std::string_view what) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      std::string message = "cannot write to ";
      message.append(what);
      message.append(": ");
      message.append(base::errno_text(errno));
      throw Failure(ExitStatus::local_file, "io", message);
    }
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
}

std::string pretty_json(simdjson::dom::element value) {
  std::string out;
  append_pretty(out, value, 0);
  out.push_back('\n');
  return out;
}

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const auto a = static_cast<unsigned char>(bytes[i]);
    const auto b = static_cast<unsigned char>(bytes[i + 1]);
    const auto c = static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(kAlphabet[a >> 2]);
    out.push_back(kAlphabet[((a & 0x3) << 4) | (b >> 4)]);
    out.push_back(kAlphabet[((b & 0xF) << 2) | (c >> 6)]);
    out.push_back(kAlphabet[c & 0x3F]);
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    const auto a = static_cast<unsigned char>(bytes[i]);
    const auto b = rest == 2 ? static_cast<unsigned char>(bytes[i + 1]) : 0;
    out.push_back(kAlphabet[a >> 2]);
    out.push_back(kAlphabet[((a & 0x3) << 4) | (b >> 4)]);
    out.push_back(rest == 2 ? kAlphabet[(b & 0xF) << 2] : '=');
    out.push_back('=');
  }
  return out;
}

void append_bytes_member(std::string& members, std::string_view key, std::string_view bytes) {
  members.append(",\"");
  members.append(key);
  if (simdjson::validate_utf8(bytes.data(), bytes.size())) {
    members.append("\":");
    proto::append_json_string(members, bytes);
  } else {
    members.append("_base64\":\"");
    members.append(base64(bytes));
    members.append("\"");
  }
}

std::string json_line(const ReplyHead& head, std::string_view members) {
  std::string line = head.text();
  while (!line.empty() && line.back() != '}') line.pop_back();  // trailing whitespace, if any
  if (!members.empty() && !line.empty()) {
    line.pop_back();
    // The daemon's headers are never empty objects; should one be, the
    // first added member must not start with a comma.
    const bool empty_object = head.object().size() == 0;
    line.append(empty_object ? members.substr(1) : members);
    line.push_back('}');
  }
  line.push_back('\n');
  return line;
}

}  // namespace framed::framectl
