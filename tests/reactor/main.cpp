// The reactor tests run once per backend; FRAMED_BACKEND says which:
//   epoll            the epoll backend
//   io_uring         the io_uring backend, as select_backend() makes it
//   io_uring-compat  the io_uring backend with the fallbacks older kernels
//                    take (single-shot accepts, cancel by shutdown)
// A backend this machine cannot run (io_uring refused by the kernel, a
// seccomp filter or kernel.io_uring_disabled, or a build without liburing)
// makes the whole program exit 77, which meson reports as SKIP: the tests
// never pass without having run.

// Catch2's implementation is compiled once, in tests/catch_runner.cpp; this
// file is compiled once too, for the reactor and the pipeline tests.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../catch_runner.hpp"
#include "framed_build_config.hpp"
#include "reactor/backend.hpp"
#include "reactor_test_support.hpp"
#if FRAMED_HAVE_IO_URING
#include "base/errno_text.hpp"
#include "reactor/uring_backend.hpp"
#endif

namespace framed::reactor::testing {
namespace {

constexpr int kExitSkip = 77;  // meson's (and automake's) "skipped"

std::string_view requested_backend() {
  const char* name = std::getenv("FRAMED_BACKEND");
  return name != nullptr ? name : "";
}

}  // namespace

std::unique_ptr<Backend> make_backend(std::string* why) {
  const std::string_view name = requested_backend();
  if (name == "io_uring-compat") {
#if FRAMED_HAVE_IO_URING
    int error = 0;
    UringOptions options;
    options.multishot_accept = false;
    options.cancel_by_fd = false;
    auto backend = UringBackend::create(&error, options);
    *why = backend ? "single-shot accepts and cancel by shutdown forced"
                   : "io_uring setup failed: " + base::errno_text(error);
    return backend;
#else
    *why = "this build has no io_uring support";
    return nullptr;
#endif
  }
  const auto choice = parse_backend_choice(name);
  if (!choice || *choice == BackendChoice::automatic) {
    *why = "FRAMED_BACKEND must be epoll, io_uring or io_uring-compat, not '" + std::string(name) + "'";
    return nullptr;
  }
  BackendSelection selection = select_backend(*choice);
  *why = selection.reason;
  return std::move(selection.backend);
}

}  // namespace framed::reactor::testing

int main(int argc, char** argv) {
  using framed::reactor::testing::kExitSkip;
  const std::string_view name = framed::reactor::testing::requested_backend();
  if (name.empty()) {
    std::fprintf(stderr, "FRAMED_BACKEND is not set: say epoll, io_uring or io_uring-compat\n");
    return 2;
  }

  // Probe once up front: an unavailable backend skips the whole program
  // instead of failing every test case one by one.
  std::string why;
  auto probe = framed::reactor::testing::make_backend(&why);
  if (!probe) {
    if (name.starts_with("io_uring")) {
      std::printf("SKIP: backend %.*s is not available here: %s\n", static_cast<int>(name.size()), name.data(),
                  why.c_str());
      return kExitSkip;
    }
    std::fprintf(stderr, "cannot create backend %.*s: %s\n", static_cast<int>(name.size()), name.data(), why.c_str());
    return 1;
  }
  const std::string_view expected = name.starts_with("io_uring") ? "io_uring" : name;
  if (probe->name() != expected) {
    std::fprintf(stderr, "asked for backend %.*s, got %.*s\n", static_cast<int>(name.size()), name.data(),
                 static_cast<int>(probe->name().size()), probe->name().data());
    return 1;
  }
  std::printf("reactor tests on backend %.*s (%s)\n", static_cast<int>(probe->name().size()), probe->name().data(),
              why.c_str());
  probe.reset();

  return framed::testing::run_catch_session(argc, argv);
}
