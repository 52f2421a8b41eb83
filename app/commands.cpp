// The gatehouse subcommands: wiring of configuration, identity, the PostgreSQL gateway, the
// engine and the recording. Errors go to stderr as one line with what to fix.
#include "app/commands.hpp"

#include <time.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <set>

#include <fmt/format.h>

#include "app/admin.hpp"
#include "core/config.hpp"
#include "core/engine/server.hpp"
#include "core/identity/issuer.hpp"
#include "core/identity/jwt.hpp"
#include "mask/policy.hpp"
#include "protocols/postgres/gateway.hpp"
#include "protocols/ssh/gateway.hpp"
#include "record/asciicast.hpp"
#include "record/catalog.hpp"
#include "record/export.hpp"
#include "record/flusher.hpp"
#include "record/keys.hpp"
#include "record/format.hpp"
#include "record/reader.hpp"

namespace gh::app {
namespace {

int error_exit(const std::string& message, int code = 1) {
  fmt::print(stderr, "gatehouse: {}\n", message);
  return code;
}

Result<std::string> trail_dir(const TrailOptions& o) {
  if (!o.dir.empty()) return o.dir;
  if (o.config_file.empty()) return fail("give the trail with --dir DIR or -c CONFIG");
  auto config = config::load(o.config_file);
  if (!config) return std::unexpected(config.error());
  return config->recording.dir;
}

// --catalog, else recording.catalog_file of -c CONFIG, else the default inside the trail.
Result<std::string> catalog_file(const TrailOptions& o, const std::string& given,
                                 const std::string& dir) {
  if (!given.empty()) return given;
  if (o.dir.empty() && !o.config_file.empty()) {
    auto config = config::load(o.config_file);
    if (!config) return std::unexpected(config.error());
    return config->recording.catalog_file;
  }
  return rec::default_catalog_file(dir);
}

// From the catalog when it is complete; otherwise from the segments, telling why on stderr.
Result<std::vector<rec::SessionSummary>> find_sessions(const std::string& dir,
                                                       const std::string& catalog_path,
                                                       const rec::SessionFilter& filter) {
  const auto scan = [&](const std::string& why) {
    fmt::print(stderr, "gatehouse: {}: scanning the segments instead (gatehouse reindex {} builds "
                       "the catalog)\n", why, dir);
    return rec::list_sessions(dir, filter);
  };
  auto catalog = rec::open_sqlite_catalog_readonly(catalog_path);
  if (!catalog) return scan(catalog.error().message);
  if (*catalog == nullptr) return scan(fmt::format("no catalog at {}", catalog_path));
  auto status = (*catalog)->status();
  if (!status) return scan(status.error().message);
  if (status->state == rec::CatalogState::kStale) {
    return scan(fmt::format("catalog {} is stale ({})", catalog_path, status->reason));
  }
  if (status->state == rec::CatalogState::kLive && !rec::recorder_holds(dir)) {
    return scan(fmt::format("catalog {} was left live by a gateway that did not stop cleanly",
                            catalog_path));
  }
  auto found = (*catalog)->query(filter);
  if (!found) return scan(found.error().message);
  return found;
}

// "2026-11-23T09:00:00Z" (UTC), or a duration back from now ("2h").
Result<uint64_t> parse_time_ns(const std::string& text) {
  if (auto ago = identity::parse_duration_s(text)) {
    return uint64_t(std::time(nullptr) - *ago) * 1000000000ull;
  }
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr || (*end != '\0' && std::string_view(end) != "Z"))
    return fail(fmt::format("bad time '{}': use 2026-11-23T09:00:00Z or a duration like 2h", text));
  return uint64_t(timegm(&tm)) * 1000000000ull;
}

}  // namespace

int check(const std::string& config_file) {
  auto config = config::load(config_file);
  if (!config) return error_exit(config.error().message);
  auto validator = identity::Validator::create(config->identity.issuers, config->identity.options);
  if (!validator) return error_exit(validator.error().message);
  auto policies = mask::compile_policies(*config);
  if (!policies) return error_exit(policies.error().message);
  size_t rules = 0;
  for (const auto& c : config->connections)
    rules += c.guardrails.deny.size() + c.guardrails.approve.size() + c.guardrails.mask.size();
  fmt::print("{}: ok ({} listeners, {} connections, {} issuers, {} guardrail rules)\n", config_file,
             config->listeners.size(), config->connections.size(), config->identity.issuers.size(),
             rules);
  return 0;
}

int serve(const ServeOptions& options) {
  auto config = config::load(options.config_file);
  if (!config) return error_exit(config.error().message);
  auto validator = identity::Validator::create(config->identity.issuers, config->identity.options);
  if (!validator) return error_exit(validator.error().message);
  auto revocations = identity::RevocationRegistry::open(config->identity.revocations_file);
  if (!revocations) return error_exit("revocations: " + revocations.error().message);

  const uint32_t shards = options.shards != 0       ? options.shards
                          : config->engine.shards != 0 ? config->engine.shards
                                                       : uint32_t(engine::usable_cpus().size());

  // Every thread started from here on inherits the blocked signals; only sigwait sees them.
  engine::block_shutdown_signals();

  bool key_created = false;
  auto node_key = rec::load_or_create_node_key(config->recording.node_key_file,
                                               config->recording.keyring_file, config->node_id,
                                               &key_created);
  if (!node_key) return error_exit("recording: " + node_key.error().message);
  if (key_created) {
    fmt::print(stderr, "gatehouse: created node key {} in {}\n", rec::key_id_hex((*node_key)->id()),
               config->recording.node_key_file);
  }

  rec::FlusherOptions recording;
  recording.key = *node_key;
  recording.anchor_file = config->recording.anchor_file;
  recording.checkpoint_interval_ms = config->recording.checkpoint_interval_s * 1000;
  recording.segment_age_ms = uint64_t(config->recording.segment_age_s) * 1000;
  recording.dir = config->recording.dir;
  recording.node_id = config->node_id;
  // The admin API records into a ring of its own, after the shards'.
  recording.shard_count = uint16_t(shards + (config->admin ? 1 : 0));
  recording.ring_bytes = config->recording.ring_bytes;
  recording.segment_bytes_max = config->recording.segment_bytes_max;
  recording.flush_interval_ms = config->recording.flush_interval_ms;
  recording.strict = config->recording.durability == config::Durability::kStrict;
  recording.on_error = [](const rec::FlushError& e) {
    fmt::print(stderr, "gatehouse: recording: {}\n", e.message);
  };
  // The catalog feed outlives the flusher (declared first) and is set before the flusher's
  // thread starts, once the flusher holds the trail's lock.
  std::unique_ptr<rec::CatalogFeed> catalog;
  recording.on_written = [&catalog](uint16_t shard, uint64_t segment,
                                    std::span<const std::byte> records) {
    if (catalog) catalog->observe(shard, segment, records);
  };
  auto flusher = rec::Flusher::create(recording);
  if (!flusher) return error_exit("recording: " + flusher.error().message);
  if (!config->recording.catalog_file.empty()) {
    rec::CatalogFeedOptions feed_options;
    feed_options.file = config->recording.catalog_file;
    feed_options.trail_dir = config->recording.dir;
    feed_options.on_error = [](const std::string& message) {
      fmt::print(stderr, "gatehouse: {}\n", message);
    };
    auto feed = rec::CatalogFeed::start(std::move(feed_options));
    if (feed) {
      catalog = std::move(*feed);
    } else {
      // The segments are the truth: the gateway records without its index.
      fmt::print(stderr, "gatehouse: catalog: {}; recording without it (gatehouse reindex "
                         "rebuilds it after the gateway stops)\n", feed.error().message);
    }
  }
  if (auto r = (*flusher)->start(); !r) return error_exit("recording: " + r.error().message);

  std::vector<rec::Ring*> rings;
  for (uint32_t i = 0; i < shards; ++i) rings.push_back(&(*flusher)->ring(uint16_t(i)));
  // Approval holds: reviews are decided on the admin API (the config requires it with approve
  // rules); a configured webhook hears of each new one off the shard threads.
  std::unique_ptr<ReviewWebhook> webhook;
  if (config->admin && !config->admin->review_webhook_url.empty())
    webhook = std::make_unique<ReviewWebhook>(config->admin->review_webhook_url);
  review::ReviewStore reviews({}, [&webhook](const review::Review& r) {
    if (webhook) webhook->notify(r);
  });
  auto gateway = pg::Gateway::create(*config, *validator, rings, revocations->get(),
                                     config->admin ? &reviews : nullptr);
  if (!gateway) return error_exit(gateway.error().message);
  auto ssh_gateway = ssh::Gateway::create(*config, *validator, rings, revocations->get(),
                                          config->admin ? &reviews : nullptr);
  if (!ssh_gateway) return error_exit(ssh_gateway.error().message);

  std::vector<engine::ListenerSpec> listeners;
  for (uint32_t i = 0; i < config->listeners.size(); ++i) {
    const auto& l = config->listeners[i];
    listeners.push_back(engine::ListenerSpec{
        .info = {.name = l.name, .protocol = l.protocol, .loopback = l.address.loopback, .index = i},
        .address = l.address.storage,
        .address_length = l.address.length,
        .factory = l.protocol == "ssh" ? static_cast<engine::SessionFactory*>(&(*ssh_gateway)->factory())
                                       : &(*gateway)->factory()});
  }

  engine::ServerOptions server_options;
  server_options.shards = shards;
  server_options.pin = config->engine.pin;
  server_options.shard.buffers.ring_buffer_count = config->engine.buffer_count;
  server_options.shard.buffers.buffer_bytes = config->engine.buffer_bytes;
  server_options.shard.connections_max = config->engine.connections_per_shard_max;
  server_options.shard.drain_timeout_ms = config->engine.drain_timeout_ms;
  server_options.shard.policy_epoch = &(*revocations)->epoch();
  server_options.shard.review_epoch = &reviews.epoch();
  // Strict durability: a shard resumes its held statements as soon as their records are durable.
  for (rec::Ring* ring : rings) server_options.wake_fds.push_back(ring->durable_wake_fd());
  engine::Server server(server_options, std::move(listeners));
  if (auto r = server.start(); !r) {
    (void)(*flusher)->stop();
    return error_exit(r.error().message);
  }
  for (const auto& l : config->listeners) {
    fmt::print(stderr, "gatehouse: listening on {} ({}{})\n", l.address.text, l.protocol,
               l.tls ? ", TLS" : "");
  }
  std::unique_ptr<AdminRuntime> admin;
  if (config->admin) {
    auto started = AdminRuntime::start(
        *config, *validator, **revocations,
        config->recording.enabled ? &(*flusher)->ring(uint16_t(shards)) : nullptr, &reviews);
    if (!started) {
      server.request_stop();
      server.join();
      (void)(*flusher)->stop();
      return error_exit(started.error().message);
    }
    admin = std::move(*started);
    fmt::print(stderr, "gatehouse: admin API on {}\n", admin->url());
  }
  fmt::print(stderr, "gatehouse: ready: {} shards, io_uring {}, recording to {}\n",
             server.shard_count(), server.ring_features(), config->recording.dir);

  const int sig = engine::wait_for_shutdown_signal();
  fmt::print(stderr, "gatehouse: signal {}: draining\n", sig);
  if (admin) admin->stop();
  server.request_stop();
  server.join();
  auto stopped = (*flusher)->stop();
  if (catalog) catalog->stop();
  if (!stopped) return error_exit("recording: " + stopped.error().message);
  const auto counters = (*flusher)->counters();
  fmt::print(stderr, "gatehouse: stopped; {} records recorded\n", counters.records);
  return 0;
}

int keygen(const KeygenOptions& o) {
  std::string key = o.key_file;
  std::string jwks = o.jwks_file;
  if (!o.config_file.empty()) {
    auto config = config::load(o.config_file);
    if (!config) return error_exit(config.error().message);
    const auto& rc = config->recording;
    if (o.rotate_node_key) {
      auto fresh = rec::rotate_node_key(rc.node_key_file, rc.keyring_file, config->node_id);
      if (!fresh) return error_exit(fresh.error().message);
      fmt::print("node key {} written to {} (keyring {}); restart the gateway to sign with it\n",
                 rec::key_id_hex((*fresh)->id()), rc.node_key_file, rc.keyring_file);
      return 0;
    }
    auto node_key = rec::load_or_create_node_key(rc.node_key_file, rc.keyring_file, config->node_id);
    if (!node_key) return error_exit(node_key.error().message);
    fmt::print("node key {} in {} (keyring {})\n", rec::key_id_hex((*node_key)->id()),
               rc.node_key_file, rc.keyring_file);
    if (!config->identity.builtin) return error_exit(o.config_file + ": identity.builtin is not configured");
    if (key.empty()) key = config->identity.builtin->key_file;
    if (jwks.empty()) jwks = config->identity.builtin->jwks_file;
  }
  if (key.empty() || jwks.empty()) return error_exit("give --key and --jwks, or -c CONFIG");
  for (const std::string& file : {key, jwks}) {
    std::error_code ec;
    const auto parent = std::filesystem::path(file).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return error_exit(fmt::format("cannot create {}: {}", parent.string(), ec.message()));
  }
  auto kid = identity::keygen(key, jwks);
  if (!kid) return error_exit(kid.error().message);
  fmt::print("key {} written to {} (public JWKS: {})\n", *kid, key, jwks);
  return 0;
}

int token_issue(const TokenIssueOptions& o) {
  identity::TokenRequest request;
  std::string key = o.key_file;
  request.issuer = o.issuer;
  request.audience = o.audience;
  if (!o.config_file.empty()) {
    auto config = config::load(o.config_file);
    if (!config) return error_exit(config.error().message);
    if (!config->identity.builtin) return error_exit(o.config_file + ": identity.builtin is not configured");
    if (key.empty()) key = config->identity.builtin->key_file;
    if (request.issuer.empty()) request.issuer = config->identity.builtin->issuer;
    if (request.audience.empty()) request.audience = config->identity.builtin->audience;
  }
  if (key.empty()) return error_exit("give --key FILE or -c CONFIG");
  if (request.issuer.empty()) request.issuer = "gatehouse";
  if (request.audience.empty()) request.audience = "gatehouse";
  auto ttl = identity::parse_duration_s(o.ttl);
  if (!ttl) return error_exit("--ttl: " + ttl.error().message);
  request.subject = o.subject;
  request.groups = o.groups;
  request.ttl_s = *ttl;
  request.actors = o.actors;
  auto minter = identity::TokenMinter::load(key);
  if (!minter) return error_exit(minter.error().message);
  auto token = minter->issue(request, int64_t(std::time(nullptr)));
  if (!token) return error_exit(token.error().message);
  fmt::print("{}\n", *token);
  return 0;
}

int verify(const VerifyOptions& o) {
  rec::VerifyOptions options;
  std::optional<rec::Keyring> keyring;
  if (!o.keys_file.empty()) {
    auto loaded = rec::Keyring::load(o.keys_file);
    if (!loaded) return error_exit(loaded.error().message, 2);
    keyring = std::move(*loaded);
    options.keyring = &*keyring;
  }
  options.anchor_file = o.anchor_file;
  if (!o.bundle_file.empty()) {
    if (!keyring) return error_exit("verify --bundle needs --keys KEYRING", 2);
    auto bundle = rec::verify_bundle(o.bundle_file, *keyring);
    if (!bundle) return error_exit(bundle.error().message, 2);
    if (!bundle->ok()) {
      fmt::print("FAILED: {} line {}: {}\n", o.bundle_file, *bundle->failed_line, bundle->what);
      return 1;
    }
    fmt::print("ok: {} records of {} sessions from {} segments, signatures verified\n",
               bundle->records, bundle->sessions, bundle->segments);
    return 0;
  }
  if (o.dir.empty()) return error_exit("give the trail directory, or --bundle FILE", 2);
  auto report = rec::verify_trail(o.dir, options);
  if (!report) return error_exit(report.error().message, 2);
  if (o.json) {
    fmt::print("{}\n", rec::dump_json(rec::verify_to_json(*report)));
  } else {
    fmt::print("{}\n", rec::format_verify(*report));
  }
  return report->ok() ? 0 : 1;
}

namespace {
Result<rec::SessionFilter> session_filter(const SessionsOptions& o) {
  rec::SessionFilter filter;
  filter.user = o.user;
  filter.chain_member = o.actor;
  filter.connection = o.connection;
  filter.limit = o.limit;
  for (const std::string& claim : o.claims) {
    const size_t eq = claim.find('=');
    if (eq == std::string::npos || eq == 0) return fail(fmt::format("--claim '{}': use name=value", claim));
    filter.claims.emplace_back(claim.substr(0, eq), claim.substr(eq + 1));
  }
  if (!o.since.empty()) {
    auto t = parse_time_ns(o.since);
    if (!t) return fail("--since: " + t.error().message);
    filter.from_ns = *t;
  }
  if (!o.until.empty()) {
    auto t = parse_time_ns(o.until);
    if (!t) return fail("--until: " + t.error().message);
    filter.to_ns = *t;
  }
  return filter;
}
}  // namespace

int sessions(const SessionsOptions& o) {
  auto dir = trail_dir(o.trail);
  if (!dir) return error_exit(dir.error().message, 2);
  auto filter = session_filter(o);
  if (!filter) return error_exit(filter.error().message, 2);
  auto catalog = catalog_file(o.trail, o.catalog_file, *dir);
  if (!catalog) return error_exit(catalog.error().message, 2);
  auto list = o.scan ? rec::list_sessions(*dir, *filter) : find_sessions(*dir, *catalog, *filter);
  if (!list) return error_exit(list.error().message, 2);
  if (o.trail.json) {
    fmt::print("{}\n", rec::dump_json(rec::sessions_to_json(*list)));
  } else {
    fmt::print("{}", rec::format_sessions_table(*list));
  }
  return 0;
}

int reindex(const ReindexOptions& o) {
  auto dir = trail_dir(o.trail);
  if (!dir) return error_exit(dir.error().message, 2);
  auto catalog = catalog_file(o.trail, o.catalog_file, *dir);
  if (!catalog) return error_exit(catalog.error().message, 2);
  auto report = rec::rebuild_sqlite_catalog(*dir, *catalog);
  if (!report) return error_exit(report.error().message, 1);
  if (!report->replaced.empty()) {
    fmt::print(stderr, "gatehouse: replaced an unreadable catalog ({})\n", report->replaced);
  }
  fmt::print("{}: {} sessions from {} records in {}\n", *catalog, report->sessions,
             report->records, *dir);
  return 0;
}

int replay(const TrailOptions& o, const std::string& session_id, bool asciicast, const std::string& channel) {
  auto dir = trail_dir(o);
  if (!dir) return error_exit(dir.error().message, 2);
  auto id = rec::parse_session_id(session_id);
  if (!id) return error_exit(fmt::format("'{}' is not a session id (hex)", session_id), 2);
  auto events = rec::load_session(*dir, *id);
  if (!events) return error_exit(events.error().message, 2);
  if (events->empty()) return error_exit(fmt::format("no session {} in {}", session_id, *dir), 1);
  if (asciicast) {
    auto cast = rec::format_asciicast(*events, channel.empty() ? std::nullopt : std::optional(channel));
    if (!cast) return error_exit(cast.error().message, 1);
    fmt::print("{}", *cast);
  } else if (o.json) {
    fmt::print("{}\n", rec::dump_json(rec::replay_to_json(*events)));
  } else {
    fmt::print("{}", rec::format_replay(*events));
  }
  return 0;
}

int export_bundle(const ExportOptions& o) {
  auto dir = trail_dir(o.select.trail);
  if (!dir) return error_exit(dir.error().message, 2);
  std::set<uint64_t> ids;
  if (!o.session_id.empty()) {
    auto id = rec::parse_session_id(o.session_id);
    if (!id) return error_exit(fmt::format("'{}' is not a session id (hex)", o.session_id), 2);
    ids.insert(*id);
  } else {
    auto filter = session_filter(o.select);
    if (!filter) return error_exit(filter.error().message, 2);
    auto catalog = catalog_file(o.select.trail, o.select.catalog_file, *dir);
    if (!catalog) return error_exit(catalog.error().message, 2);
    auto list = find_sessions(*dir, *catalog, *filter);
    if (!list) return error_exit(list.error().message, 2);
    for (const auto& s : *list) ids.insert(s.session_id);
  }
  if (ids.empty()) return error_exit("no session matches", 1);
  auto summary = rec::export_bundle(*dir, ids, o.out_file);
  if (!summary) return error_exit(summary.error().message, 2);
  fmt::print("{}: {} records of {} sessions from {} segments\n", o.out_file, summary->records,
             summary->sessions, summary->segments);
  if (summary->uncovered > 0) {
    fmt::print("note: {} newer records are not yet under a signed checkpoint and were left out\n",
               summary->uncovered);
  }
  return summary->records > 0 ? 0 : 1;
}

}  // namespace gh::app
