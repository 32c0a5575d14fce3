#include "base/errno_text.hpp"

#include <cstdlib>
#include <system_error>

namespace framed::base {

std::string errno_text(int err) {
  return std::system_category().message(std::abs(err));
}

}  // namespace framed::base
