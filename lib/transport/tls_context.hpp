#pragma once
// A TLS configuration loaded from files: an SSL_CTX (OpenSSL 3) with the
// certificate chain, its private key and, optionally, the CA that client
// certificates must be signed by. Built off the reactor (at start-up and on
// the reload thread: it reads files) and then only read: sessions are made
// from it on the reactor thread (SSL_new takes its own reference, so a
// session outlives a context replaced by a reload).
//
// Policy, fixed here rather than configurable: TLS 1.2 and later only,
// OpenSSL's default cipher lists, no compression, no renegotiation, no
// session resumption (no cache, no tickets: a reload that changes the
// certificate must not be undone by a resumed session).

#include <memory>
#include <optional>
#include <string>

#include <openssl/ssl.h>

namespace framed::transport {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using UniqueSslCtx = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

struct TlsFiles {
  std::string certificate_chain;  // PEM: the leaf first, then intermediates
  std::string private_key;        // PEM
  std::optional<std::string> client_ca;  // PEM; set: a client certificate signed by it is required
};

class TlsServerContext {
 public:
  struct Loaded {
    std::shared_ptr<const TlsServerContext> context;  // null on failure
    std::string error;  // names the file and OpenSSL's reason
  };
  // Reads and checks the files (readable, PEM, the key matches the
  // certificate, the CA file parses). Never throws.
  static Loaded load(const TlsFiles& files);

  [[nodiscard]] SSL_CTX* get() const noexcept { return ctx_.get(); }
  [[nodiscard]] bool requires_client_certificate() const noexcept { return requires_client_certificate_; }
  // SHA-256 of the leaf certificate (DER), lowercase hex: for logs.
  [[nodiscard]] const std::string& fingerprint() const noexcept { return fingerprint_; }

 private:
  TlsServerContext(UniqueSslCtx ctx, bool requires_client_certificate, std::string fingerprint)
      : ctx_(std::move(ctx)),
        requires_client_certificate_(requires_client_certificate),
        fingerprint_(std::move(fingerprint)) {}

  UniqueSslCtx ctx_;
  bool requires_client_certificate_;
  std::string fingerprint_;
};

// "OpenSSL 3.0.19" (the library running, not the headers built against).
[[nodiscard]] std::string openssl_version_text();
// The oldest error on this thread's OpenSSL error queue, as text, and the
// queue cleared; `fallback` when it is empty.
[[nodiscard]] std::string take_openssl_error(const char* fallback);

}  // namespace framed::transport
