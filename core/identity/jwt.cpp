// Validating caller tokens: compact JWS JWTs from configured issuers, per RFC 7519 and the
// RFC 8725 best current practices, into an Identity with its RFC 8693 delegation chain.
// Must not depend on protocols or on I/O after create() (which reads the JWKS files).
#include "core/identity/jwt.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <optional>

#include "core/base64.hpp"
#include "core/identity/json_object.hpp"
#include "core/identity/jwa.hpp"
#include "core/identity/jwk.hpp"
#include "core/identity/limits.hpp"

namespace gh::identity {

static_assert(ValidatorOptions{}.clock_skew_s <= kClockSkewSCeiling);
static_assert(ValidatorOptions{}.delegation_depth_max <= kDelegationDepthCeiling);
static_assert(ValidatorOptions{}.token_bytes_max <= kTokenBytesCeiling);

namespace {

using json = nlohmann::json;

struct Issuer {
  IssuerConfig config;
  std::string label;  // config.name, or the issuer when unnamed
  std::vector<Algorithm> algorithms;
  std::vector<PublicKey> keys;
  size_t usable_keys = 0;
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool istarts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

// RFC 7515 §4.1.9: "typ" is a media type whose "application/" prefix may be left out; values
// compare case-insensitively. RFC 8725 §3.11 explicit typing: only JWTs and access-token JWTs
// (RFC 9068 "at+jwt") are caller tokens.
bool acceptable_typ(std::string_view typ) {
  if (istarts_with(typ, "application/")) typ.remove_prefix(12);
  return iequals(typ, "JWT") || iequals(typ, "at+jwt");
}

// A JWS segment: unpadded base64url (RFC 7515 §2) with the canonical trailing bits.
std::optional<std::string> decode_segment(std::string_view segment) {
  if (segment.find('=') != std::string_view::npos) return std::nullopt;
  return gh::base64url_decode(segment);
}

const json* member(const json& object, const char* name) {
  const auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

const std::string* string_member(const json& object, const char* name) {
  const json* value = member(object, name);
  return value == nullptr ? nullptr : value->get_ptr<const std::string*>();
}

// RFC 7519 §2 NumericDate: seconds, possibly fractional. Rounded towards the stricter side by
// the caller's choice, and refused outside ±2^62 so that adding the skew cannot overflow.
enum class Rounding : uint8_t { kDown, kUp };

gh::Result<int64_t> numeric_date(const json& value, const char* name, Rounding rounding) {
  constexpr int64_t kLimit = int64_t{1} << 62;
  if (value.is_number_unsigned()) {
    const auto v = value.get<uint64_t>();
    if (v < static_cast<uint64_t>(kLimit)) return static_cast<int64_t>(v);
  } else if (value.is_number_integer()) {
    const auto v = value.get<int64_t>();
    if (v > -kLimit && v < kLimit) return v;
  } else if (value.is_number_float()) {
    const double v = rounding == Rounding::kDown ? std::floor(value.get<double>())
                                                 : std::ceil(value.get<double>());
    if (v > -static_cast<double>(kLimit) && v < static_cast<double>(kLimit)) {
      return static_cast<int64_t>(v);
    }
  } else {
    return gh::fail(fmt::format("\"{}\" is not a NumericDate", name));
  }
  return gh::fail(fmt::format("\"{}\" is out of range", name));
}

// The audience check of RFC 7519 §4.1.3: a string, or an array of strings, one of which we are.
gh::Result<void> check_audience(const json& claims, const Issuer& issuer) {
  const json* aud = member(claims, "aud");
  if (aud == nullptr) return gh::fail("token has no \"aud\" claim");
  std::vector<const std::string*> values;
  if (const auto* single = aud->get_ptr<const std::string*>()) {
    values.push_back(single);
  } else if (aud->is_array()) {
    for (const json& element : *aud) {
      const auto* text = element.get_ptr<const std::string*>();
      if (text == nullptr) return gh::fail("\"aud\" array holds a non-string");
      values.push_back(text);
    }
  } else {
    return gh::fail("\"aud\" is not a string or an array of strings");
  }
  for (const std::string* value : values) {
    for (const std::string& ours : issuer.config.audiences) {
      if (*value == ours) return {};
    }
  }
  std::string shown;
  for (size_t i = 0; i < values.size() && i < 4; ++i) {
    shown += (i == 0 ? "" : ", ") + quote(*values[i]);
  }
  if (values.size() > 4) shown += ", ...";
  return gh::fail(
      fmt::format("\"aud\" [{}] names none of issuer {}'s audiences", shown, quote(issuer.label)));
}

gh::Result<std::vector<std::string>> groups_of(const json& claims, const Issuer& issuer) {
  std::vector<std::string> groups;
  const std::string& name = issuer.config.groups_claim;
  const auto it = claims.find(name);
  if (it == claims.end()) return groups;
  if (const auto* single = it->get_ptr<const std::string*>()) {
    groups.push_back(*single);
    return groups;
  }
  if (!it->is_array()) {
    return gh::fail(fmt::format("groups claim {} is not an array of strings", quote(name)));
  }
  groups.reserve(it->size());
  for (const json& element : *it) {
    const auto* text = element.get_ptr<const std::string*>();
    if (text == nullptr) {
      return gh::fail(fmt::format("groups claim {} holds a non-string", quote(name)));
    }
    groups.push_back(*text);
  }
  return groups;
}

// An optional array of non-empty strings, at most `max` long (gh_lineage, gh_connections).
gh::Result<std::optional<std::vector<std::string>>> string_list(const json& claims, const char* name,
                                                              size_t max) {
  const json* value = member(claims, name);
  if (value == nullptr) return std::optional<std::vector<std::string>>();
  if (!value->is_array()) return gh::fail(fmt::format("\"{}\" is not an array of strings", name));
  if (value->size() > max) {
    return gh::fail(fmt::format("\"{}\" has {} entries, over the limit of {}", name, value->size(), max));
  }
  std::vector<std::string> out;
  out.reserve(value->size());
  for (const json& element : *value) {
    const auto* text = element.get_ptr<const std::string*>();
    if (text == nullptr || text->empty()) {
      return gh::fail(fmt::format("\"{}\" holds something other than a non-empty string", name));
    }
    out.push_back(*text);
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

// The configured provenance claims that the token carries, as text.
gh::Result<std::vector<std::pair<std::string, std::string>>> provenance_of(const json& claims,
                                                                         const Issuer& issuer) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& name : issuer.config.provenance_claims) {
    const auto it = claims.find(name);
    if (it == claims.end()) continue;
    std::string text;
    if (const auto* s = it->get_ptr<const std::string*>()) {
      text = *s;
    } else if (it->is_number_integer()) {
      text = it->dump();
    } else if (it->is_boolean()) {
      text = it->get<bool>() ? "true" : "false";
    } else {
      return gh::fail(fmt::format("provenance claim {} is not a string, integer or boolean",
                                  quote(name)));
    }
    if (text.size() > kProvenanceValueBytesMax) {
      return gh::fail(fmt::format("provenance claim {} is {} bytes, over the limit of {}",
                                  quote(name), text.size(), kProvenanceValueBytesMax));
    }
    out.emplace_back(name, std::move(text));
  }
  return out;
}

// RFC 8693 §4.1: "act" is an object whose "sub" names the current actor; an "act" nested in it
// names the actor before, and so on. Only identity is read from actor objects: any other claim in
// them (groups included) grants nothing, as the RFC says of non-identity claims there.
gh::Result<std::vector<std::string>> actors_of(const json& claims, uint32_t depth_max) {
  std::vector<std::string> outermost_first;
  const json* act = member(claims, "act");
  while (act != nullptr) {
    const size_t depth = outermost_first.size() + 1;
    if (!act->is_object()) {
      return gh::fail(depth == 1 ? std::string("\"act\" is not an object")
                                 : fmt::format("\"act\" at depth {} is not an object", depth));
    }
    if (depth > depth_max) {
      return gh::fail(fmt::format("delegation chain is deeper than the limit of {}", depth_max));
    }
    const std::string* sub = string_member(*act, "sub");
    if (sub == nullptr || sub->empty()) {
      return gh::fail(fmt::format("\"act\" at depth {} has no non-empty \"sub\" string", depth));
    }
    outermost_first.push_back(*sub);
    act = member(*act, "act");
  }
  std::reverse(outermost_first.begin(), outermost_first.end());
  return outermost_first;
}

}  // namespace

struct Validator::State {
  std::vector<Issuer> issuers;
  ValidatorOptions options;
};

Validator::Validator(std::shared_ptr<const State> state) : state_(std::move(state)) {}

const ValidatorOptions& Validator::options() const { return state_->options; }

gh::Result<Validator> Validator::create(std::vector<IssuerConfig> issuers,
                                        ValidatorOptions options) {
  if (options.clock_skew_s < 0 || options.clock_skew_s > kClockSkewSCeiling) {
    return gh::fail(fmt::format("identity: clock_skew_s {} is outside 0..{}", options.clock_skew_s,
                                kClockSkewSCeiling));
  }
  if (options.delegation_depth_max > kDelegationDepthCeiling) {
    return gh::fail(fmt::format("identity: delegation_depth_max {} is over the ceiling of {}",
                                options.delegation_depth_max, kDelegationDepthCeiling));
  }
  if (options.token_bytes_max == 0 || options.token_bytes_max > kTokenBytesCeiling) {
    return gh::fail(fmt::format("identity: token_bytes_max {} is outside 1..{}",
                                options.token_bytes_max, kTokenBytesCeiling));
  }
  if (issuers.empty()) return gh::fail("identity: no issuer is configured");

  auto state = std::make_shared<State>();
  state->options = options;
  for (IssuerConfig& config : issuers) {
    Issuer issuer;
    issuer.label = config.name.empty() ? config.issuer : config.name;
    const std::string where = fmt::format("identity issuer {}", quote(issuer.label));
    if (config.issuer.empty()) return gh::fail(where + ": \"issuer\" is empty");
    for (const Issuer& other : state->issuers) {
      if (other.config.issuer == config.issuer) {
        return gh::fail(
            fmt::format("{}: issuer {} is configured twice", where, quote(config.issuer)));
      }
    }
    if (config.audiences.empty()) return gh::fail(where + ": no audience is configured");
    for (const std::string& audience : config.audiences) {
      if (audience.empty()) return gh::fail(where + ": an audience is empty");
    }
    if (config.groups_claim.empty()) return gh::fail(where + ": groups_claim is empty");
    for (const char* registered : {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "act"}) {
      if (config.groups_claim == registered) {
        return gh::fail(fmt::format("{}: groups_claim cannot be the registered claim \"{}\"", where,
                                    registered));
      }
    }
    if (config.provenance_claims.size() > kProvenanceClaimsMax) {
      return gh::fail(fmt::format("{}: {} provenance claims, over the limit of {}", where,
                                  config.provenance_claims.size(), kProvenanceClaimsMax));
    }
    for (size_t i = 0; i < config.provenance_claims.size(); ++i) {
      const std::string& claim = config.provenance_claims[i];
      if (claim.empty()) return gh::fail(where + ": a provenance claim name is empty");
      for (const char* reserved : {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "act",
                                   "may_act", kLineageClaim, kConnectionsClaim}) {
        if (claim == reserved) {
          return gh::fail(fmt::format("{}: provenance claim \"{}\" is not a provenance claim",
                                      where, reserved));
        }
      }
      if (claim == config.groups_claim) {
        return gh::fail(fmt::format("{}: provenance claim {} is the groups claim", where,
                                    quote(claim)));
      }
      for (size_t j = 0; j < i; ++j) {
        if (config.provenance_claims[j] == claim) {
          return gh::fail(fmt::format("{}: provenance claim {} is listed twice", where, quote(claim)));
        }
      }
    }
    if (config.algorithms.empty()) return gh::fail(where + ": no algorithm is allowed");
    for (const std::string& name : config.algorithms) {
      const auto alg = algorithm_from_name(name);
      if (!alg) {
        return gh::fail(
            fmt::format("{}: algorithm {} is not accepted (only RS256, PS256, ES256 and EdDSA)",
                        where, quote(name)));
      }
      if (std::find(issuer.algorithms.begin(), issuer.algorithms.end(), *alg) ==
          issuer.algorithms.end()) {
        issuer.algorithms.push_back(*alg);
      }
    }
    if (config.jwks_file.empty()) return gh::fail(where + ": jwks_file is empty");
    auto keys = load_jwks_file(config.jwks_file);
    if (!keys) return gh::fail(fmt::format("{}: jwks_file {}", where, keys.error().message));
    issuer.keys = std::move(*keys);
    bool any_fits = false;
    for (const PublicKey& key : issuer.keys) {
      if (!key.usable()) continue;
      ++issuer.usable_keys;
      for (Algorithm alg : issuer.algorithms) {
        if (algorithm_fits(alg, key.type) && (!key.alg || *key.alg == alg)) any_fits = true;
      }
    }
    if (!any_fits) {
      return gh::fail(fmt::format("{}: jwks_file {}: no key fits the allowed algorithms", where,
                                  config.jwks_file));
    }
    issuer.config = std::move(config);
    state->issuers.push_back(std::move(issuer));
  }
  return Validator(std::move(state));
}

gh::Result<Identity> Validator::validate(std::string_view token, int64_t now_s) const {
  const ValidatorOptions& options = state_->options;

  // RFC 7515 §7.1 compact serialization: header.payload.signature, nothing else.
  if (token.size() > options.token_bytes_max) {
    return gh::fail(fmt::format("token is {} bytes, over the limit of {}", token.size(),
                                options.token_bytes_max));
  }
  if (token.empty()) return gh::fail("token is empty");
  const size_t segments = static_cast<size_t>(std::count(token.begin(), token.end(), '.')) + 1;
  if (segments != 3) {
    return gh::fail(fmt::format("token has {} segments; a compact JWS has exactly 3", segments));
  }
  const size_t dot1 = token.find('.');
  const size_t dot2 = token.find('.', dot1 + 1);
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);
  const std::string_view signing_input = token.substr(0, dot2);

  // The header decides nothing on its own: it may only narrow what configuration allows.
  if (header_b64.empty()) return gh::fail("header segment is empty");
  const auto header_text = decode_segment(header_b64);
  if (!header_text) return gh::fail("header is not unpadded base64url");
  auto header = parse_json_object(*header_text, "header");
  if (!header) return std::unexpected(header.error());
  const std::string* alg_name = string_member(*header, "alg");
  if (alg_name == nullptr) return gh::fail("header has no \"alg\" string");
  // RFC 8725 §2.1, §3.1: an unsecured JWS, or an HMAC keyed with what is a public key for us,
  // is refused whatever any configuration says.
  if (iequals(*alg_name, "none"))
    return gh::fail("alg \"none\" (unsigned token) is never accepted");
  if (istarts_with(*alg_name, "HS")) {
    return gh::fail(fmt::format("alg {} (HMAC) is never accepted: only public-key signatures are",
                                quote(*alg_name)));
  }
  const auto alg = algorithm_from_name(*alg_name);
  if (!alg) return gh::fail(fmt::format("alg {} is not supported", quote(*alg_name)));
  // RFC 7515 §4.1.11: we understand no extension, so any critical one must be refused.
  if (header->contains("crit")) return gh::fail("header has \"crit\"; no extension is supported");
  if (const json* typ = member(*header, "typ")) {
    const auto* text = typ->get_ptr<const std::string*>();
    if (text == nullptr) return gh::fail("header \"typ\" is not a string");
    if (!acceptable_typ(*text)) {
      return gh::fail(fmt::format("typ {} is neither JWT nor at+jwt", quote(*text)));
    }
  }
  // "jku", "x5u", "jwk" and "x5c" are never looked at: keys come from configuration only
  // (RFC 8725 §3.10), and "kid" is only ever compared with the configured keys' ids.
  const std::string* kid = nullptr;
  if (const json* kid_value = member(*header, "kid")) {
    kid = kid_value->get_ptr<const std::string*>();
    if (kid == nullptr || kid->empty()) return gh::fail("header \"kid\" is not a non-empty string");
  }

  // The payload is read before the signature is checked only to pick the issuer (and so the key
  // set); nothing in it is trusted until the signature verifies.
  if (payload_b64.empty()) return gh::fail("payload segment is empty");
  const auto payload_text = decode_segment(payload_b64);
  if (!payload_text) return gh::fail("payload is not unpadded base64url");
  auto claims = parse_json_object(*payload_text, "payload");
  if (!claims) return std::unexpected(claims.error());
  const std::string* iss = string_member(*claims, "iss");
  if (iss == nullptr) return gh::fail("token has no \"iss\" string");
  const Issuer* issuer = nullptr;
  for (const Issuer& candidate : state_->issuers) {
    if (candidate.config.issuer == *iss) issuer = &candidate;
  }
  if (issuer == nullptr)
    return gh::fail(fmt::format("no issuer is configured for iss {}", quote(*iss)));
  if (std::find(issuer->algorithms.begin(), issuer->algorithms.end(), *alg) ==
      issuer->algorithms.end()) {
    return gh::fail(
        fmt::format("alg {} is not allowed for issuer {}", *alg_name, quote(issuer->label)));
  }

  // Key selection (RFC 7515 §4.1.4) inside the issuer's own key set only.
  const PublicKey* key = nullptr;
  if (kid != nullptr) {
    const PublicKey* unusable_match = nullptr;
    for (const PublicKey& candidate : issuer->keys) {
      if (candidate.kid != *kid) continue;
      if (candidate.usable()) {
        key = &candidate;
        break;
      }
      unusable_match = &candidate;
    }
    if (key == nullptr && unusable_match != nullptr) {
      return gh::fail(fmt::format("key {} of issuer {} cannot verify: {}", quote(*kid),
                                  quote(issuer->label), unusable_match->unusable_reason));
    }
    if (key == nullptr) {
      return gh::fail(
          fmt::format("unknown kid {} for issuer {}", quote(*kid), quote(issuer->label)));
    }
  } else {
    if (issuer->usable_keys != 1) {
      return gh::fail(fmt::format("token has no kid and issuer {} has {} usable keys",
                                  quote(issuer->label), issuer->usable_keys));
    }
    for (const PublicKey& candidate : issuer->keys) {
      if (candidate.usable()) key = &candidate;
    }
  }
  const std::string key_label = key->kid.empty() ? std::string("(no kid)") : quote(key->kid);
  // RFC 8725 §3.1: the algorithm must be one the key was made for.
  if (!algorithm_fits(*alg, key->type)) {
    return gh::fail(fmt::format("alg {} does not fit key {}, a {} key", *alg_name, key_label,
                                key_type_name(key->type)));
  }
  if (key->alg && *key->alg != *alg) {
    return gh::fail(fmt::format("alg {} differs from the alg {} of key {}", *alg_name,
                                algorithm_name(*key->alg), key_label));
  }

  const auto signature = decode_segment(signature_b64);
  if (!signature) return gh::fail("signature is not unpadded base64url");
  if (auto verified = verify_signature(*alg, key->pkey.get(), signing_input, *signature);
      !verified) {
    return gh::fail(fmt::format("{} (key {} of issuer {})", verified.error().message, key_label,
                                quote(issuer->label)));
  }

  // Signed by the issuer's key: now the claims may be checked and believed (RFC 7519 §7.2).
  Identity identity;
  identity.issuer = *iss;
  if (auto audience = check_audience(*claims, *issuer); !audience) {
    return std::unexpected(audience.error());
  }

  // exp, nbf and iat are bounded by numeric_date and skew by create(): these sums cannot overflow.
  const int64_t skew = options.clock_skew_s;
  const json* exp = member(*claims, "exp");
  if (exp == nullptr) return gh::fail("token has no \"exp\" claim");
  auto expires_at = numeric_date(*exp, "exp", Rounding::kDown);
  if (!expires_at) return std::unexpected(expires_at.error());
  if (now_s >= *expires_at + skew) {
    return gh::fail(
        fmt::format("token expired at {} (now {}, skew {}s)", *expires_at, now_s, skew));
  }
  identity.expires_at = *expires_at;
  if (const json* nbf = member(*claims, "nbf")) {
    auto not_before = numeric_date(*nbf, "nbf", Rounding::kUp);
    if (!not_before) return std::unexpected(not_before.error());
    if (now_s < *not_before - skew) {
      return gh::fail(
          fmt::format("token is not valid before {} (now {}, skew {}s)", *not_before, now_s, skew));
    }
    identity.not_before = *not_before;
  }
  if (const json* iat = member(*claims, "iat")) {
    auto issued_at = numeric_date(*iat, "iat", Rounding::kDown);
    if (!issued_at) return std::unexpected(issued_at.error());
    if (*issued_at - skew > now_s) {
      return gh::fail(fmt::format("token was issued in the future at {} (now {}, skew {}s)",
                                  *issued_at, now_s, skew));
    }
    identity.issued_at = *issued_at;
  }

  const std::string* sub = string_member(*claims, "sub");
  if (sub == nullptr || sub->empty()) return gh::fail("token has no non-empty \"sub\" string");
  identity.subject = *sub;
  if (const json* jti = member(*claims, "jti")) {
    const auto* text = jti->get_ptr<const std::string*>();
    if (text == nullptr) return gh::fail("\"jti\" is not a string");
    identity.token_id = *text;
  }

  auto groups = groups_of(*claims, *issuer);
  if (!groups) return std::unexpected(groups.error());
  identity.groups = std::move(*groups);
  auto actors = actors_of(*claims, options.delegation_depth_max);
  if (!actors) return std::unexpected(actors.error());
  identity.actors = std::move(*actors);
  auto lineage = string_list(*claims, kLineageClaim, kLineageMax);
  if (!lineage) return std::unexpected(lineage.error());
  if (*lineage) identity.lineage = std::move(**lineage);
  auto connections = string_list(*claims, kConnectionsClaim, kConnectionsClaimMax);
  if (!connections) return std::unexpected(connections.error());
  identity.connections = std::move(*connections);
  auto provenance = provenance_of(*claims, *issuer);
  if (!provenance) return std::unexpected(provenance.error());
  identity.provenance = std::move(*provenance);

  identity.claims = std::move(*claims);
  return identity;
}

gh::Result<int64_t> parse_duration_s(std::string_view text) {
  if (text.empty()) return gh::fail("duration is empty");
  int64_t unit_s = 1;
  std::string_view digits = text;
  switch (text.back()) {
    case 's':
      unit_s = 1;
      break;
    case 'm':
      unit_s = 60;
      break;
    case 'h':
      unit_s = 3600;
      break;
    case 'd':
      unit_s = 86400;
      break;
    default:
      unit_s = 0;
      break;
  }
  if (unit_s != 0) {
    digits.remove_suffix(1);
  } else {
    unit_s = 1;
  }
  if (digits.empty()) return gh::fail(fmt::format("duration {} has no number", quote(text)));
  int64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return gh::fail(
          fmt::format("duration {} is not a number with an optional s, m, h or d", quote(text)));
    }
    if (value > (std::numeric_limits<int64_t>::max() - (c - '0')) / 10) {
      return gh::fail(fmt::format("duration {} is too large", quote(text)));
    }
    value = value * 10 + (c - '0');
  }
  if (value > std::numeric_limits<int64_t>::max() / unit_s) {
    return gh::fail(fmt::format("duration {} is too large", quote(text)));
  }
  return value * unit_s;
}

}  // namespace gh::identity
