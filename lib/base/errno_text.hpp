#pragma once
// strerror() is not thread-safe and strerror_r() has two incompatible
// signatures; this gives a std::string for an errno value in either sign.

#include <string>

namespace framed::base {

std::string errno_text(int err);

}  // namespace framed::base
