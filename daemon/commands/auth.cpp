// auth: a client says who it is with a token. json: {"cmd":"auth","token":"…"};
// simple mode: `auth TOKEN`. A token that a principal's token_sha256 hashes
// to makes the connection that principal (reply: `principal`); any other is
// forbidden, answered late: each wrong token of a connection doubles the
// wait for the answer (100 ms, 200 ms, … at most 6.4 s), and since the
// connection answers in order, it cannot try the next one sooner. Failures
// are counted per listener (auth_failures).
//
// Stream connections only: a datagram has no connection to remember it by.

#include <algorithm>
#include <chrono>

#include "auth/client_session.hpp"
#include "auth/principal_table.hpp"
#include "commands/command.hpp"
#include "config/config.hpp"
#include "server/listener_settings.hpp"

namespace framed::commands {
namespace {

constexpr auto kFirstFailureDelay = std::chrono::milliseconds(100);
constexpr std::uint32_t kMaxDoublings = 6;  // 100 ms × 2^6 = 6.4 s
// A token is a secret of the operator's choosing, not a body: a longer one
// is a client's mistake (or its attempt to make the daemon hash megabytes).
constexpr std::size_t kMaxToken = 4096;

class Auth final : public Command {
 public:
  std::string_view name() const noexcept override { return "auth"; }
  std::string_view summary() const noexcept override {
    return "header token (simple mode: auth TOKEN): become the principal whose token_sha256 it matches";
  }
  Permission permission() const noexcept override { return Permission::before_auth; }

  void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) override {
    if (context.session == nullptr) {
      return reply.fail(proto::ErrorCode::bad_request, "auth: only stream connections authenticate");
    }
    // The operator chose certificates there: a token is no substitute.
    if (context.listener.auth == config::ListenerAuth::certificate) {
      return reply.fail(proto::ErrorCode::forbidden, "auth: this listener authenticates by client certificate");
    }
    std::string_view token;
    if (request.mode == proto::RequestMode::json) {
      const auto field = request.header["token"];
      if (field.error() == simdjson::NO_SUCH_FIELD) {
        return reply.fail(proto::ErrorCode::bad_request, "auth needs \"token\"");
      }
      if (field.get_string().get(token) != simdjson::SUCCESS) {
        return reply.fail(proto::ErrorCode::bad_request, "auth: \"token\" must be a string");
      }
    } else {
      token = request.body;
    }
    if (token.empty()) return reply.fail(proto::ErrorCode::bad_request, "usage: auth TOKEN");
    if (token.size() > kMaxToken) {
      return reply.fail(proto::ErrorCode::bad_request, "auth: a token is at most 4096 bytes");
    }

    CommandHost& host = context.host;
    const auto& table = host.principals();
    const config::Principal* principal = table ? table->by_token(token) : nullptr;
    if (principal != nullptr) {
      context.session->authenticate_token(table, *principal);
      ++context.listener.stats->auth_successes;
      reply.add_field("principal", principal->name);
      if (request.mode == proto::RequestMode::simple) {
        reply.body_storage.assign("ok ").append(principal->name);
        reply.use_storage_as_body();
      }
      return;
    }

    ++context.listener.stats->auth_failures;
    const std::uint32_t failures = context.session->count_failure();
    const auto delay = kFirstFailureDelay * (1U << std::min(failures - 1, kMaxDoublings));
    host.warn_rate_limited("auth: a wrong token on listener " + context.listener.name);
    const ReplyRoute route = context.defer();
    host.run_at(host.now() + delay, [&host, route] {
      proto::Reply late;
      late.fail(proto::ErrorCode::forbidden, "auth: wrong token");
      host.deliver_reply(route, late);
    });
  }
};

}  // namespace

void register_auth_commands(CommandRegistry& registry) { registry.add(std::make_unique<Auth>()); }

}  // namespace framed::commands
