// The admin API's routing and caller authentication: routes are registered with the access they
// need, and handlers get an authenticated Caller. Sans-I/O (http_server.cpp feeds it requests);
// must not depend on the HTTP library or on any protocol.
//
// Adding a route (e.g. approvals):
//   router.add("POST", "/admin/reviews/{id}/approve", Access::kAuthenticated,
//              [&](const Request& req, const Caller* caller) {
//                const std::string& id = req.path_params.at("id");
//                ... caller->identity.groups, caller->identity.chain() ...
//                return json_response(200, {{"approved", id}});
//              });
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/admin/audit.hpp"
#include "core/admin/http.hpp"
#include "core/error.hpp"
#include "core/identity/identity.hpp"
#include "core/identity/jwt.hpp"
#include "core/identity/revocation.hpp"

namespace gh::admin {

enum class Access : uint8_t {
  kPublic,         // no credential needed (token exchange authenticates by its subject_token)
  kAuthenticated,  // any valid, unrevoked bearer token (RFC 6750) from a configured issuer
  kAdmin,          // such a token whose groups claim holds one of admin.admin_groups
};

// Who called a route that needs a credential.
struct Caller {
  identity::Identity identity;
  bool admin = false;  // holds one of admin.admin_groups
};

// `caller` is null for Access::kPublic routes. Runs on an admin thread: may block briefly (disk,
// locks), never touches a shard's state.
using Handler = std::function<Response(const Request&, const Caller*)>;

// Bearer-token authentication of admin callers: validation against the configured issuers,
// revocation, admin groups. Failures are answered per RFC 6750 §3 and recorded.
class Authenticator {
 public:
  Authenticator(const identity::Validator& validator,
                const identity::RevocationRegistry* revocations,
                std::vector<std::string> admin_groups, AuditSink* audit,
                std::function<int64_t()> clock_s);

  // The caller, or the 401 / 403 response to send.
  std::expected<Caller, Response> authenticate(const Request& request, Access access) const;
  bool is_admin(const identity::Identity& identity) const;
  int64_t now_s() const { return clock_s_(); }

 private:
  Response refuse(const Request& request, int status, std::string_view error,
                  std::string_view description, std::string_view reason,
                  const identity::Identity* identity) const;

  const identity::Validator& validator_;
  const identity::RevocationRegistry* revocations_;
  std::vector<std::string> admin_groups_;
  AuditSink* audit_;
  std::function<int64_t()> clock_s_;
};

class Router {
 public:
  explicit Router(const Authenticator& authenticator) : authenticator_(authenticator) {}

  // `pattern` is a path whose segments are literal or "{name}" (one whole segment, any value but
  // empty); matched values land in Request::path_params. Fails on a duplicate method + pattern.
  // Register before serving: dispatch() reads routes without locks.
  Result<void> add(std::string_view method, std::string_view pattern, Access access,
                   Handler handler);

  // 404 for no route, 405 (with Allow) for a route with other methods, 401/403 per the route's
  // access, else the handler's response.
  Response dispatch(Request request) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Access access;
    Handler handler;
  };
  const Authenticator& authenticator_;
  std::vector<Route> routes_;
};

// "/a/b/" -> {"a", "b"}; empty segments dropped.
std::vector<std::string> split_path(std::string_view path);

}  // namespace gh::admin
