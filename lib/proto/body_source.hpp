#pragma once
// A reply body produced in pieces (a file read from disk, a child's output),
// so a large body is never held whole. Its size is known up front: the reply
// header announces it (json total_size, the length prefix).

#include <cstddef>
#include <cstdint>
#include <span>

namespace framed::proto {

class BodySource {
 public:
  enum class Status : std::uint8_t {
    data,     // `bytes` were written
    pending,  // nothing ready now; the source resumes the reply later (its command's route)
    failed,   // the body cannot be completed: the connection closes after what was sent
  };
  struct Read {
    Status status = Status::data;
    std::size_t bytes = 0;
  };

  virtual ~BodySource() = default;
  // The body's whole size, as announced in the reply's header.
  [[nodiscard]] virtual std::uint64_t size() const noexcept = 0;
  // Writes the next bytes of the body into `into` (at most its size).
  virtual Read read(std::span<char> into) = 0;
};

}  // namespace framed::proto
