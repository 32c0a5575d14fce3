// TlsSession without sockets: a server session (from a TlsServerContext
// loaded from files) and an OpenSSL client session exchange ciphertext
// through the test, whole, in 1-byte pieces, or split at every boundary of
// the first flight; plus the context's file checks.

#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "buffer/byte_buffer.hpp"
#include "transport/tls_context.hpp"
#include "transport/tls_session.hpp"

using framed::buffer::ByteBuffer;
using framed::transport::TlsFiles;
using framed::transport::TlsServerContext;
using framed::transport::TlsSession;

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* cert) const noexcept { X509_free(cert); }
};
struct FileClose {
  void operator()(FILE* file) const noexcept { std::fclose(file); }
};

// A self-signed P-256 certificate for "localhost" (with a SAN of each kind
// TlsPeerIdentity reads) and its key, in a temporary directory; a second key
// that matches nothing.
class TestPki {
 public:
  TestPki() {
    char pattern[] = "/tmp/framed-tls-unit-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    dir_ = pattern;
    std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_EC_gen("P-256"));
    std::unique_ptr<EVP_PKEY, PkeyFree> other(EVP_EC_gen("P-256"));
    REQUIRE((key && other));
    std::unique_ptr<X509, X509Free> cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Framed Test"), -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1,
                               -1, 0);
    X509_set_issuer_name(cert.get(), name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name,
                                              "DNS:localhost,email:ops@example.org,URI:spiffe://framed/test");
    REQUIRE(san != nullptr);
    X509_add_ext(cert.get(), san, -1);
    X509_EXTENSION_free(san);
    REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
    write(cert_path(), [&](FILE* f) { return PEM_write_X509(f, cert.get()); });
    write(key_path(), [&](FILE* f) { return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr); });
    write(other_key_path(),
          [&](FILE* f) { return PEM_write_PrivateKey(f, other.get(), nullptr, nullptr, 0, nullptr, nullptr); });
  }
  ~TestPki() { std::filesystem::remove_all(dir_); }

  [[nodiscard]] std::string cert_path() const { return dir_ + "/cert.pem"; }
  [[nodiscard]] std::string key_path() const { return dir_ + "/key.pem"; }
  [[nodiscard]] std::string other_key_path() const { return dir_ + "/other.pem"; }

 private:
  static void write(const std::string& path, const std::function<int(FILE*)>& writer) {
    std::unique_ptr<FILE, FileClose> file(std::fopen(path.c_str(), "w"));
    REQUIRE(file != nullptr);
    REQUIRE(writer(file.get()) == 1);
  }
  std::string dir_;
};

const TestPki& pki() {
  static const TestPki instance;
  return instance;
}

framed::transport::UniqueSslCtx client_ctx(bool with_certificate) {
  framed::transport::UniqueSslCtx ctx(SSL_CTX_new(TLS_client_method()));
  REQUIRE(ctx);
  REQUIRE(SSL_CTX_load_verify_locations(ctx.get(), pki().cert_path().c_str(), nullptr) == 1);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (with_certificate) {
    REQUIRE(SSL_CTX_use_certificate_file(ctx.get(), pki().cert_path().c_str(), SSL_FILETYPE_PEM) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), pki().key_path().c_str(), SSL_FILETYPE_PEM) == 1);
  }
  return ctx;
}

// Moves what `from` wants to send into `to`, `piece` bytes at a time (0:
// all at once), decrypting after each piece.
void deliver(TlsSession& from, TlsSession& to, ByteBuffer& plaintext, std::size_t piece) {
  ByteBuffer wire;
  from.take_ciphertext(wire);
  std::string_view bytes = wire.readable();
  do {
    const std::size_t n = piece == 0 ? bytes.size() : std::min(piece, bytes.size());
    to.receive(bytes.substr(0, n));
    bytes.remove_prefix(n);
    std::size_t produced = 0;
    REQUIRE(to.decrypt(plaintext, produced) == TlsSession::Status::ok);
  } while (!bytes.empty());
}

// Runs the handshake to its end; false if it did not finish in 10 rounds.
bool handshake(TlsSession& client, TlsSession& server, std::size_t piece) {
  ByteBuffer ignored;
  std::size_t produced = 0;
  REQUIRE(client.decrypt(ignored, produced) == TlsSession::Status::ok);  // writes the ClientHello
  for (int round = 0; round < 10; ++round) {
    if (client.handshake_done() && server.handshake_done() && client.ciphertext_pending() == 0 &&
        server.ciphertext_pending() == 0) {
      return true;
    }
    deliver(client, server, ignored, piece);
    deliver(server, client, ignored, piece);
  }
  return false;
}

std::string exchange(TlsSession& from, TlsSession& to, std::string_view text, std::size_t piece) {
  REQUIRE(from.encrypt(text) == text.size());
  ByteBuffer plaintext;
  deliver(from, to, plaintext, piece);
  return std::string(plaintext.readable());
}

std::shared_ptr<const TlsServerContext> server_context(bool require_client_certificate) {
  TlsFiles files{pki().cert_path(), pki().key_path(), {}};
  if (require_client_certificate) files.client_ca = pki().cert_path();
  auto loaded = TlsServerContext::load(files);
  INFO(loaded.error);
  REQUIRE(loaded.context);
  return loaded.context;
}

}  // namespace

TEST_CASE("tls: handshake and records, whole and in 1-byte pieces", "[tls]") {
  const auto context = server_context(false);
  const auto client_context = client_ctx(false);
  for (const std::size_t piece : {std::size_t{0}, std::size_t{1}}) {
    INFO("piece " << piece);
    TlsSession server(context->get(), TlsSession::Role::server);
    TlsSession client(client_context.get(), TlsSession::Role::client);
    REQUIRE(client.set_server_name("localhost"));
    REQUIRE(handshake(client, server, piece));
    CHECK(server.peer().empty());  // no client certificate was asked for

    CHECK(exchange(client, server, "{\"cmd\":\"ping\"}", piece) == "{\"cmd\":\"ping\"}");
    const std::string large(100000, 'x');  // several records
    CHECK(exchange(server, client, large, piece) == large);

    // Two requests glued in one delivery come out as one byte stream.
    REQUIRE(client.encrypt("one\n") == 4);
    REQUIRE(client.encrypt("two\n") == 4);
    ByteBuffer plaintext;
    deliver(client, server, plaintext, piece);
    CHECK(plaintext.readable() == "one\ntwo\n");
  }
}

TEST_CASE("tls: the first flight split at every byte boundary", "[tls]") {
  const auto context = server_context(false);
  const auto client_context = client_ctx(false);
  // The ClientHello's size, from one handshake.
  std::size_t hello_size = 0;
  {
    TlsSession client(client_context.get(), TlsSession::Role::client);
    ByteBuffer ignored;
    std::size_t produced = 0;
    REQUIRE(client.decrypt(ignored, produced) == TlsSession::Status::ok);
    hello_size = client.ciphertext_pending();
  }
  REQUIRE(hello_size > 100);
  for (std::size_t split = 1; split < hello_size; ++split) {
    TlsSession server(context->get(), TlsSession::Role::server);
    TlsSession client(client_context.get(), TlsSession::Role::client);
    ByteBuffer plaintext;
    std::size_t produced = 0;
    REQUIRE(client.decrypt(plaintext, produced) == TlsSession::Status::ok);
    ByteBuffer wire;
    client.take_ciphertext(wire);
    REQUIRE(wire.readable_size() == hello_size);
    server.receive(wire.readable().substr(0, split));
    REQUIRE(server.decrypt(plaintext, produced) == TlsSession::Status::ok);
    REQUIRE(server.ciphertext_pending() == 0);  // nothing to answer half a hello with
    server.receive(wire.readable().substr(split));
    REQUIRE(server.decrypt(plaintext, produced) == TlsSession::Status::ok);
    REQUIRE(server.ciphertext_pending() > 0);  // the ServerHello flight
    deliver(server, client, plaintext, 0);
    deliver(client, server, plaintext, 0);
    REQUIRE(server.handshake_done());
    REQUIRE(client.handshake_done());
  }
}

TEST_CASE("tls: close_notify, a verified client certificate, and garbage", "[tls]") {
  SECTION("close_notify reads as the peer closing") {
    const auto context = server_context(false);
    const auto client_context = client_ctx(false);
    TlsSession server(context->get(), TlsSession::Role::server);
    TlsSession client(client_context.get(), TlsSession::Role::client);
    REQUIRE(handshake(client, server, 0));
    REQUIRE(server.encrypt("bye") == 3);
    server.close_notify();
    CHECK(server.close_notify_queued());
    CHECK(server.encrypt("more") == 0);  // nothing after close_notify
    ByteBuffer wire;
    server.take_ciphertext(wire);
    client.receive(wire.readable());
    ByteBuffer plaintext;
    std::size_t produced = 0;
    CHECK(client.decrypt(plaintext, produced) == TlsSession::Status::peer_closed);
    CHECK(plaintext.readable() == "bye");
  }
  SECTION("the client certificate's subject and SANs") {
    const auto context = server_context(true);
    CHECK(context->requires_client_certificate());
    const auto client_context = client_ctx(true);
    TlsSession server(context->get(), TlsSession::Role::server);
    TlsSession client(client_context.get(), TlsSession::Role::client);
    REQUIRE(handshake(client, server, 0));
    CHECK(server.peer().subject == "CN=localhost,O=Framed Test");
    CHECK(server.peer().dns_names == std::vector<std::string>{"localhost"});
    CHECK(server.peer().emails == std::vector<std::string>{"ops@example.org"});
    CHECK(server.peer().uris == std::vector<std::string>{"spiffe://framed/test"});
  }
  SECTION("no client certificate when one is required") {
    const auto context = server_context(true);
    const auto client_context = client_ctx(false);
    TlsSession server(context->get(), TlsSession::Role::server);
    TlsSession client(client_context.get(), TlsSession::Role::client);
    ByteBuffer plaintext;
    std::size_t produced = 0;
    REQUIRE(client.decrypt(plaintext, produced) == TlsSession::Status::ok);
    TlsSession::Status status = TlsSession::Status::ok;
    for (int round = 0; round < 4 && status == TlsSession::Status::ok; ++round) {
      ByteBuffer wire;
      client.take_ciphertext(wire);
      server.receive(wire.readable());
      status = server.decrypt(plaintext, produced);
      if (status != TlsSession::Status::ok) break;
      deliver(server, client, plaintext, 0);
    }
    CHECK(status == TlsSession::Status::failed);
    CHECK(server.failed());
    CHECK_FALSE(server.failure().empty());
    CHECK(server.ciphertext_pending() > 0);  // the alert for the client
  }
  SECTION("bytes that are not TLS") {
    const auto context = server_context(false);
    TlsSession server(context->get(), TlsSession::Role::server);
    server.receive(std::string_view("\0\0\0\x0e{\"cmd\":\"ping\"}", 18));
    ByteBuffer plaintext;
    std::size_t produced = 0;
    CHECK(server.decrypt(plaintext, produced) == TlsSession::Status::failed);
    CHECK(produced == 0);
    CHECK(server.encrypt("reply") == 0);
  }
}

TEST_CASE("tls: the context's file checks name the file", "[tls]") {
  auto mismatched = TlsServerContext::load(TlsFiles{pki().cert_path(), pki().other_key_path(), {}});
  CHECK_FALSE(mismatched.context);
  CHECK(mismatched.error.find("does not match") != std::string::npos);
  CHECK(mismatched.error.find(pki().other_key_path()) != std::string::npos);

  auto missing = TlsServerContext::load(TlsFiles{"/nonexistent/cert.pem", pki().key_path(), {}});
  CHECK_FALSE(missing.context);
  CHECK(missing.error.find("/nonexistent/cert.pem") != std::string::npos);

  auto not_a_key = TlsServerContext::load(TlsFiles{pki().cert_path(), pki().cert_path(), {}});
  CHECK_FALSE(not_a_key.context);
  CHECK(not_a_key.error.find("private key") != std::string::npos);

  auto good = TlsServerContext::load(TlsFiles{pki().cert_path(), pki().key_path(), {}});
  REQUIRE(good.context);
  CHECK(good.context->fingerprint().size() == 64);
  CHECK_FALSE(good.context->requires_client_certificate());
}
