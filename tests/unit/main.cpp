// The one Catch2 main for every unit test source (compiled once, apart from
// the tests, because catch.hpp's runner is slow to compile).

// GCC 12 with -fsanitize=address,undefined flags std::function inside
// <regex> (which Catch's runner uses) as "maybe uninitialized": a known false
// positive of that compiler version, not a bug here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
