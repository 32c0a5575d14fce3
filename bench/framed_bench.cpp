// framed-bench: a closed-loop load generator. Each connection keeps
// --pipeline requests in flight and sends a new one for every reply, so the
// offered load adapts to the server; throughput and the latency percentiles
// are measured over --duration after --warmup. See README.md.

#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"
#include "codec.hpp"
#include "options.hpp"

namespace framed::bench {
namespace {

// Time given to replies still due after the window before connections are
// closed anyway; generous for a server on loopback.
constexpr std::chrono::seconds kDrainTime{2};
// Past drain_end every thread should be gone within one poll; this slack
// only matters if something is badly stuck, and then the process exits.
constexpr std::chrono::seconds kHardDeadlineSlack{3};
// How often the main thread looks at the finished threads and the clock.
constexpr std::chrono::milliseconds kMainPoll{50};
// Descriptors besides the connections: epoll per thread, stdio, slack.
constexpr rlim_t kSpareFds = 64;

std::string json_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

double micros(std::chrono::duration<double, std::micro> latency) { return latency.count(); }

struct Summary {
  LatencyHistogram latency;
  std::uint64_t completed = 0;
  std::uint64_t errors = 0;
  std::uint64_t connected = 0;
  std::uint64_t handshakes = 0;  // whole run, warmup and drain included
  std::uint64_t undrained = 0;
  double measured_s = 0;
  bool interrupted = false;
};

// "TLS (verified against ca.pem, name localhost)", "TLS (not verified, server name ...)", "plaintext".
std::string tls_description(const TlsOptions& tls) {
  if (!tls.enabled) return "plaintext";
  if (tls.insecure) return "TLS (not verified, server name " + tls.server_name + ")";
  return "TLS (verified against " + (tls.ca_file.empty() ? std::string("the system store") : tls.ca_file) +
         ", name " + tls.server_name + ")";
}

void print_text(const Options& options, const Target& target, const Summary& summary) {
  const LatencyHistogram& latency = summary.latency;
  const double rate = summary.measured_s > 0 ? static_cast<double>(summary.completed) / summary.measured_s : 0.0;
  std::printf("framed-bench: %s %s, protocol %s", target.tcp ? "tcp" : "unix", target.description.c_str(),
              std::string(to_string(options.protocol)).c_str());
  if (options.protocol != Protocol::resp) std::printf(" (%s-endian)", std::string(to_string(options.byte_order)).c_str());
  std::printf(", command %s", std::string(to_string(options.command)).c_str());
  if (options.command == Command::echo) std::printf(" %u B", options.size);
  std::printf("\n  %s, mode %s", tls_description(options.tls).c_str(), std::string(to_string(options.mode)).c_str());
  if (options.requests != 0) std::printf(", %llu requests", static_cast<unsigned long long>(options.requests));
  std::printf("\n  %u connections x %u pipeline on %u thread%s, warmup %g s, duration %g s (measured %.3f s%s)\n",
              options.connections, options.pipeline, options.threads, options.threads == 1 ? "" : "s",
              options.warmup_s, options.duration_s, summary.measured_s, summary.interrupted ? ", interrupted" : "");
  if (options.mode == Mode::handshake) {
    // One cycle = connect, handshake, one request, its reply, close.
    std::printf("  handshakes  %llu  (%.1f handshakes/s; %llu in the whole run)\n",
                static_cast<unsigned long long>(summary.completed), rate,
                static_cast<unsigned long long>(summary.handshakes));
  } else {
    std::printf("  requests    %llu  (%.1f req/s)\n", static_cast<unsigned long long>(summary.completed), rate);
  }
  std::printf("  errors      %llu\n", static_cast<unsigned long long>(summary.errors));
  if (summary.connected != options.connections) {
    std::printf("  connected   %llu of %u\n", static_cast<unsigned long long>(summary.connected), options.connections);
  }
  if (summary.undrained != 0) {
    std::printf("  undrained   %llu connections still had replies due %lld s after the end\n",
                static_cast<unsigned long long>(summary.undrained), static_cast<long long>(kDrainTime.count()));
  }
  std::printf("  latency us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  (min %.1f  mean %.1f  max %.1f)\n",
              micros(latency.percentile(0.50)), micros(latency.percentile(0.90)), micros(latency.percentile(0.99)),
              micros(latency.percentile(0.999)), micros(latency.min()), micros(latency.mean()),
              micros(latency.max()));
  if (options.mode == Mode::handshake) std::printf("  (latency: a whole cycle, from socket() to the reply)\n");
}

void print_json(const Options& options, const Target& target, const Summary& summary) {
  const LatencyHistogram& latency = summary.latency;
  const double rate = summary.measured_s > 0 ? static_cast<double>(summary.completed) / summary.measured_s : 0.0;
  std::printf(
      "{\"target\":\"%s\",\"transport\":\"%s\",\"protocol\":\"%s\",\"byte_order\":\"%s\",\"command\":\"%s\","
      "\"size\":%u,\"connections\":%u,\"pipeline\":%u,\"threads\":%u,\"warmup_s\":%g,\"duration_s\":%g,"
      "\"measured_s\":%.6f,\"interrupted\":%s,\"fixed_requests\":%llu,\"requests\":%llu,\"errors\":%llu,\"connected\":%llu,"
      "\"undrained\":%llu,\"tls\":%s,\"mode\":\"%s\",\"handshakes\":%llu,\"handshakes_per_s\":%.1f,"
      "\"requests_per_s\":%.1f,\"latency_us\":{\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,"
      "\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f,\"mean\":%.1f}}\n",
      json_escape(target.description).c_str(), target.tcp ? "tcp" : "unix",
      std::string(to_string(options.protocol)).c_str(), std::string(to_string(options.byte_order)).c_str(),
      std::string(to_string(options.command)).c_str(), options.command == Command::echo ? options.size : 0U,
      options.connections, options.pipeline, options.threads, options.warmup_s, options.duration_s,
      summary.measured_s, summary.interrupted ? "true" : "false", static_cast<unsigned long long>(options.requests),
      static_cast<unsigned long long>(summary.completed), static_cast<unsigned long long>(summary.errors),
      static_cast<unsigned long long>(summary.connected), static_cast<unsigned long long>(summary.undrained),
      options.tls.enabled ? "true" : "false", std::string(to_string(options.mode)).c_str(),
      static_cast<unsigned long long>(summary.handshakes), options.mode == Mode::handshake ? rate : 0.0, rate,
      micros(latency.min()), micros(latency.percentile(0.50)), micros(latency.percentile(0.90)),
      micros(latency.percentile(0.99)), micros(latency.percentile(0.999)), micros(latency.max()),
      micros(latency.mean()));
}

timespec to_timespec(Clock::duration duration) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(duration).count();
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

int run(int argc, char** argv) {
  Options options;
  if (const auto exit_code = finish_command_line("framed-bench", parse_options(argc, argv, options), usage())) {
    return *exit_code;
  }
  const auto target = prepare_target("framed-bench", options, options.connections + options.threads + kSpareFds);
  if (!target) return kExitUsage;
  const std::vector<char> body = make_body(options.command == Command::echo ? options.size : 0);
  transport::UniqueSslCtx tls_context;
  if (options.tls.enabled) {
    std::string error;
    tls_context = make_client_tls_context(options.tls, error);
    if (!tls_context) {
      std::fprintf(stderr, "framed-bench: %s\n", error.c_str());
      return kExitUsage;
    }
    // OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a server that
    // reset the connection must be an error on that connection, not the end
    // of the process.
    std::signal(SIGPIPE, SIG_IGN);
  }

  // Ctrl-C / SIGTERM go to this thread's sigtimedwait() only: blocked here,
  // the mask is inherited by every client thread started below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const Clock::time_point start = Clock::now();
  const auto to_clock = [](double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  };
  Timeline timeline;
  timeline.measure_begin = start + to_clock(options.warmup_s);
  timeline.measure_end = timeline.measure_begin + to_clock(options.duration_s);
  timeline.drain_end = timeline.measure_end + kDrainTime;
  const Clock::time_point hard_deadline = timeline.drain_end + kHardDeadlineSlack;

  std::atomic<Clock::rep> stop_at{0};
  std::atomic<unsigned> finished{0};
  std::vector<ThreadConfig> configs(options.threads);
  std::vector<ThreadResult> results(options.threads);
  for (unsigned i = 0; i < options.connections; ++i) configs[i % options.threads].connection_ids.push_back(i);
  std::vector<std::thread> threads;
  threads.reserve(options.threads);
  for (unsigned t = 0; t < options.threads; ++t) {
    configs[t].options = &options;
    configs[t].target = &*target;
    configs[t].body = body;
    configs[t].tls = tls_context.get();
    configs[t].timeline = timeline;
    configs[t].stop_at = &stop_at;
    threads.emplace_back([&, t] {
      run_client_thread(configs[t], results[t]);
      finished.fetch_add(1, std::memory_order_release);
    });
  }

  bool interrupted = false;
  while (finished.load(std::memory_order_acquire) < options.threads) {
    const Clock::time_point now = Clock::now();
    if (now >= hard_deadline) {
      // Never reached unless a thread is stuck; a benchmark must not hang a script.
      std::fprintf(stderr, "framed-bench: hard deadline passed with client threads still running; giving up\n");
      std::fflush(stdout);
      std::_Exit(kExitDeadline);
    }
    const timespec wait = to_timespec(std::min<Clock::duration>(hard_deadline - now, kMainPoll));
    const int sig = ::sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGINT || sig == SIGTERM) {
      if (interrupted) std::_Exit(kExitInterrupted);  // a second Ctrl-C: leave now
      interrupted = true;
      stop_at.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
      std::fprintf(stderr, "framed-bench: stopping early (again to quit at once)\n");
    }
  }
  for (auto& thread : threads) thread.join();

  Summary summary;
  summary.interrupted = interrupted;
  for (const ThreadResult& result : results) {
    summary.latency.merge(result.latency);
    summary.completed += result.completed;
    summary.errors += result.errors;
    summary.connected += result.connected;
    summary.handshakes += result.handshakes;
    summary.undrained += result.undrained;
  }
  Clock::time_point window_end = timeline.measure_end;
  if (const Clock::rep stop = stop_at.load(); stop != 0) {
    window_end = std::min(window_end, Clock::time_point(Clock::duration(stop)));
  }
  if (options.requests != 0 && !interrupted) {
    // A fixed count is measured to its last reply, not to the time limit.
    Clock::time_point last_reply = timeline.measure_begin;
    for (const ThreadResult& result : results) last_reply = std::max(last_reply, result.last_reply);
    window_end = std::min(window_end, last_reply);
    if (summary.completed != options.requests) {
      ++summary.errors;
      results[0].error_samples.push_back(std::to_string(summary.completed) + " of the " +
                                         std::to_string(options.requests) + " requests answered within --duration " +
                                         std::to_string(options.duration_s) + " s");
    }
  }
  summary.measured_s =
      std::max(0.0, std::chrono::duration<double>(window_end - timeline.measure_begin).count());

  std::size_t shown = 0;
  for (const ThreadResult& result : results) {
    for (const std::string& sample : result.error_samples) {
      std::fprintf(stderr, "framed-bench: error: %s\n", sample.c_str());
      ++shown;
    }
  }
  if (summary.errors > shown) {
    std::fprintf(stderr, "framed-bench: ... and %llu more errors\n",
                 static_cast<unsigned long long>(summary.errors - shown));
  }

  if (options.json_output) {
    print_json(options, *target, summary);
  } else {
    print_text(options, *target, summary);
  }
  if (summary.completed == 0) std::fprintf(stderr, "framed-bench: no replies were measured\n");
  return summary.errors == 0 && summary.completed > 0 ? kExitOk : kExitFailed;
}

}  // namespace
}  // namespace framed::bench

int main(int argc, char** argv) { return framed::bench::run(argc, argv); }
