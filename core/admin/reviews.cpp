// The admin API's review routes (see reviews.hpp). Sans-I/O.
#include "core/admin/reviews.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/admin/audited_request.hpp"

namespace gh::admin {
namespace {

int status_of(review::Refusal r) {
  switch (r) {
    case review::Refusal::kNotFound:
      return 404;
    case review::Refusal::kNotApprover:
    case review::Refusal::kRequesterChain:
      return 403;
    case review::Refusal::kNoReason:
      return 400;
    case review::Refusal::kNotPending:
    case review::Refusal::kHashMismatch:
    case review::Refusal::kAlreadyApproved:
      return 409;
  }
  return 400;
}

// Who may see a review: admins, and members of its approver groups (who have to read the
// statement to decide it).
bool may_see(const Caller& caller, const review::Review& r) {
  if (caller.admin) return true;
  return std::any_of(
      caller.identity.groups.begin(), caller.identity.groups.end(), [&](const std::string& g) {
        return std::find(r.request.approver_groups.begin(), r.request.approver_groups.end(), g) !=
               r.request.approver_groups.end();
      });
}

class ReviewRoutes {
 public:
  ReviewRoutes(AdminApi& api, review::ReviewStore& store) : api_(api), store_(store) {}

  Response list(const Caller& caller) const {
    nlohmann::json out = nlohmann::json::array();
    for (const review::Review& r : store_.list()) {
      if (may_see(caller, r)) out.push_back(review_json(r));
    }
    return json_response(200, {{"reviews", std::move(out)}});
  }

  Response show(const Request& request, const Caller& caller) const {
    const std::string& id = request.path_params.at("id");
    auto r = store_.find(id);
    if (!r || !may_see(caller, *r)) {
      return oauth_error(404, review::refusal_name(review::Refusal::kNotFound),
                         fmt::format("no review {}", id));
    }
    return json_response(200, review_json(*r));
  }

  Response decide(const Request& request, const Caller& caller, bool approve) const {
    const std::string& id = request.path_params.at("id");
    AuditedRequest audited(api_.audit(), approve ? "review_approve" : "review_deny", request,
                           caller);
    AuditEntry& audit = audited.audit();
    audit.details.emplace_back("review_id", id);
    auto body = audited.json_body(request);
    if (!body) return std::move(body.error());
    const auto text = [&](const char* name) { return AuditedRequest::text(*body, name); };
    // Someone who may not see the review learns nothing about it, not even that it exists.
    if (auto r = store_.find(id); !r || !may_see(caller, *r)) {
      return audited.answer(404, "refused", "no such review visible to the caller",
                            oauth_error(404, review::refusal_name(review::Refusal::kNotFound),
                                        fmt::format("no review {}", id)));
    }
    const std::string sha256 = text("sha256");
    const std::string reason = text("reason");
    if (approve) {
      audit.details.emplace_back("sha256", sha256);
    } else {
      audit.details.emplace_back("deny_reason", reason);
    }
    auto decided = approve ? store_.approve(id, caller.identity, sha256)
                           : store_.deny(id, caller.identity, reason);
    if (!decided) {
      const int status = status_of(decided.error().why);
      return audited.answer(
          status, "refused", decided.error().message,
          oauth_error(status, review::refusal_name(decided.error().why), decided.error().message));
    }
    audit.details.emplace_back("connection", decided->request.connection);
    audit.details.emplace_back("rule", decided->request.rule);
    audit.details.emplace_back("state", std::string(review::state_name(decided->state)));
    return audited.answer(200, "granted", "", json_response(200, review_json(*decided)));
  }

 private:
  AdminApi& api_;
  review::ReviewStore& store_;
};

}  // namespace

nlohmann::json review_json(const review::Review& r) {
  nlohmann::json approvals = nlohmann::json::array();
  for (const review::Approval& a : r.approvals)
    approvals.push_back({{"by", a.chain}, {"at", a.at_s}});
  std::string requester;
  for (const std::string& m : r.request.requester_chain) {
    if (!requester.empty()) requester += " \u2192 ";
    requester += m;
  }
  nlohmann::json j = {{"id", r.id},
                      {"state", review::state_name(r.state)},
                      {"connection", r.request.connection},
                      {"rule", r.request.rule},
                      {"reason", r.request.reason},
                      {"kind", r.request.kind},
                      {"statement", r.request.statement},
                      {"sha256", r.sha256},
                      {"requester", requester},
                      {"requester_chain", r.request.requester_chain},
                      {"approver_groups", r.request.approver_groups},
                      {"approvals_min", r.request.approvals_min},
                      {"approvals", std::move(approvals)},
                      {"created_at", r.created_s},
                      {"expires_at", r.expires_s},
                      {"session_id", r.request.session_id},
                      {"client_address", r.request.client_address}};
  if (!r.decided_by.empty()) j["decided_by"] = r.decided_by;
  if (r.decided_s != 0) j["decided_at"] = r.decided_s;
  if (!r.deny_reason.empty()) j["deny_reason"] = r.deny_reason;
  return j;
}

Result<void> add_review_routes(AdminApi& api, review::ReviewStore& store) {
  auto routes = std::make_shared<ReviewRoutes>(api, store);
  Router& router = api.router();
  if (auto ok = router.add("GET", "/admin/reviews", Access::kAuthenticated,
                           [routes](const Request&, const Caller* c) { return routes->list(*c); });
      !ok)
    return ok;
  if (auto ok =
          router.add("GET", "/admin/reviews/{id}", Access::kAuthenticated,
                     [routes](const Request& r, const Caller* c) { return routes->show(r, *c); });
      !ok)
    return ok;
  if (auto ok = router.add(
          "POST", "/admin/reviews/{id}/approve", Access::kAuthenticated,
          [routes](const Request& r, const Caller* c) { return routes->decide(r, *c, true); });
      !ok)
    return ok;
  return router.add(
      "POST", "/admin/reviews/{id}/deny", Access::kAuthenticated,
      [routes](const Request& r, const Caller* c) { return routes->decide(r, *c, false); });
}

}  // namespace gh::admin
