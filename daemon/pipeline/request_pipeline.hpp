#pragma once
// The request pipeline of one requester (a stream connection or a datagram
// endpoint): bytes → decoder → request → command → reply → encoder → bytes,
// with replies kept in request order whatever order commands answer in.
// It owns no socket: its input is a buffer the carrier fills, its output
// is a FrameOutput the carrier sends.
//
// Order: a reply that is answered at once while nothing waits goes straight
// to the output (the common, zero-wait path). Otherwise it takes a slot in
// `slots_`, behind a deferred reply (answered later from the worker pool) or
// a reply whose body is still being produced (BodySource); slots leave in
// order.
//
// Streaming: a command that streams_body() gets its request body in pieces
// as it arrives (BodySink), and the pipeline stops taking input while the
// sink is behind. A reply may carry a BodySource, pulled while the output
// has room, so neither direction ever holds a large body whole.
//
// Events (frames that are not replies: pub/sub messages, exec output) are
// written between replies, never inside one, and bounded: past
// max_event_backlog bytes unsent the requester is a slow consumer, told so
// with a `dropped` event and then finished.
//
// Effect order: on a stream, a request is taken only once every deferred
// request before it has answered, so requests take effect in the order they
// were sent; concurrency comes from connections. Datagram endpoints, whose
// datagrams come from many peers, do not wait.
//
// Bounds: no more than max_pending_replies replies unsent or waiting, and
// nothing decoded while the carrier's own output is full.
//
// Reactor thread only.

#include <simdjson.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "buffer/byte_buffer.hpp"
#include "buffer/ring_queue.hpp"
#include "codec/datagram_decoder.hpp"
#include "codec/reply_encoder.hpp"
#include "codec/stream_decoder.hpp"
#include "commands/command.hpp"
#include "pipeline/dispatcher.hpp"
#include "proto/reply.hpp"
#include "proto/request.hpp"

namespace framed::pipeline {

// An encoded event frame, shared by every requester it is sent to.
using SharedFrame = std::shared_ptr<const std::string>;

struct PipelineLimits {
  std::uint32_t max_pending_replies = 1024;
  std::size_t max_event_backlog = 1024 * 1024;
  // Datagram carriers: the largest datagram read whole, and the largest
  // reply one datagram carries (a larger one is answered frame_too_large
  // instead). 0 for streams.
  std::size_t datagram_limit = 0;
};

// Where a pipeline's frames go: a stream transport, or one datagram.
class FrameOutput {
 public:
  [[nodiscard]] virtual buffer::ByteBuffer& frames() noexcept = 0;
  // The carrier's own bound on unsent bytes.
  [[nodiscard]] virtual bool output_full() const noexcept = 0;
  // Bytes sent so far plus bytes unsent: the stream offset at which the next
  // appended byte will end.
  [[nodiscard]] virtual std::uint64_t frames_end() const noexcept = 0;
  // Frames were appended, or input may be taken again, outside a call from
  // the carrier (a deferred reply, an event, a resumed body): send, and look
  // at flow control and finishing again.
  virtual void frames_ready() = 0;
  // Event frames were appended, possibly while another requester is in the
  // middle of its own work (a publish): only send, take no input here.
  virtual void flush_frames() = 0;

 protected:
  ~FrameOutput() = default;
};

class RequestPipeline {
 public:
  RequestPipeline(Dispatcher& dispatcher, Origin origin, std::uint64_t requester, simdjson::dom::parser& parser,
                  FrameOutput& output, PipelineLimits limits);
  ~RequestPipeline();

  RequestPipeline(const RequestPipeline&) = delete;
  RequestPipeline& operator=(const RequestPipeline&) = delete;

  // Stream carriers: decodes and answers what `input` holds, as far as the
  // bounds allow, and consumes what it used.
  void process(buffer::ByteBuffer& input);
  // Datagram carriers: one whole message (with ByteBuffer::kTailPadding
  // bytes of memory after it); `truncated`: cut by the kernel.
  void process_datagram(std::string_view datagram, bool truncated);

  // The carrier sent bytes: replies leave the pending count, a streamed body
  // and queued events go on.
  void on_sent(std::uint64_t bytes_sent_total);
  // A deferred command's answer for route.sequence.
  void deliver(const commands::ReplyRoute& route, proto::Reply& reply);
  // The body sink or source of route.sequence can go on.
  void resume_body(const commands::ReplyRoute& route);
  // Queues an event frame. False: the requester is a slow consumer (its
  // backlog would pass max_event_backlog): its queued events are dropped, it
  // is sent a `dropped` event and it stops taking requests (broken()).
  bool push_event(const SharedFrame& frame);
  // An error the carrier found (header_timeout): answered, then the stream
  // is broken.
  void fail(proto::ErrorCode code, std::string_view message);
  // A datagram carrier could not send the last reply (EMSGSIZE): answer its
  // request with frame_too_large instead.
  void replace_reply_too_large(std::size_t size);

  // May the carrier read more input? (Not broken, below every bound, no
  // body sink behind, no deferred reply awaited on a stream.)
  [[nodiscard]] bool wants_input() const noexcept;
  // The frame boundary is lost (or the consumer was too slow): take no more
  // requests; finish once idle().
  [[nodiscard]] bool broken() const noexcept { return broken_; }
  // push_event found the requester too slow: it was sent `dropped`.
  [[nodiscard]] bool slow_consumer() const noexcept { return slow_consumer_; }
  // A streamed request body has begun and is not complete.
  [[nodiscard]] bool body_incomplete() const noexcept { return body_ != nullptr; }
  // The peer has closed with a body incomplete and every byte it sent taken:
  // the rest never comes. The sink is dropped (it undoes what it did) and
  // nobody is answered for that request.
  void abandon_body() noexcept { body_.reset(); }
  // Every request taken has been answered and handed to the output: nothing
  // waits, streams or is queued.
  [[nodiscard]] bool idle() const noexcept;
  // A frame has begun but its header is not complete (header_timeout).
  [[nodiscard]] bool header_incomplete(std::string_view input) const noexcept;
  // A frame's header is complete and its body is not (a json body, a
  // length payload, a streamed put): what body_timeout bounds. Whether the
  // pipeline is waiting for it or holding it back itself is wants_input().
  [[nodiscard]] bool body_begun(std::string_view input) const noexcept;
  // Requests begun so far: changes when one frame's body ends and the
  // next frame begins, so the carrier can tell two bodies apart.
  [[nodiscard]] std::uint64_t frames_begun() const noexcept { return next_sequence_; }
  // The total size of the frame in progress, when known: the carrier makes
  // room for it at once.
  [[nodiscard]] std::size_t input_wanted() const noexcept { return input_wanted_; }
  // Encoded bytes the pipeline holds back: replies waiting their turn and
  // queued events (stats' bytes_buffered, with the carrier's own buffers).
  [[nodiscard]] std::size_t held_bytes() const noexcept;
  // A body streamed to a sink that keeps up: the room its next read may
  // fill (0: no opinion).
  [[nodiscard]] std::size_t body_read_room() const noexcept { return body_read_room_; }
  // Datagram carriers: the last reply, when it was an error (for the
  // carrier's log); null otherwise.
  [[nodiscard]] const proto::Reply* last_error() const noexcept { return last_error_.ok ? nullptr : &last_error_; }

 private:
  // A reply that must wait its turn: not ready until a deferred command
  // answers, ready as encoded bytes, or a head whose body is streamed.
  struct Slot {
    std::uint64_t sequence = 0;
    bool ready = false;
    bool holds_order = true;  // not ready: the next requests wait for it (counted in deferred_)
    std::string id_json;
    buffer::ByteBuffer bytes{0};
    std::unique_ptr<proto::BodySource> source;  // ready with a streamed body
    std::uint64_t source_remaining = 0;
    bool head_sent = false;  // source: the header is in the output, the body is under way
  };

  // A request body being handed to a sink as it arrives.
  struct BodyInFlight {
    std::unique_ptr<commands::BodySink> sink;  // null: skipped (the reply is an error already)
    std::uint64_t remaining = 0;
    commands::ReplyRoute route;
    std::string id_json;
    bool behind = false;
    proto::Reply error;  // the reply when sink is null
    std::string_view datagram_rest;  // datagram carriers: the body not yet taken
  };

  // Answers one whole frame. Returns how many of its bytes (from the front)
  // may be consumed now: all, or only the header when a streaming command
  // takes the body, or none when the frame has left the input with its
  // reply (hold_body). `input`: the stream's buffer the frame is at the
  // front of (null for a datagram).
  std::size_t handle_frame(const codec::DecodeResult& frame, simdjson::dom::object header,
                           buffer::ByteBuffer* input);
  // reply_'s body is a large view of this frame, at the front of `input`:
  // hands the input buffer to the reply as its body source and leaves
  // `input` holding only what followed the frame. False: nothing done.
  bool hold_body(buffer::ByteBuffer& input, std::size_t frame_size);
  // A header announced ahead of its body, for a streaming command: the body
  // goes to its sink as it arrives. Returns the header's bytes to consume.
  std::size_t handle_header_first(const codec::DecodeResult& head, simdjson::dom::object header);
  void start_body(const commands::RegisteredCommand& command, std::uint64_t sequence, std::uint64_t body_size);
  // Offers the sink what `bytes` hold of the body; returns how many it took.
  std::size_t feed_body(std::string_view bytes);
  [[nodiscard]] bool streams_body(simdjson::dom::object header) const noexcept;
  void finish_body();
  void fail_stream(proto::ErrorCode code, std::string_view message);
  void answered(proto::Reply& reply, std::uint64_t sequence);
  void encode_into(proto::Reply& reply, buffer::ByteBuffer& out);
  void release();
  bool pump_source(Slot& slot);
  void write_events();
  // Before a reply goes to the output: every queued event goes first, so an
  // event pushed before a reply (exec output, then its reply) is never
  // overtaken by it. Bounded: the queue holds at most max_event_backlog.
  void write_all_events();
  [[nodiscard]] bool streaming_reply() const noexcept { return !slots_.empty() && slots_.front().head_sent; }
  [[nodiscard]] bool replies_full() const noexcept;
  Slot& push_slot() {
    ++pending_;
    return slots_.emplace_back();
  }

  Dispatcher& dispatcher_;
  Origin origin_;
  std::uint64_t requester_;
  FrameOutput& output_;
  PipelineLimits limits_;
  bool datagram_;

  codec::StreamDecoder stream_decoder_;
  codec::DatagramDecoder datagram_decoder_;
  codec::ReplyEncoder encoder_;
  proto::Request request_;
  proto::Reply reply_;

  std::uint64_t next_sequence_ = 0;
  // Replies in the output but not yet sent: the stream offset at which
  // each ends. With slots_, what max_pending_replies bounds.
  buffer::RingQueue<std::uint64_t> reply_ends_;
  std::deque<Slot> slots_;
  // reply_ends_.size() + slots_.size(), kept as one count: checked per frame.
  std::size_t pending_ = 0;
  // Slots waiting for a deferred command's answer that hold the next
  // requests back (wants_input); defer_answer() slots are not counted.
  std::size_t deferred_ = 0;
  std::unique_ptr<BodyInFlight> body_;
  std::size_t input_wanted_ = 0;
  std::size_t body_read_room_ = 0;
  bool broken_ = false;

  // Made on the first event: most requesters never get one, and an empty
  // std::deque already holds a node (half a KiB per idle connection).
  std::unique_ptr<std::deque<SharedFrame>> events_;
  std::size_t event_bytes_ = 0;
  bool slow_consumer_ = false;
  std::string last_reply_id_;  // datagrams: for replace_reply_too_large
  proto::Reply last_error_;    // datagrams: the last reply's outcome, when an error
};

}  // namespace framed::pipeline
