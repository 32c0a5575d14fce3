#pragma once
// Who one stream client is, and what it has been granted: the principal it
// became (through a token, a client certificate, or the uid it connected
// with), how many tokens it got wrong, and its share of the principal's
// request rate.
//
// A session holds the PrincipalTable its principal lives in. A reload builds
// a new table; at its next request the session looks its credential up in
// the new one (refresh), so a revoked token, a removed principal or a
// narrowed permission takes effect for connections already open, not only
// for new ones.
//
// Reactor thread only.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/principal_table.hpp"
#include "auth/rate_buckets.hpp"
#include "base/clock.hpp"
#include "config/config.hpp"

namespace framed::auth {

// What a session's principal was recognised by.
enum class Credential : std::uint8_t { none, token, certificate, unix_uid };

class ClientSession {
 public:
  // auth_required: the listener's auth is "token" or "certificate", so the
  // client may do nothing until it is a principal.
  explicit ClientSession(bool auth_required) noexcept : auth_required_(auth_required) {}

  // Unix stream peers: the uid it connected with, a principal by itself when
  // a principal lists it (looked up again after every reload).
  void set_peer_uid(std::uint32_t uid) noexcept {
    peer_uid_ = uid;
    seen_generation_ = 0;  // looked up at the next request
  }
  // TLS peers: the verified client certificate's subject and SANs.
  void set_certificate(std::string subject, std::vector<std::string> alt_names) {
    certificate_subject_ = std::move(subject);
    certificate_alt_names_ = std::move(alt_names);
    seen_generation_ = 0;
  }

  // Looks the session's credential up in `current` when it is not the table
  // the session last saw: a principal found again stays, one gone (or whose
  // token changed) is dropped.
  void refresh(const std::shared_ptr<const PrincipalTable>& current);
  // A right token: the client is `principal` (of `table`) from now on.
  void authenticate_token(const std::shared_ptr<const PrincipalTable>& table, const config::Principal& principal);

  [[nodiscard]] const config::Principal* principal() const noexcept { return principal_; }
  [[nodiscard]] Credential credential() const noexcept { return credential_; }
  // May the client do anything at all (besides `auth`)?
  [[nodiscard]] bool admitted() const noexcept { return principal_ != nullptr || !auth_required_; }

  // A wrong token: the count so far, including this one.
  std::uint32_t count_failure() noexcept { return ++failures_; }

  // One request against the principal's rate; true when within it (or when
  // it has none).
  bool take_request(RateBuckets& buckets, base::TimePoint now);

 private:
  void become(const std::shared_ptr<const PrincipalTable>& table, const config::Principal* principal,
              Credential credential);

  bool auth_required_;
  std::optional<std::uint32_t> peer_uid_;
  std::optional<std::string> certificate_subject_;
  std::vector<std::string> certificate_alt_names_;
  std::string token_hash_;  // Credential::token: the hash that matched

  std::shared_ptr<const PrincipalTable> table_;  // the table principal_ points into
  std::uint64_t seen_generation_ = 0;             // 0: no table looked at yet
  const config::Principal* principal_ = nullptr;
  Credential credential_ = Credential::none;
  std::uint32_t failures_ = 0;
  std::shared_ptr<TokenBucket> bucket_;  // the principal's, while it has a rate
};

}  // namespace framed::auth
