#pragma once
// SHA-256 fed in pieces, over OpenSSL's EVP API: what the daemon's put and
// get report, and what framectl checks on its side of a transfer. Lowercase
// hex, as on the wire (PROTOCOL.md section 4).
//
// Not thread-safe: one hash per transfer.

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

namespace framed::digest {

class Sha256 {
 public:
  Sha256();
  void update(std::string_view bytes);
  // The digest of everything fed so far; the hash is finished afterwards.
  [[nodiscard]] std::string hex_digest();

 private:
  struct Free {
    void operator()(EVP_MD_CTX* context) const noexcept { EVP_MD_CTX_free(context); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> context_;
};

}  // namespace framed::digest
