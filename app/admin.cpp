// The control plane's wiring and the admin API subcommands (token exchange, revoke).
// Errors go to stderr as one line with what to fix.
#include "app/admin.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/admin/http_client.hpp"
#include "core/admin/reviews.hpp"
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

// --token, else $GATEHOUSE_TOKEN; "@FILE" reads it from a file.
Result<std::string> bearer_argument(const std::string& option, const char* what) {
  std::string text = option;
  if (text.empty()) {
    if (const char* env = std::getenv("GATEHOUSE_TOKEN"); env != nullptr) text = env;
  }
  if (text.empty()) return fail(fmt::format("give {} with --token or $GATEHOUSE_TOKEN", what));
  return token_argument(text, "--token");
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

ReviewWebhook::ReviewWebhook(std::string url) {
  const size_t scheme = url.find("://");
  const size_t slash = scheme == std::string::npos ? std::string::npos : url.find('/', scheme + 3);
  base_url_ = url.substr(0, slash);
  path_ = slash == std::string::npos ? "/" : url.substr(slash);
  thread_ = std::thread([this] { run(); });
}

ReviewWebhook::~ReviewWebhook() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void ReviewWebhook::notify(const review::Review& r) {
  std::string requester;
  for (const std::string& m : r.request.requester_chain)
    requester += (requester.empty() ? "" : " \u2192 ") + m;
  // Slack's incoming webhooks read "text"; other receivers get the whole review too.
  const std::string text = fmt::format(
      "gatehouse review {}: {} asks to run on {} (rule \"{}\", {} approval(s) from {} within {} s):\n"
      "```{}```\nsha256 {}\napprove: gatehouse review approve {}",
      r.id, requester, r.request.connection, r.request.rule, r.request.approvals_min,
      fmt::join(r.request.approver_groups, ", "), r.request.timeout_s,
      r.request.statement.substr(0, 2000), r.sha256, r.id);
  std::string body = rec::dump_json({{"text", text}, {"review", admin::review_json(r)}});
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= kQueuedMax) {
      fmt::print(stderr, "gatehouse: review webhook: {} notifications queued; {} not sent\n",
                 kQueuedMax, r.id);
      return;
    }
    queue_.push_back(std::move(body));
  }
  wake_.notify_one();
}

void ReviewWebhook::run() {
  while (true) {
    std::string body;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      body = std::move(queue_.front());
      queue_.pop_front();
    }
    auto reply = admin::http_call(admin::HttpCall{.base_url = base_url_,
                                                  .method = "POST",
                                                  .path = path_,
                                                  .content_type = "application/json",
                                                  .body = std::move(body),
                                                  .headers = {},
                                                  .ca_file = {},
                                                  .timeout_s = 5});
    if (!reply) {
      fmt::print(stderr, "gatehouse: review webhook: {}\n", reply.error().message);
    } else if (reply->status / 100 != 2) {
      fmt::print(stderr, "gatehouse: review webhook: {}{} answered HTTP {}\n", base_url_, path_,
                 reply->status);
    }
  }
}

Result<std::unique_ptr<AdminRuntime>> AdminRuntime::start(const config::Config& config,
                                                          const identity::Validator& validator,
                                                          identity::RevocationRegistry& revocations,
                                                          rec::Ring* ring,
                                                          review::ReviewStore* reviews) {
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
  if (reviews != nullptr) {
    if (auto ok = admin::add_review_routes(*rt->api_, *reviews); !ok) return std::unexpected(ok.error());
  }
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
  auto token = bearer_argument(o.token, "an admin token");
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

namespace {

std::string format_unix_time(int64_t s) {
  const std::time_t t = std::time_t(s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string json_text(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) return {};
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// One review for a terminal: everything an approver needs to decide, the statement in full.
std::string format_review(const nlohmann::json& r) {
  std::string out;
  const auto line = [&](const char* name, const std::string& value) {
    if (!value.empty()) out += fmt::format("{:<13}{}\n", name, rec::escape_for_terminal(value));
  };
  line("review", json_text(r, "id"));
  line("state", json_text(r, "state"));
  line("connection", json_text(r, "connection"));
  line("rule", json_text(r, "rule") + " (" + json_text(r, "reason") + ")");
  line("requester", json_text(r, "requester"));
  std::vector<std::string> approvals;
  if (r.contains("approvals") && r["approvals"].is_array()) {
    for (const auto& a : r["approvals"]) approvals.push_back(json_text(a, "by"));
  }
  line("approvals", fmt::format("{} of {} ({}) from groups {}", approvals.size(),
                                json_text(r, "approvals_min"), fmt::join(approvals, ", "),
                                r.value("approver_groups", nlohmann::json::array()).dump()));
  if (r.contains("created_at") && r["created_at"].is_number_integer())
    line("created", format_unix_time(r["created_at"].get<int64_t>()));
  if (r.contains("expires_at") && r["expires_at"].is_number_integer())
    line("expires", format_unix_time(r["expires_at"].get<int64_t>()));
  line("decided_by", json_text(r, "decided_by"));
  line("deny_reason", json_text(r, "deny_reason"));
  line("session", json_text(r, "session_id"));
  line("kind", json_text(r, "kind"));
  line("sha256", json_text(r, "sha256"));
  out += "statement:\n" + rec::escape_for_terminal(json_text(r, "statement")) + "\n";
  return out;
}

}  // namespace

int review(const ReviewOptions& o) {
  auto url = admin_url(o.admin);
  if (!url) return error_exit(url.error().message, 2);
  auto token = bearer_argument(o.token, "the approver's token");
  if (!token) return error_exit(token.error().message, 2);
  if (o.action != "list" && o.id.empty()) return error_exit("give the review id", 2);
  const auto call = [&](const std::string& method, const std::string& path,
                        const std::string& body) {
    return admin::http_call(admin::HttpCall{.base_url = *url,
                                            .method = method,
                                            .path = path,
                                            .content_type = "application/json",
                                            .body = body,
                                            .headers = {{"Authorization", "Bearer " + *token}},
                                            .ca_file = o.admin.ca_file});
  };
  if (o.action == "list") {
    auto reply = call("GET", "/admin/reviews", "");
    if (!reply) return error_exit("review list: " + reply.error().message);
    if (reply->status != 200) return error_exit("review list refused: " + describe_error(*reply));
    if (o.json) {
      fmt::print("{}\n", reply->body);
      return 0;
    }
    const nlohmann::json body = nlohmann::json::parse(reply->body, nullptr, false);
    if (!body.is_object() || !body.contains("reviews") || !body["reviews"].is_array())
      return error_exit("review list: the answer holds no reviews");
    fmt::print("{:<20} {:<10} {:<18} {:<12} {:<28} {}\n", "REVIEW", "STATE", "RULE", "CONNECTION",
               "REQUESTER", "STATEMENT");
    for (const auto& r : body["reviews"]) {
      std::string statement = json_text(r, "statement");
      if (statement.size() > 60) statement = statement.substr(0, 57) + "...";
      std::replace(statement.begin(), statement.end(), '\n', ' ');
      fmt::print("{:<20} {:<10} {:<18} {:<12} {:<28} {}\n", json_text(r, "id"),
                 json_text(r, "state"), rec::escape_for_terminal(json_text(r, "rule")),
                 rec::escape_for_terminal(json_text(r, "connection")),
                 rec::escape_for_terminal(json_text(r, "requester")),
                 rec::escape_for_terminal(statement));
    }
    return 0;
  }
  if (!std::all_of(o.id.begin(), o.id.end(), [](char ch) { return std::isalnum((unsigned char)ch) || ch == '-'; }))
    return error_exit(fmt::format("'{}' is not a review id (r- and 16 hex digits)", o.id), 2);
  const std::string path = "/admin/reviews/" + o.id;
  if (o.action == "show" || (o.action == "approve" && o.sha256.empty())) {
    auto reply = call("GET", path, "");
    if (!reply) return error_exit("review " + o.action + ": " + reply.error().message);
    if (reply->status != 200) return error_exit("review " + o.action + " refused: " + describe_error(*reply));
    const nlohmann::json shown = nlohmann::json::parse(reply->body, nullptr, false);
    if (!shown.is_object()) return error_exit("review " + o.action + ": the answer is not a review");
    if (o.action == "show") {
      if (o.json) {
        fmt::print("{}\n", reply->body);
      } else {
        fmt::print("{}", format_review(shown));
      }
      return 0;
    }
    // Approve what was shown: the approval names this statement's hash, so a review that held
    // another statement is refused by the gateway.
    ReviewOptions bound = o;
    bound.sha256 = json_text(shown, "sha256");
    fmt::print(stderr, "approving review {}, statement (sha256 {}):\n{}\n", o.id, bound.sha256,
               rec::escape_for_terminal(json_text(shown, "statement")));
    return review(bound);
  }
  if (o.action != "approve" && o.action != "deny")
    return error_exit("review: expected list, show, approve or deny", 2);
  if (o.action == "deny" && o.reason.empty()) return error_exit("review deny: give --reason", 2);
  const nlohmann::json body = o.action == "approve" ? nlohmann::json{{"sha256", o.sha256}}
                                                    : nlohmann::json{{"reason", o.reason}};
  auto reply = call("POST", path + "/" + o.action, rec::dump_json(body));
  if (!reply) return error_exit("review " + o.action + ": " + reply.error().message);
  if (reply->status != 200) return error_exit("review " + o.action + " refused: " + describe_error(*reply));
  if (o.json) {
    fmt::print("{}\n", reply->body);
    return 0;
  }
  const nlohmann::json r = nlohmann::json::parse(reply->body, nullptr, false);
  const size_t approvals = r.contains("approvals") && r["approvals"].is_array() ? r["approvals"].size() : 0;
  if (o.action == "approve" && json_text(r, "state") == "pending") {
    fmt::print("review {}: approval {} of {} recorded\n", o.id, approvals, json_text(r, "approvals_min"));
  } else {
    fmt::print("review {} {}\n", o.id, json_text(r, "state"));
  }
  return 0;
}

}  // namespace gh::app
