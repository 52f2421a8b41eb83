// gatehouse command line: parses arguments with CLI11 and runs a subcommand.
// Holds no product logic; see commands.cpp and the modules.
#include <CLI/CLI.hpp>

#include "app/admin.hpp"
#include "app/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"gatehouse: an identity-aware gateway for CI/CD pipelines and their agents"};
  app.require_subcommand(1);

  gh::app::ServeOptions serve;
  auto* serve_cmd = app.add_subcommand("serve", "Run the gateway");
  serve_cmd->add_option("-c,--config", serve.config_file, "Configuration file")->required();
  serve_cmd->add_option("--shards", serve.shards, "Shards (threads); default one per core");

  std::string check_file;
  auto* check_cmd = app.add_subcommand("check", "Validate a configuration without serving");
  check_cmd->add_option("-c,--config", check_file, "Configuration file")->required();

  gh::app::KeygenOptions keygen;
  auto* keygen_cmd = app.add_subcommand("keygen", "Create the built-in issuer's Ed25519 key and JWKS");
  keygen_cmd->add_option("-c,--config", keygen.config_file, "Take paths from identity.builtin");
  keygen_cmd->add_option("--key", keygen.key_file, "Private key file to write (PEM, mode 0600)");
  keygen_cmd->add_option("--jwks", keygen.jwks_file, "Public JWKS file to write");
  keygen_cmd->add_flag("--rotate-node-key", keygen.rotate_node_key,
                       "With -c: replace the trail signing key (the old public key stays in the keyring)");

  auto* token_cmd = app.add_subcommand("token", "Mint tokens with the built-in issuer");
  token_cmd->require_subcommand(1);
  gh::app::TokenIssueOptions issue;
  auto* issue_cmd = token_cmd->add_subcommand("issue", "Issue a token");
  issue_cmd->add_option("-c,--config", issue.config_file, "Take key, issuer and audience from identity.builtin");
  issue_cmd->add_option("--key", issue.key_file, "Issuer private key (PEM)");
  issue_cmd->add_option("--iss", issue.issuer, "Issuer (iss)");
  issue_cmd->add_option("--aud", issue.audience, "Audience (aud)");
  issue_cmd->add_option("--sub", issue.subject, "Subject (sub)")->required();
  issue_cmd->add_option("--groups", issue.groups, "Groups, comma-separated or repeated")->delimiter(',');
  issue_cmd->add_option("--ttl", issue.ttl, "Lifetime: 90s, 15m, 2h, 1d")->default_val("15m");
  issue_cmd->add_option("--act", issue.actors,
                        "Actor acting for the subject; repeat in delegation order, earliest first");

  gh::app::VerifyOptions verify;
  auto* verify_cmd = app.add_subcommand("verify", "Verify a recorded trail: chain, seals, signatures, anchors");
  verify_cmd->add_option("dir", verify.dir, "Trail directory (recording.dir)");
  verify_cmd->add_option("--bundle", verify.bundle_file, "An export bundle, checked on its own (needs --keys)");
  verify_cmd->add_option("--keys", verify.keys_file, "Keyring (recording.keyring_file): check signatures");
  verify_cmd->add_option("--anchors", verify.anchor_file, "Anchor file (recording.anchor_file)");
  verify_cmd->add_flag("--json", verify.json, "JSON output");

  gh::app::TokenExchangeOptions exchange;
  auto* exchange_cmd = token_cmd->add_subcommand(
      "exchange", "Mint a narrower token for a sub-agent through the admin API (RFC 8693)");
  exchange_cmd->add_option("--subject-token", exchange.subject_token, "Your token (@FILE reads a file)")
      ->required();
  exchange_cmd->add_option("--actor-token", exchange.actor_token,
                           "The new actor's own token (@FILE reads a file)");
  exchange_cmd->add_option("--actor", exchange.actor, "Or a configured service identity as the new actor");
  exchange_cmd->add_option("--scope", exchange.scope, "Groups to keep (a subset), space- or comma-separated");
  exchange_cmd->add_option("--audience", exchange.audience, "Connections to keep (a subset); repeatable");
  exchange_cmd->add_option("--ttl", exchange.ttl, "Lifetime (90s, 15m, 2h); never past the subject token's");
  exchange_cmd->add_option("--admin", exchange.admin.admin_url, "Admin API URL (default: $GATEHOUSE_ADMIN)");
  exchange_cmd->add_option("-c,--config", exchange.admin.config_file, "Take the admin API address from it");
  exchange_cmd->add_option("--ca-file", exchange.admin.ca_file, "CA certificates for an HTTPS admin API");
  exchange_cmd->add_flag("--json", exchange.json, "Print the whole token response");

  gh::app::RevokeOptions revoke;
  auto* revoke_cmd = app.add_subcommand(
      "revoke", "Revoke a token (and every token minted from it), a subject or an actor");
  revoke_cmd->add_option("--jti", revoke.jti, "A token id");
  revoke_cmd->add_option("--subject", revoke.subject, "A subject (sub)");
  revoke_cmd->add_option("--actor", revoke.actor, "A member of any chain");
  revoke_cmd->add_option("--reason", revoke.reason, "Why (recorded)");
  revoke_cmd->add_option("--token", revoke.token, "Admin-group token (@FILE; default: $GATEHOUSE_TOKEN)");
  revoke_cmd->add_option("--admin", revoke.admin.admin_url, "Admin API URL (default: $GATEHOUSE_ADMIN)");
  revoke_cmd->add_option("-c,--config", revoke.admin.config_file, "Take the admin API address from it");
  revoke_cmd->add_option("--ca-file", revoke.admin.ca_file, "CA certificates for an HTTPS admin API");

  // review list | show ID | approve ID | deny ID --reason R
  gh::app::ReviewOptions review;
  auto* review_cmd = app.add_subcommand("review", "List, show, approve or deny held statements");
  review_cmd->require_subcommand(1);
  const auto review_common = [&](CLI::App* cmd) {
    cmd->add_option("--token", review.token, "The approver's token (@FILE; default: $GATEHOUSE_TOKEN)");
    cmd->add_option("--admin", review.admin.admin_url, "Admin API URL (default: $GATEHOUSE_ADMIN)");
    cmd->add_option("-c,--config", review.admin.config_file, "Take the admin API address from it");
    cmd->add_option("--ca-file", review.admin.ca_file, "CA certificates for an HTTPS admin API");
    cmd->add_flag("--json", review.json, "JSON output");
  };
  auto* review_list = review_cmd->add_subcommand("list", "Reviews you may decide, newest first");
  review_common(review_list);
  auto* review_show = review_cmd->add_subcommand("show", "One review with its statement and SHA-256");
  review_show->add_option("id", review.id, "Review id")->required();
  review_common(review_show);
  auto* review_approve = review_cmd->add_subcommand(
      "approve", "Approve a held statement (bound to the SHA-256 of the statement shown)");
  review_approve->add_option("id", review.id, "Review id")->required();
  review_approve->add_option("--sha256", review.sha256,
                             "The statement hash you checked (default: the one `show` gives now)");
  review_common(review_approve);
  auto* review_deny = review_cmd->add_subcommand("deny", "Deny a held statement");
  review_deny->add_option("id", review.id, "Review id")->required();
  review_deny->add_option("--reason", review.reason, "Why (told to the requester, recorded)")->required();
  review_common(review_deny);

  gh::app::SessionsOptions sessions;
  auto* sessions_cmd = app.add_subcommand("sessions", "List recorded sessions");
  sessions_cmd->add_option("-c,--config", sessions.trail.config_file, "Take the trail from recording.dir");
  sessions_cmd->add_option("--dir", sessions.trail.dir, "Trail directory");
  sessions_cmd->add_option("--user", sessions.user, "Database user given at login");
  sessions_cmd->add_option("--actor", sessions.actor, "Anyone in the identity chain");
  sessions_cmd->add_option("--connection", sessions.connection, "Connection name");
  sessions_cmd->add_option("--claim", sessions.claims, "CI provenance claim name=value; repeatable");
  sessions_cmd->add_option("--since", sessions.since, "Active at or after (RFC 3339 UTC, or a duration ago: 2h)");
  sessions_cmd->add_option("--until", sessions.until, "Started at or before (same forms)");
  sessions_cmd->add_option("--catalog", sessions.catalog_file,
                           "Catalog file (default: recording.catalog_file, or DIR/catalog.sqlite)");
  sessions_cmd->add_option("--limit", sessions.limit, "At most this many sessions (the earliest)");
  sessions_cmd->add_flag("--scan", sessions.scan,
                         "Read the segments (the truth) instead of the catalog: slower, never behind");
  sessions_cmd->add_flag("--json", sessions.trail.json, "JSON output");

  gh::app::ReindexOptions reindex;
  auto* reindex_cmd = app.add_subcommand("reindex", "Rebuild the session catalog from the segments");
  reindex_cmd->add_option("dir", reindex.trail.dir, "Trail directory (recording.dir)");
  reindex_cmd->add_option("-c,--config", reindex.trail.config_file, "Take the trail and catalog from it");
  reindex_cmd->add_option("--catalog", reindex.catalog_file,
                          "Catalog file (default: recording.catalog_file, or DIR/catalog.sqlite)");

  gh::app::TrailOptions replay;
  std::string replay_id;
  auto* replay_cmd = app.add_subcommand("replay", "Print one recorded session in order");
  replay_cmd->add_option("id", replay_id, "Session id (hex)")->required();
  replay_cmd->add_option("-c,--config", replay.config_file, "Take the trail from recording.dir");
  replay_cmd->add_option("--dir", replay.dir, "Trail directory");
  replay_cmd->add_flag("--json", replay.json, "JSON output");
  bool replay_asciicast = false;
  std::string replay_channel;
  replay_cmd->add_flag("--asciicast", replay_asciicast,
                       "An SSH terminal session as an asciicast v2 file (asciinema play)");
  replay_cmd->add_option("--channel", replay_channel, "With --asciicast: the SSH channel (default: the first terminal)");

  gh::app::ExportOptions exported;
  auto* export_cmd = app.add_subcommand("export", "Export sessions' records with Merkle proofs and signed roots (JSON Lines)");
  export_cmd->add_option("-c,--config", exported.select.trail.config_file, "Take the trail from recording.dir");
  export_cmd->add_option("--dir", exported.select.trail.dir, "Trail directory");
  export_cmd->add_option("--session", exported.session_id, "One session (hex id)");
  export_cmd->add_option("--user", exported.select.user, "Database user given at login");
  export_cmd->add_option("--actor", exported.select.actor, "Anyone in the identity chain");
  export_cmd->add_option("--connection", exported.select.connection, "Connection name");
  export_cmd->add_option("--since", exported.select.since, "Active at or after (RFC 3339 UTC, or a duration ago: 2h)");
  export_cmd->add_option("--until", exported.select.until, "Started at or before (same forms)");
  export_cmd->add_option("--out", exported.out_file, "Bundle file to write")->required();

  CLI11_PARSE(app, argc, argv);

  if (*serve_cmd) return gh::app::serve(serve);
  if (*check_cmd) return gh::app::check(check_file);
  if (*keygen_cmd) return gh::app::keygen(keygen);
  if (*issue_cmd) return gh::app::token_issue(issue);
  if (*exchange_cmd) return gh::app::token_exchange(exchange);
  if (*revoke_cmd) return gh::app::revoke(revoke);
  if (*review_cmd) {
    review.action = *review_list ? "list" : *review_show ? "show" : *review_approve ? "approve" : "deny";
    return gh::app::review(review);
  }
  if (*verify_cmd) return gh::app::verify(verify);
  if (*sessions_cmd) return gh::app::sessions(sessions);
  if (*reindex_cmd) return gh::app::reindex(reindex);
  if (*replay_cmd) return gh::app::replay(replay, replay_id, replay_asciicast, replay_channel);
  if (*export_cmd) return gh::app::export_bundle(exported);
  return 2;
}
