// fanout-bench: publish fan-out throughput. N subscriber connections
// subscribe to one channel; once every subscription is confirmed, one
// publisher connection publishes fixed-size messages with --pipeline in
// flight, and the subscribers count and check what they receive. Reports
// messages delivered per second (all subscribers together) over --duration
// after --warmup. framed json framing or Redis RESP. See README.md.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"
#include "fanout_client.hpp"
#include "options.hpp"

namespace framed::bench {
namespace {

constexpr unsigned kMaxSubscribers = 60000;  // loopback's ephemeral ports run out past ~28k anyway
constexpr unsigned kMaxThreads = 64;
constexpr unsigned kMaxPipeline = 4096;
constexpr std::uint32_t kMaxSize = 16U << 20;
constexpr std::chrono::seconds kDrainTime{10};
constexpr std::chrono::seconds kHardDeadlineSlack{5};
constexpr std::chrono::milliseconds kMainPoll{10};
constexpr rlim_t kSpareFds = 64;

std::string usage() {
  return "usage: fanout-bench [options]\n"
         "Publish fan-out load generator for framed (json framing) or Redis (RESP PUBLISH/SUBSCRIBE).\n"
         "\n"
         "  --host HOST           server address (default 127.0.0.1)\n"
         "  --port PORT           server port (default 9000)\n"
         "  --unix PATH           connect to a Unix stream socket instead (@name = abstract)\n"
         "  --protocol json|resp  framed json framing, or Redis RESP (default json)\n"
         "  --byte-order big|little  json header length byte order (default big)\n"
         "  --subscribers N       subscriber connections (default 1)\n"
         "  --threads T           subscriber threads, each with its own epoll loop (default 1)\n"
         "  --pipeline P          publishes in flight (default 16)\n"
         "  --size BYTES          message payload, at least 16 (default 64)\n"
         "  --channel NAME        channel (default fanout)\n"
         "  --duration SECONDS    measured time (default 5)\n"
         "  --warmup SECONDS      publishing before the measured time (default 1)\n"
         "  --setup-timeout S     connecting and subscribing everyone (default 60)\n"
         "  --server-pid PID      also report that process's CPU use over the window\n"
         "  --json                print a one-line JSON result\n"
         "  --help                this text\n"
         "\n"
         "Exit status: 0 ok; 1 errors or nothing delivered; 2 bad command line or setup; 3 hard deadline hit.\n";
}

// The channel goes into json strings and RESP bulks unescaped.
bool plain_channel(std::string_view name) {
  return !name.empty() && name.size() <= 256 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-' || c == ':';
  });
}

CommandLine parse_options(int argc, char** argv, FanoutOptions& options) {
  CommandLine result = walk_command_line(
      argc, argv,
      {"--subscribers", "--threads", "--pipeline", "--size", "--channel", "--duration", "--warmup", "--setup-timeout",
       "--server-pid"},
      options, [&options](std::string_view name, std::string_view value) -> Verdict {
        if (name == "--subscribers") return parse_count(value, kMaxSubscribers, options.subscribers, "a subscriber count");
        if (name == "--threads") return parse_count(value, kMaxThreads, options.threads, "a thread count");
        if (name == "--pipeline") return parse_count(value, kMaxPipeline, options.pipeline, "a pipeline depth");
        if (name == "--size") {
          if (!parse_integer(value, static_cast<std::uint32_t>(kSequenceDigits), kMaxSize, options.size)) {
            return "a payload size (16 B to 16 MiB)";
          }
        } else if (name == "--channel") {
          if (!plain_channel(value)) return "a channel (1-256 of A-Z a-z 0-9 . _ - :)";
          options.channel = value;
        } else if (name == "--duration") {
          if (!parse_seconds(value, 0.001, 86400.0, options.duration_s)) return "a duration (0.001-86400 s)";
        } else if (name == "--warmup") {
          if (!parse_seconds(value, 0.0, 3600.0, options.warmup_s)) return "a warmup (0-3600 s)";
        } else if (name == "--setup-timeout") {
          if (!parse_seconds(value, 0.1, 3600.0, options.setup_timeout_s)) return "a timeout (0.1-3600 s)";
        } else if (name == "--server-pid") {
          unsigned pid = 0;
          if (!parse_integer(value, 1U, 1U << 30, pid)) return "a process id";
          options.server_pid = static_cast<int>(pid);
        }
        return std::nullopt;
      });
  // The raw echo server has no channels: echo is framed-bench's alone.
  if (result.error.empty() && options.protocol == Protocol::echo) result.error = "--protocol: fanout-bench speaks json or resp";
  options.threads = std::min(options.threads, options.subscribers);
  return result;
}

// CPU seconds (user + system) of this process, or of `pid` from /proc.
double own_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::optional<double> process_cpu_seconds(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const std::size_t paren = text.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  // After "pid (comm)": state is field 3; utime and stime are 14 and 15.
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  double ticks = 0;
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index >= 14) ticks += std::strtod(field.c_str(), nullptr);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct CpuSample {
  Clock::time_point at;
  double client = 0;
  std::optional<double> server;
};

CpuSample sample_cpu(int server_pid) {
  CpuSample sample{Clock::now(), own_cpu_seconds(), std::nullopt};
  if (server_pid > 0) sample.server = process_cpu_seconds(server_pid);
  return sample;
}

timespec to_timespec(Clock::duration duration) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(duration).count();
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

struct Summary {
  double setup_s = 0;
  double measured_s = 0;
  std::uint64_t errors = 0;
  std::uint64_t connected = 0;
  std::uint64_t published = 0;
  std::uint64_t published_in_window = 0;
  std::uint64_t delivered_in_window = 0;
  std::uint64_t min_in_window = 0;
  std::uint64_t max_in_window = 0;
  std::uint64_t min_received = 0;
  std::uint64_t max_received = 0;
  std::size_t frame_size = 0;
  double client_cpu = -1;  // fraction of one core over the window; < 0: not measured
  double server_cpu = -1;
  bool interrupted = false;
};

void print_text(const FanoutOptions& options, const Target& target, const Summary& s) {
  const double window = s.measured_s > 0 ? s.measured_s : 1;
  std::printf("fanout-bench: %s %s, protocol %s, channel %s, %u B messages (event frame %zu B)\n",
              target.tcp ? "tcp" : "unix", target.description.c_str(), std::string(to_string(options.protocol)).c_str(),
              options.channel.c_str(), options.size, s.frame_size);
  std::printf("  %u subscribers on %u thread%s, publisher pipeline %u, setup %.2f s, warmup %g s, measured %.3f s%s\n",
              options.subscribers, options.threads, options.threads == 1 ? "" : "s", options.pipeline, s.setup_s,
              options.warmup_s, s.measured_s, s.interrupted ? " (interrupted)" : "");
  std::printf("  published   %llu in the window (%.1f publishes/s); %llu in the run\n",
              static_cast<unsigned long long>(s.published_in_window), s.published_in_window / window,
              static_cast<unsigned long long>(s.published));
  std::printf("  delivered   %llu in the window (%.1f msg/s, %.1f MiB/s of event frames)\n",
              static_cast<unsigned long long>(s.delivered_in_window), s.delivered_in_window / window,
              s.delivered_in_window * static_cast<double>(s.frame_size) / window / (1 << 20));
  std::printf("  per subscriber: %llu to %llu in the window; %llu to %llu in the run\n",
              static_cast<unsigned long long>(s.min_in_window), static_cast<unsigned long long>(s.max_in_window),
              static_cast<unsigned long long>(s.min_received), static_cast<unsigned long long>(s.max_received));
  if (s.client_cpu >= 0) {
    std::printf("  cpu         client %.0f %% of one core", s.client_cpu * 100);
    if (s.server_cpu >= 0) std::printf(", server %.0f %%", s.server_cpu * 100);
    std::printf(" (nproc %u)\n", std::thread::hardware_concurrency());
  }
  std::printf("  errors      %llu\n", static_cast<unsigned long long>(s.errors));
}

void print_json(const FanoutOptions& options, const Target& target, const Summary& s) {
  const double window = s.measured_s > 0 ? s.measured_s : 1;
  std::printf(
      "{\"target\":\"%s\",\"transport\":\"%s\",\"protocol\":\"%s\",\"channel\":\"%s\",\"size\":%u,"
      "\"frame_size\":%zu,\"subscribers\":%u,\"threads\":%u,\"pipeline\":%u,\"setup_s\":%.3f,\"warmup_s\":%g,"
      "\"duration_s\":%g,\"measured_s\":%.6f,\"interrupted\":%s,\"published\":%llu,\"published_in_window\":%llu,"
      "\"publishes_per_s\":%.1f,\"delivered_in_window\":%llu,\"delivered_per_s\":%.1f,"
      "\"min_per_subscriber\":%llu,\"max_per_subscriber\":%llu,\"client_cpu\":%.3f,\"server_cpu\":%.3f,"
      "\"connected\":%llu,\"errors\":%llu}\n",
      target.description.c_str(), target.tcp ? "tcp" : "unix", std::string(to_string(options.protocol)).c_str(),
      options.channel.c_str(), options.size, s.frame_size, options.subscribers, options.threads, options.pipeline,
      s.setup_s, options.warmup_s, options.duration_s, s.measured_s, s.interrupted ? "true" : "false",
      static_cast<unsigned long long>(s.published), static_cast<unsigned long long>(s.published_in_window),
      s.published_in_window / window, static_cast<unsigned long long>(s.delivered_in_window),
      s.delivered_in_window / window, static_cast<unsigned long long>(s.min_in_window),
      static_cast<unsigned long long>(s.max_in_window), s.client_cpu, s.server_cpu,
      static_cast<unsigned long long>(s.connected), static_cast<unsigned long long>(s.errors));
}

int run(int argc, char** argv) {
  FanoutOptions options;
  if (const auto exit_code = finish_command_line("fanout-bench", parse_options(argc, argv, options), usage())) {
    return *exit_code;
  }
  const auto target = prepare_target("fanout-bench", options, options.subscribers + options.threads + kSpareFds);
  if (!target) return kExitUsage;

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // inherited by the threads below

  const FanoutTimes times{std::chrono::duration<double>(options.warmup_s),
                          std::chrono::duration<double>(options.duration_s), kDrainTime,
                          std::chrono::duration<double>(options.setup_timeout_s)};
  FanoutShared shared;
  std::atomic<unsigned> finished{0};
  std::vector<SubscriberConfig> configs(options.threads);
  std::vector<SubscriberResult> results(options.threads);
  for (unsigned i = 0; i < options.subscribers; ++i) configs[i % options.threads].connection_ids.push_back(i);
  PublisherConfig publisher_config{&options, &*target, times, &shared};
  PublisherResult publisher_result;

  const Clock::time_point setup_begin = Clock::now();
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < options.threads; ++t) {
    configs[t].options = &options;
    configs[t].target = &*target;
    configs[t].times = times;
    configs[t].shared = &shared;
    threads.emplace_back([&, t] {
      run_subscriber_thread(configs[t], results[t]);
      finished.fetch_add(1, std::memory_order_release);
    });
  }
  threads.emplace_back([&] {
    run_publisher_thread(publisher_config, publisher_result);
    finished.fetch_add(1, std::memory_order_release);
  });
  const unsigned thread_count = options.threads + 1;

  const auto to_clock = [](double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  };
  const Clock::time_point setup_deadline = setup_begin + to_clock(options.setup_timeout_s);
  Clock::time_point start{};
  Clock::time_point hard_deadline = setup_deadline + kDrainTime;
  std::optional<CpuSample> cpu_begin;
  std::optional<CpuSample> cpu_end;
  std::string setup_error;
  bool interrupted = false;
  while (finished.load(std::memory_order_acquire) < thread_count) {
    const Clock::time_point now = Clock::now();
    if (now >= hard_deadline) {
      std::fprintf(stderr, "fanout-bench: hard deadline passed with threads still running; giving up\n");
      std::fflush(stdout);
      std::_Exit(kExitDeadline);
    }
    if (start == Clock::time_point{} && !shared.stop.load()) {
      const unsigned ready = shared.ready.load(std::memory_order_acquire);
      const unsigned failed = shared.setup_failures.load(std::memory_order_acquire);
      if (ready == options.subscribers) {
        start = now;
        shared.start.store(start.time_since_epoch().count(), std::memory_order_release);
        hard_deadline = start + to_clock(options.warmup_s + options.duration_s) + kDrainTime + kHardDeadlineSlack;
      } else if (failed > 0 || now >= setup_deadline) {
        setup_error = std::to_string(ready) + " of " + std::to_string(options.subscribers) +
                      " subscriptions confirmed" + (failed > 0 ? "; " + std::to_string(failed) + " failed" : "") +
                      (now >= setup_deadline ? " when the setup timeout ran out" : "");
        shared.stop.store(true);
      }
    }
    if (start != Clock::time_point{}) {
      const Clock::time_point begin = start + to_clock(options.warmup_s);
      if (!cpu_begin && now >= begin) cpu_begin = sample_cpu(options.server_pid);
      if (!cpu_end && now >= begin + to_clock(options.duration_s)) cpu_end = sample_cpu(options.server_pid);
    }
    const timespec wait = to_timespec(kMainPoll);
    const int sig = ::sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGINT || sig == SIGTERM) {
      if (interrupted) std::_Exit(kExitInterrupted);
      interrupted = true;
      shared.stop.store(true);
      std::fprintf(stderr, "fanout-bench: stopping (again to quit at once)\n");
    }
  }
  for (auto& thread : threads) thread.join();
  // A run that drained at once may end before the loop took the last sample.
  if (cpu_begin && !cpu_end) cpu_end = sample_cpu(options.server_pid);

  Summary summary;
  summary.interrupted = interrupted;
  summary.setup_s = std::chrono::duration<double>((start != Clock::time_point{} ? start : Clock::now()) - setup_begin).count();
  summary.measured_s = options.duration_s;
  summary.errors = publisher_result.errors + (setup_error.empty() ? 0 : 1);
  summary.published = publisher_result.published;
  summary.published_in_window = publisher_result.in_window;
  summary.min_in_window = UINT64_MAX;
  summary.min_received = UINT64_MAX;
  for (const SubscriberResult& result : results) {
    summary.errors += result.errors;
    summary.connected += result.connected;
    summary.delivered_in_window += result.in_window;
    summary.min_in_window = std::min(summary.min_in_window, result.min_in_window);
    summary.max_in_window = std::max(summary.max_in_window, result.max_in_window);
    summary.min_received = std::min(summary.min_received, result.min_received);
    summary.max_received = std::max(summary.max_received, result.max_received);
  }
  if (summary.min_in_window == UINT64_MAX) summary.min_in_window = 0;
  if (summary.min_received == UINT64_MAX) summary.min_received = 0;
  // Every thread learned the event frame on its own: they must agree.
  std::vector<std::string> frame_errors;
  for (const SubscriberResult& result : results) {
    if (result.event_frame.empty()) continue;
    if (summary.frame_size == 0) summary.frame_size = results.front().event_frame.size();
    if (result.event_frame != results.front().event_frame) frame_errors.push_back("subscriber threads saw different event frames");
  }
  summary.errors += frame_errors.size();
  if (cpu_begin && cpu_end) {
    const double wall = std::chrono::duration<double>(cpu_end->at - cpu_begin->at).count();
    if (wall > 0) {
      summary.client_cpu = (cpu_end->client - cpu_begin->client) / wall;
      if (cpu_begin->server && cpu_end->server) summary.server_cpu = (*cpu_end->server - *cpu_begin->server) / wall;
    }
  }
  if (interrupted && cpu_begin) {
    summary.measured_s = std::max(0.0, std::chrono::duration<double>(Clock::now() - (start + to_clock(options.warmup_s))).count());
  }

  std::vector<std::string> samples = publisher_result.error_samples;
  if (!setup_error.empty()) samples.push_back("setup: " + setup_error);
  for (const SubscriberResult& result : results) samples.insert(samples.end(), result.error_samples.begin(), result.error_samples.end());
  samples.insert(samples.end(), frame_errors.begin(), frame_errors.end());
  for (std::size_t i = 0; i < samples.size() && i < 10; ++i) std::fprintf(stderr, "fanout-bench: error: %s\n", samples[i].c_str());
  if (summary.errors > std::min<std::size_t>(samples.size(), 10)) {
    std::fprintf(stderr, "fanout-bench: ... %llu errors in all\n", static_cast<unsigned long long>(summary.errors));
  }

  if (options.json_output) {
    print_json(options, *target, summary);
  } else {
    print_text(options, *target, summary);
  }
  if (interrupted) return kExitInterrupted;
  if (!setup_error.empty()) return kExitFailed;
  return summary.errors == 0 && summary.delivered_in_window > 0 ? kExitOk : kExitFailed;
}

}  // namespace
}  // namespace framed::bench

int main(int argc, char** argv) { return framed::bench::run(argc, argv); }
