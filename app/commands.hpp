// The gatehouse subcommands. This folder is the composition root: it may depend on every module,
// and no module depends on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gh::app {

struct ServeOptions {
  std::string config_file;
  uint32_t shards = 0;  // 0: from the config (default one per core)
};
int serve(const ServeOptions&);
int check(const std::string& config_file);

struct KeygenOptions {
  std::string config_file;  // takes key and JWKS paths from identity.builtin
  std::string key_file;
  std::string jwks_file;
  bool rotate_node_key = false;  // replace recording.node_key_file, keeping the old one's public key
};
int keygen(const KeygenOptions&);

struct TokenIssueOptions {
  std::string config_file;
  std::string key_file;
  std::string issuer;
  std::string audience;
  std::string subject;
  std::vector<std::string> groups;
  std::string ttl = "15m";
  std::vector<std::string> actors;
};
int token_issue(const TokenIssueOptions&);

struct TrailOptions {
  std::string config_file;  // takes recording.dir from it
  std::string dir;
  bool json = false;
};
struct VerifyOptions {
  std::string dir;
  std::string keys_file;     // keyring: signatures are checked when given
  std::string anchor_file;   // recording.anchor_file: truncation and deletion are caught
  std::string bundle_file;   // instead of a trail: an export bundle, checked on its own
  bool json = false;
};
int verify(const VerifyOptions&);
struct SessionsOptions {
  TrailOptions trail;
  std::string catalog_file;  // default: recording.catalog_file, else <dir>/catalog.sqlite
  bool scan = false;         // read the segments, not the catalog
  std::string user;
  std::string actor;
  std::string connection;
  std::vector<std::string> claims;  // name=value, CI provenance
  std::string since;
  std::string until;
  size_t limit = 0;  // 0: all
};
int sessions(const SessionsOptions&);
struct ReindexOptions {
  TrailOptions trail;
  std::string catalog_file;
};
int reindex(const ReindexOptions&);
// `asciicast`: the session's terminal channel (`channel`, or the first) as an asciicast v2 file.
int replay(const TrailOptions&, const std::string& session_id, bool asciicast = false,
           const std::string& channel = {});
struct ExportOptions {
  SessionsOptions select;  // the sessions filters; all sessions when none is given
  std::string session_id;  // instead of the filters: one session
  std::string out_file;
};
int export_bundle(const ExportOptions&);

}  // namespace gh::app
