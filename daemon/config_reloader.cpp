#include "config_reloader.hpp"

#include <system_error>
#include <utility>

namespace framed {

ConfigReloader::ConfigReloader(reactor::Reactor& reactor, std::string path, Handler handler)
    : reactor_(reactor), path_(std::move(path)), handler_(std::move(handler)) {}

ConfigReloader::~ConfigReloader() {
  // A load still running finishes reading a small file; its post is
  // dropped with the reactor.
  if (thread_.joinable()) thread_.join();
}

bool ConfigReloader::request() {
  if (loading_) {
    again_ = true;
    return true;
  }
  return start_load();
}

bool ConfigReloader::start_load() {
  if (thread_.joinable()) thread_.join();  // the last load has posted: it is done
  try {
    thread_ = std::thread([this] {
      config::LoadResult result = config::load_config(path_);
      reactor_.post([this, result = std::move(result)]() mutable { on_loaded(std::move(result)); });
    });
  } catch (const std::system_error&) {
    return false;
  }
  loading_ = true;
  return true;
}

void ConfigReloader::on_loaded(config::LoadResult result) {
  loading_ = false;
  handler_(std::move(result));
  if (again_) {
    again_ = false;
    start_load();
  }
}

}  // namespace framed
