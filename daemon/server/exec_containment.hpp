#pragma once
// daemon.exec_containment: set up, once at start, the way every command's
// run ends all it started (lib/exec/run_cgroup.hpp, orphan_reaper.hpp).

#include <string>
#include <string_view>

#include "config/config.hpp"

namespace framed::server {

struct ContainmentSetup {
  bool ok = false;
  std::string_view mode;  // "cgroup", "subreaper" or "process_group", when ok
  std::string detail;     // for the log: where, or why not
};

// Before any command runs. Not ok only when the mode asked for explicitly
// cannot be had; "auto" always settles on one.
ContainmentSetup set_up_exec_containment(config::ExecContainment wanted);

// What is in use, for stats.
[[nodiscard]] std::string_view exec_containment_in_use();

}  // namespace framed::server
