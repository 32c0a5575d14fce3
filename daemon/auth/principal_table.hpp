#pragma once
// The [principals] of the running config, indexed by credential: who a
// client is, found from the token it presents, the certificate it showed or
// the uid it connected with. Immutable once built; a reload builds a new one
// with the next generation, and every session compares generations to learn
// that what it was granted may have changed (revoked, narrowed).

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "config/config.hpp"

namespace framed::auth {

class PrincipalTable {
 public:
  PrincipalTable() = default;
  PrincipalTable(const std::map<std::string, config::Principal>& principals, std::uint64_t generation);

  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }

  [[nodiscard]] const config::Principal* by_name(std::string_view name) const noexcept;
  // `token`: what the client sent; hashed here and looked up by its hash.
  // The comparison runs on hashes, so how long a lookup takes tells an
  // attacker about the hash of its own guess, never about a token.
  [[nodiscard]] const config::Principal* by_token(std::string_view token) const;
  [[nodiscard]] const config::Principal* by_token_hash(std::string_view sha256_hex) const noexcept;
  [[nodiscard]] const config::Principal* by_uid(std::uint32_t uid) const noexcept;
  // The first of the certificate's names (its subject, then each SAN) that
  // a principal's certificate_subject equals.
  [[nodiscard]] const config::Principal* by_certificate(std::string_view subject,
                                                        std::span<const std::string> alt_names) const noexcept;

 private:
  std::uint64_t generation_ = 0;
  std::map<std::string, config::Principal, std::less<>> by_name_;
  std::map<std::string, const config::Principal*, std::less<>> by_token_hash_;
  std::map<std::string, const config::Principal*, std::less<>> by_subject_;
  std::unordered_map<std::uint32_t, const config::Principal*> by_uid_;
};

}  // namespace framed::auth
