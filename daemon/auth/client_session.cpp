#include "auth/client_session.hpp"

namespace framed::auth {

void ClientSession::become(const std::shared_ptr<const PrincipalTable>& table, const config::Principal* principal,
                           Credential credential) {
  table_ = principal != nullptr ? table : nullptr;
  principal_ = principal;
  credential_ = principal != nullptr ? credential : Credential::none;
  bucket_.reset();  // taken again for the principal's current rate
}

void ClientSession::refresh(const std::shared_ptr<const PrincipalTable>& current) {
  if (current == nullptr || current->generation() == seen_generation_) return;
  seen_generation_ = current->generation();
  // Whatever the session was recognised by, looked up afresh: the same
  // credential may now name another principal, or none.
  const config::Principal* found = nullptr;
  Credential how = Credential::none;
  if (credential_ == Credential::token) {
    found = current->by_token_hash(token_hash_);
    how = Credential::token;
  }
  if (found == nullptr && certificate_subject_) {
    found = current->by_certificate(*certificate_subject_, certificate_alt_names_);
    how = Credential::certificate;
  }
  if (found == nullptr && peer_uid_) {
    found = current->by_uid(*peer_uid_);
    how = Credential::unix_uid;
  }
  become(current, found, how);
}

void ClientSession::authenticate_token(const std::shared_ptr<const PrincipalTable>& table,
                                       const config::Principal& principal) {
  token_hash_ = principal.token_sha256.value_or(std::string());
  seen_generation_ = table->generation();
  become(table, &principal, Credential::token);
}

bool ClientSession::take_request(RateBuckets& buckets, base::TimePoint now) {
  if (principal_ == nullptr || principal_->rate == 0) return true;
  if (!bucket_) bucket_ = buckets.bucket(*principal_);
  return bucket_->take(now);
}

}  // namespace framed::auth
