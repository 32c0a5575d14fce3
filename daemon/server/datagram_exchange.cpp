#include "server/datagram_exchange.hpp"

#include <cstring>

namespace framed::server {

DatagramExchange::DatagramExchange(Owner& owner, pipeline::Dispatcher& dispatcher, simdjson::dom::parser& parser,
                                   const ListenerSettings& settings, std::size_t datagram_limit)
    : owner_(owner),
      id_(owner.add_requester(*this)),
      in_(1024),
      out_(1024),
      pipeline_(dispatcher, pipeline::Origin{settings}, id_, parser, *this,
                pipeline::PipelineLimits{.max_pending_replies = 1, .datagram_limit = datagram_limit}) {}

DatagramExchange::~DatagramExchange() { owner_.remove_requester(id_); }

bool DatagramExchange::take(std::string_view datagram, bool truncated, const sockaddr_storage& sender,
                            socklen_t sender_length) {
  busy_ = true;
  std::memcpy(&sender_, &sender, sizeof sender);
  sender_length_ = sender_length;
  // The pipeline reads the datagram in place (with the buffer's tail
  // padding), and a body sink that is behind reads the rest later.
  in_.clear();
  in_.ensure_writable(datagram.size());
  std::memcpy(in_.write_ptr(), datagram.data(), datagram.size());
  in_.commit(datagram.size());
  out_.clear();
  taking_ = true;
  pipeline_.process_datagram(in_.readable(), truncated);
  taking_ = false;
  return ready();
}

void DatagramExchange::frames_ready() {
  if (!taking_ && ready()) owner_.on_exchange_ready(*this);
}

void DatagramExchange::replace_reply_too_large() { pipeline_.replace_reply_too_large(out_.readable_size()); }

void DatagramExchange::sent() {
  bytes_done_ += out_.readable_size();
  out_.clear();
  pipeline_.on_sent(bytes_done_);
  busy_ = false;
}

}  // namespace framed::server
