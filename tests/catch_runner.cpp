// Catch2's implementation, compiled once per build for every test program
// (catch.hpp's runner is slow to compile, so no test program compiles it
// itself). Each program has its own main(): tests/unit/main.cpp,
// tests/reactor/main.cpp.

// GCC 12 with -fsanitize=address,undefined flags std::function inside
// <regex> (which Catch's runner uses) as "maybe uninitialized": a known false
// positive of that compiler version, not a bug here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "catch_runner.hpp"

namespace framed::testing {

// Catch::Session is declared only where the implementation is compiled,
// hence this one function for the mains.
int run_catch_session(int argc, char** argv) { return Catch::Session().run(argc, argv); }

}  // namespace framed::testing
