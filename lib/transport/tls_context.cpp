#include "transport/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509err.h>

#include <array>
#include <cstdio>

namespace framed::transport {

std::string take_openssl_error(const char* fallback) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  std::array<char, 256> text{};
  ERR_error_string_n(code, text.data(), text.size());
  return text.data();
}

std::string openssl_version_text() {
  std::string text = "OpenSSL ";
  text.append(OpenSSL_version(OPENSSL_VERSION_STRING));
  return text;
}

namespace {

std::string fingerprint_of(const X509* certificate) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (certificate == nullptr || X509_digest(certificate, EVP_sha256(), digest.data(), &length) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0x0f]);
  }
  return hex;
}

TlsServerContext::Loaded failure(std::string what, const std::string& file, const char* fallback) {
  what.append(" \"").append(file).append("\": ").append(take_openssl_error(fallback));
  return {nullptr, std::move(what)};
}

}  // namespace

TlsServerContext::Loaded TlsServerContext::load(const TlsFiles& files) {
  ERR_clear_error();
  UniqueSslCtx ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    std::string what = "cannot create a TLS context: ";
    what.append(take_openssl_error("out of memory"));
    return {nullptr, std::move(what)};
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  // Memory BIOs take every byte written, so a write is never partial; the
  // buffer a write was given may differ from the one it is retried with.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);

  if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.certificate_chain.c_str()) != 1) {
    return failure("cannot load the certificate chain", files.certificate_chain, "not a PEM certificate");
  }
  // A key of the certificate's type is checked against it as it loads.
  const bool key_loaded = SSL_CTX_use_PrivateKey_file(ctx.get(), files.private_key.c_str(), SSL_FILETYPE_PEM) == 1;
  const unsigned long key_error = key_loaded ? 0 : ERR_peek_last_error();
  const bool mismatch = ERR_GET_LIB(key_error) == ERR_LIB_X509 &&
                        (ERR_GET_REASON(key_error) == X509_R_KEY_VALUES_MISMATCH ||
                         ERR_GET_REASON(key_error) == X509_R_KEY_TYPE_MISMATCH);
  if (!key_loaded && !mismatch) {
    return failure("cannot load the private key", files.private_key, "not a PEM private key");
  }
  if (mismatch || SSL_CTX_check_private_key(ctx.get()) != 1) {
    std::string what = "the private key \"";
    what.append(files.private_key).append("\" does not match the certificate \"").append(files.certificate_chain);
    what.append("\"");
    ERR_clear_error();
    return {nullptr, std::move(what)};
  }
  bool requires_client_certificate = false;
  if (files.client_ca) {
    const char* ca = files.client_ca->c_str();
    if (SSL_CTX_load_verify_locations(ctx.get(), ca, nullptr) != 1) {
      return failure("cannot load the client CA", *files.client_ca, "not a PEM certificate");
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca);
    if (names == nullptr) return failure("cannot read the client CA names of", *files.client_ca, "no certificate");
    SSL_CTX_set_client_CA_list(ctx.get(), names);  // takes ownership
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    requires_client_certificate = true;
  }
  std::string fingerprint = fingerprint_of(SSL_CTX_get0_certificate(ctx.get()));
  ERR_clear_error();
  return {std::shared_ptr<const TlsServerContext>(
              new TlsServerContext(std::move(ctx), requires_client_certificate, std::move(fingerprint))),
          {}};
}

}  // namespace framed::transport
