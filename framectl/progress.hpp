#pragma once
// The progress line of put and get on stderr — bytes done of the total, the
// percentage, the rate and the time left — redrawn in place at most ten times
// a second. Only when stderr is a terminal: piped or redirected, framectl
// writes no progress at all, so logs and scripts see only results.

#include <chrono>
#include <cstdint>
#include <string>

namespace framed::framectl {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  // `total`: bytes of the whole transfer; `done`: bytes already there (a
  // resumed download starts at its local size).
  Progress(std::string label, std::uint64_t total, std::uint64_t done = 0);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress();

  void advance(std::uint64_t bytes);
  // Draws the final state and ends the line (once; the destructor ends it
  // too, so a failure's message starts on a line of its own).
  void finish();

 private:
  void draw(bool final);

  bool enabled_;
  bool finished_ = false;
  std::string label_;
  std::uint64_t total_;
  std::uint64_t start_done_;
  std::uint64_t done_;
  Clock::time_point started_;
  Clock::time_point last_draw_;
};

}  // namespace framed::framectl
