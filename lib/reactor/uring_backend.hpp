#pragma once
// Backend on io_uring (liburing). See backend.hpp for the contract it keeps.

#include <liburing.h>

#include <cstdint>
#include <memory>

#include "reactor/backend.hpp"

namespace framed::reactor {

class UringBackend final : public Backend {
 public:
  // Really creates a ring: returns null and sets *error (-errno) when the
  // kernel, a seccomp filter or kernel.io_uring_disabled refuses.
  static std::unique_ptr<UringBackend> create(int* error);
  ~UringBackend() override;

  [[nodiscard]] std::string_view name() const noexcept override { return "io_uring"; }

  void accept(int fd, std::uint64_t user_data) override;
  void recv(int fd, void* buffer, std::size_t length, std::uint64_t user_data) override;
  void sendmsg(int fd, const msghdr* message, std::uint64_t user_data) override;
  void recvmsg(int fd, msghdr* message, std::uint64_t user_data) override;
  void read(int fd, void* buffer, std::size_t length, std::uint64_t user_data) override;
  void cancel(int fd) override;
  void poll(std::optional<std::chrono::nanoseconds> timeout, CompletionSink& sink) override;

 private:
  UringBackend() = default;
  io_uring_sqe* next_sqe();

  io_uring ring_{};
};

}  // namespace framed::reactor
