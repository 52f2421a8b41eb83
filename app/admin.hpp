// The control plane's wiring (admin API server, its trail writer) and the subcommands that call
// the admin API (token exchange, revoke). Composition root: may depend on every module.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/admin/api.hpp"
#include "core/admin/audit.hpp"
#include "core/admin/http_server.hpp"
#include "core/config.hpp"
#include "core/identity/issuer.hpp"
#include "core/identity/jwt.hpp"
#include "core/identity/revocation.hpp"
#include "core/review.hpp"
#include "record/ring.hpp"

namespace gh::app {

// Admin events go into a ring of their own (the one after the shards'), so that the control
// plane never produces into a shard's ring; handler threads take turns as its one producer.
class RingAuditSink final : public admin::AuditSink {
 public:
  explicit RingAuditSink(rec::Ring& ring) : ring_(ring) {}
  Result<void> record(const admin::AuditEntry& entry) override;

 private:
  std::mutex mutex_;
  rec::Ring& ring_;
};

// Audit entries of a gateway that does not record (recording.enabled: false) go nowhere.
class DiscardAuditSink final : public admin::AuditSink {
 public:
  Result<void> record(const admin::AuditEntry&) override { return {}; }
};

// POSTs each new approval review to admin.reviews.webhook_url from a thread of its own, so that
// the shard that opened the review never waits on the network. Bounded: when the receiver falls
// far behind, notifications are dropped (and said so on stderr); reviews never are.
class ReviewWebhook {
 public:
  static constexpr size_t kQueuedMax = 256;
  explicit ReviewWebhook(std::string url);
  ~ReviewWebhook();
  void notify(const review::Review& review);  // any thread; never blocks on I/O

 private:
  void run();
  std::string base_url_;
  std::string path_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::string> queue_;  // JSON bodies
  bool stopping_ = false;
  std::thread thread_;
};

class AdminRuntime {
 public:
  // Starts the admin API of `config.admin` on its own threads. `ring` (may be null: not recorded)
  // receives the admin events; `reviews` (may be null) gets the review routes. Everything passed
  // must outlive the runtime.
  static Result<std::unique_ptr<AdminRuntime>> start(const config::Config& config,
                                                     const identity::Validator& validator,
                                                     identity::RevocationRegistry& revocations,
                                                     rec::Ring* ring,
                                                     review::ReviewStore* reviews = nullptr);
  ~AdminRuntime();
  void stop();
  std::string url() const;  // "http://127.0.0.1:7443"

 private:
  AdminRuntime() = default;
  std::unique_ptr<identity::TokenMinter> minter_;
  std::unique_ptr<admin::AuditSink> sink_;
  std::unique_ptr<admin::AdminApi> api_;
  std::unique_ptr<admin::HttpServer> server_;
  std::string host_;
};

struct AdminClientOptions {
  std::string config_file;  // takes admin.address (and its TLS) from it
  std::string admin_url;    // or this; else $GATEHOUSE_ADMIN
  std::string ca_file;      // HTTPS: trust these CAs
};

struct TokenExchangeOptions {
  AdminClientOptions admin;
  std::string subject_token;          // "@FILE" reads it from a file
  std::string actor_token;            // likewise
  std::string actor;                  // a service identity
  std::string scope;                  // groups, space- or comma-separated
  std::vector<std::string> audience;  // connections
  std::string ttl;
  bool json = false;  // print the whole RFC 8693 response
};
int token_exchange(const TokenExchangeOptions&);

struct RevokeOptions {
  AdminClientOptions admin;
  std::string token;  // an admin-group token ("@FILE"); else $GATEHOUSE_TOKEN
  std::string jti;
  std::string subject;
  std::string actor;
  std::string reason;
};
int revoke(const RevokeOptions&);

// `gatehouse review list | show ID | approve ID | deny ID --reason R`.
struct ReviewOptions {
  AdminClientOptions admin;
  std::string token;   // the approver's token ("@FILE"); else $GATEHOUSE_TOKEN
  std::string action;  // "list", "show", "approve", "deny"
  std::string id;
  std::string reason;  // deny
  std::string sha256;  // approve: the hash the approver checked; else the one `show` gives
  bool json = false;
};
int review(const ReviewOptions&);

}  // namespace gh::app
