// The one Catch2 main for every unit test source (compiled once, apart from
// the tests, because catch.hpp's runner is slow to compile).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
