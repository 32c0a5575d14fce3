#include "auth/principal_table.hpp"

#include "digest/sha256.hpp"

namespace framed::auth {

PrincipalTable::PrincipalTable(const std::map<std::string, config::Principal>& principals, std::uint64_t generation)
    : generation_(generation), by_name_(principals.begin(), principals.end()) {
  // The config has checked that each credential names one principal.
  for (const auto& [name, principal] : by_name_) {
    if (principal.token_sha256) by_token_hash_.emplace(*principal.token_sha256, &principal);
    if (principal.certificate_subject) by_subject_.emplace(*principal.certificate_subject, &principal);
    for (const std::uint32_t uid : principal.unix_uids) by_uid_.emplace(uid, &principal);
  }
}

const config::Principal* PrincipalTable::by_name(std::string_view name) const noexcept {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

const config::Principal* PrincipalTable::by_token(std::string_view token) const {
  if (by_token_hash_.empty()) return nullptr;
  digest::Sha256 hash;
  hash.update(token);
  return by_token_hash(hash.hex_digest());
}

const config::Principal* PrincipalTable::by_token_hash(std::string_view sha256_hex) const noexcept {
  const auto it = by_token_hash_.find(sha256_hex);
  return it == by_token_hash_.end() ? nullptr : it->second;
}

const config::Principal* PrincipalTable::by_uid(std::uint32_t uid) const noexcept {
  const auto it = by_uid_.find(uid);
  return it == by_uid_.end() ? nullptr : it->second;
}

const config::Principal* PrincipalTable::by_certificate(std::string_view subject,
                                                        std::span<const std::string> alt_names) const noexcept {
  if (const auto it = by_subject_.find(subject); it != by_subject_.end()) return it->second;
  for (const std::string& name : alt_names) {
    if (const auto it = by_subject_.find(name); it != by_subject_.end()) return it->second;
  }
  return nullptr;
}

}  // namespace framed::auth
