#include "transport/tls_session.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>

#include "transport/tls_context.hpp"

namespace framed::transport {
namespace {

// The most plaintext one record carries: room for one SSL_read.
constexpr std::size_t kMaxRecordPlaintext = 16 * 1024;

struct BioDeleter {
  void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
struct GeneralNamesDeleter {
  void operator()(GENERAL_NAMES* names) const noexcept { GENERAL_NAMES_free(names); }
};

int clamp_int(std::size_t size) { return static_cast<int>(std::min<std::size_t>(size, INT_MAX)); }

std::string rfc2253_name(const X509_NAME* name) {
  std::unique_ptr<BIO, BioDeleter> text(BIO_new(BIO_s_mem()));
  if (!text || X509_NAME_print_ex(text.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  char* data = nullptr;
  const long size = BIO_get_mem_data(text.get(), &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

std::string string_of(const ASN1_STRING* value) {
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
          static_cast<std::size_t>(ASN1_STRING_length(value))};
}

}  // namespace

TlsSession::TlsSession(SSL_CTX* ctx, Role role) {
  UniqueSsl ssl(SSL_new(ctx));
  if (!ssl) return;
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    return;
  }
  // An empty memory BIO reads as "try again", not as end of file.
  BIO_set_mem_eof_return(in, -1);
  BIO_set_mem_eof_return(out, -1);
  SSL_set_bio(ssl.get(), in, out);  // ssl owns both from here
  if (role == Role::server) {
    SSL_set_accept_state(ssl.get());
  } else {
    SSL_set_connect_state(ssl.get());
  }
  in_ = in;
  out_ = out;
  ssl_ = std::move(ssl);
}

bool TlsSession::set_server_name(const std::string& host) {
  return SSL_set_tlsext_host_name(ssl_.get(), host.c_str()) == 1 && SSL_set1_host(ssl_.get(), host.c_str()) == 1;
}

void TlsSession::receive(std::string_view ciphertext) {
  while (!ciphertext.empty()) {
    const int written = BIO_write(in_, ciphertext.data(), clamp_int(ciphertext.size()));
    if (written <= 0) return;  // allocation failed: decrypt will see a broken record
    ciphertext.remove_prefix(static_cast<std::size_t>(written));
  }
}

TlsSession::Status TlsSession::decrypt(buffer::ByteBuffer& plaintext, std::size_t& produced) {
  produced = 0;
  if (failed_) return Status::failed;
  ERR_clear_error();
  if (!handshake_done_) {
    const int result = SSL_do_handshake(ssl_.get());
    if (result != 1) {
      const int error = SSL_get_error(ssl_.get(), result);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return Status::ok;
      return fail(error);
    }
    handshake_done_ = true;
    read_peer_identity();
  }
  // Plaintext is read while OpenSSL holds some or ciphertext is left: no
  // room is made in `plaintext` for bytes that are not there.
  while (SSL_pending(ssl_.get()) > 0 || BIO_ctrl_pending(in_) > 0) {
    plaintext.ensure_writable(kMaxRecordPlaintext);
    const int result = SSL_read(ssl_.get(), plaintext.write_ptr(), clamp_int(plaintext.writable_size()));
    if (result > 0) {
      plaintext.commit(static_cast<std::size_t>(result));
      produced += static_cast<std::size_t>(result);
      continue;
    }
    const int error = SSL_get_error(ssl_.get(), result);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return Status::ok;
    if (error == SSL_ERROR_ZERO_RETURN) return Status::peer_closed;
    return fail(error);
  }
  return Status::ok;
}

std::size_t TlsSession::encrypt(std::string_view plaintext) {
  if (!handshake_done_ || failed_ || close_notify_queued_) return 0;
  std::size_t taken = 0;
  while (taken < plaintext.size()) {
    const int result = SSL_write(ssl_.get(), plaintext.data() + taken, clamp_int(plaintext.size() - taken));
    if (result <= 0) {
      fail(SSL_get_error(ssl_.get(), result));
      break;
    }
    taken += static_cast<std::size_t>(result);
  }
  return taken;
}

void TlsSession::close_notify() {
  if (!handshake_done_ || failed_ || close_notify_queued_) return;
  close_notify_queued_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_.get());  // writes the alert to out_; the peer's reply is not waited for
  ERR_clear_error();
}

std::size_t TlsSession::ciphertext_pending() const noexcept { return BIO_ctrl_pending(out_); }

std::size_t TlsSession::take_ciphertext(buffer::ByteBuffer& out) {
  const std::size_t pending = ciphertext_pending();
  if (pending == 0) return 0;
  out.ensure_writable(pending);
  const int read = BIO_read(out_, out.write_ptr(), clamp_int(pending));
  if (read <= 0) return 0;
  out.commit(static_cast<std::size_t>(read));
  return static_cast<std::size_t>(read);
}

TlsSession::Status TlsSession::fail(int ssl_error) {
  failed_ = true;
  if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_SSL) {
    failure_ = take_openssl_error("the peer broke the TLS protocol");
    const long verify = SSL_get_verify_result(ssl_.get());
    if (verify != X509_V_OK) failure_.append(" (").append(X509_verify_cert_error_string(verify)).append(")");
  } else {
    failure_ = "TLS error ";
    failure_.append(std::to_string(ssl_error));
  }
  ERR_clear_error();
  return Status::failed;
}

void TlsSession::read_peer_identity() {
  const X509* certificate = SSL_get0_peer_certificate(ssl_.get());
  if (certificate == nullptr || SSL_get_verify_result(ssl_.get()) != X509_V_OK) return;
  peer_.subject = rfc2253_name(X509_get_subject_name(certificate));
  std::unique_ptr<GENERAL_NAMES, GeneralNamesDeleter> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    switch (name->type) {
      case GEN_DNS: peer_.dns_names.push_back(string_of(name->d.dNSName)); break;
      case GEN_EMAIL: peer_.emails.push_back(string_of(name->d.rfc822Name)); break;
      case GEN_URI: peer_.uris.push_back(string_of(name->d.uniformResourceIdentifier)); break;
      default: break;
    }
  }
}

}  // namespace framed::transport
