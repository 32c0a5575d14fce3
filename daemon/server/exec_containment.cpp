#include "server/exec_containment.hpp"

#include "base/errno_text.hpp"
#include "exec/orphan_reaper.hpp"
#include "exec/run_cgroup.hpp"

namespace framed::server {

ContainmentSetup set_up_exec_containment(config::ExecContainment wanted) {
  using config::ExecContainment;
  ContainmentSetup setup;
  if (wanted == ExecContainment::process_group) {
    setup.ok = true;
    setup.mode = config::to_string(ExecContainment::process_group);
    setup.detail = "what leaves a command's process group outlives its run (daemon.exec_containment)";
    return setup;
  }
  std::string cgroup_failure;
  if (wanted == ExecContainment::cgroup || wanted == ExecContainment::automatic) {
    std::string where;
    if (exec::enable_run_cgroups(where, cgroup_failure) == 0) {
      setup.ok = true;
      setup.mode = config::to_string(ExecContainment::cgroup);
      setup.detail = "each run in its own cgroup under " + where;
      return setup;
    }
    if (wanted == ExecContainment::cgroup) {
      setup.detail = "no cgroup of its own to divide (" + cgroup_failure +
                     "); under systemd set Delegate=yes in the unit";
      return setup;
    }
  }
  if (const int error = exec::contain_orphans(); error != 0) {
    if (wanted == ExecContainment::subreaper) {
      setup.detail = "cannot become a child subreaper: " + base::errno_text(error);
      return setup;
    }
    setup.ok = true;  // auto: the last resort is what the kernel always gives
    setup.mode = config::to_string(ExecContainment::process_group);
    setup.detail = "neither a cgroup (" + cgroup_failure + ") nor a child subreaper (" + base::errno_text(error) + ")";
    return setup;
  }
  setup.ok = true;
  setup.mode = config::to_string(ExecContainment::subreaper);
  setup.detail = "what a run leaves running when its first process exits is killed";
  if (!cgroup_failure.empty()) setup.detail += " (no cgroup: " + cgroup_failure + ")";
  return setup;
}

std::string_view exec_containment_in_use() {
  using config::ExecContainment;
  if (exec::run_cgroups_enabled()) return config::to_string(ExecContainment::cgroup);
  if (exec::containing_orphans()) return config::to_string(ExecContainment::subreaper);
  return config::to_string(ExecContainment::process_group);
}

}  // namespace framed::server
