#pragma once
// What a config exposes to the network without protection: a tcp listener
// on an address other than loopback through which exec or files can be
// reached by anyone (auth = "none"), or that takes tokens in clear (auth =
// "token" without TLS). Valid, so never an error: a trusted network may be
// the operator's choice. But worth a warning at start, at reload and from
// --check-config.

#include <string>
#include <vector>

#include "config/config.hpp"

namespace framed::config {

// One line per exposed listener, naming it and what to set; empty: none.
std::vector<std::string> exposure_warnings(const Config& config);

}  // namespace framed::config
