#include "server/stats.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/unique_fd.hpp"

namespace framed::server {
namespace {

double seconds(const timeval& time) { return static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_usec) / 1e6; }

// The second field of /proc/self/statm, in pages.
std::uint64_t resident_bytes() noexcept {
  const base::UniqueFd statm(::open("/proc/self/statm", O_RDONLY | O_CLOEXEC));
  if (!statm) return 0;
  char text[128];
  const ssize_t size = ::read(statm.get(), text, sizeof text - 1);
  if (size <= 0) return 0;
  text[size] = '\0';
  unsigned long long total_pages = 0;
  unsigned long long resident_pages = 0;
  if (std::sscanf(text, "%llu %llu", &total_pages, &resident_pages) != 2) return 0;
  return resident_pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

ProcessStats read_process_stats() noexcept {
  ProcessStats stats;
  stats.pid = static_cast<int>(::getpid());
  stats.rss_bytes = resident_bytes();
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) {
    stats.cpu_user_seconds = seconds(usage.ru_utime);
    stats.cpu_system_seconds = seconds(usage.ru_stime);
  }
  return stats;
}

TrafficStats& TrafficStats::operator+=(const TrafficStats& other) noexcept {
  connections_accepted += other.connections_accepted;
  connections_active += other.connections_active;
  connections_rejected += other.connections_rejected;
  connections_rejected_per_ip += other.connections_rejected_per_ip;
  auth_successes += other.auth_successes;
  auth_failures += other.auth_failures;
  rate_limited += other.rate_limited;
  frames_in += other.frames_in;
  replies_out += other.replies_out;
  bytes_in += other.bytes_in;
  bytes_out += other.bytes_out;
  datagrams_in += other.datagrams_in;
  datagrams_out += other.datagrams_out;
  tls_handshakes += other.tls_handshakes;
  tls_handshake_failures += other.tls_handshake_failures;
  for (std::size_t i = 0; i < errors.size(); ++i) errors[i] += other.errors[i];
  return *this;
}

ShardStats& ShardStats::operator+=(const ShardStats& other) noexcept {
  idle_timeouts += other.idle_timeouts;
  header_timeouts += other.header_timeouts;
  body_timeouts += other.body_timeouts;
  accept_errors += other.accept_errors;
  accept_fd_exhausted += other.accept_fd_exhausted;
  slow_subscribers += other.slow_subscribers;
  connections_shed_for_memory += other.connections_shed_for_memory;
  allocation_failures += other.allocation_failures;
  return *this;
}

namespace {

// (name, counters) pairs: `other`'s added to `sum`'s of the same name, or
// appended where `sum` has none.
template <typename Pairs>
void add_by_name(Pairs& sum, const Pairs& other) {
  for (const auto& [name, counters] : other) {
    const auto same = std::find_if(sum.begin(), sum.end(), [&name](const auto& mine) { return mine.first == name; });
    if (same == sum.end()) {
      sum.emplace_back(name, counters);
    } else {
      same->second += counters;
    }
  }
}

}  // namespace

void add_reactor_share(StatsSnapshot& sum, const StatsSnapshot& other) {
  sum.total += other.total;
  sum.shard += other.shard;
  sum.bytes_buffered += other.bytes_buffered;
  // Every reactor serves every listener, under the same names; a reload
  // in progress may leave one reactor with a listener the other has not
  // taken yet, which is added as it comes.
  for (const ListenerSnapshot& listener : other.listeners) {
    const auto same = std::find_if(sum.listeners.begin(), sum.listeners.end(), [&](const ListenerSnapshot& mine) {
      return mine.name == listener.name && mine.kind == listener.kind;
    });
    if (same == sum.listeners.end()) {
      sum.listeners.push_back(listener);
    } else {
      same->traffic += listener.traffic;
    }
  }
  add_by_name(sum.commands, other.commands);
  add_by_name(sum.exec, other.exec);
  sum.files += other.files;
  sum.reactors.insert(sum.reactors.end(), other.reactors.begin(), other.reactors.end());
}

}  // namespace framed::server
