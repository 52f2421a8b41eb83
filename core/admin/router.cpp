// Admin API routing and bearer-token authentication of its callers.
// Sans-I/O: must not depend on the HTTP library or on any protocol.
#include "core/admin/router.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace gh::admin {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= path.size()) {
    size_t end = path.find('/', at);
    if (end == std::string_view::npos) end = path.size();
    if (end > at) out.emplace_back(path.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

Authenticator::Authenticator(const identity::Validator& validator,
                             const identity::RevocationRegistry* revocations,
                             std::vector<std::string> admin_groups, AuditSink* audit,
                             std::function<int64_t()> clock_s)
    : validator_(validator),
      revocations_(revocations),
      admin_groups_(std::move(admin_groups)),
      audit_(audit),
      clock_s_(std::move(clock_s)) {}

bool Authenticator::is_admin(const identity::Identity& identity) const {
  for (const std::string& group : identity.groups) {
    if (std::find(admin_groups_.begin(), admin_groups_.end(), group) != admin_groups_.end()) {
      return true;
    }
  }
  return false;
}

Response Authenticator::refuse(const Request& request, int status, std::string_view error,
                               std::string_view description, std::string_view reason,
                               const identity::Identity* identity) const {
  if (audit_ != nullptr) {
    AuditEntry entry;
    entry.action = "authenticate";
    entry.outcome = "refused";
    entry.http_status = status;
    entry.client_address = request.remote_address;
    entry.reason = std::string(reason);
    entry.details.emplace_back("route", request.method + " " + request.path);
    if (identity != nullptr) {
      entry.issuer = identity->issuer;
      entry.token_id = identity->token_id;
      entry.chain = identity->chain();
      entry.groups = identity->groups;
    }
    (void)audit_->record(entry);  // a refusal is sent whether or not it could be recorded
  }
  Response r;
  if (error.empty()) {
    r = json_response(status, {{"error", "invalid_request"},
                               {"error_description", "a bearer token is required"}});
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"gatehouse\"");
  } else {
    r = json_response(status, {{"error", error}, {"error_description", description}});
    r.headers.emplace_back("WWW-Authenticate",
                           fmt::format("Bearer realm=\"gatehouse\", error=\"{}\"", error));
  }
  return r;
}

std::expected<Caller, Response> Authenticator::authenticate(const Request& request,
                                                            Access access) const {
  const auto token = bearer_token(request);
  // RFC 6750 §3.1: no credential at all gets a bare challenge, without an error code.
  if (!token) {
    return std::unexpected(refuse(request, 401, "", "", "no bearer token", nullptr));
  }
  auto identity = validator_.validate(*token, now_s());
  if (!identity) {
    return std::unexpected(refuse(request, 401, "invalid_token",
                                  "the bearer token is not valid (expired, revoked or not signed "
                                  "by a trusted issuer)",
                                  identity.error().message, nullptr));
  }
  if (revocations_ != nullptr) {
    const auto set = revocations_->current();
    if (const identity::Revocation* revoked = set->find(*identity)) {
      return std::unexpected(refuse(request, 401, "invalid_token",
                                    "the bearer token is not valid (expired, revoked or not "
                                    "signed by a trusted issuer)",
                                    describe(*revoked), &*identity));
    }
  }
  Caller caller{std::move(*identity), false};
  caller.admin = is_admin(caller.identity);
  if (access == Access::kAdmin && !caller.admin) {
    return std::unexpected(
        refuse(request, 403, "insufficient_scope", "this route needs a token of an admin group",
               fmt::format("groups of '{}' hold no admin group", caller.identity.subject),
               &caller.identity));
  }
  return caller;
}

Result<void> Router::add(std::string_view method, std::string_view pattern, Access access,
                         Handler handler) {
  if (method.empty() || pattern.empty() || pattern.front() != '/') {
    return fail(
        fmt::format("route {} {}: a method and an absolute path are needed", method, pattern));
  }
  Route route{std::string(method), split_path(pattern), access, std::move(handler)};
  for (const std::string& segment : route.segments) {
    if (segment.starts_with('{') != segment.ends_with('}') || segment == "{}") {
      return fail(fmt::format("route {} {}: bad segment '{}'", method, pattern, segment));
    }
  }
  for (const Route& other : routes_) {
    if (other.method == route.method && other.segments == route.segments) {
      return fail(fmt::format("route {} {} is registered twice", method, pattern));
    }
  }
  routes_.push_back(std::move(route));
  return {};
}

Response Router::dispatch(Request request) const {
  const std::vector<std::string> segments = split_path(request.path);
  std::string allowed;
  for (const Route& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::map<std::string, std::string, std::less<>> params;
    bool match = true;
    for (size_t i = 0; i < segments.size() && match; ++i) {
      const std::string& want = route.segments[i];
      if (want.starts_with('{')) {
        params[want.substr(1, want.size() - 2)] = segments[i];
      } else {
        match = want == segments[i];
      }
    }
    if (!match) continue;
    if (route.method != request.method) {
      allowed += (allowed.empty() ? "" : ", ") + route.method;
      continue;
    }
    request.path_params = std::move(params);
    if (route.access == Access::kPublic) return route.handler(request, nullptr);
    auto caller = authenticator_.authenticate(request, route.access);
    if (!caller) return std::move(caller.error());
    return route.handler(request, &*caller);
  }
  if (!allowed.empty()) {
    Response r = json_response(405, {{"error", "method_not_allowed"}});
    r.headers.emplace_back("Allow", allowed);
    return r;
  }
  return json_response(404, {{"error", "not_found"}});
}

}  // namespace gh::admin
