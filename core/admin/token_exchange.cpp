// RFC 8693 token exchange: validation of the request and both tokens, narrowing, minting.
// Sans-I/O: no HTTP, no clock, no files.
#include "core/admin/token_exchange.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/identity/json_object.hpp"
#include "core/identity/limits.hpp"

namespace gh::admin {
namespace {

using identity::quote;

std::unexpected<ExchangeError> refuse(std::string error, std::string description,
                                      std::string reason = {}) {
  if (reason.empty()) reason = description;
  return std::unexpected(
      ExchangeError{std::move(error), std::move(description), std::move(reason)});
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool acceptable_token_type(const std::string& type) {
  return type == kJwtTokenType || type == kAccessTokenType;
}

// RFC 6749 §3.3: scope = scope-token *( SP scope-token ),
// scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
std::optional<std::vector<std::string>> parse_scope(const std::string& scope) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= scope.size()) {
    size_t end = scope.find(' ', at);
    if (end == std::string::npos) end = scope.size();
    const std::string token = scope.substr(at, end - at);
    if (token.empty()) return std::nullopt;
    for (const char c : token) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x21 || u == 0x22 || u == 0x5c || u > 0x7e) return std::nullopt;
    }
    if (!contains(out, token)) out.push_back(token);
    at = end + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& values, std::string_view separator) {
  std::string out;
  for (const std::string& v : values) {
    if (!out.empty()) out += separator;
    out += v;
  }
  return out;
}

constexpr std::string_view kNotValid =
    "is not valid (expired, revoked, malformed or not signed by a trusted issuer)";

}  // namespace

std::expected<ExchangeIssued, ExchangeError> TokenExchange::exchange(
    const Params& form, const identity::RevocationSet& revoked, int64_t now_s,
    AuditEntry& audit) const {
  audit.action = "token_exchange";

  // Every parameter but audience and resource at most once (RFC 6749 §3.2, RFC 8693 §2.1).
  for (const char* name : {"grant_type", "subject_token", "subject_token_type", "actor_token",
                           "actor_token_type", "actor", "scope", "ttl", "requested_token_type"}) {
    if (auto once = single(form, name); !once) {
      return refuse("invalid_request", once.error().message);
    }
  }
  const auto param = [&](const char* name) { return *single(form, name); };

  const auto grant_type = param("grant_type");
  if (!grant_type) return refuse("invalid_request", "grant_type is missing");
  if (*grant_type != kTokenExchangeGrant) {
    return refuse("unsupported_grant_type",
                  fmt::format("grant_type must be {}", kTokenExchangeGrant),
                  fmt::format("grant_type {}", quote(*grant_type)));
  }
  const auto subject_token = param("subject_token");
  if (!subject_token || subject_token->empty()) {
    return refuse("invalid_request", "subject_token is missing");
  }
  const auto subject_token_type = param("subject_token_type");
  if (!subject_token_type) return refuse("invalid_request", "subject_token_type is missing");
  if (!acceptable_token_type(*subject_token_type)) {
    return refuse("invalid_request", fmt::format("subject_token_type must be {} or {}",
                                                 kJwtTokenType, kAccessTokenType));
  }
  if (const auto requested = param("requested_token_type");
      requested && !acceptable_token_type(*requested)) {
    return refuse("invalid_request", fmt::format("requested_token_type must be {} or {}",
                                                 kJwtTokenType, kAccessTokenType));
  }
  const auto actor_token = param("actor_token");
  const auto actor_token_type = param("actor_token_type");
  const auto actor_name = param("actor");
  if (actor_token.has_value() != actor_token_type.has_value()) {
    return refuse("invalid_request", "actor_token and actor_token_type go together");
  }
  if (actor_token_type && !acceptable_token_type(*actor_token_type)) {
    return refuse("invalid_request", fmt::format("actor_token_type must be {} or {}", kJwtTokenType,
                                                 kAccessTokenType));
  }
  if (actor_token && actor_name) {
    return refuse("invalid_request", "give actor_token or actor, not both");
  }

  // The subject token: the caller's own, and the only source of what the new token may grant.
  auto subject = validator_.validate(*subject_token, now_s);
  if (!subject) {
    return refuse("invalid_request", fmt::format("subject_token {}", kNotValid),
                  "subject_token: " + subject.error().message);
  }
  audit.issuer = subject->issuer;
  audit.token_id = subject->token_id;
  audit.chain = subject->chain();
  audit.groups = subject->groups;
  audit.provenance = subject->provenance;
  if (const identity::Revocation* r = revoked.find(*subject)) {
    return refuse("invalid_request", fmt::format("subject_token {}", kNotValid),
                  "subject_token: " + describe(*r));
  }

  // The new actor: from its own token, or a service identity the subject's groups may name.
  std::string new_actor;
  std::optional<identity::Identity> actor;
  if (actor_token) {
    auto validated = validator_.validate(*actor_token, now_s);
    if (!validated) {
      return refuse("invalid_request", fmt::format("actor_token {}", kNotValid),
                    "actor_token: " + validated.error().message);
    }
    if (const identity::Revocation* r = revoked.find(*validated)) {
      return refuse("invalid_request", fmt::format("actor_token {}", kNotValid),
                    "actor_token: " + describe(*r));
    }
    actor = std::move(*validated);
    new_actor = actor->subject;
    audit.details.emplace_back("actor_issuer", actor->issuer);
    if (!actor->token_id.empty()) audit.details.emplace_back("actor_jti", actor->token_id);
  } else if (actor_name) {
    const auto it = std::find_if(policy_.service_actors.begin(), policy_.service_actors.end(),
                                 [&](const auto& s) { return s.name == *actor_name; });
    if (it == policy_.service_actors.end()) {
      return refuse(
          "invalid_request",
          fmt::format("actor {} is not a service identity of this gateway", quote(*actor_name)));
    }
    const bool allowed =
        std::any_of(subject->groups.begin(), subject->groups.end(),
                    [&](const std::string& g) { return contains(it->allow_groups, g); });
    if (!allowed) {
      return refuse(
          "invalid_request",
          fmt::format("the subject token's groups may not name actor {}", quote(*actor_name)));
    }
    new_actor = *actor_name;
  }
  if (!new_actor.empty()) {
    audit.chain.push_back(new_actor);
    audit.details.emplace_back("actor", new_actor);
    // RFC 8693 §4.4: a subject token with "may_act" names who may act for it.
    if (const auto may_act = subject->claims.find("may_act"); may_act != subject->claims.end()) {
      const std::string* allowed_sub = may_act->is_object() && may_act->contains("sub")
                                           ? (*may_act)["sub"].get_ptr<const std::string*>()
                                           : nullptr;
      if (allowed_sub == nullptr || *allowed_sub != new_actor) {
        return refuse(
            "invalid_request",
            fmt::format("the subject token's may_act does not allow actor {}", quote(new_actor)));
      }
    }
  }

  // Depth: the chain only ever grows by the new actor, and never past the limit.
  std::vector<std::string> actors = subject->actors;
  if (!new_actor.empty()) actors.push_back(new_actor);
  if (actors.size() > policy_.delegation_depth_max) {
    return refuse("invalid_request", fmt::format("delegation depth {} exceeds the limit of {}",
                                                 actors.size(), policy_.delegation_depth_max));
  }

  // Scope narrows the groups: never a group the subject token does not hold.
  std::vector<std::string> groups = subject->groups;
  if (const auto scope = param("scope")) {
    const auto requested = parse_scope(*scope);
    if (!requested) return refuse("invalid_scope", "scope is not a space-separated list of groups");
    for (const std::string& group : *requested) {
      if (!contains(subject->groups, group)) {
        return refuse(
            "invalid_scope",
            fmt::format("scope {} is not among the subject token's groups", quote(group)));
      }
    }
    groups = *requested;
  }
  audit.groups = groups;

  // Audience (and resource) narrow the connections: never one the subject token may not reach.
  std::optional<std::vector<std::string>> connections = subject->connections;
  std::vector<std::string> targets = all(form, "audience");
  for (std::string& r : all(form, "resource")) targets.push_back(std::move(r));
  if (!targets.empty()) {
    std::vector<std::string> narrowed;
    for (const std::string& target : targets) {
      if (!contains(policy_.connections, target)) {
        return refuse("invalid_target", fmt::format("no connection named {}", quote(target)));
      }
      if (subject->connections && !contains(*subject->connections, target)) {
        return refuse("invalid_target",
                      fmt::format("connection {} is not among the subject token's connections",
                                  quote(target)));
      }
      if (!contains(narrowed, target)) narrowed.push_back(target);
    }
    if (narrowed.size() > identity::kConnectionsClaimMax) {
      return refuse("invalid_target", "too many connections");
    }
    connections = std::move(narrowed);
  }

  // Lifetime: never past the subject token's exp (nor the actor token's).
  int64_t exp_limit = subject->expires_at;
  if (actor) exp_limit = std::min(exp_limit, actor->expires_at);
  int64_t ttl_s = 0;
  if (const auto ttl = param("ttl")) {
    auto parsed = identity::parse_duration_s(*ttl);
    if (!parsed || *parsed <= 0 || *parsed > identity::kTokenTtlSMax) {
      return refuse(
          "invalid_request",
          fmt::format("ttl must be a duration of 1s..{}s (90s, 15m, 2h)", identity::kTokenTtlSMax));
    }
    if (now_s + *parsed > exp_limit) {
      return refuse("invalid_request",
                    fmt::format("ttl {} would outlive the {} token, which expires at {}", *ttl,
                                exp_limit == subject->expires_at ? "subject" : "actor", exp_limit));
    }
    ttl_s = *parsed;
  } else {
    ttl_s = std::min({policy_.ttl_default_s, exp_limit - now_s, identity::kTokenTtlSMax});
  }
  if (ttl_s <= 0) return refuse("invalid_request", "the subject token has expired");

  // Lineage: revoking any ancestor (or the actor's own token) revokes what is minted here.
  std::vector<std::string> lineage = subject->lineage;
  if (!subject->token_id.empty()) lineage.push_back(subject->token_id);
  if (actor && !actor->token_id.empty()) lineage.push_back(actor->token_id);
  if (lineage.size() > identity::kLineageMax) {
    return refuse("invalid_request", "the token's lineage is too long to exchange further");
  }
  audit.lineage = lineage;

  identity::TokenRequest request;
  request.subject = subject->subject;
  request.groups = groups;
  request.ttl_s = ttl_s;
  request.actors = actors;
  request.audience = policy_.audience;
  request.issuer = policy_.issuer;
  request.lineage = lineage;
  request.connections = connections;
  // CI provenance travels with the chain, so that every hop is attributed to the same run.
  for (const auto& [claim, value] : subject->provenance) {
    if (claim != "groups") request.extra_claims[claim] = value;
  }
  auto minted = minter_.issue_token(request, now_s);
  if (!minted) {
    return refuse("invalid_request", "the token could not be issued",
                  "minting: " + minted.error().message);
  }
  audit.details.emplace_back("issued_jti", minted->token_id);
  audit.details.emplace_back("issued_exp", std::to_string(minted->expires_at));
  audit.details.emplace_back("scope", join(groups, " "));
  if (connections) audit.details.emplace_back("connections", join(*connections, " "));

  ExchangeIssued issued;
  issued.chain = subject->chain();
  if (!new_actor.empty()) issued.chain.push_back(new_actor);
  issued.groups = std::move(groups);
  issued.connections = std::move(connections);
  issued.expires_in_s = ttl_s;
  issued.token = std::move(*minted);
  return issued;
}

nlohmann::json exchange_response_body(const ExchangeIssued& issued) {
  // RFC 8693 §2.2.1. token_type N_A: the token is not an OAuth access token for some resource
  // server; it is the gateway's own credential (the PostgreSQL password, for instance).
  nlohmann::json body = {{"access_token", issued.token.token},
                         {"issued_token_type", kJwtTokenType},
                         {"token_type", "N_A"},
                         {"expires_in", issued.expires_in_s},
                         {"scope", join(issued.groups, " ")}};
  return body;
}

}  // namespace gh::admin
