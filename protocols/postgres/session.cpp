// PostgreSQL session state machine over core's Connection: startup and token login on the client
// side, gateway-held credentials on the upstream side, then message relay with recording.
// Must not do socket I/O or hold policy rules; bytes go through the codec, records into the ring.
#include "protocols/postgres/session.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <array>
#include <cstring>
#include <ctime>
#include <memory>

#include <fmt/format.h>

#include "core/access.hpp"
#include "protocols/postgres/auth/md5_password.hpp"
#include "protocols/postgres/auth/sasl_mechanisms.hpp"
#include "protocols/postgres/codec/encoder.hpp"
#include "protocols/postgres/extended.hpp"
#include "protocols/postgres/guard.hpp"
#include "record/limits.hpp"
#include "record/event.hpp"
#include "record/session_recorder.hpp"
#include "record/result_budget.hpp"

namespace gh::pg {

using engine::Connection;
using engine::Link;
using engine::Side;
using rec::EventType;
using rec::Field;
using rec::FieldTag;

int32_t gateway_process_id(uint32_t shard, uint32_t slot) {
  return int32_t((shard << 24) | (slot + 1));
}

bool decode_gateway_process_id(int32_t pid, uint32_t& shard, uint32_t& slot) {
  if (pid <= 0) return false;
  const uint32_t low = uint32_t(pid) & 0xffffff;
  if (low == 0) return false;
  shard = uint32_t(pid) >> 24;
  slot = low - 1;
  return true;
}

namespace {

// SQLSTATEs the gateway itself raises (PostgreSQL Error Codes appendix).
constexpr std::string_view kInvalidPassword = "28P01";
constexpr std::string_view kInvalidAuthorization = "28000";
constexpr std::string_view kProtocolViolation = "08P01";
constexpr std::string_view kConnectionFailure = "08006";
constexpr std::string_view kUnableToConnect = "08001";
constexpr std::string_view kRejectedConnection = "08004";
constexpr std::string_view kFeatureNotSupported = "0A000";
constexpr std::string_view kProgramLimitExceeded = "54000";
constexpr std::string_view kAdminShutdown = "57P01";
constexpr std::string_view kDiskFull = "53100";
constexpr std::string_view kIoError = "58030";

Bytes as_bytes(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }
std::string_view as_text(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

uint32_t read_be32(const std::byte* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

uint64_t random_u64() {
  uint64_t v = 0;
  GH_ASSERT(RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) == 1);
  return v;
}

// One frame of one side made whole: a view into the receive buffer when the frame sits in one
// slice (zero copy), otherwise copied in as bytes arrive, so frames larger than the engine's
// receive backlog still complete.
class Gather {
 public:
  bool active() const { return active_; }
  uint64_t frame_bytes() const { return frame_bytes_; }

  std::optional<Bytes> take(Link& link, uint64_t frame_bytes) {
    active_ = true;
    frame_bytes_ = frame_bytes;
    if (buffer_.empty()) {
      const auto front = link.front();
      if (front.size() >= frame_bytes) {
        in_place_ = true;
        return front.first(frame_bytes);
      }
    }
    in_place_ = false;
    const uint64_t n = std::min<uint64_t>(frame_bytes - buffer_.size(), link.readable());
    if (n > 0) {
      const size_t old = buffer_.size();
      buffer_.resize(old + n);
      link.peek(0, std::span(reinterpret_cast<std::byte*>(buffer_.data()) + old, n));
      link.consume(n);
    }
    if (buffer_.size() < frame_bytes) return std::nullopt;
    return as_bytes(buffer_);
  }

  // The frame goes on to the other side: moved without copying when it is still in place.
  void forward(Connection& c, Side from) {
    if (in_place_) {
      c.forward(from, frame_bytes_);
    } else {
      c.link(engine::other(from)).write(buffer_);
    }
    reset();
  }
  // The frame was for the gateway alone.
  void drop(Link& link) {
    if (in_place_) link.consume(frame_bytes_);
    reset();
  }

 private:
  void reset() {
    active_ = false;
    in_place_ = false;
    frame_bytes_ = 0;
    if (buffer_.capacity() > (64u << 10)) {
      std::string().swap(buffer_);
    } else {
      buffer_.clear();
    }
  }

  std::string buffer_;
  uint64_t frame_bytes_ = 0;
  bool active_ = false;
  bool in_place_ = false;
};

// Forwards a CancelRequest to the upstream backend on a connection of its own, then closes.
class CancelForwarder final : public engine::ProtocolSession {
 public:
  CancelForwarder(int32_t pid, int32_t key) : pid_(pid), key_(key) {}
  void on_start(Connection&) override {}
  void on_input(Connection& c, Side side) override { c.link(side).consume(c.link(side).readable()); }
  void on_upstream_connected(Connection& c, int error) override {
    if (error == 0) {
      std::string out;
      encode_cancel_request(out, pid_, key_);
      c.upstream().write(out);
    }
    c.close();
  }
  void on_peer_closed(Connection& c, const engine::PeerClosed&) override { c.close(); }

 private:
  int32_t pid_;
  int32_t key_;
};

class Session final : public engine::ProtocolSession {
 public:
  Session(const GatewayContext& ctx, uint32_t shard)
      : ctx_(ctx), shard_(shard), startup_decoder_(ctx.limits), recorder_(random_u64()) {}

  ~Session() override {
    // A held statement whose client is gone is never run; its review says so.
    if (hold_) hold_->ticket.settle(review::State::kCancelled);
  }

  void on_start(Connection& c) override {
    c.set_deadline_ms(ctx_.config->engine.auth_timeout_ms);
  }

  void on_input(Connection& c, Side) override { pump(c); }
  void on_resume(Connection& c) override { pump(c); }

  void on_upstream_connected(Connection& c, int error) override {
    if (error != 0) {
      fail_session(c, kUnableToConnect, "gatehouse could not connect to the upstream database",
                   fmt::format("upstream connect to {} failed: {}",
                               connection_->upstream.address.text, strerror(error)));
      return;
    }
    if (connection_->upstream.tls != config::UpstreamTls::kDisable) {
      std::string out;
      encode_ssl_request(out);
      c.upstream().write(out);
      phase_ = Phase::kUpstreamSsl;
    } else {
      send_upstream_startup(c);
    }
    pump(c);
  }

  void on_peer_closed(Connection& c, const engine::PeerClosed& closed) override {
    if (closed.side == Side::kClient) {
      if (c.upstream().is_open()) {
        std::string out;
        encode_terminate(out);
        c.upstream().write(out);
      }
      return end_session(c, closed.error == 0 ? "client disconnected"
                                              : fmt::format("client connection error: {}",
                                                            closed.detail.empty() ? strerror(closed.error)
                                                                                  : std::string(closed.detail)));
    }
    if (upstream_sent_fatal_) return end_session(c, "upstream ended the session");
    std::string why = closed.error == 0 ? std::string("upstream closed the connection")
                                        : fmt::format("upstream connection error: {}",
                                                      closed.detail.empty() ? strerror(closed.error)
                                                                            : std::string(closed.detail));
    if (phase_ < Phase::kReady) {
      // Never logged in (refused TLS certificate, reset during login): a connect failure.
      fail_session(c, kUnableToConnect, "gatehouse could not connect to the upstream database", why);
      return;
    }
    fail_session(c, kConnectionFailure, "the upstream database connection was lost", why);
  }

  void on_deadline(Connection& c) override {
    if (phase_ == Phase::kReady) {
      // A held statement's review timed out (unless it was decided a moment ago).
      if (hold_) {
        hold_->ticket.settle(review::State::kExpired);
        pump(c);
      }
      return;
    }
    fail_session(c, kConnectionFailure, "canceling authentication due to timeout",
                 fmt::format("login not complete within its deadline (phase {})", phase_name()));
  }

  void on_control(Connection& c, uint32_t value) override {
    // A CancelRequest for this session arrived (on any shard) with this secret key.
    if (value != uint32_t(gateway_key_) || upstream_pid_ == 0 || phase_ != Phase::kReady) return;
    if (hold_ && hold_->ticket.settle(review::State::kCancelled)) {
      // The held statement never reached the server: the gateway cancels it itself.
      pump(c);
      return;
    }
    const auto& address = connection_->upstream.address;
    c.open_outbound(address.storage, address.length,
                    std::make_unique<CancelForwarder>(upstream_pid_, upstream_key_));
    record(c, EventType::kNotice,
           {Field{FieldTag::kMessage, "cancel request forwarded to the upstream backend"}});
  }

  void on_policy_changed(Connection& c) override {
    // A session still logging in is checked when it authenticates, like every other.
    if (!started_ || phase_ == Phase::kDone || c.closing()) return;
    const gh::identity::Revocation* revoked = ctx_.shards[shard_]->revocations.get().find(identity_);
    if (revoked != nullptr) {
      end_revoked(c, "token revoked: " + gh::identity::describe(*revoked));
      return;
    }
    if (hold_) pump(c);  // its review may have been decided
  }

  void on_drain(Connection& c) override {
    drain_requested_ = true;
    if (hold_ && hold_->ticket.settle(review::State::kCancelled)) pump(c);
    if (phase_ != Phase::kReady || awaiting_ready_ == 0) finish_drain(c);
  }

 private:
  enum class Phase : uint8_t {
    kStartup,
    kAwaitPassword,
    kConnecting,
    kUpstreamSsl,
    kUpstreamAuth,
    kUpstreamStartup,
    kReady,
    kDone,
  };

  const char* phase_name() const {
    switch (phase_) {
      case Phase::kStartup: return "startup";
      case Phase::kAwaitPassword: return "await-password";
      case Phase::kConnecting: return "connecting";
      case Phase::kUpstreamSsl: return "upstream-ssl";
      case Phase::kUpstreamAuth: return "upstream-auth";
      case Phase::kUpstreamStartup: return "upstream-startup";
      case Phase::kReady: return "ready";
      case Phase::kDone: return "done";
    }
    return "?";
  }

  // ---- the processing loop ---------------------------------------------------------------------

  void pump(Connection& c) {
    while (true) {
      if (!flush_pending_records(c)) return;  // the ring is full: nothing moves meanwhile
      if (phase_ == Phase::kDone || c.closing()) return;
      bool progress = false;
      switch (phase_) {
        case Phase::kStartup: progress = step_startup(c); break;
        case Phase::kAwaitPassword: progress = step_password(c); break;
        case Phase::kConnecting: break;
        case Phase::kUpstreamSsl: progress = step_upstream_ssl(c); break;
        case Phase::kUpstreamAuth: progress = step_upstream_auth(c); break;
        case Phase::kUpstreamStartup: progress = step_upstream_startup(c); break;
        case Phase::kReady:
          progress = step_client_ready(c);
          if (phase_ == Phase::kReady) progress |= step_upstream_ready(c);
          break;
        case Phase::kDone: break;
      }
      if (!progress) return;
    }
  }

  // Ends the session with a FATAL error; returns true so that steps can `return stop(...)`.
  bool stop(Connection& c, std::string_view sqlstate, std::string_view client_message,
            std::string_view reason) {
    fail_session(c, sqlstate, client_message, reason);
    return true;
  }

  // The size of the frame being gathered on a side, or of the next one by its header.
  // nullopt: header incomplete, or invalid (then the session has been failed: check phase_).
  std::optional<uint64_t> next_frame_bytes(Connection& c, Side side) {
    Gather& g = gather_[static_cast<int>(side)];
    if (g.active()) return g.frame_bytes();
    auto header = peek_header(c.link(side), side);
    if (!header) return std::nullopt;
    if (header->status == Status::kError) {
      if (side == Side::kClient) {
        stop(c, kProtocolViolation, "invalid frontend message",
             fmt::format("client message '{}': {}", header->header.type, describe(header->error)));
      } else {
        stop(c, kConnectionFailure, "the upstream database connection was lost",
             fmt::format("upstream message '{}': {}", header->header.type, describe(header->error)));
      }
      return std::nullopt;
    }
    return uint64_t(header->header.length) + 1;
  }

  // Reads the next typed message header on a side; nullopt when fewer than 5 bytes are there.
  std::optional<HeaderDecoded> peek_header(Link& link, Side side) {
    std::array<std::byte, kTypedHeaderBytes> head;
    if (link.readable() < head.size()) return std::nullopt;
    link.peek(0, head);
    return side == Side::kClient ? decode_frontend_header(head, ctx_.limits)
                                 : decode_backend_header(head, ctx_.limits);
  }

  // ---- client startup ---------------------------------------------------------------------------

  bool step_startup(Connection& c) {
    Link& in = c.client();
    uint64_t frame_bytes = gather_[0].frame_bytes();
    if (!gather_[0].active()) {
      std::array<std::byte, 4> length;
      if (in.readable() < length.size()) return false;
      in.peek(0, length);
      frame_bytes = read_be32(length.data());
      if (frame_bytes < kStartupHeaderBytes || frame_bytes > ctx_.limits.startup_bytes_max) {
        return stop(c, kProtocolViolation, "invalid length of startup packet",
                            fmt::format("startup packet length {}", frame_bytes));
      }
    }
    auto frame = gather_[0].take(in, frame_bytes);
    if (!frame) return false;
    FrontendDecoded d = startup_decoder_.next(*frame);
    if (d.status != Status::kMessage) {
      return stop(c, kProtocolViolation, "invalid startup packet layout",
                          fmt::format("startup packet: {}", describe(d.error)));
    }
    if (std::holds_alternative<SslRequest>(d.message)) {
      gather_[0].drop(in);
      // Bytes sent after SSLRequest but before the handshake could be injected by a
      // man-in-the-middle (CVE-2021-23214): refuse the connection.
      if (in.readable() > 0 || c.client().tls_active()) {
        return fail_silently(c, "bytes received after SSLRequest before the TLS handshake");
      }
      const tls::ServerContext* tls = ctx_.listener_tls[c.listener()->index];
      std::string out;
      encode_ssl_answer(out, tls != nullptr);
      c.client().write(out);
      if (tls != nullptr) {
        if (auto r = c.start_tls_server(Side::kClient, *tls); !r)
          return fail_silently(c, "TLS setup failed: " + r.error().message);
      }
      return true;
    }
    if (std::holds_alternative<GssEncRequest>(d.message)) {
      gather_[0].drop(in);
      if (in.readable() > 0) return fail_silently(c, "bytes received after GSSENCRequest");
      std::string out;
      encode_gssenc_answer(out, false);
      c.client().write(out);
      return true;
    }
    if (const auto* cancel = std::get_if<CancelRequest>(&d.message)) {
      gather_[0].drop(in);
      route_cancel(c, *cancel);
      phase_ = Phase::kDone;
      c.close();  // PostgreSQL answers a CancelRequest with nothing at all
      return true;
    }
    const auto& startup = std::get<StartupMessage>(d.message);
    return accept_startup(c, startup);
  }

  void route_cancel(Connection& c, const CancelRequest& cancel) {
    uint32_t shard = 0;
    uint32_t slot = 0;
    if (!decode_gateway_process_id(cancel.process_id, shard, slot)) return;
    c.post_control(shard, slot, uint32_t(cancel.secret_key));
  }

  bool accept_startup(Connection& c, const StartupMessage& startup) {
    const bool encrypted = c.client().tls_active();
    const config::ListenerConfig& listener_config = ctx_.config->listeners[c.listener()->index];
    user_ = std::string(startup.parameter("user").value_or(""));
    database_ = std::string(startup.parameter("database").value_or(user_));
    std::vector<std::string> unsupported_options;
    bool replication = false;
    startup.for_each_parameter([&](std::string_view name, std::string_view value) {
      if (name == "user" || name == "database") return;
      if (name.starts_with("_pq_.")) {
        unsupported_options.emplace_back(name);
        return;
      }
      if (name == "replication") {
        replication = value != "false" && value != "off" && value != "no" && value != "0";
        return;
      }
      client_parameters_.emplace_back(name, value);
    });
    gather_[0].drop(c.client());

    if (!encrypted && !c.listener()->loopback && !listener_config.allow_plaintext) {
      return stop(c, kInvalidAuthorization,
                          "gatehouse requires TLS on this listener (use sslmode=require)",
                          "plaintext startup on a non-loopback listener");
    }
    if (user_.empty()) {
      return stop(c, kInvalidAuthorization, "no PostgreSQL user name specified in startup packet",
                          "startup packet without user");
    }
    if (replication) {
      return stop(c, kFeatureNotSupported, "replication connections are not supported by gatehouse",
                          "replication startup refused");
    }
    if (startup.minor_version() > 0 || !unsupported_options.empty()) {
      // Protocol 3.0 only: tell the client, which then continues with 3.0 (Message Flow, Start-up).
      const std::vector<std::string_view> names(unsupported_options.begin(), unsupported_options.end());
      std::string out;
      encode_negotiate_protocol_version(out, int32_t(kProtocolVersion30), names);
      c.client().write(out);
    }
    std::string out;
    encode_authentication_cleartext_password(out);
    c.client().write(out);
    phase_ = Phase::kAwaitPassword;
    return true;
  }

  bool step_password(Connection& c) {
    Link& in = c.client();
    uint64_t frame_bytes = gather_[0].frame_bytes();
    if (!gather_[0].active()) {
      auto header = peek_header(in, Side::kClient);
      if (!header) return false;
      if (header->status == Status::kError || header->header.type != PasswordMessage::kType) {
        return stop(c, kProtocolViolation, "expected password response",
                    fmt::format("got message type '{}' ({}) instead of a password",
                                header->header.type, describe(header->error)));
      }
      frame_bytes = uint64_t(header->header.length) + 1;
    }
    auto frame = gather_[0].take(in, frame_bytes);
    if (!frame) return false;
    FrontendDecoded d = decode_frontend_frame(*frame, ctx_.limits);
    const auto* message = std::get_if<PasswordMessage>(&d.message);
    std::optional<std::string_view> token =
        d.status == Status::kMessage && message ? parse_password(message->body) : std::nullopt;
    if (!token) {
      gather_[0].drop(in);
      return stop(c, kProtocolViolation, "invalid password packet", "malformed PasswordMessage");
    }
    authenticate(c, *token);
    gather_[0].drop(in);
    return true;
  }

  // The token is the only proof of identity; every refusal looks the same to the client.
  void authenticate(Connection& c, std::string_view token) {
    const int64_t now_s = int64_t(std::time(nullptr));
    auto identity = ctx_.shards[shard_]->tokens.validate(token, now_s);
    std::string refusal;
    const config::ConnectionConfig* connection = nullptr;
    if (!identity) {
      refusal = identity.error().message;
    } else if ((connection = ctx_.config->find_connection(database_)) == nullptr ||
               connection->protocol != "postgres") {
      refusal = fmt::format("no connection named '{}'", database_);
    } else if (const gh::identity::Revocation* revoked =
                   ctx_.shards[shard_]->revocations.get().find(*identity)) {
      refusal = "token revoked: " + gh::identity::describe(*revoked);
    } else if (auto denied = access::refusal(*connection, *identity)) {
      refusal = std::move(*denied);
    }
    // CI provenance and the exchange lineage go into the records as they are (name=value).
    std::vector<std::string> claims;
    if (identity) {
      for (const auto& [name, value] : identity->provenance) claims.push_back(name + "=" + value);
    }
    if (!refusal.empty()) {
      std::vector<Field> fields{{FieldTag::kProtocol, "postgres"},
                                {FieldTag::kClientAddress, c.client_address()},
                                {FieldTag::kUser, user_},
                                {FieldTag::kDatabase, database_},
                                {FieldTag::kReason, refusal}};
      const std::vector<std::string> chain = identity ? identity->chain() : std::vector<std::string>{};
      for (const auto& m : chain) fields.push_back({FieldTag::kChainMember, m});
      if (identity) {
        for (const auto& claim : claims) fields.push_back({FieldTag::kClaim, claim});
        for (const auto& id : identity->lineage) fields.push_back({FieldTag::kTokenLineage, id});
      }
      record(c, EventType::kAuthFailure, fields);
      refuse(c, kInvalidPassword, fmt::format("password authentication failed for user \"{}\"", user_));
      return;
    }
    connection_ = connection;
    if (auto p = ctx_.policies.find(connection->name); p != ctx_.policies.end())
      guard_.start(p->second, &ctx_.shards[shard_]->scratch, &ctx_.shards[shard_]->classifications);
    std::vector<Field> fields{{FieldTag::kProtocol, "postgres"},
                              {FieldTag::kConnection, connection->name},
                              {FieldTag::kClientAddress, c.client_address()},
                              {FieldTag::kUser, user_},
                              {FieldTag::kDatabase, database_},
                              {FieldTag::kIssuer, identity->issuer},
                              {FieldTag::kTokenId, identity->token_id}};
    const std::vector<std::string> chain = identity->chain();
    for (const auto& m : chain) fields.push_back({FieldTag::kChainMember, m});
    for (const auto& g : identity->groups) fields.push_back({FieldTag::kGroup, g});
    for (const auto& claim : claims) fields.push_back({FieldTag::kClaim, claim});
    for (const auto& id : identity->lineage) fields.push_back({FieldTag::kTokenLineage, id});
    record(c, EventType::kSessionStart, fields);
    // Kept for on_policy_changed (revocation), which reads token id, lineage, subject and actors;
    // the rest is dropped so that an idle session stays small.
    identity_ = std::move(*identity);
    identity_.claims = nlohmann::json();
    identity_.groups = {};
    identity_.provenance = {};
    identity_.connections.reset();
    started_ = true;
    phase_ = Phase::kConnecting;
    c.set_deadline_ms(ctx_.config->engine.connect_timeout_ms);
    c.connect_upstream(connection->upstream.address.storage, connection->upstream.address.length);
  }

  // ---- upstream login with the gateway's own credentials -----------------------------------------

  void send_upstream_startup(Connection& c) {
    std::vector<StartupParameter> parameters;
    parameters.push_back({"user", connection_->upstream.user});
    parameters.push_back({"database", connection_->upstream.database});
    for (const auto& [name, value] : client_parameters_) parameters.push_back({name, value});
    std::string out;
    encode_startup_message(out, parameters);
    c.upstream().write(out);
    client_parameters_.clear();
    client_parameters_.shrink_to_fit();
    phase_ = Phase::kUpstreamAuth;
  }

  bool step_upstream_ssl(Connection& c) {
    Link& in = c.upstream();
    std::array<std::byte, 1> answer;
    if (in.peek(0, answer) == 0) return false;
    if (answer[0] == std::byte{'S'}) {
      in.consume(1);
      // As libpq does: nothing may follow 'S' before the handshake (CVE-2021-23222).
      if (in.readable() > 0) {
        return stop(c, kConnectionFailure, "the upstream database connection was lost",
                            "upstream sent bytes after accepting SSLRequest");
      }
      const tls::ClientContext* tls = ctx_.upstream_tls.at(connection_->name);
      if (auto r = c.start_tls_client(Side::kUpstream, *tls, connection_->upstream.server_name); !r) {
        return stop(c, kUnableToConnect, "gatehouse could not connect to the upstream database",
                            "upstream TLS setup: " + r.error().message);
      }
      send_upstream_startup(c);
      return true;
    }
    return stop(c, kUnableToConnect, "gatehouse could not connect to the upstream database",
                        "upstream refused TLS, which the connection's configuration requires");
  }

  // Takes the next whole upstream frame during login; nullopt when more input is needed.
  std::optional<BackendDecoded> next_upstream_frame(Connection& c, bool& failed) {
    Link& in = c.upstream();
    failed = false;
    auto frame_bytes = next_frame_bytes(c, Side::kUpstream);
    if (!frame_bytes) {
      failed = phase_ == Phase::kDone;
      return std::nullopt;
    }
    auto frame = gather_[1].take(in, *frame_bytes);
    if (!frame) return std::nullopt;
    BackendDecoded d = decode_backend_frame(*frame, ctx_.limits);
    if (d.status != Status::kMessage) {
      failed = true;
      gather_[1].drop(in);
      stop(c, kConnectionFailure, "the upstream database connection was lost",
           fmt::format("upstream protocol error: {}", describe(d.error)));
      return std::nullopt;
    }
    return d;
  }

  bool step_upstream_auth(Connection& c) {
    bool failed = false;
    auto d = next_upstream_frame(c, failed);
    if (!d) return failed;
    Link& in = c.upstream();
    if (const auto* error = std::get_if<ErrorResponse>(&d->message)) {
      const std::string detail = fmt::format("upstream refused the gateway's login: {} {}",
                                             error->field('C').value_or(""),
                                             error->field('M').value_or(""));
      gather_[1].drop(in);
      return stop(c, kRejectedConnection, "the upstream database refused gatehouse's login", detail);
    }
    const auto* auth = std::get_if<Authentication>(&d->message);
    if (auth == nullptr) {
      // NoticeResponse and NegotiateProtocolVersion during login concern the gateway only.
      gather_[1].drop(in);
      return true;
    }
    const auto& upstream = connection_->upstream;
    std::string out;
    Result<void> ok;
    switch (auth->code) {
      case Authentication::kOk:
        // A server that skips SASLFinal has not proven it knows the password: not trusted.
        if (scram_ && !scram_->server_verified()) {
          ok = fail("upstream ended SCRAM without proving the server signature");
          break;
        }
        if (scram_ && scram_->keys()) ctx_.shards[shard_]->scram_keys[connection_->name] = *scram_->keys();
        encode_authentication_ok(out);
        c.client().write(out);
        scram_.reset();  // no copy of the upstream password outlives the login
        phase_ = Phase::kUpstreamStartup;
        break;
      case Authentication::kCleartextPassword:
        if (!c.upstream().tls_active() && !connection_->upstream.address.loopback) {
          ok = fail("upstream asked for a cleartext password over an unencrypted connection");
          break;
        }
        encode_password_message(out, upstream.password);
        c.upstream().write(out);
        break;
      case Authentication::kMd5Password: {
        if (auth->data.size() != 4) {
          ok = fail("malformed MD5 salt");
          break;
        }
        auto response = md5_password_response(upstream.user, upstream.password,
                                              std::span<const std::byte, 4>(auth->data.data(), 4));
        if (!response) {
          ok = std::unexpected(response.error());
          break;
        }
        encode_password_message(out, *response);
        c.upstream().write(out);
        break;
      }
      case Authentication::kSasl: {
        auto mechanisms = parse_sasl_mechanisms(as_text(auth->data));
        if (!mechanisms || !mechanisms->scram_sha_256) {
          ok = fail("upstream offers no SASL mechanism gatehouse supports (SCRAM-SHA-256)");
          break;
        }
        scram_ = std::make_unique<ScramClient>(upstream.password);
        if (auto cached = ctx_.shards[shard_]->scram_keys.find(connection_->name);
            cached != ctx_.shards[shard_]->scram_keys.end()) {
          scram_->use_keys(cached->second);
        }
        const std::string first = scram_->client_first_message();
        encode_sasl_initial_response(out, "SCRAM-SHA-256", as_bytes(first));
        c.upstream().write(out);
        break;
      }
      case Authentication::kSaslContinue: {
        if (!scram_) {
          ok = fail("SASLContinue without SASL");
          break;
        }
        auto final_message = scram_->client_final_message(as_text(auth->data));
        if (!final_message) {
          ok = std::unexpected(final_message.error());
          break;
        }
        encode_sasl_response(out, as_bytes(*final_message));
        c.upstream().write(out);
        break;
      }
      case Authentication::kSaslFinal:
        if (!scram_) {
          ok = fail("SASLFinal without SASL");
          break;
        }
        ok = scram_->verify_server_final(as_text(auth->data));
        break;
      default:
        ok = fail(fmt::format("unsupported upstream authentication request {}", auth->code));
    }
    gather_[1].drop(in);
    if (!ok) {
      return stop(c, kRejectedConnection, "the upstream database refused gatehouse's login",
                          "upstream login: " + ok.error().message);
    }
    return true;
  }

  bool step_upstream_startup(Connection& c) {
    bool failed = false;
    auto d = next_upstream_frame(c, failed);
    if (!d) return failed;
    Link& in = c.upstream();
    if (const auto* key = std::get_if<BackendKeyData>(&d->message)) {
      upstream_pid_ = key->process_id;
      upstream_key_ = key->secret_key;
      gather_[1].drop(in);
      uint32_t secret = 0;
      GH_ASSERT(RAND_bytes(reinterpret_cast<unsigned char*>(&secret), sizeof secret) == 1);
      gateway_key_ = int32_t(secret);
      std::string out;
      encode_backend_key_data(out, gateway_process_id(shard_, c.slot()), gateway_key_);
      c.client().write(out);
      return true;
    }
    if (const auto* ready = std::get_if<ReadyForQuery>(&d->message)) {
      transaction_status_ = ready->status;
      gather_[1].forward(c, Side::kUpstream);
      phase_ = Phase::kReady;
      c.set_deadline_ms(0);
      if (drain_requested_) finish_drain(c);
      return true;
    }
    if (const auto* error = std::get_if<ErrorResponse>(&d->message)) {
      record_upstream_error(c, *error);
      gather_[1].forward(c, Side::kUpstream);
      return true;
    }
    if (std::holds_alternative<Authentication>(d->message)) {
      gather_[1].drop(in);
      return stop(c, kProtocolViolation, "the upstream database connection was lost",
                          "upstream sent an authentication request after AuthenticationOk");
    }
    if (const auto* status = std::get_if<ParameterStatus>(&d->message))
      guard_.on_parameter_status(status->name, status->value);
    gather_[1].forward(c, Side::kUpstream);  // ParameterStatus, NoticeResponse
    return true;
  }

  // ---- relay ----------------------------------------------------------------------------------

  bool step_client_ready(Connection& c) {
    Link& in = c.client();
    if (hold_) return step_hold(c);  // nothing after a held statement moves until it is decided
    if (durable_hold_) return release_held(c);
    if (stream_left_[0] > 0) return stream(c, Side::kClient);
    const bool started = gather_[0].active();
    auto frame_bytes = next_frame_bytes(c, Side::kClient);
    if (!frame_bytes) return phase_ == Phase::kDone;
    if (!started) {
      char type = 0;
      in.peek(0, std::span(reinterpret_cast<std::byte*>(&type), 1));
      switch (type) {
        case Query::kType:
        case Parse::kType:
          if (*frame_bytes > ctx_.statement_bytes_max) {
            return stop(c, kProgramLimitExceeded,
                        fmt::format("statement larger than gatehouse's limit of {} bytes",
                                    ctx_.statement_bytes_max),
                        fmt::format("statement of {} bytes refused", *frame_bytes));
          }
          break;
        case Terminate::kType:
          break;
        case Bind::kType:
          if (ctx_.config->recording.enabled && !note_bind(c, *frame_bytes)) return false;
          stream_left_[0] = *frame_bytes;
          return stream(c, Side::kClient);
        case Execute::kType:
        case Close::kType:
          if (extended_) break;  // small: gathered, recorded and followed below
          stream_left_[0] = *frame_bytes;
          return stream(c, Side::kClient);
        case FunctionCall::kType:
          end_cycle();  // a ReadyForQuery answers it
          // Judged whole below; strict durability holds it like any statement.
          if (guard_.sql_active() || strict_durability()) break;
          stream_left_[0] = *frame_bytes;
          return stream(c, Side::kClient);
        case Sync::kType:
          ++awaiting_ready_;
          end_cycle();
          stream_left_[0] = *frame_bytes;
          return stream(c, Side::kClient);
        default:
          stream_left_[0] = *frame_bytes;
          return stream(c, Side::kClient);
      }
    }
    auto frame = gather_[0].take(in, *frame_bytes);
    if (!frame) return false;
    FrontendDecoded d = decode_frontend_frame(*frame, ctx_.limits);
    if (d.status != Status::kMessage) {
      gather_[0].drop(in);
      return stop(c, kProtocolViolation, "invalid frontend message",
                          fmt::format("client message: {}", describe(d.error)));
    }
    if (const auto* query = std::get_if<Query>(&d.message)) {
      ++awaiting_ready_;
      end_cycle();
      record_statement(c, "query", query->sql);
      if (guard_.sql_active()) {
        if (auto v = guard_.judge(query->sql); !v.allowed()) {
          if (v.kind == mask::SqlVerdict::Kind::kApprove && ctx_.reviews != nullptr)
            return start_hold(c, v, query->sql, nullptr);
          return refuse_statement(c, v, nullptr);
        }
      }
    } else if (const auto* parse = std::get_if<Parse>(&d.message)) {
      record_statement(c, "parse", parse->query);
      note_parse(*parse);
      if (guard_.sql_active()) {
        if (auto v = guard_.judge(parse->query); !v.allowed()) {
          if (v.kind == mask::SqlVerdict::Kind::kApprove && ctx_.reviews != nullptr)
            return start_hold(c, v, parse->query, parse);
          return refuse_statement(c, v, parse);
        }
      }
    } else if (std::holds_alternative<FunctionCall>(d.message)) {
      // Only gathered when the connection has SQL rules or strict durability.
      ++awaiting_ready_;
      record_statement(c, "function_call", "");
      if (guard_.sql_active()) {
        if (auto v = guard_.judge_function_call(); !v.allowed()) return refuse_statement(c, v, nullptr);
      }
    } else if (std::holds_alternative<Terminate>(d.message)) {
      gather_[0].forward(c, Side::kClient);
      end_session(c, "client terminated");
      return true;
    } else if (const auto* execute = std::get_if<Execute>(&d.message)) {
      // Recorded, not held under strict durability: the Parse it runs was (record/FORMAT.md).
      record_execute(c, *execute);
      gather_[0].forward(c, Side::kClient);
      return true;
    } else if (const auto* close = std::get_if<Close>(&d.message)) {
      extended_->on_close(close->kind, close->name);
      gather_[0].forward(c, Side::kClient);
      return true;
    }
    if (strict_durability()) {
      const auto* parse = std::get_if<Parse>(&d.message);
      return hold_until_durable(c, parse != nullptr ? std::optional<std::string>(parse->statement)
                                                    : std::nullopt);
    }
    gather_[0].forward(c, Side::kClient);
    return true;
  }

  // A refused statement never reaches the server: a stand-in that fails to parse goes in its
  // place (a Query for a Query or FunctionCall, a Parse of the same name for a Parse), so that
  // the server aborts the transaction and, in the extended protocol, skips to Sync exactly as
  // after any error of its own; its syntax error comes back in order and is swapped for the
  // refusal (guard.hpp).
  bool refuse_statement(Connection& c, const mask::SqlVerdict& verdict, const Parse* parse) {
    return refuse_statement(c, verdict, parse != nullptr,
                            parse != nullptr ? parse->statement : std::string_view(),
                            Guard::refusal_message(verdict), verdict.reason);
  }
  bool refuse_statement(Connection& c, const mask::SqlVerdict& verdict, bool parse,
                        std::string_view statement_name, const std::string& message,
                        std::string_view detail) {
    const uint64_t ready = guard_.ready_count() + awaiting_ready_ + (parse ? 1 : 0);
    const std::string stand_in =
        guard_.stand_in(parse, statement_name, ready, Guard::refusal_error(message, detail));
    gather_[0].drop(c.client());
    record(c, EventType::kError,
           {Field{FieldTag::kSqlState, kInsufficientPrivilege}, Field{FieldTag::kMessage, message},
            Field{FieldTag::kReason, detail}, Field{FieldTag::kOrigin, "gateway"},
            Field{FieldTag::kRule, verdict.rule}});
    c.upstream().write(stand_in);
    return true;
  }

  // ---- approval holds -------------------------------------------------------------------------
  //
  // A statement under an approve rule stays where it would have been forwarded from: whole in
  // gather_[0], with every client byte after it unread (pipelined statements wait behind it, and
  // the engine stops reading past its backlog limit). Its review is in the shared store; the
  // decision arrives through an atomic cell that this session reads when the shard's tick sees
  // the review epoch move, or on the deadline of its time-out. Approved, the held bytes go
  // upstream unchanged after their hash is checked again; otherwise the refusal takes the
  // usual stand-in path, so the extended protocol stays in sync.

  struct Hold {
    review::Ticket ticket;
    mask::SqlVerdict verdict;
    bool parse = false;
    std::string statement_name;  // of a held Parse
    uint32_t timeout_s = 0;
    bool notice_sent = false;
  };

  bool start_hold(Connection& c, const mask::SqlVerdict& verdict, std::string_view sql,
                  const Parse* parse) {
    const config::ApproveRule* rule = nullptr;
    for (const config::ApproveRule& r : connection_->guardrails.approve) {
      if (r.name == verdict.rule) rule = &r;
    }
    GH_ASSERT(rule != nullptr);  // an approve verdict names one of the connection's rules
    review::Request request{.connection = connection_->name,
                            .rule = verdict.rule,
                            .reason = verdict.reason,
                            .statement = std::string(sql),
                            .kind = parse != nullptr ? "parse" : "query",
                            .requester_chain = identity_.chain(),
                            .approver_groups = rule->approver_groups,
                            .approvals_min = rule->approvals_min,
                            .timeout_s = rule->timeout_s,
                            .session_id = fmt::format("{:016x}", recorder_.session_id()),
                            .client_address = c.client_address()};
    auto ticket = ctx_.reviews->submit(std::move(request));
    if (!ticket) {
      return refuse_statement(
          c, verdict, parse != nullptr, parse != nullptr ? parse->statement : std::string_view(),
          fmt::format("statement refused by gatehouse: rule \"{}\" requires an approval, and no "
                      "review could be opened",
                      verdict.rule),
          ticket.error().message);
    }
    hold_ = std::make_unique<Hold>(Hold{.ticket = std::move(*ticket),
                 .verdict = verdict,
                 .parse = parse != nullptr,
                 .statement_name = parse != nullptr ? std::string(parse->statement) : std::string(),
                 .timeout_s = rule->timeout_s,
                 .notice_sent = false});
    record(c, EventType::kReview,
           {Field{FieldTag::kReviewId, hold_->ticket.id}, Field{FieldTag::kOutcome, "requested"},
            Field{FieldTag::kRule, verdict.rule}, Field{FieldTag::kReason, verdict.reason},
            Field{FieldTag::kStatementHash, hold_->ticket.sha256}});
    c.set_deadline_ms(rule->timeout_s * 1000);
    send_hold_notice(c);
    return true;
  }

  // The client is told at once that its statement waits, and for what: as a NoticeResponse
  // (asynchronous, allowed between any two messages), so only between upstream messages.
  void send_hold_notice(Connection& c) {
    if (hold_->notice_sent || stream_left_[1] > 0 || gather_[1].active()) return;
    const std::string& id = hold_->ticket.id;
    const std::string message = fmt::format(
        "gatehouse holds this statement for approval: review {} (rule \"{}\")", id,
        hold_->verdict.rule);
    const std::string detail = fmt::format(
        "The statement runs once approved, and is refused if denied or not approved within {} s. "
        "Statement SHA-256: {}.",
        hold_->timeout_s, hold_->ticket.sha256);
    const std::string hint = fmt::format(
        "An approver runs: gatehouse review approve {} (or: gatehouse review deny {} --reason ...)",
        id, id);
    std::string out;
    encode_notice_response(out, ErrorFields{.severity = "NOTICE",
                                            .sqlstate = "00000",
                                            .message = message,
                                            .detail = detail,
                                            .hint = hint});
    c.client().write(out);
    hold_->notice_sent = true;
  }

  bool step_hold(Connection& c) {
    send_hold_notice(c);
    const review::State state = hold_->ticket.state();
    if (state == review::State::kPending || !hold_->notice_sent) return false;
    Hold hold = std::move(*hold_);
    hold_.reset();
    c.set_deadline_ms(0);
    const std::string& id = hold.ticket.id;
    const review::Cell& cell = *hold.ticket.cell;
    if (state == review::State::kApproved) {
      // The held bytes are still those hashed (no client input was read meanwhile); checked
      // again, since this is what the approval is bound to.
      auto frame = gather_[0].take(c.client(), gather_[0].frame_bytes());
      GH_ASSERT(frame.has_value());
      const FrontendDecoded d = decode_frontend_frame(*frame, ctx_.limits);
      std::string_view text;
      if (const auto* q = std::get_if<Query>(&d.message)) text = q->sql;
      if (const auto* p = std::get_if<Parse>(&d.message)) text = p->query;
      if (review::statement_sha256(text) != hold.ticket.sha256) {
        return refuse_statement(c, hold.verdict, hold.parse, hold.statement_name,
                                fmt::format("statement refused by gatehouse: it does not match "
                                            "what review {} approved",
                                            id),
                                "statement hash mismatch");
      }
      std::vector<Field> fields{{FieldTag::kReviewId, id}, {FieldTag::kOutcome, "approved"},
                                {FieldTag::kRule, hold.verdict.rule},
                                {FieldTag::kStatementHash, hold.ticket.sha256}};
      for (const std::string& a : cell.approvers) fields.push_back({FieldTag::kApprover, a});
      record(c, EventType::kReview, fields);
      if (strict_durability()) {
        return hold_until_durable(c, hold.parse ? std::optional<std::string>(hold.statement_name)
                                                : std::nullopt);
      }
      gather_[0].forward(c, Side::kClient);
      return true;
    }
    std::string message;
    std::string detail;
    std::string_view outcome = review::state_name(state);
    switch (state) {
      case review::State::kDenied:
        message = fmt::format("statement refused by gatehouse: review {} (rule \"{}\") was denied",
                              id, hold.verdict.rule);
        detail = fmt::format("denied by {}: {}", cell.denied_by, cell.deny_reason);
        record(c, EventType::kReview,
               {Field{FieldTag::kReviewId, id}, Field{FieldTag::kOutcome, outcome},
                Field{FieldTag::kRule, hold.verdict.rule}, Field{FieldTag::kApprover, cell.denied_by},
                Field{FieldTag::kReason, cell.deny_reason}});
        break;
      case review::State::kExpired:
        message = fmt::format(
            "statement refused by gatehouse: review {} (rule \"{}\") was not approved within {} s",
            id, hold.verdict.rule, hold.timeout_s);
        detail = hold.verdict.reason;
        record(c, EventType::kReview,
               {Field{FieldTag::kReviewId, id}, Field{FieldTag::kOutcome, outcome},
                Field{FieldTag::kRule, hold.verdict.rule}});
        break;
      default:
        message = fmt::format("statement refused by gatehouse: review {} (rule \"{}\") was cancelled",
                              id, hold.verdict.rule);
        detail = "cancel request, or the gateway is shutting down";
        record(c, EventType::kReview,
               {Field{FieldTag::kReviewId, id}, Field{FieldTag::kOutcome, outcome},
                Field{FieldTag::kRule, hold.verdict.rule}, Field{FieldTag::kReason, detail}});
        break;
    }
    return refuse_statement(c, hold.verdict, hold.parse, hold.statement_name, message, detail);
  }

  bool step_upstream_ready(Connection& c) {
    Link& in = c.upstream();
    if (stream_left_[1] > 0) return stream(c, Side::kUpstream);
    const bool started = gather_[1].active();
    auto frame_bytes = next_frame_bytes(c, Side::kUpstream);
    if (!frame_bytes) return phase_ == Phase::kDone;
    if (!started) {
      char type = 0;
      in.peek(0, std::span(reinterpret_cast<std::byte*>(&type), 1));
      switch (type) {
        case CommandComplete::kType:
        case ErrorResponse::kType:
        case ReadyForQuery::kType:
        case BackendKeyData::kType:
        case Authentication::kType:
          break;
        case ParseComplete::kType:
          if (extended_) extended_->on_parse_complete();
          stream_left_[1] = *frame_bytes;
          return stream(c, Side::kUpstream);
        case EmptyQueryResponse::kType:
        case PortalSuspended::kType:
          // The end of an Execute's result, as CommandComplete is.
          if (extended_) {
            (void)extended_->begin_result();
            extended_->end_result();
          }
          stream_left_[1] = *frame_bytes;
          return stream(c, Side::kUpstream);
        case ParameterStatus::kType:
          if (guard_.sql_active()) break;
          stream_left_[1] = *frame_bytes;
          return stream(c, Side::kUpstream);
        case RowDescription::kType:
        case DataRow::kType:
        case CopyData::kType:
        case NoticeResponse::kType:
          if (guard_.mask_active()) break;
          if (type == RowDescription::kType && record_rows_) break;  // column names for the trail
          if (type == DataRow::kType) {
            begin_result();
            if (record_rows_) {
              // A row that cannot fit what is left of the budget is counted without being
              // copied, so a bulk result costs no more than its budget.
              std::array<std::byte, kTypedHeaderBytes + 2> head;
              if (in.readable() < head.size()) return false;
              in.peek(0, head);
              const uint64_t columns = (uint64_t(head[5]) << 8) | uint64_t(head[6]);
              const uint64_t text_min = row_text_bytes_min(*frame_bytes, columns);
              if (text_min <= results_.bytes_left()) break;  // gathered and recorded below
              results_.count_row(*frame_bytes);
              (void)results_.admit(text_min);  // does not fit: the row is cut
            } else {
              results_.count_row(*frame_bytes);
            }
            stream_left_[1] = *frame_bytes;
            extend_row_run(in);
            return stream(c, Side::kUpstream);
          }
          stream_left_[1] = *frame_bytes;
          return stream(c, Side::kUpstream);
        default:
          stream_left_[1] = *frame_bytes;
          return stream(c, Side::kUpstream);
      }
    }
    auto frame = gather_[1].take(in, *frame_bytes);
    if (!frame) return false;
    BackendDecoded d = decode_backend_frame(*frame, ctx_.limits);
    if (d.status != Status::kMessage) {
      gather_[1].drop(in);
      return stop(c, kConnectionFailure, "the upstream database connection was lost",
                          fmt::format("upstream message: {}", describe(d.error)));
    }
    if (const auto* done = std::get_if<CommandComplete>(&d.message)) {
      begin_result();
      record_completion(c, done->tag);
      if (extended_) extended_->end_result();
    } else if (const auto* error = std::get_if<ErrorResponse>(&d.message)) {
      // The server skips the rest of the cycle: its Parses and Executes never take effect.
      if (extended_) extended_->on_error();
      if (std::string refusal = guard_.take_refusal(*error); !refusal.empty()) {
        gather_[1].drop(in);  // the stand-in's syntax error: the refusal goes out instead
        c.client().write(refusal);
        return true;
      }
      if (guard_.mask_fields(*frame, error->fields, rewrite_)) {
        // Recorded and sent as masked; the original never leaves the gateway.
        gather_[1].drop(in);
        const BackendDecoded masked = decode_backend_frame(as_bytes(rewrite_), ctx_.limits);
        if (const auto* e = std::get_if<ErrorResponse>(&masked.message)) record_upstream_error(c, *e);
        c.client().write(rewrite_);
        release_if_large(rewrite_);
        return true;
      }
      record_upstream_error(c, *error);
    } else if (const auto* notice = std::get_if<NoticeResponse>(&d.message)) {
      if (guard_.mask_fields(*frame, notice->fields, rewrite_)) {
        gather_[1].drop(in);
        c.client().write(rewrite_);
        release_if_large(rewrite_);
        return true;
      }
    } else if (const auto* copy = std::get_if<CopyData>(&d.message)) {
      if (guard_.mask_copy_data(*frame, *copy, rewrite_)) {
        gather_[1].drop(in);
        c.client().write(rewrite_);
        release_if_large(rewrite_);
        return true;
      }
    } else if (const auto* status = std::get_if<ParameterStatus>(&d.message)) {
      guard_.on_parameter_status(status->name, status->value);
    } else if (const auto* rows = std::get_if<RowDescription>(&d.message)) {
      guard_.on_row_description(*rows);
      if (record_rows_) {
        if (row_batch_) flush_result_rows(c);  // they belong to the columns noted before
        note_columns(*rows);
      }
    } else if (const auto* row = std::get_if<DataRow>(&d.message)) {
      begin_result();
      results_.count_row(*frame_bytes);
      if (guard_.mask_row(*frame, *row, rewrite_)) {
        gather_[1].drop(in);
        c.client().write(rewrite_);
        record_masked_row(c);
        release_if_large(rewrite_);
        return true;
      }
      if (record_rows_) record_result_row(c, *row);
    } else if (const auto* ready = std::get_if<ReadyForQuery>(&d.message)) {
      transaction_status_ = ready->status;
      guard_.on_ready();
      (void)results_.take();  // a statement that failed: its sizes end with it
      if (extended_) extended_->on_ready(ready->status == ReadyForQuery::kIdle);
      ++cycles_done_;
      if (awaiting_ready_ > 0) --awaiting_ready_;
      gather_[1].forward(c, Side::kUpstream);
      if (drain_requested_ && awaiting_ready_ == 0) finish_drain(c);
      return true;
    } else {
      // BackendKeyData and authentication requests belong to the login the gateway did; a client
      // must never see the upstream's.
      gather_[1].drop(in);
      return stop(c, kProtocolViolation, "the upstream database connection was lost",
                          "upstream sent a login message after login");
    }
    gather_[1].forward(c, Side::kUpstream);
    return true;
  }

  // A masked message far larger than usual keeps no memory once sent (idle sessions stay small).
  static void release_if_large(std::string& s) {
    if (s.capacity() > (64u << 10)) std::string().swap(s);
  }

  // Extends the DataRow being streamed over the DataRows buffered behind it that need no look
  // either (no mask rule, not recorded: past the budget or rows not recorded): a result of many
  // small rows then goes to the client in a few forwards instead of one per row. Any other
  // message, or a header that does not decode, ends the run and takes the usual path.
  void extend_row_run(const Link& in) {
    constexpr int kRowRunMax = 4096;  // rows looked at per step
    uint64_t at = stream_left_[1];
    std::array<std::byte, kTypedHeaderBytes + 2> head;
    for (int rows = 0; rows < kRowRunMax && in.readable() >= at + head.size(); ++rows) {
      in.peek(at, head);
      const HeaderDecoded h =
          decode_backend_header(std::span(head).first<kTypedHeaderBytes>(), ctx_.limits);
      if (h.status != Status::kMessage || h.header.type != DataRow::kType) break;
      const uint64_t frame_bytes = uint64_t(h.header.length) + 1;
      const uint64_t columns = (uint64_t(head[5]) << 8) | uint64_t(head[6]);
      const uint64_t text_min = row_text_bytes_min(frame_bytes, columns);
      if (record_rows_ && text_min <= results_.bytes_left()) break;  // a row to record
      results_.count_row(frame_bytes);
      if (record_rows_) (void)results_.admit(text_min);  // does not fit: the row is cut
      at += frame_bytes;
    }
    stream_left_[1] = at;
  }

  // Passes the rest of the current message on without looking at it.
  bool stream(Connection& c, Side side) {
    uint64_t& left = stream_left_[static_cast<int>(side)];
    const uint64_t n = std::min(left, c.link(side).readable());
    if (n == 0) return false;
    c.forward(side, n);
    left -= n;
    return true;
  }

  // ---- durability (recording.durability: strict) -----------------------------------------------
  // A statement (Query, Parse, FunctionCall) waits in gather_[0], the connection paused, until
  // the flusher reports its record fdatasynced; that report wakes the shard (the ring's durable
  // wake, polled by the engine), which resumes the connection. Only then does it go upstream.
  // An Execute needs a Parse first, so it never runs a statement whose record is not durable.
  // Messages behind the held one wait with it, in order.

  bool strict_durability() const {
    return ctx_.config->recording.enabled &&
           ctx_.config->recording.durability == config::Durability::kStrict;
  }

  // `parse_name`: the statement name when the held message is a Parse.
  bool hold_until_durable(Connection& c, std::optional<std::string> parse_name) {
    durable_hold_ = std::make_unique<DurableHold>(DurableHold{.parse = std::move(parse_name)});
    return release_held(c);
  }

  bool release_held(Connection& c) {
    rec::Ring& ring = *ctx_.rings[shard_];
    if (durable_hold_->ticket == 0) {
      if (recorder_.pending()) {
        // The record waits for room in the ring; its number is known once pump() pushed it.
        // While the trail cannot be written that wait lasts as long as the failure: refused now,
        // as it would be once pushed (its record stays queued, followed by the error's).
        if (ring.write_error() != 0) return refuse_unrecorded(c, ring.write_error(), false);
        c.pause();
        return false;
      }
      // Nothing is queued: the statement's record is the last one pushed.
      durable_hold_->ticket = ring.pushed();
      ring.request_durable();
    }
    // Armed before the look: a report published after it wakes the shard.
    ring.arm_durable_wake();
    switch (ring.durability(durable_hold_->ticket)) {
      case rec::Ring::Durability::kDurable:
        durable_hold_.reset();
        gather_[0].forward(c, Side::kClient);
        return true;
      case rec::Ring::Durability::kWaiting:
        c.pause();
        return false;
      case rec::Ring::Durability::kFailing:
        return refuse_unrecorded(c, ring.write_error(), false);
      case rec::Ring::Durability::kLost:
        return refuse_unrecorded(c, EIO, true);
    }
    return false;
  }

  // The trail cannot take the statement: it is not run. As for a refusal (guard.hpp), a stand-in
  // that fails to parse goes upstream in its place, so the error reaches the client in order and
  // the server aborts the transaction as after any error. A statement whose record waits for the
  // disk stays in the ring and is written once writing works again, followed by this error.
  bool refuse_unrecorded(Connection& c, int error, bool lost) {
    const bool full = error == ENOSPC || error == EDQUOT;
    const std::string_view sqlstate = full ? kDiskFull : kIoError;
    const std::string message =
        lost ? "gatehouse could not make the record of this statement durable (fdatasync failed); "
               "the statement was not run"
        : full ? "gatehouse cannot record this statement: the audit trail's disk is full; the "
                 "statement was not run"
               : "gatehouse cannot record this statement: writing the audit trail fails; the "
                 "statement was not run";
    const std::string detail = fmt::format("recording.durability is strict: {}", strerror(error));
    std::string answer;
    encode_error_response(answer, ErrorFields{.severity = "ERROR", .sqlstate = sqlstate,
                                              .message = message, .detail = detail});
    const bool parse = durable_hold_->parse.has_value();
    const uint64_t ready = guard_.ready_count() + awaiting_ready_ + (parse ? 1 : 0);
    const std::string stand_in =
        guard_.stand_in(parse, parse ? *durable_hold_->parse : "", ready, std::move(answer));
    durable_hold_.reset();
    gather_[0].drop(c.client());
    record(c, EventType::kError,
           {Field{FieldTag::kSqlState, sqlstate}, Field{FieldTag::kMessage, message},
            Field{FieldTag::kReason, detail}, Field{FieldTag::kOrigin, "gateway"}});
    c.upstream().write(stand_in);
    return true;
  }

  // ---- recording ------------------------------------------------------------------------------

  // A row's values joined by tabs, SQL NULL as NULL (record/FORMAT.md, "Result rows").
  static void row_text(const DataRow& row, std::string& text) {
    text.clear();
    bool first = true;
    for (const ColumnValue& v : row.value_range()) {
      if (!first) text += '\t';
      first = false;
      text += v ? *v : std::string_view("NULL");
    }
  }

  // The fewest bytes row_text can make of a DataRow frame of `frame_bytes` with `columns`
  // values: each 4-byte length word becomes at least a tab (NULL: the 4 bytes "NULL").
  static uint64_t row_text_bytes_min(uint64_t frame_bytes, uint64_t columns) {
    const uint64_t framing = kTypedHeaderBytes + 2 + 3 * columns + (columns > 0 ? 1 : 0);
    return frame_bytes > framing ? frame_bytes - framing : 0;
  }

  // A result's column names, for the first row of it that the trail keeps.
  void note_columns(const RowDescription& rows) {
    columns_.clear();
    bool first = true;
    for (const FieldDescription& f : rows.field_range()) {
      if (!first) columns_ += '\t';
      first = false;
      columns_ += f.name;
    }
    columns_pending_ = true;
  }

  // Records a masked row, with the rules that fired, while it fits the statement's budget; the
  // first recorded row of a result names its columns.
  void record_masked_row_text(Connection& c, std::string_view text,
                              std::span<const std::string> rules) {
    if (!results_.admit(text.size())) return;  // past the statement's budget: sizes only
    std::vector<Field> fields{Field{FieldTag::kText, text}};
    if (std::exchange(columns_pending_, false)) fields.push_back({FieldTag::kResultColumns, columns_});
    for (const std::string& rule : rules) fields.push_back({FieldTag::kRule, rule});
    record(c, EventType::kMaskedRow, fields);
  }

  // Unmasked rows that fit the budget wait here and go into the trail together, as one
  // result_row record with a text field per row (record/FORMAT.md, "Result rows"): a result's
  // thousand rows cost a few records instead of a thousand, each hashed three times by the
  // flusher. Any other record of the session writes them first, so the trail keeps its order.
  struct RowBatch {
    std::string text;            // the rows' texts back to back
    std::vector<uint32_t> ends;  // where each row's text ends in `text`
    size_t widest = 0;
    bool columns = false;  // the first row is its result's first recorded row
  };
  static constexpr size_t kRowBatchBytesMax = 16u << 10;
  static constexpr size_t kRowBatchRowsMax = 256;

  void batch_result_row(Connection& c, std::string_view text) {
    if (!results_.admit(text.size())) return;
    if (!row_batch_) row_batch_ = std::make_unique<RowBatch>();
    if (!row_batch_->ends.empty()) {
      const RowBatch& b = *row_batch_;
      const size_t rows = b.ends.size() + 1;
      // The recorder cuts any value over payload / (2 x fields) so that an event fits the
      // ring; a batch stays under that for its widest row.
      const size_t value_bytes_max = ctx_.rings[shard_]->payload_bytes_max() / (2 * (rows + 1));
      if (rows > kRowBatchRowsMax ||
          b.text.size() + text.size() > kRowBatchBytesMax ||
          std::max(b.widest, text.size()) > value_bytes_max) {
        flush_result_rows(c);
        row_batch_ = std::make_unique<RowBatch>();
      }
    }
    RowBatch& b = *row_batch_;
    if (b.ends.empty()) b.columns = std::exchange(columns_pending_, false);
    b.text += text;
    b.ends.push_back(static_cast<uint32_t>(b.text.size()));
    b.widest = std::max(b.widest, text.size());
  }

  // Writes the waiting rows, and gives their memory back: idle sessions hold none.
  void flush_result_rows(Connection& c) {
    const std::unique_ptr<RowBatch> batch = std::move(row_batch_);
    if (!batch || batch->ends.empty()) return;
    std::vector<Field> fields;
    fields.reserve(batch->ends.size() + 1);
    uint32_t begin = 0;
    for (const uint32_t end : batch->ends) {
      fields.push_back({FieldTag::kText, std::string_view(batch->text).substr(begin, end - begin)});
      begin = end;
    }
    if (batch->columns) fields.push_back({FieldTag::kResultColumns, columns_});
    push_record(c, EventType::kResultRow, fields);
  }

  // The masked row as the client got it: its values (rewritten in rewrite_).
  void record_masked_row(Connection& c) {
    const auto rewritten = decode_backend_frame(as_bytes(rewrite_), ctx_.limits);
    const auto* row = std::get_if<DataRow>(&rewritten.message);
    if (row == nullptr) return;
    std::string& text = scratch();
    row_text(*row, text);
    record_masked_row_text(c, text, guard_.fired_rules());
    release_scratch();
  }

  // A row that no mask rule changed, as sent.
  void record_result_row(Connection& c, const DataRow& row) {
    std::string& text = scratch();
    row_text(row, text);
    batch_result_row(c, text);
    release_scratch();
  }

  // CommandComplete: the tag, and when the statement returned rows their full sizes, with how
  // many were recorded when the budget cut the rest (record/FORMAT.md, "Result rows").
  void record_completion(Connection& c, std::string_view tag) {
    const rec::ResultBudget::Summary rows = results_.take();
    columns_pending_ = false;  // the next result names its own columns
    if (columns_.capacity() > (4u << 10)) std::string().swap(columns_);  // idle sessions stay small
    if (rows.rows == 0) {
      record(c, EventType::kCompletion, {Field{FieldTag::kTag, tag}});
      return;
    }
    const std::string count = std::to_string(rows.rows);
    const std::string bytes = std::to_string(rows.bytes);
    if (rows.rows_cut == 0) {
      record(c, EventType::kCompletion,
             {Field{FieldTag::kTag, tag}, Field{FieldTag::kResultRows, count},
              Field{FieldTag::kResultBytes, bytes}});
      return;
    }
    const std::string recorded = std::to_string(rows.recorded_rows);
    const std::string cut = std::to_string(rows.rows_cut);
    record(c, EventType::kCompletion,
           {Field{FieldTag::kTag, tag}, Field{FieldTag::kResultRows, count},
            Field{FieldTag::kResultBytes, bytes}, Field{FieldTag::kResultRowsRecorded, recorded},
            Field{FieldTag::kResultRowsCut, cut}});
  }

  // ---- extended protocol: what each Execute runs -------------------------------------------
  // A Parse's text is kept (masked, cut) from its ParseComplete on; a Bind's parameters are
  // read from at most the frame's first kBindPrefixBytesMax bytes, each value cut; an Execute
  // records both (record/FORMAT.md, "Execute"). Sessions that never Parse carry none of it.

  static constexpr uint64_t kBindPrefixBytesMax = 16u << 10;
  static constexpr size_t kParameterTextBytesMax = 64;    // a text value's recorded bytes
  static constexpr size_t kParameterBinaryBytesMax = 32;  // a binary value's, shown as hex
  static constexpr size_t kParameterWindowBytes = 256;    // masked before the cut
  static constexpr size_t kParametersRecordedMax = 128;   // values an Execute record holds
  static constexpr size_t kParametersListedMax = 1024;    // sizes and formats it lists
  static constexpr size_t kExecuteTextBytesMax = 4096;    // statement text on each Execute
  static_assert(kParameterWindowBytes >= 2 * kParameterTextBytesMax,
                "a secret that straddles the cut is still seen whole by the masking");

  void end_cycle() {
    ++cycles_sent_;
    if (extended_) extended_->on_cycle_end();
  }

  void note_parse(const Parse& parse) {
    if (!ctx_.config->recording.enabled) return;
    start_extended();
    std::string masked;
    std::string_view text = guard_.mask_text(parse.query, masked);
    const uint64_t full = text.size();
    extended_->on_parse(parse.statement, std::string(cut_utf8(text, kExecuteTextBytesMax)), full);
  }

  // The longest prefix of `text` of at most `bytes_max` bytes that ends on a UTF-8 boundary.
  static std::string_view cut_utf8(std::string_view text, size_t bytes_max) {
    if (text.size() <= bytes_max) return text;
    size_t end = bytes_max;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    return text.substr(0, end);
  }

  // Reads the Bind at the front of the client's input (not consumed); false while the bytes
  // it needs have not all arrived.
  bool note_bind(Connection& c, uint64_t frame_bytes) {
    start_extended();  // a statement PREPAREd by SQL is bound without a Parse
    Link& in = c.client();
    const uint64_t want = std::min(frame_bytes, kBindPrefixBytesMax);
    if (in.readable() < want) return false;
    Bytes prefix = in.front();
    if (prefix.size() >= want) {
      prefix = prefix.first(want);
    } else {
      std::string& copy = scratch();
      copy.resize(want);
      in.peek(0, std::span(reinterpret_cast<std::byte*>(copy.data()), want));
      prefix = as_bytes(copy);
    }
    const auto summary = summarize_bind(prefix, kParameterWindowBytes);
    if (!summary) {
      // Malformed: the server refuses it; the Execute after it shows no binding.
      extended_->start_bind("", "");
      extended_->commit_bind();
      release_scratch();
      return true;
    }
    Binding& b = extended_->start_bind(summary->portal, summary->statement);
    const uint64_t budget = results_.bytes_max();
    bool recording = true;
    bool binary = false;
    std::string masked;
    const uint16_t listed = uint16_t(std::min<size_t>(summary->parameter_count, kParametersListedMax));
    for (uint16_t i = 0; i < listed; ++i) {
      const BindParameter* p = i < summary->parameters.size() ? &summary->parameters[i] : nullptr;
      if (i > 0) b.sizes += ',';
      if (p == nullptr || p->size == kUnknownSize) {
        b.sizes += '?';
        recording = false;
        continue;
      }
      b.sizes += std::to_string(p->size);
      binary |= p->format != 0;
      if (!recording || b.value_ends.size() >= kParametersRecordedMax) {
        recording = false;
        continue;
      }
      // Masked over a window larger than the cut, so a secret across the cut is masked whole.
      const std::string_view shown = guard_.mask_text(p->head, masked);
      std::string value;
      if (p->size < 0) {
        // NULL: an empty value, its size -1.
      } else if (p->format == 0) {
        value = cut_utf8(shown, kParameterTextBytesMax);
      } else {
        value = "\\x";
        for (size_t k = 0; k < std::min(shown.size(), kParameterBinaryBytesMax); ++k)
          value += fmt::format("{:02x}", static_cast<unsigned char>(shown[k]));
      }
      if (b.values.size() + value.size() > budget) {
        recording = false;  // parameters count against the statement's budget
        continue;
      }
      b.values += value;
      b.value_ends.push_back(uint32_t(b.values.size()));
    }
    if (binary) {
      for (uint16_t i = 0; i < listed; ++i) {
        if (i > 0) b.formats += ',';
        b.formats += i < summary->parameters.size() && summary->parameters[i].format != 0 ? '1' : '0';
      }
    }
    extended_->commit_bind();
    release_scratch();
    return true;
  }

  void record_execute(Connection& c, const Execute& execute) {
    const Binding* b = extended_->portal(execute.portal);
    std::vector<Field> fields;
    std::string full;
    if (b != nullptr && b->text) {
      fields.push_back({FieldTag::kText, b->text->text});
      if (b->text->full_bytes > b->text->text.size()) {
        full = std::to_string(b->text->full_bytes);
        fields.push_back({FieldTag::kTextBytes, full});
      }
    }
    if (b != nullptr && !b->statement_name.empty())
      fields.push_back({FieldTag::kStatementName, b->statement_name});
    if (!execute.portal.empty()) fields.push_back({FieldTag::kPortal, execute.portal});
    uint64_t charged = 0;
    if (b != nullptr) {
      const std::string_view values = b->values;
      uint32_t at = 0;
      for (const uint32_t end : b->value_ends) {
        fields.push_back({FieldTag::kParameter, values.substr(at, end - at)});
        at = end;
      }
      charged = values.size();
      if (!b->sizes.empty()) fields.push_back({FieldTag::kParameterSizes, b->sizes});
      if (!b->formats.empty()) fields.push_back({FieldTag::kParameterFormats, b->formats});
    }
    record(c, EventType::kExecute, fields);
    extended_->on_execute(charged);
  }

  // A message of a result: an Execute's recorded parameters count against its budget.
  void begin_result() {
    if (extended_) results_.charge(extended_->begin_result());
  }

  void start_extended() {
    if (!extended_) extended_ = std::make_unique<ExtendedTracker>(cycles_sent_, cycles_done_);
  }

  // The shard's scratch text for a record being built (one at a time on the shard's thread),
  // so that sessions carry no buffer between messages.
  std::string& scratch() { return ctx_.shards[shard_]->record_scratch; }
  void release_scratch() {
    std::string& s = scratch();
    if (s.capacity() > (64u << 10)) std::string().swap(s);
  }

  void record_statement(Connection& c, std::string_view kind, std::string_view text) {
    // Literals in statements (an INSERT of a card number) are masked in the trail too.
    std::string masked;
    text = guard_.mask_text(text, masked);
    if (text.size() <= ctx_.record_text_bytes_max) {
      record(c, EventType::kStatement, {Field{FieldTag::kStatementKind, kind}, Field{FieldTag::kText, text}});
      return;
    }
    const std::string full = std::to_string(text.size());
    record(c, EventType::kStatement,
           {Field{FieldTag::kStatementKind, kind},
            Field{FieldTag::kText, text.substr(0, ctx_.record_text_bytes_max)},
            Field{FieldTag::kTextBytes, full}});
  }

  void record_upstream_error(Connection& c, const ErrorResponse& error) {
    const std::string_view severity = error.field('V').value_or(error.field('S').value_or(""));
    if (severity == "FATAL" || severity == "PANIC") upstream_sent_fatal_ = true;
    record(c, EventType::kError,
           {Field{FieldTag::kSqlState, error.field('C').value_or("")},
            Field{FieldTag::kMessage, error.field('M').value_or("")},
            Field{FieldTag::kReason, severity}, Field{FieldTag::kOrigin, "upstream"}});
  }

  // Records an event: straight into the shard's ring, or, when the ring is full, into a pending
  // list that is pushed first on resume while the session pauses (nothing is dropped).
  void record(Connection& c, EventType type, std::initializer_list<Field> fields) {
    record(c, type, std::span<const Field>(fields.begin(), fields.size()));
  }
  void record(Connection& c, EventType type, std::span<const Field> fields) {
    if (!ctx_.config->recording.enabled) return;
    if (row_batch_) flush_result_rows(c);
    push_record(c, type, fields);
  }
  void push_record(Connection& c, EventType type, std::span<const Field> fields) {
    if (!recorder_.record(*ctx_.rings[shard_], type, fields)) c.pause();
  }

  // True when the session may go on: nothing is pending any more, or (strict, trail failing) it
  // may run ahead of its queued records.
  bool flush_pending_records(Connection& c) {
    rec::Ring& ring = *ctx_.rings[shard_];
    if (!recorder_.flush(ring)) {
      c.pause();  // the next tick tries again
      // Strict durability with the trail failing: no statement can run, so the session goes on
      // and refuses them (release_held) instead of waiting for the disk; their records wait here
      // in order, up to a bound, beyond which it waits like any session with a full ring.
      return strict_durability() && ring.write_error() != 0 && !close_when_recorded_ &&
             recorder_.pending_bytes() <= rec::limits::session_pending_bytes_max;
    }
    if (close_when_recorded_) {
      close_when_recorded_ = false;
      c.close();
      return false;
    }
    return true;
  }

  // ---- endings --------------------------------------------------------------------------------

  // The client gets a FATAL error in its own protocol; the trail gets the reason.
  void fail_session(Connection& c, std::string_view sqlstate, std::string_view client_message,
                    std::string_view reason) {
    if (phase_ == Phase::kDone) return;
    if (c.client().is_open()) {
      std::string out;
      encode_error_response(out, ErrorFields{.severity = "FATAL", .sqlstate = sqlstate,
                                             .message = client_message});
      c.client().write(out);
    }
    if (started_) {
      record(c, EventType::kError,
             {Field{FieldTag::kSqlState, sqlstate}, Field{FieldTag::kMessage, client_message},
              Field{FieldTag::kReason, reason}, Field{FieldTag::kOrigin, "gateway"}});
      end_session(c, reason);
    } else {
      record(c, EventType::kAuthFailure,
             {Field{FieldTag::kProtocol, "postgres"}, Field{FieldTag::kClientAddress, c.client_address()},
              Field{FieldTag::kUser, user_}, Field{FieldTag::kDatabase, database_},
              Field{FieldTag::kReason, reason}});
      finish(c);
    }
  }

  // Refusal of a login: the same FATAL for every reason (already recorded in detail).
  void refuse(Connection& c, std::string_view sqlstate, const std::string& message) {
    std::string out;
    encode_error_response(out, ErrorFields{.severity = "FATAL", .sqlstate = sqlstate, .message = message});
    c.client().write(out);
    finish(c);
  }

  // Closes without an answer (the client broke the protocol before it could get one).
  bool fail_silently(Connection& c, std::string_view reason) {
    record(c, EventType::kAuthFailure,
           {Field{FieldTag::kProtocol, "postgres"}, Field{FieldTag::kClientAddress, c.client_address()},
            Field{FieldTag::kReason, reason}});
    finish(c);
    return true;
  }

  void end_session(Connection& c, std::string_view reason) {
    if (phase_ == Phase::kDone) return;
    if (started_) record(c, EventType::kSessionEnd, {Field{FieldTag::kReason, reason}});
    finish(c);
  }

  void finish(Connection& c) {
    phase_ = Phase::kDone;
    if (!recorder_.pending()) {
      c.close();
    } else {
      close_when_recorded_ = true;  // flush_pending_records closes once the ring took them
    }
  }

  // The session's token (or one it was exchanged from, its subject or an actor of its chain) was
  // revoked: FATAL 57P01, as pg_terminate_backend ends a backend, and the reason recorded.
  void end_revoked(Connection& c, const std::string& reason) {
    constexpr std::string_view kMessage = "terminating connection: the token of this session was revoked";
    if (phase_ == Phase::kReady && c.upstream().is_open() && stream_left_[0] == 0) {
      std::string out;
      encode_terminate(out);
      c.upstream().write(out);
    }
    if (stream_left_[1] > 0) {
      // The client is inside a message from the upstream: an error now would corrupt it, so the
      // connection is cut instead.
      record(c, EventType::kError,
             {Field{FieldTag::kSqlState, kAdminShutdown}, Field{FieldTag::kMessage, kMessage},
              Field{FieldTag::kReason, reason}, Field{FieldTag::kOrigin, "gateway"}});
      end_session(c, reason);
      return;
    }
    fail_session(c, kAdminShutdown, kMessage, reason);
  }

  void finish_drain(Connection& c) {
    if (phase_ == Phase::kReady && c.upstream().is_open()) {
      std::string out;
      encode_terminate(out);
      c.upstream().write(out);
    }
    std::string out;
    encode_error_response(out, ErrorFields{.severity = "FATAL", .sqlstate = kAdminShutdown,
                                           .message = "terminating connection: gatehouse is shutting down"});
    if (c.client().is_open()) c.client().write(out);
    if (started_) {
      end_session(c, "gateway shutdown");
    } else {
      finish(c);
    }
  }

  // When the session is paused with pending records, on_resume runs pump, which flushes them.
  const GatewayContext& ctx_;
  const uint32_t shard_;
  // Next to shard_, in what would be alignment holes: every idle connection holds a session.
  Phase phase_ = Phase::kStartup;
  FrontendDecoder startup_decoder_;
  rec::SessionRecorder recorder_;  // numbers, cuts and queues the session's records
  Gather gather_[2];
  uint64_t stream_left_[2] = {0, 0};
  Guard guard_;                // deny rules and masking (protocols/postgres/guard.hpp)
  std::unique_ptr<Hold> hold_;  // a statement waiting for its review (on the heap: rare)
  std::string rewrite_;        // a masked DataRow

  std::string user_;
  std::string database_;
  std::vector<std::pair<std::string, std::string>> client_parameters_;
  const config::ConnectionConfig* connection_ = nullptr;
  gh::identity::Identity identity_;  // of the session's token: what revocation matches on
  std::unique_ptr<ScramClient> scram_;  // during the upstream login only: 288 bytes

  int32_t upstream_pid_ = 0;
  int32_t upstream_key_ = 0;
  int32_t gateway_key_ = 0;
  char transaction_status_ = ReadyForQuery::kIdle;
  uint32_t awaiting_ready_ = 0;
  bool drain_requested_ = false;
  bool upstream_sent_fatal_ = false;
  bool started_ = false;
  bool close_when_recorded_ = false;
  // Strict durability: the statement in gather_[0] waits for ring entry `ticket` (0: not
  // numbered yet). On the heap while a statement waits only, as idle sessions never need it.
  struct DurableHold {
    uint64_t ticket = 0;
    std::optional<std::string> parse;  // the statement name when the held message is a Parse
  };
  std::unique_ptr<DurableHold> durable_hold_;
  // The current statement's result rows against recording.statement_result_bytes_max.
  rec::ResultBudget results_{ctx_.config->recording.statement_result_bytes_max};
  // Result rows are recorded (rows of every connection, masked or not, up to the budget).
  const bool record_rows_ = ctx_.config->recording.enabled &&
                            ctx_.config->recording.statement_result_bytes_max > 0;
  // Extended protocol (from the first Parse or Bind): statements, portals and each Execute's
  // parameters, charged to the budget of the result they belong to.
  std::unique_ptr<ExtendedTracker> extended_;
  uint64_t cycles_sent_ = 0;  // Syncs and Queries the client sent
  uint64_t cycles_done_ = 0;  // ReadyForQuery after login
  std::string columns_;   // names of the current result's columns, joined by tabs
  bool columns_pending_ = false;  // columns_ not yet recorded with a row
  std::unique_ptr<RowBatch> row_batch_;  // rows not yet written (batch_result_row)
};

}  // namespace

std::unique_ptr<engine::ProtocolSession> SessionFactory::create(uint32_t shard,
                                                                const engine::ListenerInfo&) {
  // The session reads the listener through Connection::listener(), not a copy of its own.
  return std::make_unique<Session>(*context_, shard);
}

}  // namespace gh::pg
