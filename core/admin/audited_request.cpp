// An audited admin request (see audited_request.hpp). Sans-I/O.
#include "core/admin/audited_request.hpp"

#include <utility>

#include "core/identity/json_object.hpp"

namespace gh::admin {

AuditedRequest::AuditedRequest(AuditSink& sink, std::string action, const Request& request,
                               const Caller& caller)
    : sink_(sink) {
  audit_.action = std::move(action);
  audit_.client_address = request.remote_address;
  audit_.issuer = caller.identity.issuer;
  audit_.token_id = caller.identity.token_id;
  audit_.chain = caller.identity.chain();
  audit_.groups = caller.identity.groups;
}

Response AuditedRequest::answer(int status, std::string outcome, std::string reason,
                                Response response) {
  audit_.outcome = std::move(outcome);
  audit_.http_status = status;
  audit_.reason = std::move(reason);
  (void)sink_.record(audit_);
  return response;
}

std::expected<nlohmann::json, Response> AuditedRequest::json_body(const Request& request) {
  if (request.media_type() != "application/json") {
    return std::unexpected(
        answer(400, "refused", "body is not application/json",
               oauth_error(400, "invalid_request", "the body must be application/json")));
  }
  auto body = identity::parse_json_object(request.body, "request body");
  if (!body) {
    return std::unexpected(answer(400, "refused", body.error().message,
                                  oauth_error(400, "invalid_request", body.error().message)));
  }
  return std::move(*body);
}

std::string AuditedRequest::text(const nlohmann::json& body, const char* name) {
  const auto it = body.find(name);
  const std::string* s = it == body.end() ? nullptr : it->get_ptr<const std::string*>();
  return s == nullptr ? std::string() : *s;
}

}  // namespace gh::admin
