// The admin API's built-in routes: token exchange, revocations, JWKS, health.
// Sans-I/O: must not depend on the HTTP library or on any protocol.
#include "core/admin/api.hpp"

#include <fmt/format.h>

#include <ctime>

#include "core/admin/audited_request.hpp"

namespace gh::admin {
namespace {

int64_t wall_clock_s() { return int64_t(std::time(nullptr)); }

ExchangePolicy policy_of(const config::Config& config) {
  ExchangePolicy p;
  p.issuer = config.identity.builtin->issuer;
  p.audience = config.identity.builtin->audience;
  p.ttl_default_s = config.admin->exchange_ttl_default_s;
  p.delegation_depth_max = config.identity.options.delegation_depth_max;
  p.service_actors = config.admin->service_actors;
  for (const auto& c : config.connections) p.connections.push_back(c.name);
  return p;
}

nlohmann::json revocation_json(const identity::Revocation& r) {
  return {{"kind", identity::revocation_kind_name(r.kind)},
          {"value", r.value},
          {"revoked_at", r.revoked_at_s},
          {"revoked_by", r.revoked_by},
          {"reason", r.reason}};
}

}  // namespace

Result<std::unique_ptr<AdminApi>> AdminApi::create(ApiDependencies deps) {
  if (deps.config == nullptr || !deps.config->admin || !deps.config->identity.builtin ||
      deps.validator == nullptr || deps.minter == nullptr || deps.revocations == nullptr ||
      deps.audit == nullptr) {
    return fail(
        "admin API: configuration, validator, built-in issuer key, revocations and audit "
        "sink are all needed");
  }
  if (!deps.clock_s) deps.clock_s = wall_clock_s;
  ExchangePolicy policy = policy_of(*deps.config);
  std::unique_ptr<AdminApi> api(new AdminApi(std::move(deps), std::move(policy)));
  if (auto ok = api->add_builtin_routes(); !ok) return std::unexpected(ok.error());
  return api;
}

AdminApi::AdminApi(ApiDependencies deps, ExchangePolicy policy)
    : deps_(std::move(deps)),
      authenticator_(*deps_.validator, deps_.revocations, deps_.config->admin->admin_groups,
                     deps_.audit, deps_.clock_s),
      router_(authenticator_),
      exchange_(*deps_.validator, *deps_.minter, std::move(policy)) {}

Result<void> AdminApi::add_builtin_routes() {
  if (auto ok = router_.add("POST", "/oauth/token", Access::kPublic,
                            [this](const Request& r, const Caller*) { return token(r); });
      !ok)
    return ok;
  if (auto ok = router_.add("GET", "/.well-known/jwks.json", Access::kPublic,
                            [this](const Request&, const Caller*) {
                              return json_response(200, deps_.minter->public_jwks());
                            });
      !ok)
    return ok;
  if (auto ok = router_.add("GET", "/healthz", Access::kPublic,
                            [](const Request&, const Caller*) {
                              return json_response(200, {{"status", "ok"}});
                            });
      !ok)
    return ok;
  if (auto ok = router_.add("GET", "/admin/revocations", Access::kAdmin,
                            [this](const Request&, const Caller*) { return revocations(); });
      !ok)
    return ok;
  return router_.add("POST", "/admin/revocations", Access::kAdmin,
                     [this](const Request& r, const Caller* caller) { return revoke(r, *caller); });
}

Response AdminApi::token(const Request& request) const {
  AuditEntry audit;
  audit.action = "token_exchange";
  audit.client_address = request.remote_address;
  const auto refused = [&](const std::string& error, const std::string& description,
                           const std::string& reason) {
    audit.outcome = "refused";
    audit.http_status = 400;
    audit.reason = fmt::format("{}: {}", error, reason);
    (void)deps_.audit->record(audit);  // the refusal stands whether or not it was recorded
    return oauth_error(400, error, description);
  };
  // RFC 6749 §3.2 / RFC 8693 §2.1: the request is form-encoded.
  if (request.media_type() != "application/x-www-form-urlencoded") {
    return refused("invalid_request", "the body must be application/x-www-form-urlencoded",
                   fmt::format("content type '{}'", request.media_type()));
  }
  auto form = parse_form(request.body);
  if (!form) return refused("invalid_request", form.error().message, form.error().message);
  const auto revoked = deps_.revocations->current();
  auto issued = exchange_.exchange(*form, *revoked, deps_.clock_s(), audit);
  if (!issued)
    return refused(issued.error().error, issued.error().description, issued.error().reason);
  audit.outcome = "granted";
  audit.http_status = 200;
  if (auto recorded = deps_.audit->record(audit); !recorded) {
    // Nothing is handed out unrecorded.
    return oauth_error(503, "temporarily_unavailable",
                       "the audit trail cannot record the exchange");
  }
  return json_response(200, exchange_response_body(*issued));
}

Response AdminApi::revoke(const Request& request, const Caller& caller) const {
  // A revocation in force stays in force even when its audit entry cannot be recorded.
  AuditedRequest audited(*deps_.audit, "revoke", request, caller);
  AuditEntry& audit = audited.audit();
  auto body = audited.json_body(request);
  if (!body) return std::move(body.error());
  const auto text = [&](const char* name) { return AuditedRequest::text(*body, name); };
  const auto kind = identity::parse_revocation_kind(text("kind"));
  identity::Revocation revocation;
  revocation.value = text("value");
  revocation.reason = text("reason");
  if (!kind || revocation.value.empty()) {
    return audited.answer(
        400, "refused", "no kind or value",
        oauth_error(400, "invalid_request",
                    "give \"kind\" (jti, subject or actor) and a non-empty \"value\""));
  }
  revocation.kind = *kind;
  revocation.revoked_at_s = deps_.clock_s();
  revocation.revoked_by = caller.identity.chain_string();
  audit.details.emplace_back("revoked_kind", std::string(identity::revocation_kind_name(*kind)));
  audit.details.emplace_back("revoked_value", revocation.value);
  if (!revocation.reason.empty()) audit.details.emplace_back("revoked_reason", revocation.reason);
  const nlohmann::json shown = revocation_json(revocation);
  auto added = deps_.revocations->add(std::move(revocation));
  if (!added) {
    return audited.answer(500, "failed", added.error().message,
                          oauth_error(500, "server_error", "the revocation could not be stored"));
  }
  const uint64_t epoch = deps_.revocations->epoch().load(std::memory_order_acquire);
  if (!*added) {
    return audited.answer(
        200, "granted", "already revoked",
        json_response(200, {{"revoked", shown}, {"already_revoked", true}, {"epoch", epoch}}));
  }
  return audited.answer(
      201, "granted", "",
      json_response(201, {{"revoked", shown}, {"already_revoked", false}, {"epoch", epoch}}));
}

Response AdminApi::revocations() const {
  nlohmann::json list = nlohmann::json::array();
  const auto set = deps_.revocations->current();
  for (const identity::Revocation& r : set->entries()) list.push_back(revocation_json(r));
  return json_response(200,
                       {{"revocations", std::move(list)},
                        {"epoch", deps_.revocations->epoch().load(std::memory_order_acquire)}});
}

}  // namespace gh::admin
