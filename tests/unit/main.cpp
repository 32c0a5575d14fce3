// The unit tests' main: Catch2's own session (its implementation is
// compiled once, in tests/catch_runner.cpp).

#include "../catch_runner.hpp"

int main(int argc, char** argv) { return framed::testing::run_catch_session(argc, argv); }
