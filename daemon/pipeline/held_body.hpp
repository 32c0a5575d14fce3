#pragma once
// A large reply body that is a view of the request's own bytes (echo), sent
// from the very buffer it arrived in.
//
// Encoding such a reply at once would copy the whole body into the output in
// one step of the reactor: tens of milliseconds for a 32 MiB echo, during
// which every other connection waits. Instead the pipeline hands the
// connection's input buffer, frame and all, to this source (the connection
// gets a fresh one for what follows) and the reply's body is pulled from it
// in pieces while the output has room, like a file's.

#include <algorithm>
#include <cstring>
#include <span>
#include <string_view>

#include "buffer/byte_buffer.hpp"
#include "proto/body_source.hpp"

namespace framed::pipeline {

class HeldBody final : public proto::BodySource {
 public:
  // `body` views memory that `holder` owns; moving a ByteBuffer keeps its
  // memory where it is, so the view stays valid.
  HeldBody(buffer::ByteBuffer holder, std::string_view body) noexcept
      : holder_(std::move(holder)), rest_(body), size_(body.size()) {}

  [[nodiscard]] std::uint64_t size() const noexcept override { return size_; }

  Read read(std::span<char> into) override {
    const std::size_t bytes = std::min(into.size(), rest_.size());
    if (bytes != 0) std::memcpy(into.data(), rest_.data(), bytes);
    rest_.remove_prefix(bytes);
    return {Status::data, bytes};
  }

 private:
  buffer::ByteBuffer holder_;  // counted in the connection's memory budget until the body is sent
  std::string_view rest_;
  std::size_t size_;
};

}  // namespace framed::pipeline
