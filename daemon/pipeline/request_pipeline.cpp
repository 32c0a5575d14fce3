#include "pipeline/request_pipeline.hpp"

#include <algorithm>

#include "pipeline/held_body.hpp"

namespace framed::pipeline {
namespace {

// The most a streamed reply body adds to the output per pull: big enough for
// few calls per MiB, small enough that other connections' turns come soon.
constexpr std::size_t kBodyChunk = 64 * 1024;
// The most of a streamed body one pump adds before it waits for the next
// send to complete, even with room left in the output: the copy is one
// uninterrupted step of the reactor, and filling the whole output (4 MiB)
// at once kept a ping on another connection waiting for milliseconds. It
// also keeps the output buffer below the size at which it is given back
// after every send (StreamTransportOptions::shrink_above), so its memory is
// reused instead of faulted in afresh.
constexpr std::size_t kBodyPerPump = 512 * 1024;

// The most room a recv is offered while a sink streams a request body in:
// one read moves up to this much (and its copy into the sink, one turn of
// the reactor for this connection, is bounded by it).
constexpr std::size_t kStreamedBodyRead = 256 * 1024;

// A reply body that views the request's bytes is sent from the input buffer
// itself, in pieces (pipeline/held_body.hpp), from this size on; below it one
// copy into the output costs less than the hand-over.
constexpr std::size_t kHeldBodyMin = 256 * 1024;
// Room given to the fresh input buffer that replaces a held one, besides
// the bytes that followed the frame.
constexpr std::size_t kFreshInputRoom = 16 * 1024;

constexpr std::string_view kSlowConsumerEvent = R"(,"event":"dropped","reason":"slow_subscriber")";

codec::WireFormat stream_format(codec::WireFormat format) noexcept {
  // A datagram pipeline never uses its stream decoder; give it a valid one.
  if (format.framing == codec::Framing::datagram) format.framing = codec::Framing::json;
  return format;
}

}  // namespace

RequestPipeline::RequestPipeline(Dispatcher& dispatcher, Origin origin, std::uint64_t requester,
                                 simdjson::dom::parser& parser, FrameOutput& output, PipelineLimits limits)
    : dispatcher_(dispatcher),
      origin_(origin),
      requester_(requester),
      output_(output),
      limits_(limits),
      datagram_(origin.listener.format.framing == codec::Framing::datagram),
      stream_decoder_(stream_format(origin.listener.format), parser, origin.listener.frame_limits),
      datagram_decoder_(origin.listener.format, parser, origin.listener.frame_limits, limits.datagram_limit),
      encoder_(origin.listener.format) {}

// An open body sink is abandoned (its destructor undoes), sources dropped.
RequestPipeline::~RequestPipeline() = default;

bool RequestPipeline::replies_full() const noexcept {
  return pending_ >= limits_.max_pending_replies || output_.output_full();
}

bool RequestPipeline::wants_input() const noexcept {
  // A stream takes its next request only once every deferred one before it
  // has answered, so requests take effect in order (a pipelined `delete`
  // then `get` of one name never races in the worker pool); a command that
  // took effect before deferring its answer (defer_answer) does not hold
  // them back. A datagram
  // endpoint serves many peers whose datagrams are independent: it does not
  // wait.
  return !broken_ && !replies_full() && !(body_ && body_->behind) && (datagram_ || deferred_ == 0);
}

bool RequestPipeline::idle() const noexcept { return slots_.empty() && !body_ && (!events_ || events_->empty()); }

bool RequestPipeline::header_incomplete(std::string_view input) const noexcept {
  // Bytes held back behind a deferred request are not the client's delay.
  return !datagram_ && !body_ && deferred_ == 0 && stream_decoder_.header_incomplete(input);
}

bool RequestPipeline::body_begun(std::string_view input) const noexcept {
  if (datagram_ || broken_) return false;
  if (body_) return true;  // a streamed body, or one skipped after an error
  // Frames held back behind a deferred request have not begun for us.
  if (deferred_ != 0 || input.empty()) return false;
  const codec::Framing framing = origin_.listener.format.framing;
  if (framing != codec::Framing::json && framing != codec::Framing::length) return false;
  // process() consumes whole frames: a complete header still in the input
  // is a frame whose body has not all arrived.
  return !stream_decoder_.header_incomplete(input);
}

bool RequestPipeline::streams_body(simdjson::dom::object header) const noexcept {
  // A cheap look at `cmd` only: the full parse (and its counting) happens
  // once, when the body is taken over or the frame is whole.
  std::string_view name;
  if (header["cmd"].get_string().get(name) != simdjson::SUCCESS) return false;
  const commands::RegisteredCommand* command = dispatcher_.commands().find(name);
  return command != nullptr && command->streams_body;
}

void RequestPipeline::process(buffer::ByteBuffer& input) {
  const Dispatcher::Batch batch(dispatcher_);
  input_wanted_ = 0;
  body_read_room_ = 0;
  while (wants_input()) {
    if (body_) {
      const std::size_t arrived = input.readable_size();
      input.consume(feed_body(input.readable()));
      if (!body_) continue;
      // Behind, or waiting for more of the body. A sink that took all that
      // arrived gets the next in a read up to twice as large (up to
      // kStreamedBodyRead): a fast sender's body comes in large reads, fewer
      // system calls and wake-ups per byte, and the room grows only with
      // bytes that came, never with what the header announced.
      if (body_->sink && !body_->behind) {
        body_read_room_ = static_cast<std::size_t>(
            std::min<std::uint64_t>({body_->remaining, kStreamedBodyRead, std::uint64_t{2} * arrived}));
      }
      return;
    }
    if (input.empty()) return;
    const codec::DecodeResult result = stream_decoder_.decode(input.readable());
    switch (result.status) {
      case codec::DecodeStatus::need_more:
        if (result.header_size != 0 && streams_body(stream_decoder_.header_object())) {
          // The header is here before its body: a streaming command takes
          // the body from now on, in pieces.
          stream_decoder_.skip_body();
          input.consume(handle_header_first(result, stream_decoder_.header_object()));
          continue;
        }
        if (result.body_over_limit) {
          fail_stream(proto::ErrorCode::frame_too_large, result.message);
          input.clear();
          return;
        }
        input_wanted_ = result.frame_size;
        return;
      case codec::DecodeStatus::frame:
        input.consume(handle_frame(result, stream_decoder_.header_object(), &input));
        break;
      case codec::DecodeStatus::error:
        fail_stream(result.error, result.message);
        input.clear();  // the frame boundary is lost: what follows cannot be trusted
        return;
    }
  }
}

void RequestPipeline::process_datagram(std::string_view datagram, bool truncated) {
  const Dispatcher::Batch batch(dispatcher_);
  const codec::DecodeResult result = datagram_decoder_.decode(datagram, truncated);
  if (result.status != codec::DecodeStatus::frame) {
    // One datagram's problem: answered, and the next datagram is read as usual.
    reply_.reset();
    Dispatcher::answer_error(origin_, result.error, result.message, reply_);
    answered(reply_, next_sequence_++);
    return;
  }
  const std::size_t consumed = handle_frame(result, datagram_decoder_.header_object(), nullptr);
  if (body_) {
    body_->datagram_rest = datagram.substr(consumed, result.body.size());
    body_->datagram_rest.remove_prefix(feed_body(body_->datagram_rest));
  }
}

std::size_t RequestPipeline::handle_header_first(const codec::DecodeResult& head, simdjson::dom::object header) {
  const std::uint64_t sequence = next_sequence_++;
  Dispatcher::count_frame(origin_);
  const commands::RegisteredCommand* command = dispatcher_.prepare(origin_, header, {}, request_, reply_);
  if (command != nullptr) {
    start_body(*command, sequence, head.body_size);
  } else {
    // A bad field: the body is skipped, then the error answered.
    body_ = std::make_unique<BodyInFlight>();
    body_->remaining = head.body_size;
    body_->route = commands::ReplyRoute{requester_, sequence};
    body_->id_json = reply_.id_json;
    body_->error = std::move(reply_);
    reply_.reset();
  }
  return head.header_size;
}

std::size_t RequestPipeline::handle_frame(const codec::DecodeResult& frame, simdjson::dom::object header,
                                          buffer::ByteBuffer* input) {
  const std::uint64_t sequence = next_sequence_++;
  Dispatcher::count_frame(origin_);
  const commands::RegisteredCommand* command = dispatcher_.prepare(origin_, header, frame.body, request_, reply_);
  if (command == nullptr) {
    answered(reply_, sequence);
    return frame.frame_size;
  }
  if (command->streams_body) {
    // The sink takes the body from the input, in as many pieces as it
    // needs; only the header is consumed here.
    start_body(*command, sequence, frame.body.size());
    return frame.frame_size - frame.body.size();
  }
  commands::ReplyRoute route{requester_, sequence};
  const Dispatcher::RunOutcome outcome = dispatcher_.run(origin_, *command, request_, reply_, route);
  if (outcome == Dispatcher::RunOutcome::answered) {
    const bool held = input != nullptr && hold_body(*input, frame.frame_size);
    answered(reply_, sequence);
    if (held) return 0;  // the frame left the input with its reply
  } else {
    Slot& slot = push_slot();
    slot.sequence = sequence;
    slot.id_json = reply_.id_json;
    slot.holds_order = outcome == Dispatcher::RunOutcome::deferred;
    if (slot.holds_order) ++deferred_;
  }
  // The request's views point into the frame: consumed only now.
  return frame.frame_size;
}

bool RequestPipeline::hold_body(buffer::ByteBuffer& input, std::size_t frame_size) {
  const std::string_view frame = input.readable().substr(0, frame_size);
  const std::string_view body = reply_.body;
  if (body.size() < kHeldBodyMin || reply_.body_source) return false;
  // Only a view of this very frame: other bodies (body_storage) are owned by
  // the reply already.
  if (body.data() < frame.data() || body.data() + body.size() > frame.data() + frame.size()) return false;
  const std::string_view following = input.readable().substr(frame_size);
  buffer::ByteBuffer rest(following.size() + kFreshInputRoom);
  rest.account_to(input.budget());
  rest.append(following);
  buffer::ByteBuffer holder = std::move(input);
  input = std::move(rest);
  reply_.body_source = std::make_unique<HeldBody>(std::move(holder), body);
  reply_.body = {};
  return true;
}

void RequestPipeline::start_body(const commands::RegisteredCommand& command, std::uint64_t sequence,
                                 std::uint64_t body_size) {
  body_ = std::make_unique<BodyInFlight>();
  body_->remaining = body_size;
  body_->route = commands::ReplyRoute{requester_, sequence};
  body_->id_json = request_.id_json;
  body_->sink = dispatcher_.open_body(origin_, command, request_, reply_, body_->route);
  if (!body_->sink) body_->error = std::move(reply_);  // the body is skipped, then this answered
  reply_.reset();
  if (body_->remaining == 0) finish_body();
}

std::size_t RequestPipeline::feed_body(std::string_view bytes) {
  BodyInFlight& body = *body_;
  const auto offered = static_cast<std::size_t>(std::min<std::uint64_t>(body.remaining, bytes.size()));
  const std::size_t taken = body.sink ? std::min(body.sink->write(bytes.substr(0, offered)), offered) : offered;
  body.remaining -= taken;
  body.behind = taken < offered;
  if (body.remaining == 0) finish_body();
  return taken;
}

void RequestPipeline::finish_body() {
  const std::unique_ptr<BodyInFlight> body = std::move(body_);
  const std::uint64_t sequence = body->route.sequence;
  if (!body->sink) {
    body->error.id_json = body->id_json;
    answered(body->error, sequence);
    return;
  }
  reply_.reset();
  reply_.id_json = body->id_json;
  if (dispatcher_.finish_body(origin_, *body->sink, reply_, body->route)) {
    answered(reply_, sequence);
    return;
  }
  Slot& slot = push_slot();
  slot.sequence = sequence;
  slot.id_json = body->id_json;
  ++deferred_;
}

void RequestPipeline::fail_stream(proto::ErrorCode code, std::string_view message) {
  reply_.reset();
  Dispatcher::answer_error(origin_, code, message, reply_);
  answered(reply_, next_sequence_++);
  broken_ = true;
  body_.reset();
}

void RequestPipeline::fail(proto::ErrorCode code, std::string_view message) {
  if (broken_) return;
  fail_stream(code, message);
  output_.frames_ready();
}

void RequestPipeline::answered(proto::Reply& reply, std::uint64_t sequence) {
  ++origin_.listener.stats->replies_out;
  if (slots_.empty() && !reply.body_source) {
    write_all_events();
    encode_into(reply, output_.frames());
    reply_ends_.push_back(output_.frames_end());
    ++pending_;
    return;
  }
  // Behind a reply that is not done yet, or streaming its own body: encoded
  // now (the request's bytes are about to be consumed), released in order.
  Slot& slot = push_slot();
  slot.sequence = sequence;
  slot.ready = true;
  if (reply.body_source && !datagram_) {
    slot.source_remaining = reply.body_source->size();
    encoder_.encode_head(reply, slot.source_remaining, slot.bytes);
    slot.source = std::move(reply.body_source);
  } else {
    encode_into(reply, slot.bytes);
  }
  release();
}

void RequestPipeline::encode_into(proto::Reply& reply, buffer::ByteBuffer& out) {
  if (!datagram_) return encoder_.encode(reply, out);
  last_reply_id_ = reply.id_json;
  last_error_.reset();
  if (!reply.ok) last_error_.fail(reply.error_code, reply.error_message);
  if (reply.body_source) {
    // One datagram carries the whole reply: read the body in, up to what fits.
    const std::uint64_t size = reply.body_source->size();
    if (size <= limits_.datagram_limit) {
      reply.body_storage.resize(static_cast<std::size_t>(size));
      std::size_t filled = 0;
      while (filled < reply.body_storage.size()) {
        const auto read = reply.body_source->read(std::span<char>(reply.body_storage).subspan(filled));
        if (read.status != proto::BodySource::Status::data || read.bytes == 0) break;
        filled += read.bytes;
      }
      reply.body_source.reset();
      if (filled == reply.body_storage.size()) {
        reply.use_storage_as_body();
      } else {
        reply.body_storage.clear();
        Dispatcher::answer_error(origin_, proto::ErrorCode::internal, "the reply's body could not be read", reply);
      }
    } else {
      reply.body_source.reset();
      Dispatcher::answer_error(origin_, proto::ErrorCode::frame_too_large,
                               "reply of " + std::to_string(size) + " bytes exceeds the datagram limit", reply);
    }
  }
  const std::size_t before = out.readable_size();
  encoder_.encode(reply, out);
  const std::size_t size = out.readable_size() - before;
  if (size <= limits_.datagram_limit) return;
  // A datagram carrier's output holds this one reply: start it over.
  out.clear();
  const std::string id = reply.id_json;
  reply.reset();
  reply.id_json = id;
  Dispatcher::answer_error(origin_, proto::ErrorCode::frame_too_large,
                           "reply of " + std::to_string(size) + " bytes exceeds the datagram limit", reply);
  encoder_.encode(reply, out);
}

void RequestPipeline::replace_reply_too_large(std::size_t size) {
  reply_.reset();
  reply_.id_json = last_reply_id_;
  Dispatcher::answer_error(origin_, proto::ErrorCode::frame_too_large,
                           "reply of " + std::to_string(size) + " bytes is too large for one datagram", reply_);
  output_.frames().clear();
  encoder_.encode(reply_, output_.frames());
}

void RequestPipeline::release() {
  buffer::ByteBuffer& out = output_.frames();
  while (!slots_.empty()) {
    Slot& slot = slots_.front();
    if (!slot.ready) break;
    if (!slot.head_sent) {
      write_all_events();
      out.append(slot.bytes.readable());
      slot.head_sent = slot.source != nullptr;
    }
    if (slot.source) {
      if (!pump_source(slot)) break;
      encoder_.encode_tail(out);
    }
    reply_ends_.push_back(output_.frames_end());
    slots_.pop_front();
  }
  write_events();
}

bool RequestPipeline::pump_source(Slot& slot) {
  buffer::ByteBuffer& out = output_.frames();
  const bool escaped = origin_.listener.format.framing == codec::Framing::line;
  std::string chunk;
  std::size_t pumped = 0;
  while (slot.source_remaining > 0) {
    // on_sent pulls again, once the output has room or this pump's bytes
    // are on their way.
    if (output_.output_full() || pumped >= kBodyPerPump) return false;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(slot.source_remaining, kBodyChunk));
    proto::BodySource::Read read;
    if (escaped) {
      chunk.resize(want);
      read = slot.source->read(chunk);
      if (read.status == proto::BodySource::Status::data) {
        encoder_.encode_body_chunk(std::string_view(chunk).substr(0, read.bytes), out);
      }
    } else {
      out.ensure_writable(want);
      read = slot.source->read(std::span<char>(out.write_ptr(), want));
      if (read.status == proto::BodySource::Status::data) out.commit(std::min(read.bytes, want));
    }
    if (read.status == proto::BodySource::Status::pending) return false;  // resume_body pulls again
    if (read.status == proto::BodySource::Status::failed || read.bytes == 0) {
      // The header promised bytes that will never come: the frame boundary
      // is lost. What was sent stays sent; the connection finishes.
      broken_ = true;
      pending_ -= slots_.size();
      slots_.clear();
      deferred_ = 0;
      return false;
    }
    slot.source_remaining -= std::min<std::uint64_t>(read.bytes, slot.source_remaining);
    pumped += read.bytes;
  }
  return true;
}

void RequestPipeline::write_events() {
  if (streaming_reply()) return;  // never inside a reply
  buffer::ByteBuffer& out = output_.frames();
  if (!events_) return;
  while (!events_->empty() && !output_.output_full()) {
    out.append(*events_->front());
    event_bytes_ -= events_->front()->size();
    events_->pop_front();
  }
}

void RequestPipeline::write_all_events() {
  if (!events_) return;
  buffer::ByteBuffer& out = output_.frames();
  for (const SharedFrame& frame : *events_) out.append(*frame);
  events_->clear();
  event_bytes_ = 0;
}

bool RequestPipeline::push_event(const SharedFrame& frame) {
  if (slow_consumer_ || datagram_) return false;
  if ((!events_ || events_->empty()) && frame->size() <= limits_.max_event_backlog && !streaming_reply() &&
      !output_.output_full()) {
    // Nothing queued before it, within the backlog, and room in the output:
    // what the queue and write_events() would do at once, without queueing
    // it first (the common case of a fan-out to subscribers that keep up).
    output_.frames().append(*frame);
    output_.flush_frames();
    return true;
  }
  if (!events_) events_ = std::make_unique<std::deque<SharedFrame>>();
  if (event_bytes_ + frame->size() > limits_.max_event_backlog) {
    slow_consumer_ = true;
    broken_ = true;
    events_->clear();
    buffer::ByteBuffer dropped(128);
    encoder_.encode_event(kSlowConsumerEvent, {}, dropped);
    events_->push_back(std::make_shared<const std::string>(dropped.readable()));
    event_bytes_ = events_->back()->size();
    write_events();
    output_.flush_frames();
    return false;
  }
  event_bytes_ += frame->size();
  events_->push_back(frame);
  write_events();
  output_.flush_frames();
  return true;
}

std::size_t RequestPipeline::held_bytes() const noexcept {
  std::size_t held = event_bytes_;
  for (const Slot& slot : slots_) held += slot.bytes.readable_size();
  return held;
}

void RequestPipeline::on_sent(std::uint64_t bytes_sent_total) {
  while (!reply_ends_.empty() && reply_ends_.front() <= bytes_sent_total) {
    reply_ends_.pop_front();
    --pending_;
  }
  release();
}

void RequestPipeline::deliver(const commands::ReplyRoute& route, proto::Reply& reply) {
  Dispatcher::count_deferred(origin_, route, reply);
  const auto slot = std::find_if(slots_.begin(), slots_.end(), [&route](const Slot& candidate) {
    return candidate.sequence == route.sequence && !candidate.ready;
  });
  if (slot == slots_.end()) return;
  if (slot->holds_order) --deferred_;
  reply.id_json = slot->id_json;
  ++origin_.listener.stats->replies_out;
  if (reply.body_source && !datagram_) {
    slot->source_remaining = reply.body_source->size();
    encoder_.encode_head(reply, slot->source_remaining, slot->bytes);
    slot->source = std::move(reply.body_source);
  } else {
    encode_into(reply, slot->bytes);
  }
  slot->ready = true;
  release();
  output_.frames_ready();
}

void RequestPipeline::resume_body(const commands::ReplyRoute& route) {
  if (body_ && body_->route.sequence == route.sequence && body_->behind) {
    body_->behind = false;
    if (datagram_) body_->datagram_rest.remove_prefix(feed_body(body_->datagram_rest));
    output_.frames_ready();
    return;
  }
  if (!slots_.empty() && slots_.front().sequence == route.sequence && slots_.front().source) {
    release();
    output_.frames_ready();
  }
}

}  // namespace framed::pipeline
