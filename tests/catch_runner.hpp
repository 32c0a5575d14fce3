#pragma once
// The test programs' way into Catch2's runner (tests/catch_runner.cpp).

namespace framed::testing {

// Runs every test case the command line selects; returns the exit status.
int run_catch_session(int argc, char** argv);

}  // namespace framed::testing
