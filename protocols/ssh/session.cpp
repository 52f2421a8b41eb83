// SSH session state machine: libssh (non-blocking, its sockets polled by the shard's io_uring
// through Connection::watch) on both sides, exec channels relayed one to one, everything
// recorded. libssh runs in its message-queue mode: requests wait in libssh's queue until the
// session answers them, so every answer to the caller can mirror the host's (auth after the
// upstream login, channel opens after the upstream open, exec after the upstream reply). libssh
// calls back into this file only from the pump (channel callbacks that set flags).
// Must not do socket I/O beyond libssh's on watched sockets, or own policy rules.
#include "protocols/ssh/session.hpp"

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <deque>
#include <optional>

#include <fmt/format.h>

#include "core/access.hpp"
#include "protocols/ssh/forward_channel.hpp"
#include "protocols/ssh/sftp_channel.hpp"
#include "protocols/ssh/line_guard.hpp"
#include "record/event.hpp"
#include "record/session_recorder.hpp"

// libssh 0.10 marks the message accessors of its queue mode deprecated in favour of the
// callback mode, which cannot defer an answer; the accessors are kept in 0.10 and 0.11.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace gh::ssh {

ShardState::~ShardState() {
  for (ssh_bind b : binds) {
    if (b != nullptr) ssh_bind_free(b);
  }
}

namespace {

using engine::Connection;
using engine::Side;
using rec::EventType;
using rec::Field;
using rec::FieldTag;

uint64_t random_u64() {
  uint64_t v = 0;
  GH_ASSERT(RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) == 1);
  return v;
}

std::string_view text_of(const char* s) { return s != nullptr ? std::string_view(s) : std::string_view(); }

struct MessageDeleter {
  void operator()(ssh_message m) const { ssh_message_free(m); }
};
using Message = std::unique_ptr<ssh_message_struct, MessageDeleter>;

// Output streams of a channel: 0 stdout, 1 stderr (what ssh_channel_read's is_stderr takes).
constexpr const char* kStreamNames[2] = {"out", "err"};

// Limits::pending_signals_max, for a callback that cannot reach the limits.
constexpr size_t kPendingSignalsMax = Limits{}.pending_signals_max;

// The token comes as a password or as the answer to one keyboard-interactive prompt.
constexpr int kTokenMethods = SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_INTERACTIVE;

// A "subsystem" channel request naming sftp (RFC 4254 section 6.5), the one subsystem relayed.
bool is_sftp_request(ssh_message m) {
  return ssh_message_subtype(m) == SSH_CHANNEL_REQUEST_SUBSYSTEM &&
         text_of(ssh_message_channel_request_subsystem(m)) == "sftp";
}

// What git runs over SSH, exactly as git sends it: the program and one single-quoted path
// (git's sq_quote; no quote inside, so the shell sees one literal argument and nothing after).
// Its output is a pack exchange, relayed unmasked; anything else is an ordinary command.
bool is_git_transfer(std::string_view command) {
  for (std::string_view program : {"git-upload-pack '", "git-receive-pack '", "git-upload-archive '"}) {
    if (!command.starts_with(program)) continue;
    const std::string_view path = command.substr(program.size());
    return path.size() >= 1 && path.back() == '\'' && path.find('\'') == path.size() - 1;
  }
  return false;
}

// An exec held by an approve rule until its review is decided (on the heap: rare). The caller's
// request was answered at once; the command goes upstream only once approved.
struct ExecHold {
  review::Ticket ticket;
  std::string rule;
  uint32_t timeout_s = 0;
  std::chrono::steady_clock::time_point expires;
  bool approved = false;  // the exec request is on its way upstream
};

// One caller channel and its upstream twin.
struct Channel {
  uint32_t number = 0;             // within the session, from 1, for the records
  ssh_channel client = nullptr;    // server role, toward the caller
  ssh_channel upstream = nullptr;  // client role, toward the host
  Message open_request;            // the caller's CHANNEL_OPEN, answered after the upstream open
  bool open = false;               // both sides open, relaying
  std::deque<Message> requests;    // the caller's channel requests, answered one at a time
  bool request_sent = false;       // the head of `requests` went upstream, its answer is awaited
  bool exec_started = false;  // a program runs: exec or shell
  std::string command;
  // A file transfer (the sftp subsystem, a git pack exchange): output relayed byte for byte,
  // never masked (that would corrupt files), and recorded by size; sftp also by file operation.
  bool transfer = false;
  std::unique_ptr<SftpAudit> sftp;
  // A terminal (pty-req) or a shell: input recorded, output flushed at the end of each burst
  // rather than held for whole lines, lines judged (LineGuard) when deny rules exist.
  bool pty = false;
  bool shell = false;
  std::unique_ptr<LineGuard> guard;
  std::unique_ptr<ExecHold> hold;
  std::deque<std::string> signals;  // the caller's signal requests, relayed in order
  uint64_t input_bytes = 0;
  uint64_t recorded_input = 0;
  // Set by libssh callbacks.
  bool client_closed = false;
  bool agent_requested = false;  // auth-agent-req@openssh.com: to Forwarding, else refused and recorded
  bool agent_recorded = false;
  bool upstream_eof = false;
  bool upstream_closed = false;
  std::optional<int> exit_status;
  std::string exit_signal;
  bool exit_core = false;
  std::string exit_message;
  // Progress.
  bool eof_to_client = false;
  bool eof_to_upstream = false;
  bool exit_relayed = false;
  bool denied = false;         // a guardrail refused the exec: finished toward the caller only
  std::string carry_in;        // caller's bytes read, not yet taken by the host's window
  std::string held[2];         // output waiting for the end of its line before masking
  std::string carry[2];        // output read (and masked), not yet taken by the caller's window
  uint64_t bytes[2] = {0, 0};  // relayed output per stream
  uint64_t recorded[2] = {0, 0};
  ssh_channel_callbacks_struct client_callbacks{};
  ssh_channel_callbacks_struct upstream_callbacks{};
};

class Session final : public engine::ProtocolSession {
 public:
  Session(const GatewayContext& ctx, uint32_t shard, const engine::ListenerInfo& listener)
      : ctx_(ctx), state_(*ctx.shards[shard]), shard_(shard), listener_(listener),
        recorder_(random_u64()) {}

  ~Session() override {
    // A held command whose caller is gone never runs; its review says so.
    for (auto& ch : channels_) {
      if (ch->hold && !ch->hold->approved) ch->hold->ticket.settle(review::State::kCancelled);
    }
    for (auto& ch : channels_) release_channel_handles(*ch);
    forwarding_.reset();  // its channels go before their sessions
    pending_auth_.reset();
    for (int i = 0; i < 2; ++i) {
      if (events_[i] != nullptr) {
        if (sessions_[i] != nullptr) ssh_event_remove_session(events_[i], sessions_[i]);
        ssh_event_free(events_[i]);
      }
    }
    for (ssh_session s : sessions_) {
      if (s != nullptr) ssh_free(s);  // closes libssh's duplicate of the socket
    }
  }

  // ---- engine callbacks -------------------------------------------------------------------------

  void on_start(Connection& c) override {
    c.set_deadline_ms(ctx_.config->engine.auth_timeout_ms);
    auto fd = c.watch(Side::kClient);
    if (!fd) return fail_before_login(c, "client socket: " + fd.error().message);
    ssh_session s = ssh_new();
    if (s == nullptr) {
      ::close(*fd);
      return fail_before_login(c, "out of memory for an SSH session");
    }
    sessions_[0] = s;
    ssh_bind bind = state_.binds[listener_.index];
    GH_ASSERT(bind != nullptr);
    if (ssh_bind_accept_fd(bind, s, *fd) != SSH_OK) {
      return fail_before_login(c, fmt::format("SSH accept: {}", ssh_get_error(s)));
    }
    ssh_set_blocking(s, 0);
    ssh_set_auth_methods(s, kTokenMethods);
    phase_ = Phase::kHandshake;
    pump(c);
  }

  void on_input(Connection&, Side) override {}  // both sides are watched: no engine input

  void on_ready(Connection& c, Side, uint32_t) override { pump(c); }
  void on_resume(Connection& c) override { pump(c); }

  void on_upstream_connected(Connection& c, int error) override {
    if (phase_ != Phase::kUpstreamConnecting) return;
    if (error != 0) {
      return refuse_login(c, "gatehouse could not reach the host",
                          fmt::format("upstream connect to {} failed: {}",
                                      connection_->upstream.address.text, strerror(error)));
    }
    auto fd = c.watch(Side::kUpstream);
    if (!fd) return refuse_login(c, "gatehouse could not reach the host", fd.error().message);
    ssh_session s = ssh_new();
    if (s == nullptr) {
      ::close(*fd);
      return refuse_login(c, "gatehouse could not reach the host", "out of memory");
    }
    sessions_[1] = s;
    const auto& up = connection_->upstream;
    const Key& pinned = state_.pinned_keys.at(connection_->name);
    const std::string host_keys = host_key_algorithms(pinned.get());
    socket_t socket = *fd;
    const bool no = false;
    bool ok = ssh_options_set(s, SSH_OPTIONS_FD, &socket) == SSH_OK;
    ok = ok && ssh_options_set(s, SSH_OPTIONS_HOST, up.host.c_str()) == SSH_OK;
    ok = ok && ssh_options_set(s, SSH_OPTIONS_USER, up.user.c_str()) == SSH_OK;
    ok = ok && ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no) == SSH_OK;
    ok = ok && ssh_options_set(s, SSH_OPTIONS_HOSTKEYS, host_keys.c_str()) == SSH_OK;
    ok = ok && ssh_options_set(s, SSH_OPTIONS_KEY_EXCHANGE, kKeyExchanges) == SSH_OK;
    ok = ok && ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, kCiphers) == SSH_OK;
    ok = ok && ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, kCiphers) == SSH_OK;
    ok = ok && ssh_options_set(s, SSH_OPTIONS_HMAC_C_S, kMacs) == SSH_OK;
    ok = ok && ssh_options_set(s, SSH_OPTIONS_HMAC_S_C, kMacs) == SSH_OK;
    if (!ok) {
      ::close(*fd);  // not yet handed to libssh's socket
      return refuse_login(c, "gatehouse could not reach the host",
                          fmt::format("upstream SSH options: {}", ssh_get_error(s)));
    }
    ssh_set_blocking(s, 0);
    phase_ = Phase::kUpstreamHandshake;
    pump(c);
  }

  void on_peer_closed(Connection& c, const engine::PeerClosed& closed) override {
    // Watched sides report through libssh; this is a connect that failed after all.
    if (closed.side == Side::kUpstream && phase_ == Phase::kUpstreamConnecting) {
      return refuse_login(c, "gatehouse could not reach the host", "upstream connection failed");
    }
    pump(c);
  }

  void on_deadline(Connection& c) override {
    if (phase_ == Phase::kReady) {
      // Held commands whose review timed out (unless decided a moment ago).
      const auto now = std::chrono::steady_clock::now();
      for (auto& ch : channels_) {
        if (ch->hold && !ch->hold->approved && now >= ch->hold->expires)
          ch->hold->ticket.settle(review::State::kExpired);
      }
      return pump(c);
    }
    if (phase_ == Phase::kDone) return;
    if (phase_ >= Phase::kUpstreamConnecting) {
      return refuse_login(c, "gatehouse could not reach the host",
                          fmt::format("upstream login not complete within {} ms (phase {})",
                                      ctx_.config->engine.connect_timeout_ms, phase_name()));
    }
    fail_before_login(c, fmt::format("login not complete within its deadline (phase {})", phase_name()));
  }

  void on_policy_changed(Connection& c) override {
    if (!started_ || phase_ == Phase::kDone || c.closing()) return;
    if (const identity::Revocation* revoked = state_.revocations.get().find(identity_)) {
      return end_session(c, "token revoked: " + identity::describe(*revoked));
    }
    for (auto& ch : channels_) {
      if (ch->hold) return pump(c);  // its review may have been decided
    }
  }

  void on_drain(Connection& c) override {
    if (phase_ == Phase::kDone) return;
    end_session(c, "gateway shutdown");
  }

 private:
  enum class Phase : uint8_t {
    kStart,
    kHandshake,           // key exchange with the caller
    kAuth,                // waiting for the caller's token
    kUpstreamConnecting,  // TCP toward the host
    kUpstreamHandshake,   // key exchange with the host, host key check
    kUpstreamAuth,        // login with the gateway's credentials
    kReady,
    kDone,
  };

  const char* phase_name() const {
    switch (phase_) {
      case Phase::kStart: return "start";
      case Phase::kHandshake: return "handshake";
      case Phase::kAuth: return "auth";
      case Phase::kUpstreamConnecting: return "upstream-connecting";
      case Phase::kUpstreamHandshake: return "upstream-handshake";
      case Phase::kUpstreamAuth: return "upstream-auth";
      case Phase::kReady: return "ready";
      case Phase::kDone: return "done";
    }
    return "?";
  }

  ssh_session client() const { return sessions_[0]; }
  ssh_session upstream() const { return sessions_[1]; }

  // ---- the pump ---------------------------------------------------------------------------------

  // Reads what the sockets have, then lets every part of the state machine move. Bounded by
  // Limits::pump_rounds_max; when work remains, the engine is asked to come back at its next turn.
  void pump(Connection& c) {
    if (pumping_) return;
    pumping_ = true;
    uint32_t round = 0;
    for (; round < ctx_.limits.pump_rounds_max; ++round) {
      if (!flush_pending_records(c)) break;  // the ring is full: nothing moves meanwhile
      if (phase_ == Phase::kDone || c.closing()) break;
      bool progress = poll_sockets();
      progress |= step(c);
      if (phase_ == Phase::kDone || c.closing()) break;
      if (!progress) break;
    }
    pumping_ = false;
    if (phase_ == Phase::kDone || c.closing()) return;
    if (round == ctx_.limits.pump_rounds_max) c.ready_again(Side::kClient);
    for (int i = 0; i < 2; ++i) {
      // libssh keeps what the socket did not take and flushes it when polled writable.
      if (sessions_[i] != nullptr && (ssh_get_poll_flags(sessions_[i]) & SSH_WRITE_PENDING))
        c.want_writable(Side(i));
    }
  }

  bool poll_sockets() {
    bool progress = false;
    for (int i = 0; i < 2; ++i) {
      if (events_[i] == nullptr) continue;
      if (ssh_event_dopoll(events_[i], 0) == SSH_OK) progress = true;
    }
    return progress;
  }

  // Puts a libssh session's socket into its own event so that one non-blocking poll(2) of that
  // socket reads it (libssh creates the poll handle during its first handshake call).
  void watch_session(int side) {
    if (events_[side] != nullptr) return;
    events_[side] = ssh_event_new();
    GH_ASSERT(events_[side] != nullptr);
    if (ssh_event_add_session(events_[side], sessions_[side]) != SSH_OK) {
      ssh_event_free(events_[side]);
      events_[side] = nullptr;
    }
  }

  bool alive(int side) const {
    ssh_session s = sessions_[side];
    return s != nullptr && (ssh_get_status(s) & (SSH_CLOSED | SSH_CLOSED_ERROR)) == 0;
  }

  bool step(Connection& c) {
    bool progress = false;
    if (sessions_[0] != nullptr && !alive(0)) {
      end_session(c, phase_ == Phase::kReady ? std::string("client disconnected")
                                             : fmt::format("client disconnected during {}: {}",
                                                           phase_name(), ssh_get_error(client())));
      return true;
    }
    switch (phase_) {
      case Phase::kHandshake: {
        const int rc = ssh_handle_key_exchange(client());
        watch_session(0);
        if (rc == SSH_OK) {
          phase_ = Phase::kAuth;
          progress = true;
        } else if (rc == SSH_ERROR) {
          fail_before_login(c, fmt::format("SSH handshake with the client failed: {}", ssh_get_error(client())));
          return true;
        }
        break;
      }
      case Phase::kUpstreamHandshake:
        progress |= step_upstream_handshake(c);
        break;
      case Phase::kUpstreamAuth:
        progress |= step_upstream_auth(c);
        break;
      default:
        break;
    }
    if (phase_ == Phase::kDone) return true;
    if (phase_ >= Phase::kAuth) progress |= client_messages(c);
    if (phase_ == Phase::kReady) {
      if (!alive(1)) {
        upstream_gone(c);
        return true;
      }
      progress |= upstream_messages(c);
      // Forwarding first: a tcpip-forward goes to the host before the session channels' opens
      // and requests that came after it (a command may use the port at once).
      if (forwarding_) progress |= forwarding_->step(upstream(), forward_recorder(c));
      for (size_t i = 0; i < channels_.size() && phase_ == Phase::kReady; ++i) {
        progress |= step_channel(c, *channels_[i]);
      }
      progress |= reap_channels();
    }
    return progress;
  }

  // ---- the caller's side: authentication --------------------------------------------------------

  bool client_messages(Connection& c) {
    bool progress = false;
    for (uint32_t n = 0; n < ctx_.limits.messages_per_round_max; ++n) {
      if (phase_ == Phase::kDone) return true;
      // Answers to the caller wait while the upstream login runs.
      if (phase_ > Phase::kAuth && phase_ < Phase::kReady) return progress;
      Message m(ssh_message_get(client()));
      if (!m) return progress;
      progress = true;
      switch (ssh_message_type(m.get())) {
        case SSH_REQUEST_SERVICE:
          ssh_message_service_reply_success(m.get());
          break;
        case SSH_REQUEST_AUTH:
          on_auth(c, std::move(m));
          break;
        case SSH_REQUEST_CHANNEL_OPEN:
          on_channel_open(c, std::move(m));
          break;
        case SSH_REQUEST_CHANNEL:
          on_channel_request(c, std::move(m));
          break;
        case SSH_REQUEST_GLOBAL:
          on_global_request(c, std::move(m));
          break;
        default:
          ssh_message_reply_default(m.get());
          break;
      }
    }
    return progress;
  }

  void on_auth(Connection& c, Message m) {
    if (phase_ != Phase::kAuth) {
      ssh_message_reply_default(m.get());
      return;
    }
    // A keyboard-interactive response carries no user: the request before it named one.
    if (const char* user = ssh_message_auth_user(m.get()); user != nullptr) user_ = user;
    const int method = ssh_message_subtype(m.get());
    std::string token;
    if (method == SSH_AUTH_METHOD_PASSWORD) {
      token = text_of(ssh_message_auth_password(m.get()));
    } else if (method == SSH_AUTH_METHOD_INTERACTIVE) {
      if (!ssh_message_auth_kbdint_is_response(m.get())) {
        // One prompt, echo off: the answer is the token (RFC 4256 section 3.2).
        const char* prompts[] = {"Token: "};
        char echo[] = {0};
        ssh_message_auth_interactive_request(m.get(), "gatehouse", "Answer with your gatehouse token.", 1,
                                             prompts, echo);
        return;
      }
      if (ssh_userauth_kbdint_getnanswers(client()) == 1) token = text_of(ssh_userauth_kbdint_getanswer(client(), 0));
    } else {
      // "none", "publickey"...: offer the token methods.
      ssh_message_auth_set_methods(m.get(), kTokenMethods);
      ssh_message_reply_default(m.get());
      return;
    }
    ++auth_attempts_;
    authenticate(c, std::move(m), token);
  }

  // The token is the only proof of identity; every refusal looks the same to the caller.
  // Validation, revocation and access rules are the ones PostgreSQL logins go through.
  void authenticate(Connection& c, Message m, std::string_view token) {
    const int64_t now_s = int64_t(std::time(nullptr));
    auto identity = state_.tokens.validate(token, now_s);
    std::string refusal;
    const config::ConnectionConfig* connection = nullptr;
    if (!identity) {
      refusal = identity.error().message;
    } else if ((connection = ctx_.config->find_connection(user_)) == nullptr ||
               connection->protocol != "ssh") {
      refusal = fmt::format("no SSH connection named '{}'", user_);
    } else if (const identity::Revocation* revoked = state_.revocations.get().find(*identity)) {
      refusal = "token revoked: " + identity::describe(*revoked);
    } else if (auto denied = access::refusal(*connection, *identity)) {
      refusal = std::move(*denied);
    }
    std::vector<std::string> claims;
    if (identity) {
      for (const auto& [name, value] : identity->provenance) claims.push_back(name + "=" + value);
    }
    if (!refusal.empty()) {
      std::vector<Field> fields{{FieldTag::kProtocol, "ssh"},
                                {FieldTag::kClientAddress, c.client_address()},
                                {FieldTag::kUser, user_},
                                {FieldTag::kReason, refusal}};
      const std::vector<std::string> chain = identity ? identity->chain() : std::vector<std::string>{};
      for (const auto& member : chain) fields.push_back({FieldTag::kChainMember, member});
      record(c, EventType::kAuthFailure, fields);
      ssh_message_auth_set_methods(m.get(), kTokenMethods);
      ssh_message_reply_default(m.get());
      if (auth_attempts_ >= ctx_.limits.auth_attempts_max) {
        phase_ = Phase::kDone;
        ssh_disconnect(client());
        finish(c);
      }
      return;
    }
    connection_ = connection;
    forwarding_ = std::make_unique<Forwarding>(connection->forwarding, ctx_.limits, state_.relay);
    if (auto p = ctx_.policies.find(connection->name); p != ctx_.policies.end()) policy_ = p->second;
    std::vector<Field> fields{{FieldTag::kProtocol, "ssh"},
                              {FieldTag::kConnection, connection->name},
                              {FieldTag::kClientAddress, c.client_address()},
                              {FieldTag::kUser, user_},
                              {FieldTag::kIssuer, identity->issuer},
                              {FieldTag::kTokenId, identity->token_id}};
    const std::vector<std::string> chain = identity->chain();
    for (const auto& member : chain) fields.push_back({FieldTag::kChainMember, member});
    for (const auto& g : identity->groups) fields.push_back({FieldTag::kGroup, g});
    for (const auto& claim : claims) fields.push_back({FieldTag::kClaim, claim});
    for (const auto& id : identity->lineage) fields.push_back({FieldTag::kTokenLineage, id});
    record(c, EventType::kSessionStart, fields);
    // Kept for on_policy_changed (revocation); the rest is dropped to keep a session small.
    identity_ = std::move(*identity);
    identity_.claims = nlohmann::json();
    identity_.groups = {};
    identity_.provenance = {};
    identity_.connections.reset();
    started_ = true;
    pending_auth_ = std::move(m);  // answered once the host accepted the gateway's login
    phase_ = Phase::kUpstreamConnecting;
    c.set_deadline_ms(ctx_.config->engine.connect_timeout_ms);
    c.connect_upstream(connection->upstream.address.storage, connection->upstream.address.length);
  }

  // ---- the host's side: handshake, host key, login ----------------------------------------------

  bool step_upstream_handshake(Connection& c) {
    const int rc = ssh_connect(upstream());
    watch_session(1);
    if (rc == SSH_AGAIN) return false;
    if (rc != SSH_OK) {
      refuse_login(c, "gatehouse could not reach the host",
                   fmt::format("upstream SSH handshake failed: {}", ssh_get_error(upstream())));
      return true;
    }
    ssh_key presented = nullptr;
    if (ssh_get_server_publickey(upstream(), &presented) != SSH_OK || presented == nullptr) {
      refuse_login(c, "gatehouse could not reach the host", "upstream presented no host key");
      return true;
    }
    Key owned(presented);
    const Key& pinned = state_.pinned_keys.at(connection_->name);
    if (ssh_key_cmp(presented, pinned.get(), SSH_KEY_CMP_PUBLIC) != 0) {
      refuse_login(c, "the host's key does not match the key gatehouse pins for it",
                   fmt::format("upstream host key mismatch: pinned {} {}, presented {} {}",
                               ssh_key_type_to_char(ssh_key_type(pinned.get())), fingerprint(pinned.get()),
                               ssh_key_type_to_char(ssh_key_type(presented)), fingerprint(presented)));
      return true;
    }
    phase_ = Phase::kUpstreamAuth;
    return true;
  }

  bool step_upstream_auth(Connection& c) {
    int rc;
    const auto& up = connection_->upstream;
    if (!up.private_key_file.empty()) {
      rc = ssh_userauth_publickey(upstream(), nullptr, state_.login_keys.at(connection_->name).get());
    } else {
      rc = ssh_userauth_password(upstream(), nullptr, up.password.c_str());
    }
    if (rc == SSH_AUTH_AGAIN) return false;
    if (rc != SSH_AUTH_SUCCESS) {
      refuse_login(c, "the host refused gatehouse's login",
                   fmt::format("upstream refused the gateway's login as '{}' ({}): {}", up.user,
                               up.private_key_file.empty() ? "password" : "key",
                               rc == SSH_AUTH_ERROR ? ssh_get_error(upstream()) : "denied"));
      return true;
    }
    ssh_message_auth_reply_success(pending_auth_.get(), 0);
    pending_auth_.reset();
    phase_ = Phase::kReady;
    c.set_deadline_ms(0);
    record(c, EventType::kNotice,
           {Field{FieldTag::kMessage, fmt::format("logged in to {} as {}", up.address.text, up.user)}});
    return true;
  }

  // The caller gets a banner with the reason in its own words, then an authentication failure
  // and a disconnect; the trail gets the precise reason.
  void refuse_login(Connection& c, std::string_view client_message, std::string_view reason) {
    if (phase_ == Phase::kDone) return;
    if (client() != nullptr && alive(0)) {
      ssh_string banner = ssh_string_from_char(fmt::format("gatehouse: {}\n", client_message).c_str());
      if (banner != nullptr) {
        ssh_send_issue_banner(client(), banner);
        ssh_string_free(banner);
      }
      if (pending_auth_) ssh_message_reply_default(pending_auth_.get());
    }
    pending_auth_.reset();
    record(c, EventType::kError,
           {Field{FieldTag::kMessage, client_message}, Field{FieldTag::kReason, reason},
            Field{FieldTag::kOrigin, "gateway"}});
    end_session(c, reason);
  }

  // ---- channels: opening --------------------------------------------------------------------------

  void record_refusal(Connection& c, std::string_view what, const Channel* ch = nullptr) {
    const std::string number = ch != nullptr ? std::to_string(ch->number) : std::string();
    const std::string message = fmt::format("refused: {}", what);  // outlives `fields`
    std::vector<Field> fields{{FieldTag::kMessage, message}, {FieldTag::kOrigin, "gateway"}};
    if (ch != nullptr) fields.push_back({FieldTag::kChannel, number});
    record(c, EventType::kError, fields);
  }

  void on_channel_open(Connection& c, Message m) {
    if (phase_ != Phase::kReady) {
      ssh_message_reply_default(m.get());
      return;
    }
    const int type = ssh_message_subtype(m.get());
    if (type != SSH_CHANNEL_SESSION && type != SSH_CHANNEL_DIRECT_TCPIP) {
      // X11 and agent channels come from the host only (Forwarding), never from the caller.
      ssh_message_reply_default(m.get());
      return record_refusal(c, type == SSH_CHANNEL_X11 ? std::string("x11") : fmt::format("channel type {}", type));
    }
    if (live_channels() >= ctx_.limits.channels_max) {
      ssh_message_reply_default(m.get());
      return record_refusal(c, "channel: too many channels");
    }
    if (type == SSH_CHANNEL_DIRECT_TCPIP) {  // refused there unless the connection allows it
      return forwarding_->open_direct(upstream(), ForwardMessage(m.release()), ++channel_numbers_,
                                      forward_recorder(c));
    }
    auto ch = std::make_unique<Channel>();
    ch->number = ++channel_numbers_;
    ch->open_request = std::move(m);
    ch->upstream = ssh_channel_new(upstream());
    channels_.push_back(std::move(ch));
  }

  // Remote port forwarding (tcpip-forward) goes to Forwarding; other global requests
  // (keepalives, hostkeys-00) get the default answer.
  void on_global_request(Connection& c, Message m) {
    if (forwarding_) {
      ForwardMessage request(m.release());
      if (forwarding_->global_request(request, forward_recorder(c))) return;
      m.reset(request.release());
    }
    const int type = ssh_message_subtype(m.get());
    if (type == SSH_GLOBAL_REQUEST_TCPIP_FORWARD) {
      record_refusal(c, fmt::format("tcpip-forward (remote port forwarding) of {}:{}",
                                    text_of(ssh_message_global_request_address(m.get())),
                                    ssh_message_global_request_port(m.get())));
    }
    ssh_message_reply_default(m.get());
  }

  uint32_t live_channels() const {
    uint32_t n = 0;
    for (const auto& ch : channels_) n += (ch->client_closed && ch->upstream_closed) ? 0 : 1;
    return n + (forwarding_ ? forwarding_->live() : 0);
  }

  // The host opens channels toward the caller only for remote forwards (Forwarding); the rest
  // is refused.
  bool upstream_messages(Connection& c) {
    bool progress = false;
    for (uint32_t n = 0; n < ctx_.limits.messages_per_round_max; ++n) {
      Message m(ssh_message_get(upstream()));
      if (!m) return progress;
      progress = true;
      if (ssh_message_type(m.get()) == SSH_REQUEST_CHANNEL_OPEN && forwarding_) {
        ForwardMessage open(m.release());
        if (forwarding_->host_channel_open(client(), open, channel_numbers_ + 1, forward_recorder(c))) {
          ++channel_numbers_;
          continue;
        }
        m.reset(open.release());
      }
      ssh_message_reply_default(m.get());
    }
    return progress;
  }

  // Opens the host's twin of a caller's session channel, then accepts the caller's.
  bool step_open(Connection& c, Channel& ch) {
    const int rc = ch.upstream != nullptr ? ssh_channel_open_session(ch.upstream) : SSH_ERROR;
    if (rc == SSH_AGAIN) return false;
    if (rc != SSH_OK) {
      ssh_message_reply_default(ch.open_request.get());
      ch.open_request.reset();
      record(c, EventType::kError,
             {Field{FieldTag::kMessage, "the host refused a session channel"},
              Field{FieldTag::kReason, ssh_get_error(upstream())}, Field{FieldTag::kOrigin, "upstream"}});
      ch.client_closed = ch.upstream_closed = true;
      return true;
    }
    ch.client = ssh_message_channel_request_open_reply_accept(ch.open_request.get());
    ch.open_request.reset();
    if (ch.client == nullptr) {
      ch.client_closed = ch.upstream_closed = true;
      return true;
    }
    install_callbacks(ch);
    ch.open = true;
    return true;
  }

  void install_callbacks(Channel& ch) {
    auto& cc = ch.client_callbacks;
    cc = ssh_channel_callbacks_struct{};
    ssh_callbacks_init(&cc);
    cc.userdata = &ch;
    cc.channel_close_function = [](ssh_session, ssh_channel, void* u) {
      static_cast<Channel*>(u)->client_closed = true;
    };
    // libssh answers nothing to it (OpenSSH asks for no answer): not relaying it is the refusal.
    cc.channel_auth_agent_req_function = [](ssh_session, ssh_channel, void* u) {
      static_cast<Channel*>(u)->agent_requested = true;
    };
    // libssh hands "signal" requests to this callback only, never to the message queue.
    cc.channel_signal_function = [](ssh_session, ssh_channel, const char* signal, void* u) {
      auto* ch = static_cast<Channel*>(u);
      if (signal != nullptr && ch->signals.size() < kPendingSignalsMax) ch->signals.emplace_back(signal);
    };
    ssh_set_channel_callbacks(ch.client, &cc);

    auto& uc = ch.upstream_callbacks;
    uc = ssh_channel_callbacks_struct{};
    ssh_callbacks_init(&uc);
    uc.userdata = &ch;
    uc.channel_eof_function = [](ssh_session, ssh_channel, void* u) {
      static_cast<Channel*>(u)->upstream_eof = true;
    };
    uc.channel_close_function = [](ssh_session, ssh_channel, void* u) {
      static_cast<Channel*>(u)->upstream_closed = true;
    };
    uc.channel_exit_status_function = [](ssh_session, ssh_channel, int status, void* u) {
      static_cast<Channel*>(u)->exit_status = status;
    };
    uc.channel_exit_signal_function = [](ssh_session, ssh_channel, const char* signal, int core,
                                         const char* message, const char*, void* u) {
      auto* ch = static_cast<Channel*>(u);
      ch->exit_signal = text_of(signal);
      ch->exit_core = core != 0;
      ch->exit_message = text_of(message);
    };
    ssh_set_channel_callbacks(ch.upstream, &uc);
  }

  // ---- channels: requests ---------------------------------------------------------------------

  Channel* channel_of(ssh_channel client_channel) {
    for (auto& ch : channels_) {
      if (ch->client == client_channel && ch->open) return ch.get();
    }
    return nullptr;
  }

  void on_channel_request(Connection& c, Message m) {
    Channel* ch = channel_of(ssh_message_channel_request_channel(m.get()));
    if (ch == nullptr || ch->client_closed || ch->upstream_closed ||
        ch->requests.size() >= ctx_.limits.channel_requests_max) {
      ssh_message_reply_default(m.get());
      return;
    }
    const int type = ssh_message_subtype(m.get());
    if (type == SSH_CHANNEL_REQUEST_EXEC || is_sftp_request(m.get()) || is_terminal_request(type) ||
        (type == SSH_CHANNEL_REQUEST_X11 && forwarding_ && forwarding_->x11_enabled())) {
      ch->requests.push_back(std::move(m));
      return;
    }
    // Environment variables are not passed on (a caller must not steer the host's programs);
    // subsystems are not relayed yet.
    ssh_message_reply_default(m.get());
    if (type == SSH_CHANNEL_REQUEST_SUBSYSTEM)
      record_refusal(c, fmt::format("subsystem {} (not supported yet)", text_of(ssh_message_channel_request_subsystem(m.get()))), ch);
    if (type == SSH_CHANNEL_REQUEST_X11) record_refusal(c, "x11-req", ch);
  }

  // The rule that denies `command`, if any: the connection's deny regexes over the whole line.
  // The connection's deny and approve regexes over a command line or a shell line.
  mask::SqlVerdict judge_text(std::string_view text) {
    if (policy_ == nullptr) return {};
    return policy_->sql.judge_text(text, state_.scratch);
  }

  // Judges the head of the channel's requests (an exec) and forwards it; answers the caller as
  // the host answered.
  bool step_request(Connection& c, Channel& ch) {
    if (ch.requests.empty()) return false;
    ssh_message m = ch.requests.front().get();
    if (is_terminal_request(ssh_message_subtype(m))) return step_terminal_request(c, ch, m);
    if (ssh_message_subtype(m) == SSH_CHANNEL_REQUEST_X11) {  // the connection relays X11
      const int rc = forwarding_->request_x11(ch.upstream, m, ch.number, forward_recorder(c));
      ch.request_sent = rc == SSH_AGAIN;
      if (rc == SSH_AGAIN) return false;
      ch.requests.pop_front();
      return true;
    }
    const std::string number = std::to_string(ch.number);
    const bool subsystem = is_sftp_request(m);
    if (!ch.request_sent) {
      if (ch.exec_started) {  // one program per channel (RFC 4254 section 6.5)
        ssh_message_reply_default(m);
        ch.requests.pop_front();
        return true;
      }
      ch.command = subsystem ? "sftp" : text_of(ssh_message_channel_request_command(m));
      ch.exec_started = true;
      record(c, EventType::kStatement,
             {Field{FieldTag::kStatementKind, subsystem ? "subsystem" : "exec"},
              Field{FieldTag::kText, ch.command}, Field{FieldTag::kChannel, number}});
      const mask::SqlVerdict verdict = subsystem ? mask::SqlVerdict{} : judge_text(ch.command);
      if (verdict.kind == mask::SqlVerdict::Kind::kApprove && ctx_.reviews != nullptr) {
        start_hold(c, ch, verdict);
        ch.requests.pop_front();
        return true;
      }
      if (!verdict.allowed()) {
        deny_exec(c, ch, verdict.rule);
        ch.requests.pop_front();
        return true;
      }
      ch.transfer = subsystem || is_git_transfer(ch.command);
      if (subsystem) ch.sftp = std::make_unique<SftpAudit>(ch.number);
      start_guard(ch);
    }
    const int rc = subsystem ? ssh_channel_request_subsystem(ch.upstream, "sftp")
                             : ssh_channel_request_exec(ch.upstream, ch.command.c_str());
    if (rc == SSH_AGAIN) {
      ch.request_sent = true;
      return false;
    }
    ch.request_sent = false;
    if (rc == SSH_OK) {
      ssh_message_channel_request_reply_success(m);
    } else {
      ssh_message_reply_default(m);
      record(c, EventType::kError,
             {Field{FieldTag::kMessage, subsystem ? "the host refused the sftp subsystem"
                                                  : "the host refused the exec request"},
              Field{FieldTag::kOrigin, "upstream"}, Field{FieldTag::kChannel, number}});
    }
    ch.requests.pop_front();
    return true;
  }

  // ---- channels: approval holds ----------------------------------------------------------------
  //
  // An exec under an approve rule: the caller's request is answered at once and told on stderr
  // which review holds it; the command, stdin and EOF wait at the gateway. The decision arrives
  // through the review's cell (the shard's tick sees the review epoch move: on_policy_changed),
  // a time-out through the connection's deadline. Approved, the exec goes upstream and the
  // channel relays as any other; denied, timed out or cancelled, the caller gets the reason on
  // stderr and exit status 126.

  void start_hold(Connection& c, Channel& ch, const mask::SqlVerdict& verdict) {
    ssh_message_channel_request_reply_success(ch.requests.front().get());
    const config::ApproveRule* rule = nullptr;
    for (const config::ApproveRule& r : connection_->guardrails.approve) {
      if (r.name == verdict.rule) rule = &r;
    }
    GH_ASSERT(rule != nullptr);  // an approve verdict names one of the connection's rules
    auto ticket = ctx_.reviews->submit(review::Request{
        .connection = connection_->name,
        .rule = verdict.rule,
        .reason = verdict.reason,
        .statement = ch.command,
        .kind = "exec",
        .requester_chain = identity_.chain(),
        .approver_groups = rule->approver_groups,
        .approvals_min = rule->approvals_min,
        .timeout_s = rule->timeout_s,
        .session_id = fmt::format("{:016x}", recorder_.session_id()),
        .client_address = c.client_address()});
    if (!ticket) {
      return refuse_exec(c, ch, verdict.rule,
                         fmt::format("gatehouse: command refused: rule '{}' requires an approval, "
                                     "and no review could be opened\n", verdict.rule),
                         ticket.error().message);
    }
    ch.hold = std::make_unique<ExecHold>(ExecHold{
        .ticket = std::move(*ticket),
        .rule = verdict.rule,
        .timeout_s = rule->timeout_s,
        .expires = std::chrono::steady_clock::now() + std::chrono::seconds(rule->timeout_s),
        .approved = false});
    const std::string& id = ch.hold->ticket.id;
    record(c, EventType::kReview,
           {Field{FieldTag::kReviewId, id}, Field{FieldTag::kOutcome, "requested"},
            Field{FieldTag::kRule, verdict.rule}, Field{FieldTag::kReason, verdict.reason},
            Field{FieldTag::kStatementHash, ch.hold->ticket.sha256}, Field{FieldTag::kChannel, std::to_string(ch.number)}});
    const std::string message = fmt::format(
        "gatehouse: command held for approval: review {} (rule '{}'); it runs once approved, and is "
        "refused if denied or not approved within {} s\n"
        "gatehouse: an approver runs: gatehouse review approve {}\n",
        id, verdict.rule, rule->timeout_s, id);
    ssh_channel_write_stderr(ch.client, message.data(), uint32_t(message.size()));
    arm_hold_deadline(c);
  }

  // The connection's deadline at the earliest time-out of its pending holds.
  void arm_hold_deadline(Connection& c) {
    std::optional<std::chrono::steady_clock::time_point> first;
    for (const auto& ch : channels_) {
      if (ch->hold && !ch->hold->approved && (!first || ch->hold->expires < *first)) first = ch->hold->expires;
    }
    if (!first) return c.set_deadline_ms(0);
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*first - std::chrono::steady_clock::now());
    c.set_deadline_ms(uint32_t(std::max<int64_t>(1, left.count())));
  }

  bool step_hold(Connection& c, Channel& ch) {
    ExecHold& hold = *ch.hold;
    const std::string number = std::to_string(ch.number);
    if (!hold.approved) {
      const review::State state = hold.ticket.state();
      if (state == review::State::kPending) return false;
      const std::string id = hold.ticket.id;
      const review::Cell& cell = *hold.ticket.cell;
      if (state == review::State::kApproved) {
        std::vector<Field> fields{{FieldTag::kReviewId, id}, {FieldTag::kOutcome, "approved"},
                                  {FieldTag::kRule, hold.rule}, {FieldTag::kStatementHash, hold.ticket.sha256},
                                  {FieldTag::kChannel, number}};
        for (const std::string& a : cell.approvers) fields.push_back({FieldTag::kApprover, a});
        record(c, EventType::kReview, fields);
        hold.approved = true;
        arm_hold_deadline(c);
      } else {
        std::string message;
        std::string reason;
        const std::string_view outcome = review::state_name(state);
        if (state == review::State::kDenied) {
          message = fmt::format("gatehouse: command refused: review {} (rule '{}') was denied by {}: {}\n",
                                id, hold.rule, cell.denied_by, cell.deny_reason);
          reason = cell.deny_reason;
          record(c, EventType::kReview,
                 {Field{FieldTag::kReviewId, id}, Field{FieldTag::kOutcome, outcome},
                  Field{FieldTag::kRule, hold.rule}, Field{FieldTag::kApprover, cell.denied_by},
                  Field{FieldTag::kReason, reason}, Field{FieldTag::kChannel, number}});
        } else {
          message = state == review::State::kExpired
                        ? fmt::format("gatehouse: command refused: review {} (rule '{}') was not approved "
                                      "within {} s\n", id, hold.rule, hold.timeout_s)
                        : fmt::format("gatehouse: command refused: review {} (rule '{}') was cancelled\n",
                                      id, hold.rule);
          reason = fmt::format("review {}", outcome);
          record(c, EventType::kReview,
                 {Field{FieldTag::kReviewId, id}, Field{FieldTag::kOutcome, outcome},
                  Field{FieldTag::kRule, hold.rule}, Field{FieldTag::kChannel, number}});
        }
        const std::string rule = hold.rule;
        ch.hold.reset();
        arm_hold_deadline(c);
        refuse_exec(c, ch, rule, message, reason);
        return true;
      }
    }
    // Approved: what goes upstream is the command held, which is what the review hashed.
    GH_ASSERT(review::statement_sha256(ch.command) == hold.ticket.sha256);
    const int rc = ssh_channel_request_exec(ch.upstream, ch.command.c_str());
    if (rc == SSH_AGAIN) return false;
    const std::string rule = hold.rule;
    ch.hold.reset();
    if (rc != SSH_OK) {
      refuse_exec(c, ch, rule, "gatehouse: the host refused the exec request\n", "the host refused the exec request");
    }
    return true;
  }

  // A hold whose caller left: the review is cancelled (unless decided a moment ago).
  void cancel_hold(Connection& c, Channel& ch) {
    if (ch.hold && !ch.hold->approved && ch.hold->ticket.settle(review::State::kCancelled)) {
      record(c, EventType::kReview,
             {Field{FieldTag::kReviewId, ch.hold->ticket.id}, Field{FieldTag::kOutcome, "cancelled"},
              Field{FieldTag::kRule, ch.hold->rule}, Field{FieldTag::kReason, "the caller left"},
              Field{FieldTag::kChannel, std::to_string(ch.number)}});
    }
    ch.hold.reset();
  }

  static bool is_terminal_request(int type) {
    return type == SSH_CHANNEL_REQUEST_PTY || type == SSH_CHANNEL_REQUEST_SHELL ||
           type == SSH_CHANNEL_REQUEST_WINDOW_CHANGE;
  }

  // pty-req, shell and window-change go upstream as the caller sent them (the terminal's modes
  // excepted: libssh's message API does not hand them over, so the host's defaults apply), and
  // the caller gets the host's answer.
  bool step_terminal_request(Connection& c, Channel& ch, ssh_message m) {
    const int type = ssh_message_subtype(m);
    const char* request = type == SSH_CHANNEL_REQUEST_PTY     ? "pty-req"
                          : type == SSH_CHANNEL_REQUEST_SHELL ? "shell"
                                                              : "window-change";
    if (type == SSH_CHANNEL_REQUEST_SHELL && !ch.request_sent && ch.exec_started) {
      ssh_message_reply_default(m);  // one program per channel
      ch.requests.pop_front();
      return true;
    }
    const std::string term(text_of(ssh_message_channel_request_pty_term(m)));
    const int columns = ssh_message_channel_request_pty_width(m);
    const int rows = ssh_message_channel_request_pty_height(m);
    int rc;
    if (type == SSH_CHANNEL_REQUEST_PTY) {
      rc = ssh_channel_request_pty_size(ch.upstream, term.c_str(), columns, rows);
    } else if (type == SSH_CHANNEL_REQUEST_SHELL) {
      rc = ssh_channel_request_shell(ch.upstream);
    } else {
      rc = ssh_channel_change_pty_size(ch.upstream, columns, rows);  // no answer is asked for
    }
    if (rc == SSH_AGAIN) {
      ch.request_sent = true;
      return false;
    }
    ch.request_sent = false;
    const std::string number = std::to_string(ch.number);
    if (rc != SSH_OK) {
      ssh_message_reply_default(m);
      ch.requests.pop_front();
      const std::string message = fmt::format("the host refused the {} request", request);
      record(c, EventType::kError,
             {Field{FieldTag::kMessage, message}, Field{FieldTag::kOrigin, "upstream"},
              Field{FieldTag::kChannel, number}});
      return true;
    }
    ssh_message_channel_request_reply_success(m);
    ch.requests.pop_front();  // frees m
    if (type == SSH_CHANNEL_REQUEST_SHELL) {
      record(c, EventType::kTerminal, {Field{FieldTag::kChannel, number}, Field{FieldTag::kRequest, request}});
      ch.shell = ch.exec_started = true;
      start_guard(ch);
      return true;
    }
    if (type == SSH_CHANNEL_REQUEST_PTY) ch.pty = true;
    const std::string cols_text = std::to_string(columns);
    const std::string rows_text = std::to_string(rows);
    std::vector<Field> fields{{FieldTag::kChannel, number}, {FieldTag::kRequest, request}};
    if (type == SSH_CHANNEL_REQUEST_PTY) fields.push_back({FieldTag::kTerminalType, term});
    fields.push_back({FieldTag::kColumns, cols_text});
    fields.push_back({FieldTag::kRows, rows_text});
    record(c, EventType::kTerminal, fields);
    return true;
  }

  // Lines typed into a shell, or into any program on a terminal, are judged by the deny rules.
  void start_guard(Channel& ch) {
    if (ch.guard || ch.transfer || policy_ == nullptr || policy_->sql.regexes() == nullptr) return;
    if (ch.shell || ch.pty) ch.guard = std::make_unique<LineGuard>(ctx_.limits.typed_line_bytes_max);
  }

  // The caller's signal requests (libssh queues them through a callback), relayed and recorded.
  bool relay_signals(Connection& c, Channel& ch) {
    if (ch.signals.empty()) return false;
    const std::string number = std::to_string(ch.number);
    for (; !ch.signals.empty(); ch.signals.pop_front()) {
      ssh_channel_request_send_signal(ch.upstream, ch.signals.front().c_str());  // no answer
      record(c, EventType::kTerminal,
             {Field{FieldTag::kChannel, number}, Field{FieldTag::kRequest, "signal"},
              Field{FieldTag::kText, ch.signals.front()}});
    }
    return true;
  }

  // A deny rule refused an exec: the caller's channel gets the reason on stderr and exit status
  // 126 (POSIX shells' "found but cannot execute"); the command never reaches the host.
  void deny_exec(Connection& c, Channel& ch, std::string_view rule) {
    ssh_message_channel_request_reply_success(ch.requests.front().get());
    refuse_exec(c, ch, rule, fmt::format("gatehouse: command refused by rule '{}'\n", rule));
  }

  // The caller's exec request was answered: the reason on stderr, exit status 126, the end.
  void refuse_exec(Connection& c, Channel& ch, std::string_view rule, std::string_view message,
                   std::string_view reason = {}) {
    ssh_channel_write_stderr(ch.client, message.data(), uint32_t(message.size()));
    ssh_channel_request_send_exit_status(ch.client, 126);
    ssh_channel_send_eof(ch.client);
    ssh_channel_close(ch.client);
    ch.denied = true;
    ch.eof_to_client = ch.exit_relayed = true;
    const std::string number = std::to_string(ch.number);
    std::vector<Field> fields{{FieldTag::kMessage, "command refused"}, {FieldTag::kRule, rule},
                              {FieldTag::kOrigin, "gateway"}, {FieldTag::kChannel, number}};
    if (!reason.empty()) fields.push_back({FieldTag::kReason, reason});
    record(c, EventType::kError, fields);
    record(c, EventType::kCompletion, {Field{FieldTag::kTag, "exit 126"}, Field{FieldTag::kChannel, number}});
  }

  // ---- channels: relay ------------------------------------------------------------------------

  bool step_channel(Connection& c, Channel& ch) {
    if (!ch.open) {
      if (ch.open_request) return step_open(c, ch);
      return false;
    }
    if (ch.sftp && !ch.sftp->failure().empty()) {
      // The audit cannot follow the channel any more: it ends rather than go on unrecorded.
      record(c, EventType::kError,
             {Field{FieldTag::kMessage, "sftp channel closed: its operations can no longer be recorded"},
              Field{FieldTag::kReason, ch.sftp->failure()}, Field{FieldTag::kOrigin, "gateway"},
              Field{FieldTag::kChannel, std::to_string(ch.number)}});
      finish_channel(c, ch);
      return true;
    }
    if (ch.hold) {
      // Nothing moves while the command waits for its review but the caller leaving.
      if (ch.client_closed) {
        finish_channel(c, ch);
        return true;
      }
      if (!step_hold(c, ch) && ch.hold) return false;
    }
    bool progress = false;
    if (ch.agent_requested && !ch.agent_recorded) {
      ch.agent_recorded = true;
      if (!forwarding_ || !forwarding_->request_agent(ch.upstream, ch.number, forward_recorder(c)))
        record_refusal(c, "auth-agent-req (agent forwarding)", &ch);
      progress = true;
    }
    if (!ch.denied) {
      progress |= step_request(c, ch);
      if (!ch.client_closed && !ch.upstream_closed) progress |= relay_signals(c, ch);
      if (!ch.client_closed && !ch.upstream_closed) progress |= relay_input(c, ch);
      if (!ch.client_closed) {
        progress |= relay_output(c, ch, 0);
        progress |= relay_output(c, ch, 1);
      }
    }
    progress |= step_channel_end(c, ch);
    return progress;
  }

  // Writes as much of `pending` as the channel's window takes; true when all of it went.
  static bool write_to(ssh_channel to, bool is_stderr, std::string& pending) {
    const uint32_t window = ssh_channel_window_size(to);
    const uint32_t n = std::min<uint32_t>(window, uint32_t(pending.size()));
    if (n > 0) {
      const int written = is_stderr ? ssh_channel_write_stderr(to, pending.data(), n)
                                    : ssh_channel_write(to, pending.data(), n);
      if (written > 0) pending.erase(0, size_t(written));
    }
    return pending.empty();
  }

  // Records one SFTP file operation (SftpAudit's emitter).
  auto file_operation_recorder(Connection& c) {
    return [this, &c](std::span<const Field> fields) { record(c, EventType::kFileOperation, fields); };
  }

  // Caller to host: stdin, unchanged and not recorded (sftp requests are read by the audit); on
  // a terminal or shell recorded, and submitted lines judged when the connection has deny rules.
  bool relay_input(Connection& c, Channel& ch) {
    // Back-pressure: nothing more for a socket that has not taken the last bytes yet. The
    // windows then stay closed and the sender waits (RFC 4254 section 5.2).
    if (ssh_blocking_flush(upstream(), 0) == SSH_AGAIN) return false;
    bool progress = false;
    if (!ch.carry_in.empty()) {
      if (!write_to(ch.upstream, false, ch.carry_in)) return false;
      progress = true;
    }
    const uint32_t window = ssh_channel_window_size(ch.upstream);
    if (window == 0) return progress;
    std::vector<char>& buffer = state_.relay;
    const int n = ssh_channel_read_nonblocking(ch.client, buffer.data(),
                                               std::min<uint32_t>(window, uint32_t(buffer.size())), 0);
    if (n <= 0) return progress;
    const std::string_view typed(buffer.data(), size_t(n));
    if (ch.pty || ch.shell) record_input(c, ch, typed);
    if (ch.guard) {
      guard_input(c, ch, typed);
    } else {
      ch.carry_in.assign(typed);
    }
    if (ch.sftp) {
      ch.sftp->from_client(ch.carry_in, file_operation_recorder(c));
      if (!ch.sftp->failure().empty()) {  // not forwarded: step_channel ends the channel
        ch.carry_in.clear();
        return true;
      }
    }
    write_to(ch.upstream, false, ch.carry_in);
    return true;
  }

  void record_input(Connection& c, Channel& ch, std::string_view typed) {
    ch.input_bytes += typed.size();
    // Keys are masked like output, chunk by chunk (a secret typed key by key is not seen whole).
    if (policy_ != nullptr && !policy_->mask.empty() &&
        policy_->mask.mask_value(typed, state_.scratch, masked_, state_.matches) > 0) {
      typed = masked_;
    }
    const uint64_t max = ctx_.limits.recorded_terminal_bytes_max;
    const uint64_t room = max - std::min(max, ch.recorded_input);
    if (room == 0) return;
    const std::string_view kept = typed.substr(0, size_t(std::min<uint64_t>(room, typed.size())));
    ch.recorded_input += kept.size();
    record(c, EventType::kInput, {Field{FieldTag::kChannel, std::to_string(ch.number)}, Field{FieldTag::kText, kept}});
  }

  // A refused line never gets its CR or LF upstream (Ctrl-U instead drops it there); the caller
  // is told on the terminal, the trail gets the line and the rule.
  void guard_input(Connection& c, Channel& ch, std::string_view typed) {
    ch.carry_in.clear();
    refused_lines_.clear();
    const LineGuard::Judge judge = [this](std::string_view line) -> std::optional<std::string> {
      mask::SqlVerdict v = judge_text(line);
      if (v.allowed()) return std::nullopt;
      return std::move(v.rule);
    };
    ch.guard->filter(typed, judge, ch.carry_in, refused_lines_);
    const std::string number = std::to_string(ch.number);
    for (const LineGuard::Refusal& r : refused_lines_) {
      // A terminal cannot wait for a review: a line an approve rule names is refused too.
      const bool approvable = judge_text(r.line).kind == mask::SqlVerdict::Kind::kApprove;
      const std::string message =
          fmt::format("gatehouse: line refused by rule '{}'{}", r.rule,
                      approvable ? " (it needs an approval: run it as `ssh HOST 'command'`)" : "");
      record(c, EventType::kStatement,
             {Field{FieldTag::kStatementKind, "line"}, Field{FieldTag::kText, r.line},
              Field{FieldTag::kChannel, number}});
      record(c, EventType::kError,
             {Field{FieldTag::kMessage, message}, Field{FieldTag::kRule, r.rule},
              Field{FieldTag::kOrigin, "gateway"}, Field{FieldTag::kChannel, number}});
      ch.carry[0] += fmt::format("\r\n{}\r\n", message);
    }
  }

  // Host to caller: one chunk of stdout (0) or stderr (1), masked, recorded, then sent.
  bool relay_output(Connection& c, Channel& ch, int stream) {
    if (ssh_blocking_flush(client(), 0) == SSH_AGAIN) return false;
    bool progress = false;
    std::string& carry = ch.carry[stream];
    if (!carry.empty()) {
      if (!write_to(ch.client, stream == 1, carry)) return false;
      progress = true;
    }
    const uint32_t window = ssh_channel_window_size(ch.client);
    if (window == 0) return progress;
    std::vector<char>& buffer = state_.relay;
    const int n = ssh_channel_read_nonblocking(ch.upstream, buffer.data(),
                                               std::min<uint32_t>(window, uint32_t(buffer.size())), stream);
    if (n <= 0) return progress;
    ch.bytes[stream] += uint64_t(n);
    const std::string_view bytes(buffer.data(), size_t(n));
    if (ch.transfer && stream == 0) {
      if (ch.sftp) ch.sftp->from_host(bytes, file_operation_recorder(c));
      if (!ch.sftp || ch.sftp->failure().empty()) carry.append(bytes);
    } else if (policy_ == nullptr || policy_->mask.empty()) {
      emit(c, ch, stream, bytes);
    } else {
      // Masked by whole lines, so that a secret split across two reads is still found.
      std::string& held = ch.held[stream];
      held.append(bytes);
      size_t cut = held.rfind('\n');
      cut = cut == std::string::npos ? 0 : cut + 1;
      if (cut == 0 && held.size() >= ctx_.limits.mask_line_bytes_max) cut = held.size();
      // A terminal shows prompts and echo at once: what the host sent in one burst is masked
      // and sent when nothing more is waiting (a secret split across bursts can escape).
      if ((ch.pty || ch.shell) && ssh_channel_poll(ch.upstream, stream) <= 0) cut = held.size();
      if (cut > 0) {
        emit(c, ch, stream, std::string_view(held).substr(0, cut));
        held.erase(0, cut);
      }
    }
    write_to(ch.client, stream == 1, carry);
    return true;
  }

  // Output on its way to the caller: masked with the connection's rules, recorded as the caller
  // gets it, queued for the channel.
  void emit(Connection& c, Channel& ch, int stream, std::string_view text) {
    if (text.empty()) return;
    if (policy_ != nullptr && !policy_->mask.empty() &&
        policy_->mask.mask_value(text, state_.scratch, masked_, state_.matches) > 0) {
      text = masked_;
    }
    const uint64_t max = ch.pty || ch.shell ? ctx_.limits.recorded_terminal_bytes_max
                                            : ctx_.limits.recorded_stream_bytes_max;
    const uint64_t room = max - std::min(max, ch.recorded[stream]);
    if (room > 0) {
      const std::string_view kept = text.substr(0, size_t(std::min<uint64_t>(room, text.size())));
      ch.recorded[stream] += kept.size();
      record(c, EventType::kOutput,
             {Field{FieldTag::kChannel, std::to_string(ch.number)},
              Field{FieldTag::kStream, kStreamNames[stream]}, Field{FieldTag::kText, kept}});
    }
    ch.carry[stream].append(text);
  }

  // EOF, exit status and close, each relayed once the data before them went through.
  bool step_channel_end(Connection& c, Channel& ch) {
    bool progress = false;
    // The end is taken before the buffers are looked at: ssh_channel_poll reads packets from the
    // socket while its buffer is empty and no EOF came, so the poll of stderr could read the last
    // stdout data together with EOF and close; judged the other way round, the channel counted as
    // drained with that data unread (seen as a 20 MB `cat` losing its tail). Once EOF is in,
    // polls read no more packets and see the buffers as they are.
    const bool upstream_closed = ch.upstream_closed;
    const bool upstream_ended = ch.upstream_eof || upstream_closed || ssh_channel_is_eof(ch.upstream);
    const bool upstream_read = ssh_channel_poll(ch.upstream, 0) <= 0 && ssh_channel_poll(ch.upstream, 1) <= 0;
    if (!ch.denied && upstream_read && upstream_ended) {
      for (int stream = 0; stream < 2; ++stream) {  // the last, unterminated line
        if (!ch.held[stream].empty()) {
          emit(c, ch, stream, ch.held[stream]);
          ch.held[stream].clear();
          write_to(ch.client, stream == 1, ch.carry[stream]);
          progress = true;
        }
      }
    }
    const bool upstream_drained = upstream_read && ch.carry[0].empty() && ch.carry[1].empty() &&
                                  ch.held[0].empty() && ch.held[1].empty();
    // After all output (the host may send exit-status before its last data and EOF).
    if (!ch.denied && !ch.exit_relayed && upstream_drained && upstream_ended && !ch.client_closed &&
        (ch.exit_status || !ch.exit_signal.empty())) {
      send_exit(ch);
      progress = true;
    }
    if (!ch.eof_to_client && !ch.client_closed && upstream_drained && upstream_ended) {
      ssh_channel_send_eof(ch.client);
      ch.eof_to_client = true;
      progress = true;
    }
    // ssh_channel_is_eof: the caller's EOF arrived and everything it sent before was read.
    if (!ch.denied && !ch.eof_to_upstream && !ch.upstream_closed && ch.carry_in.empty() &&
        ssh_channel_is_eof(ch.client)) {
      ssh_channel_send_eof(ch.upstream);
      ch.eof_to_upstream = true;
      progress = true;
    }
    if ((upstream_closed && upstream_drained) || ch.client_closed) {
      finish_channel(c, ch);
      progress = true;
    }
    return progress;
  }

  void send_exit(Channel& ch) {
    if (!ch.exit_signal.empty()) {
      ssh_channel_request_send_exit_signal(ch.client, ch.exit_signal.c_str(), ch.exit_core ? 1 : 0,
                                           ch.exit_message.c_str(), "");
    } else if (ch.exit_status) {
      ssh_channel_request_send_exit_status(ch.client, *ch.exit_status);
    }
    ch.exit_relayed = true;
  }

  void finish_channel(Connection& c, Channel& ch) {
    if (!ch.open) return;
    ch.open = false;
    cancel_hold(c, ch);
    const std::string number = std::to_string(ch.number);
    std::string tag;
    if (!ch.exit_signal.empty()) {
      tag = fmt::format("signal {}{}", ch.exit_signal, ch.exit_core ? " (core dumped)" : "");
    } else if (ch.exit_status) {
      tag = fmt::format("exit {}", *ch.exit_status);
    } else if (ch.exec_started) {
      tag = "ended without exit status";
    }
    if (ch.sftp) {
      ch.sftp->finish(file_operation_recorder(c));
      ch.sftp.reset();
    }
    if (!tag.empty() && !ch.denied) {
      record(c, EventType::kCompletion, {Field{FieldTag::kTag, tag}, Field{FieldTag::kChannel, number}});
    }
    if (ch.input_bytes > ch.recorded_input) {  // input beyond what the trail keeps
      const std::string total = std::to_string(ch.input_bytes);
      record(c, EventType::kInput,
             {Field{FieldTag::kChannel, number}, Field{FieldTag::kText, ""}, Field{FieldTag::kTextBytes, total}});
    }
    for (int stream = 0; stream < 2; ++stream) {
      if (ch.bytes[stream] > ch.recorded[stream]) {  // output beyond what the trail keeps
        const std::string total = std::to_string(ch.bytes[stream]);
        record(c, EventType::kOutput,
               {Field{FieldTag::kChannel, number}, Field{FieldTag::kStream, kStreamNames[stream]},
                Field{FieldTag::kText, ""}, Field{FieldTag::kTextBytes, total}});
      }
    }
    if (ch.client != nullptr && !ch.client_closed && !ch.denied) {
      if (!ch.exit_relayed) send_exit(ch);
      if (!ch.eof_to_client) ssh_channel_send_eof(ch.client);
    }
    ch.client_closed = ch.upstream_closed = true;
    release_channel_handles(ch);
  }

  // Closes and frees both libssh channels. Callbacks go first: libssh may keep a channel until
  // the peer's close arrives, and must not call into a Channel that is gone by then.
  void release_channel_handles(Channel& ch) {
    if (ch.client != nullptr) {
      ssh_remove_channel_callbacks(ch.client, &ch.client_callbacks);
      if (ssh_channel_is_open(ch.client)) ssh_channel_close(ch.client);
      ssh_channel_free(ch.client);
      ch.client = nullptr;
    }
    if (ch.upstream != nullptr) {
      ssh_remove_channel_callbacks(ch.upstream, &ch.upstream_callbacks);
      if (ssh_channel_is_open(ch.upstream)) ssh_channel_close(ch.upstream);
      ssh_channel_free(ch.upstream);
      ch.upstream = nullptr;
    }
    ch.requests.clear();
    ch.open_request.reset();
  }

  bool reap_channels() {
    const size_t before = channels_.size();
    std::erase_if(channels_, [](const std::unique_ptr<Channel>& ch) {
      return !ch->open && !ch->open_request && ch->client_closed && ch->upstream_closed;
    });
    return channels_.size() != before;
  }

  // The host's connection ended: every channel ends toward the caller, then the session.
  void upstream_gone(Connection& c) {
    for (auto& ch : channels_) {
      if (ch->open) {
        ch->upstream_closed = true;
        finish_channel(c, *ch);
      }
    }
    end_session(c, fmt::format("upstream connection ended: {}", ssh_get_error(upstream())));
  }

  // ---- recording ------------------------------------------------------------------------------

  ForwardRecorder forward_recorder(Connection& c) {
    return [this, &c](EventType type, std::span<const Field> fields) { record(c, type, fields); };
  }

  void record(Connection& c, EventType type, std::initializer_list<Field> fields) {
    record(c, type, std::span<const Field>(fields.begin(), fields.size()));
  }
  // Straight into the shard's ring, or, when the ring is full, into a pending list that is pushed
  // first on resume while the connection pauses (nothing is dropped).
  void record(Connection& c, EventType type, std::span<const Field> fields) {
    if (!ctx_.config->recording.enabled) return;
    if (!recorder_.record(*ctx_.rings[shard_], type, fields)) c.pause();
  }

  // True when nothing is pending any more.
  bool flush_pending_records(Connection& c) {
    if (!recorder_.flush(*ctx_.rings[shard_])) {
      c.pause();
      return false;
    }
    if (close_when_recorded_) {
      close_when_recorded_ = false;
      c.close();
      return false;
    }
    return true;
  }

  // ---- endings --------------------------------------------------------------------------------

  // Before any token was accepted: an authentication failure in the trail, then the end.
  void fail_before_login(Connection& c, std::string_view reason) {
    if (phase_ == Phase::kDone) return;
    if (started_) return end_session(c, reason);
    record(c, EventType::kAuthFailure,
           {Field{FieldTag::kProtocol, "ssh"}, Field{FieldTag::kClientAddress, c.client_address()},
            Field{FieldTag::kUser, user_}, Field{FieldTag::kReason, reason}});
    if (client() != nullptr) ssh_disconnect(client());
    finish(c);
  }

  void end_session(Connection& c, std::string_view reason) {
    if (phase_ == Phase::kDone) return;
    for (auto& ch : channels_) {
      if (ch->open) finish_channel(c, *ch);
      // ssh_disconnect frees every channel of its session: none may be left to free after it
      // (e.g. one still waiting for its upstream open).
      release_channel_handles(*ch);
    }
    if (forwarding_) forwarding_->release(forward_recorder(c));
    if (upstream() != nullptr && alive(1)) ssh_disconnect(upstream());
    if (client() != nullptr && alive(0)) ssh_disconnect(client());
    if (started_) {
      record(c, EventType::kSessionEnd, {Field{FieldTag::kReason, reason}});
    } else {
      record(c, EventType::kAuthFailure,
             {Field{FieldTag::kProtocol, "ssh"}, Field{FieldTag::kClientAddress, c.client_address()},
              Field{FieldTag::kUser, user_}, Field{FieldTag::kReason, reason}});
    }
    finish(c);
  }

  void finish(Connection& c) {
    phase_ = Phase::kDone;
    if (!recorder_.pending()) {
      c.close();
    } else {
      close_when_recorded_ = true;
    }
  }

  const GatewayContext& ctx_;
  ShardState& state_;
  const uint32_t shard_;
  const engine::ListenerInfo listener_;
  rec::SessionRecorder recorder_;  // numbers, cuts and queues the session's records
  Phase phase_ = Phase::kStart;
  bool pumping_ = false;
  ssh_session sessions_[2] = {nullptr, nullptr};  // caller, host
  ssh_event events_[2] = {nullptr, nullptr};
  std::string user_;
  const config::ConnectionConfig* connection_ = nullptr;
  const mask::ConnectionPolicy* policy_ = nullptr;
  identity::Identity identity_;
  Message pending_auth_;
  uint32_t auth_attempts_ = 0;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::unique_ptr<Forwarding> forwarding_;  // port forwarding, once the connection is known
  uint32_t channel_numbers_ = 0;
  std::string masked_;
  std::vector<LineGuard::Refusal> refused_lines_;
  bool started_ = false;
  bool close_when_recorded_ = false;
};

}  // namespace

std::unique_ptr<engine::ProtocolSession> SessionFactory::create(uint32_t shard,
                                                                const engine::ListenerInfo& listener) {
  return std::make_unique<Session>(*context_, shard, listener);
}

}  // namespace gh::ssh
