// The control plane's wiring and the admin API subcommands (token exchange, revoke).
// Errors go to stderr as one line with what to fix.
#include "app/admin.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/admin/http_client.hpp"
#include "core/identity/files.hpp"
#include "record/event.hpp"
#include "record/format.hpp"

namespace gh::app {
namespace {

using rec::Field;
using rec::FieldTag;

// A full admin ring is waited on (the flusher drains it), but not forever: the request then fails.
constexpr auto kRingWaitMax = std::chrono::seconds(2);

int error_exit(const std::string& message, int code = 1) {
  fmt::print(stderr, "gatehouse: {}\n", message);
  return code;
}

uint64_t random_session_id() {
  uint64_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) {
    v = uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  }
  return v;
}

// "@FILE" is the contents of FILE (without a trailing newline); anything else is itself.
Result<std::string> token_argument(const std::string& value, const char* what) {
  if (!value.starts_with('@')) return value;
  auto text = identity::read_file(value.substr(1), 1 << 20);
  if (!text) return fail(fmt::format("{}: {}", what, text.error().message));
  while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
  return std::move(*text);
}

Result<std::string> admin_url(const AdminClientOptions& o) {
  if (!o.admin_url.empty()) return o.admin_url;
  if (o.config_file.empty()) {
    if (const char* env = std::getenv("GATEHOUSE_ADMIN"); env != nullptr && *env != '\0') {
      return std::string(env);
    }
    return fail("give the admin API with --admin URL, -c CONFIG or $GATEHOUSE_ADMIN");
  }
  auto config = config::load(o.config_file);
  if (!config) return std::unexpected(config.error());
  if (!config->admin) return fail(o.config_file + ": admin is not configured");
  return fmt::format("{}://{}", config->admin->tls ? "https" : "http", config->admin->address.text);
}

// The RFC 6749 error body of a refusal, as one line.
std::string describe_error(const admin::HttpReply& reply) {
  nlohmann::json body = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    std::string text = body["error"].get<std::string>();
    if (body.contains("error_description") && body["error_description"].is_string()) {
      text += ": " + body["error_description"].get<std::string>();
    }
    return fmt::format("{} (HTTP {})", text, reply.status);
  }
  return fmt::format("HTTP {}: {}", reply.status,
                     rec::escape_for_terminal(reply.body.substr(0, 200)));
}

}  // namespace

Result<void> RingAuditSink::record(const admin::AuditEntry& e) {
  std::vector<std::string> texts;  // owned "name=value" strings the fields point into
  texts.reserve(e.provenance.size() + e.details.size() + 1);
  const std::string status = std::to_string(e.http_status);
  std::vector<Field> fields{{FieldTag::kProtocol, "admin"},
                            {FieldTag::kAction, e.action},
                            {FieldTag::kOutcome, e.outcome},
                            {FieldTag::kHttpStatus, status},
                            {FieldTag::kClientAddress, e.client_address}};
  if (!e.issuer.empty()) fields.push_back({FieldTag::kIssuer, e.issuer});
  if (!e.token_id.empty()) fields.push_back({FieldTag::kTokenId, e.token_id});
  for (const auto& m : e.chain) fields.push_back({FieldTag::kChainMember, m});
  for (const auto& g : e.groups) fields.push_back({FieldTag::kGroup, g});
  for (const auto& [name, value] : e.provenance) {
    texts.push_back(name + "=" + value);
    fields.push_back({FieldTag::kClaim, texts.back()});
  }
  for (const auto& id : e.lineage) fields.push_back({FieldTag::kTokenLineage, id});
  if (!e.reason.empty()) fields.push_back({FieldTag::kReason, e.reason});
  for (const auto& [name, value] : e.details) {
    texts.push_back(name + "=" + value);
    fields.push_back({FieldTag::kDetail, texts.back()});
  }
  // Values are bounded by the request size; cut anything that would not fit the ring anyway.
  const size_t value_bytes_max = ring_.payload_bytes_max() / (2 * fields.size());
  for (Field& f : fields) f.value = f.value.substr(0, value_bytes_max);
  const rec::Event event{rec::EventType::kAdmin, random_session_id(), 0, rec::realtime_now_ns(),
                         fields};
  const auto deadline = std::chrono::steady_clock::now() + kRingWaitMax;
  std::lock_guard lock(mutex_);
  while (true) {
    const rec::PushStatus pushed = ring_.try_push(event);
    if (pushed == rec::PushStatus::kPushed) return {};
    if (pushed != rec::PushStatus::kFull || std::chrono::steady_clock::now() >= deadline) {
      return fail("the admin event could not be recorded (the trail is not keeping up)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Result<std::unique_ptr<AdminRuntime>> AdminRuntime::start(const config::Config& config,
                                                          const identity::Validator& validator,
                                                          identity::RevocationRegistry& revocations,
                                                          rec::Ring* ring) {
  std::unique_ptr<AdminRuntime> rt(new AdminRuntime());
  auto minter = identity::TokenMinter::load(config.identity.builtin->key_file);
  if (!minter) return fail("admin: built-in issuer: " + minter.error().message);
  rt->minter_ = std::make_unique<identity::TokenMinter>(std::move(*minter));
  if (ring != nullptr) {
    rt->sink_ = std::make_unique<RingAuditSink>(*ring);
  } else {
    rt->sink_ = std::make_unique<DiscardAuditSink>();
  }
  auto api = admin::AdminApi::create(admin::ApiDependencies{.config = &config,
                                                            .validator = &validator,
                                                            .minter = rt->minter_.get(),
                                                            .revocations = &revocations,
                                                            .audit = rt->sink_.get(),
                                                            .clock_s = {}});
  if (!api) return std::unexpected(api.error());
  rt->api_ = std::move(*api);
  admin::HttpServerOptions options;
  options.address = config.admin->address;
  options.tls = config.admin->tls;
  options.threads = config.admin->threads;
  options.request_bytes_max = config.admin->request_bytes_max;
  auto server = admin::HttpServer::start(options, rt->api_->router());
  if (!server) return std::unexpected(server.error());
  rt->server_ = std::move(*server);
  const std::string& text = config.admin->address.text;
  rt->host_ = text.substr(0, text.rfind(':'));
  return rt;
}

AdminRuntime::~AdminRuntime() { stop(); }

void AdminRuntime::stop() {
  if (server_) server_->stop();
}

std::string AdminRuntime::url() const {
  return fmt::format("{}://{}:{}", server_->tls() ? "https" : "http", host_, server_->port());
}

int token_exchange(const TokenExchangeOptions& o) {
  auto url = admin_url(o.admin);
  if (!url) return error_exit(url.error().message, 2);
  auto subject = token_argument(o.subject_token, "--subject-token");
  if (!subject) return error_exit(subject.error().message, 2);
  if (!o.actor_token.empty() && !o.actor.empty()) {
    return error_exit("give --actor-token or --actor, not both", 2);
  }
  admin::Params form = {{"grant_type", admin::kTokenExchangeGrant},
                        {"subject_token", *subject},
                        {"subject_token_type", admin::kJwtTokenType}};
  if (!o.actor_token.empty()) {
    auto actor = token_argument(o.actor_token, "--actor-token");
    if (!actor) return error_exit(actor.error().message, 2);
    form.emplace_back("actor_token", *actor);
    form.emplace_back("actor_token_type", admin::kJwtTokenType);
  }
  if (!o.actor.empty()) form.emplace_back("actor", o.actor);
  if (!o.scope.empty()) {
    std::string scope = o.scope;
    std::replace(scope.begin(), scope.end(), ',', ' ');
    form.emplace_back("scope", scope);
  }
  for (const std::string& a : o.audience) form.emplace_back("audience", a);
  if (!o.ttl.empty()) form.emplace_back("ttl", o.ttl);
  auto reply = admin::http_call(admin::HttpCall{.base_url = *url,
                                                .method = "POST",
                                                .path = "/oauth/token",
                                                .content_type = "application/x-www-form-urlencoded",
                                                .body = admin::form_encode(form),
                                                .headers = {},
                                                .ca_file = o.admin.ca_file});
  if (!reply) return error_exit("token exchange: " + reply.error().message);
  if (reply->status != 200) {
    if (o.json) fmt::print("{}\n", reply->body);
    return error_exit("token exchange refused: " + describe_error(*reply));
  }
  nlohmann::json body = nlohmann::json::parse(reply->body, nullptr, false);
  if (!body.is_object() || !body.contains("access_token") || !body["access_token"].is_string()) {
    return error_exit("token exchange: the answer holds no access_token");
  }
  if (o.json) {
    fmt::print("{}\n", reply->body);
  } else {
    fmt::print("{}\n", body["access_token"].get<std::string>());
  }
  return 0;
}

int revoke(const RevokeOptions& o) {
  const int given = int(!o.jti.empty()) + int(!o.subject.empty()) + int(!o.actor.empty());
  if (given != 1) return error_exit("give exactly one of --jti, --subject, --actor", 2);
  auto url = admin_url(o.admin);
  if (!url) return error_exit(url.error().message, 2);
  std::string token_text = o.token;
  if (token_text.empty()) {
    if (const char* env = std::getenv("GATEHOUSE_TOKEN"); env != nullptr) token_text = env;
  }
  if (token_text.empty())
    return error_exit("give an admin token with --token or $GATEHOUSE_TOKEN", 2);
  auto token = token_argument(token_text, "--token");
  if (!token) return error_exit(token.error().message, 2);
  const char* kind = !o.jti.empty() ? "jti" : !o.subject.empty() ? "subject" : "actor";
  const std::string& value = !o.jti.empty() ? o.jti : !o.subject.empty() ? o.subject : o.actor;
  const nlohmann::json body = {{"kind", kind}, {"value", value}, {"reason", o.reason}};
  auto reply = admin::http_call(admin::HttpCall{.base_url = *url,
                                                .method = "POST",
                                                .path = "/admin/revocations",
                                                .content_type = "application/json",
                                                .body = rec::dump_json(body),
                                                .headers = {{"Authorization", "Bearer " + *token}},
                                                .ca_file = o.admin.ca_file});
  if (!reply) return error_exit("revoke: " + reply.error().message);
  if (reply->status != 200 && reply->status != 201) {
    return error_exit("revoke refused: " + describe_error(*reply));
  }
  fmt::print("revoked {} {}{}\n", kind, value, reply->status == 200 ? " (already revoked)" : "");
  return 0;
}

}  // namespace gh::app
