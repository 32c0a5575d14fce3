#include <fstream>
#include <string>

#include "base/errno_text.hpp"
#include "framed_build_config.hpp"
#include "reactor/backend.hpp"
#include "reactor/epoll_backend.hpp"
#if FRAMED_HAVE_IO_URING
#include "reactor/uring_backend.hpp"
#endif

namespace framed::reactor {
namespace {

#if FRAMED_HAVE_IO_URING
// Says who refused io_uring, so an operator knows which knob to turn.
std::string explain_uring_refusal(int error) {
  std::string why = "io_uring setup failed: " + base::errno_text(error);
  std::ifstream sysctl("/proc/sys/kernel/io_uring_disabled");
  int disabled = 0;
  if (sysctl >> disabled && disabled != 0) {
    why += " (kernel.io_uring_disabled=" + std::to_string(disabled) + ")";
  } else if (error == -EPERM) {
    why += " (refused by a seccomp filter or container policy)";
  } else if (error == -ENOSYS) {
    why += " (kernel built without io_uring)";
  } else if (error == -ENOMEM) {
    why += " (RLIMIT_MEMLOCK too low for the ring)";
  }
  return why;
}
#endif

}  // namespace

std::optional<BackendChoice> parse_backend_choice(std::string_view text) {
  if (text == "auto") return BackendChoice::automatic;
  if (text == "io_uring") return BackendChoice::io_uring;
  if (text == "epoll") return BackendChoice::epoll;
  return std::nullopt;
}

BackendSelection select_backend(BackendChoice choice) {
  std::string fallback_reason;
  if (choice != BackendChoice::epoll) {
#if FRAMED_HAVE_IO_URING
    int error = 0;
    auto uring = UringBackend::create(&error);
    if (uring) {
      return {std::move(uring), choice == BackendChoice::io_uring ? "configured" : "io_uring is available"};
    }
    fallback_reason = explain_uring_refusal(error);
#else
    fallback_reason = "this build has no io_uring support";
#endif
    if (choice == BackendChoice::io_uring) return {nullptr, fallback_reason};
  }
  int error = 0;
  auto epoll = EpollBackend::create(&error);
  if (!epoll) return {nullptr, "epoll_create1 failed: " + base::errno_text(error)};
  return {std::move(epoll), choice == BackendChoice::epoll ? "configured" : fallback_reason + "; using epoll"};
}

}  // namespace framed::reactor
