#pragma once
// The reactor threads beside the main one (daemon.reactors > 1): each makes
// its own backend and reactor, its own Shard serving a socket of its own
// for every listener (SiblingListener), and runs until the ShardGroup stops
// it. The main thread runs reactor 0, with the signals, the reloads and
// systemd's notifications.
//
// Order of life, driven by the main thread:
//   start()          threads made, each shard built and its listeners
//                    served; returns every error (then nothing runs)
//   release()        the shards begin serving (after every shard is in the
//                    group, so none posts to one not there yet)
//   begin_shutdown() SIGTERM: every shard drains; the group stops every
//                    reactor when the last has drained
//   wait_stopped()   every loop has ended; the caller stops the worker pool
//   (destructor)     the threads destroy their shards and reactors, joined

#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "reactor/backend.hpp"
#include "server/daemon.hpp"
#include "server/shard.hpp"
#include "server/shard_group.hpp"

namespace framed::server {

class SiblingReactors {
 public:
  // `pin_cpus`: empty, or the CPU each reactor (by index) is pinned to.
  SiblingReactors(Daemon& daemon, ShardGroup& group, reactor::BackendChoice backend, std::vector<int> pin_cpus);
  ~SiblingReactors();

  SiblingReactors(const SiblingReactors&) = delete;
  SiblingReactors& operator=(const SiblingReactors&) = delete;

  // Reactors 1 .. group.size() - 1, with sockets from `first` (started).
  std::vector<std::string> start(const Shard& first);
  void release();
  void begin_shutdown();
  void wait_stopped();

 private:
  // One thread's report of its start.
  struct Started {
    std::latch done{1};
    std::vector<std::string> errors;
  };
  void run(unsigned index, std::vector<SiblingListener> sockets, Started& started);

  Daemon& daemon_;
  ShardGroup& group_;
  reactor::BackendChoice backend_;
  std::vector<int> pin_cpus_;
  std::vector<std::unique_ptr<Started>> started_;
  // Counted down once: the shards may serve (or, after a failed start, go).
  std::latch released_{1};
  bool serve_ = false;  // written before released_ counts down
  std::unique_ptr<std::latch> loops_ended_;
  // Counted down once the worker pool is stopped: the shards may go.
  std::latch workers_stopped_{1};
  bool released_once_ = false;
  bool workers_stopped_once_ = false;
  std::vector<std::thread> threads_;
};

// Pins the calling thread to `cpu`; false (errno set) when the kernel refuses.
bool pin_this_thread(int cpu) noexcept;

// The CPUs this process may run on, in order (sched_getaffinity).
std::vector<int> allowed_cpus();

}  // namespace framed::server
