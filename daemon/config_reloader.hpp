#pragma once
// Reads and validates the config file for a reload off the reactor thread:
// load_config touches the disk, and a reactor never blocks. The result is
// posted back to the reactor, which applies it (or logs its errors) between
// events like any other.
//
// One load at a time: a SIGHUP that comes while a file is being read asks for
// one more load after it (an editor's save may have raced the first), never
// for a pile of them.
//
// Threads: request() and the result callback on the reactor thread; the
// load on a thread of its own, joined before the next one starts and in the
// destructor.

#include <functional>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "reactor/reactor.hpp"

namespace framed {

class ConfigReloader {
 public:
  using Handler = std::function<void(config::LoadResult result)>;

  ConfigReloader(reactor::Reactor& reactor, std::string path, Handler handler);
  ~ConfigReloader();

  ConfigReloader(const ConfigReloader&) = delete;
  ConfigReloader& operator=(const ConfigReloader&) = delete;

  // Starts a load, or queues one after the load in progress. False when
  // the thread cannot be started (logged by the caller).
  bool request();
  [[nodiscard]] bool loading() const noexcept { return loading_; }

 private:
  bool start_load();
  void on_loaded(config::LoadResult result);

  reactor::Reactor& reactor_;
  const std::string path_;
  Handler handler_;
  std::thread thread_;
  bool loading_ = false;
  bool again_ = false;
};

}  // namespace framed
