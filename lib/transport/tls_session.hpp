#pragma once
// One TLS connection's state machine over memory BIOs: it never touches a
// socket. Ciphertext that arrived is handed in (receive), plaintext comes
// out (decrypt, which also advances the handshake); plaintext to send goes
// in (encrypt) and the ciphertext to put on the wire comes out
// (take_ciphertext) — handshake messages, records, alerts and close_notify,
// in the order OpenSSL wrote them. Whoever owns the socket moves the bytes
// (StreamTransport, on either reactor backend, or a test).
//
// Bounds: decrypt produces at most the plaintext of what was received (a
// record is at most 16 KiB), so the caller bounds memory by how much
// ciphertext it receives at once; the outgoing BIO holds what encrypt was
// given until take_ciphertext moves it.
//
// Not thread-safe: one connection's, on one thread.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include "buffer/byte_buffer.hpp"

namespace framed::transport {

struct SslDeleter {
  void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
};
using UniqueSsl = std::unique_ptr<SSL, SslDeleter>;

// Who the peer proved to be: its certificate, verified against the
// configured CA. Empty unless a certificate was required and verified.
struct TlsPeerIdentity {
  std::string subject;  // RFC 2253, e.g. "CN=deploy,O=Example"
  std::vector<std::string> dns_names;  // subjectAltName entries by type
  std::vector<std::string> emails;
  std::vector<std::string> uris;
  [[nodiscard]] bool empty() const noexcept { return subject.empty(); }
};

class TlsSession {
 public:
  enum class Role : std::uint8_t { server, client };
  enum class Status : std::uint8_t {
    ok,           // progress made, or more ciphertext is needed
    peer_closed,  // the peer sent close_notify: no more plaintext will come
    failed,       // a fatal error; take_ciphertext may still hold an alert for the peer
  };

  // `ctx` is referenced by the session (SSL_new), not owned. valid() is
  // false only when OpenSSL could not allocate.
  TlsSession(SSL_CTX* ctx, Role role);

  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  [[nodiscard]] bool valid() const noexcept { return ssl_ != nullptr; }
  // For a client role: the name its certificate must carry (SNI and
  // hostname check). Before the first decrypt.
  bool set_server_name(const std::string& host);

  // Ciphertext from the peer; kept until decrypt has used it.
  void receive(std::string_view ciphertext);
  // Advances the handshake, then appends every byte of plaintext the
  // received ciphertext holds to `plaintext`; `produced` says how many.
  Status decrypt(buffer::ByteBuffer& plaintext, std::size_t& produced);
  // Encrypts `plaintext` into records (all of it: the BIO takes every
  // byte). Only once handshake_done(); returns the bytes taken.
  std::size_t encrypt(std::string_view plaintext);
  // Queues close_notify (once; after the handshake).
  void close_notify();

  // Ciphertext waiting to be sent, and moving it out.
  [[nodiscard]] std::size_t ciphertext_pending() const noexcept;
  std::size_t take_ciphertext(buffer::ByteBuffer& out);

  [[nodiscard]] bool handshake_done() const noexcept { return handshake_done_; }
  [[nodiscard]] bool failed() const noexcept { return failed_; }
  [[nodiscard]] bool close_notify_queued() const noexcept { return close_notify_queued_; }
  // Why it failed, for a debug log line.
  [[nodiscard]] const std::string& failure() const noexcept { return failure_; }
  [[nodiscard]] const TlsPeerIdentity& peer() const noexcept { return peer_; }
  [[nodiscard]] SSL* native() const noexcept { return ssl_.get(); }

 private:
  Status fail(int ssl_error);
  void read_peer_identity();

  UniqueSsl ssl_;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  bool handshake_done_ = false;
  bool failed_ = false;
  bool close_notify_queued_ = false;
  std::string failure_;
  TlsPeerIdentity peer_;
};

}  // namespace framed::transport
