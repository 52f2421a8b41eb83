// SSH port forwarding: the two channels of each forwarded connection, opened one after the other
// (the second only once the first side answered), relayed with the windows as back-pressure, and
// ended together. Runs in libssh's message-queue mode like the session (session.cpp).
#include "protocols/ssh/forward_channel.hpp"

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>

#include <algorithm>

#include <fmt/format.h>

#include "protocols/ssh/codec/forward_target.hpp"

// As in session.cpp: libssh 0.10 marks the queue-mode message accessors deprecated.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace gh::ssh {

using rec::EventType;
using rec::Field;
using rec::FieldTag;

void ForwardMessageFree::operator()(ssh_message_struct* m) const { ssh_message_free(m); }

namespace {

std::string_view text_of(const char* s) { return s != nullptr ? std::string_view(s) : std::string_view(); }

constexpr const char* kDirectionNames[2] = {"to_target", "from_target"};

void record_error(const ForwardRecorder& record, std::string_view message, std::string_view origin,
                  std::string_view reason = {}, std::string_view channel = {}) {
  std::vector<Field> fields{{FieldTag::kMessage, message}, {FieldTag::kOrigin, origin}};
  if (!reason.empty()) fields.push_back({FieldTag::kReason, reason});
  if (!channel.empty()) fields.push_back({FieldTag::kChannel, channel});
  record(EventType::kError, fields);
}

}  // namespace

// One forwarded TCP connection: a channel toward the caller and one toward the host. The origin
// side is where the connection came from (the caller for direct-tcpip, the host's listener for
// forwarded-tcpip); the target side is where it goes.
struct Tunnel {
  uint32_t number = 0;
  std::string channel;  // `number` as text, for the records
  bool direct = true;   // direct-tcpip (else forwarded-tcpip or auth-agent, opened by the host)
  bool agent = false;   // auth-agent@openssh.com: toward the caller's agent
  bool x11 = false;     // x11: toward the caller's X display
  std::string target_host, origin_host;
  uint32_t target_port = 0, origin_port = 0;
  ssh_channel client = nullptr;    // toward the caller
  ssh_channel upstream = nullptr;  // toward the host
  ForwardMessage open_request;     // the first side's CHANNEL_OPEN, answered once the other opened
  bool open = false;               // both sides open, relaying
  bool done = false;               // finished, handles freed
  // Set by libssh callbacks.
  bool client_closed = false;
  bool upstream_closed = false;
  // Progress, by direction: 0 origin to target, 1 target to origin.
  std::string carry[2];  // read, not yet taken by the receiving window
  bool eof_sent[2] = {false, false};
  uint64_t bytes[2] = {0, 0};
  uint64_t recorded[2] = {0, 0};
  ssh_channel_callbacks_struct client_callbacks{};
  ssh_channel_callbacks_struct upstream_callbacks{};

  ssh_channel from(int direction) const { return (direction == 0) == direct ? client : upstream; }
  ssh_channel to(int direction) const { return (direction == 0) == direct ? upstream : client; }
  bool closed(ssh_channel c) const { return c == client ? client_closed : upstream_closed; }
};

namespace {

void install_callbacks(Tunnel& t) {
  auto& cc = t.client_callbacks;
  cc = ssh_channel_callbacks_struct{};
  ssh_callbacks_init(&cc);
  cc.userdata = &t;
  cc.channel_close_function = [](ssh_session, ssh_channel, void* u) { static_cast<Tunnel*>(u)->client_closed = true; };
  ssh_set_channel_callbacks(t.client, &cc);
  auto& uc = t.upstream_callbacks;
  uc = ssh_channel_callbacks_struct{};
  ssh_callbacks_init(&uc);
  uc.userdata = &t;
  uc.channel_close_function = [](ssh_session, ssh_channel, void* u) { static_cast<Tunnel*>(u)->upstream_closed = true; };
  ssh_set_channel_callbacks(t.upstream, &uc);
}

// A tunnel for the CHANNEL_OPEN `open` (its message `m`), numbered `number`, its trail opened by
// a statement of `kind` toward `text`. With `with_origin`, where the connection came from is read
// from the open and recorded. The side the gateway opens is the caller's to set.
std::unique_ptr<Tunnel> new_tunnel(ForwardMessage& open, ssh_message m, uint32_t number, bool direct,
                                   std::string_view kind, std::string_view text, bool with_origin,
                                   const ForwardRecorder& record) {
  auto t = std::make_unique<Tunnel>();
  t->number = number;
  t->channel = std::to_string(number);
  t->direct = direct;
  std::string origin;
  if (with_origin) {
    t->origin_host = text_of(ssh_message_channel_request_open_originator(m));
    t->origin_port = uint32_t(ssh_message_channel_request_open_originator_port(m));
    origin = target_text(t->origin_host, t->origin_port);
  }
  t->open_request = std::move(open);
  if (with_origin) {
    record(EventType::kStatement, std::initializer_list<Field>{{FieldTag::kStatementKind, kind},
                                                               {FieldTag::kText, text},
                                                               {FieldTag::kOriginator, origin},
                                                               {FieldTag::kChannel, t->channel}});
  } else {
    record(EventType::kStatement, std::initializer_list<Field>{{FieldTag::kStatementKind, kind},
                                                               {FieldTag::kText, text},
                                                               {FieldTag::kChannel, t->channel}});
  }
  return t;
}

// Callbacks go first: libssh may keep a channel until the peer's close arrives, and must not call
// into a Tunnel that is gone by then.
void free_channel(ssh_channel& c, ssh_channel_callbacks_struct& callbacks) {
  if (c == nullptr) return;
  ssh_remove_channel_callbacks(c, &callbacks);
  if (ssh_channel_is_open(c)) ssh_channel_close(c);
  ssh_channel_free(c);
  c = nullptr;
}

// Writes as much of `pending` as the channel's window takes; true when all of it went.
bool write_to(ssh_channel to, std::string& pending) {
  const uint32_t n = std::min<uint32_t>(ssh_channel_window_size(to), uint32_t(pending.size()));
  if (n > 0) {
    const int written = ssh_channel_write(to, pending.data(), n);
    if (written > 0) pending.erase(0, size_t(written));
  }
  return pending.empty();
}

}  // namespace

Forwarding::Forwarding(const config::SshForwarding& config, const Limits& limits, std::vector<char>& relay)
    : config_(config), limits_(limits), relay_(relay) {}

Forwarding::~Forwarding() {
  for (auto& t : tunnels_) {
    free_channel(t->client, t->client_callbacks);
    free_channel(t->upstream, t->upstream_callbacks);
  }
}

uint32_t Forwarding::live() const {
  uint32_t n = 0;
  for (const auto& t : tunnels_) n += t->done ? 0 : 1;
  return n;
}

void Forwarding::open_direct(ssh_session upstream, ForwardMessage open, uint32_t number,
                             const ForwardRecorder& record) {
  ssh_message m = open.get();
  const std::string host(text_of(ssh_message_channel_request_open_destination(m)));
  const uint32_t port = uint32_t(ssh_message_channel_request_open_destination_port(m));
  const std::string target = target_text(host, port);
  if (!config_.local || !target_allowed(config_.local_targets, host, port)) {
    ssh_message_reply_default(m);
    const std::string message =
        config_.local ? fmt::format("refused: direct-tcpip (port forwarding) to {}: not in forwarding.local_targets", target)
                      : fmt::format("refused: direct-tcpip (port forwarding) to {}", target);
    return record_error(record, message, "gateway");
  }
  auto t = new_tunnel(open, m, number, true, "direct-tcpip", target, true, record);
  t->target_host = host;
  t->target_port = port;
  t->upstream = ssh_channel_new(upstream);
  tunnels_.push_back(std::move(t));
}

bool Forwarding::global_request(ForwardMessage& request, const ForwardRecorder& record) {
  ssh_message m = request.get();
  const int type = ssh_message_subtype(m);
  if (type != SSH_GLOBAL_REQUEST_TCPIP_FORWARD && type != SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD) return false;
  const bool cancel = type == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD;
  const std::string address(text_of(ssh_message_global_request_address(m)));
  const uint32_t port = uint32_t(ssh_message_global_request_port(m));
  const std::string where = target_text(address, port);
  std::string refusal;
  if (!config_.remote) {
    refusal = fmt::format("refused: {} (remote port forwarding) of {}", cancel ? "cancel-tcpip-forward" : "tcpip-forward", where);
  } else if (!cancel && port == 0) {
    // libssh 0.10 does not reliably hand back the port the host picked, and the caller matches
    // the host's connections by that port.
    refusal = fmt::format("refused: tcpip-forward of {}: a port the host picks (0) is not relayed", where);
  } else if (!cancel && remote_ports_.size() + globals_.size() >= limits_.channels_max) {
    refusal = fmt::format("refused: tcpip-forward of {}: too many remote forwards", where);
  }
  if (!refusal.empty()) {
    ssh_message_reply_default(m);
    record_error(record, refusal, "gateway");
    return true;
  }
  record(EventType::kStatement, std::initializer_list<Field>{
                                    {FieldTag::kStatementKind, cancel ? "cancel-tcpip-forward" : "tcpip-forward"},
                                    {FieldTag::kText, where}});
  globals_.push_back(GlobalRequest{std::move(request), cancel, address, port});
  return true;
}

bool Forwarding::request_agent(ssh_channel upstream, uint32_t channel, const ForwardRecorder& record) {
  if (!config_.agent || upstream == nullptr) return false;
  // No answer asked for (as OpenSSH sends it): nothing to wait for.
  if (ssh_channel_request_auth_agent(upstream) != SSH_OK) return false;
  agent_forwarded_ = true;
  const std::string number = std::to_string(channel);
  record(EventType::kStatement, std::initializer_list<Field>{{FieldTag::kStatementKind, "auth-agent-req"},
                                                             {FieldTag::kText, "agent forwarding"},
                                                             {FieldTag::kChannel, number}});
  return true;
}

int Forwarding::request_x11(ssh_channel upstream, ssh_message request, uint32_t channel,
                            const ForwardRecorder& record) {
  // The caller's cookie goes on unchanged: the caller's ssh checks it on each X11 connection
  // the host opens and puts the display's real one in its place.
  const int rc = ssh_channel_request_x11(upstream, ssh_message_channel_request_x11_single_connection(request),
                                         ssh_message_channel_request_x11_auth_protocol(request),
                                         ssh_message_channel_request_x11_auth_cookie(request),
                                         ssh_message_channel_request_x11_screen_number(request));
  if (rc == SSH_AGAIN) return rc;
  const std::string number = std::to_string(channel);
  record(EventType::kStatement, std::initializer_list<Field>{{FieldTag::kStatementKind, "x11-req"},
                                                             {FieldTag::kText, "X11 forwarding"},
                                                             {FieldTag::kChannel, number}});
  if (rc == SSH_OK) {
    x11_forwarded_ = true;
    ssh_message_channel_request_reply_success(request);
  } else {
    ssh_message_reply_default(request);
    record_error(record, "the host refused the x11-req", "upstream", ssh_get_error(ssh_channel_get_session(upstream)),
                 number);
  }
  return rc;
}

bool Forwarding::host_channel_open(ssh_session client, ForwardMessage& open, uint32_t number,
                                   const ForwardRecorder& record) {
  ssh_message m = open.get();
  if (ssh_message_subtype(m) == SSH_CHANNEL_X11) {
    if (!x11_forwarded_ || live() >= limits_.channels_max) {
      ssh_message_reply_default(m);
      record_error(record, "refused: x11 channel from the host (X11 forwarding not asked for)", "gateway");
      return true;
    }
    auto t = new_tunnel(open, m, number, false, "x11", "the caller's display", true, record);
    t->x11 = true;
    t->client = ssh_channel_new(client);
    tunnels_.push_back(std::move(t));
    return true;
  }
  if (ssh_message_subtype(m) == SSH_CHANNEL_AUTH_AGENT) {
    if (!agent_forwarded_ || live() >= limits_.channels_max) {
      ssh_message_reply_default(m);
      record_error(record, "refused: auth-agent channel from the host (agent forwarding not asked for)", "gateway");
      return true;
    }
    auto t = new_tunnel(open, m, number, false, "auth-agent", "the caller's agent", false, record);
    t->agent = true;
    t->client = ssh_channel_new(client);
    tunnels_.push_back(std::move(t));
    return true;
  }
  if (ssh_message_subtype(m) != SSH_CHANNEL_FORWARDED_TCPIP) return false;
  const std::string host(text_of(ssh_message_channel_request_open_destination(m)));
  const uint32_t port = uint32_t(ssh_message_channel_request_open_destination_port(m));
  const std::string listener = target_text(host, port);
  if (!config_.remote || std::find(remote_ports_.begin(), remote_ports_.end(), port) == remote_ports_.end()) {
    ssh_message_reply_default(m);
    record_error(record, fmt::format("refused: forwarded-tcpip from the host's {} (no such remote forward)", listener),
                 "gateway");
    return true;
  }
  if (live() >= limits_.channels_max) {
    ssh_message_reply_default(m);
    record_error(record, "refused: forwarded-tcpip: too many channels", "gateway");
    return true;
  }
  // The connection arrived at the host's listener; the caller's ssh connects it to its target,
  // which the caller alone knows: the trail names the listener.
  auto t = new_tunnel(open, m, number, false, "forwarded-tcpip", listener, true, record);
  t->target_host = host;
  t->target_port = port;
  t->client = ssh_channel_new(client);
  tunnels_.push_back(std::move(t));
  return true;
}

bool Forwarding::step(ssh_session upstream, const ForwardRecorder& record) {
  bool progress = step_global(upstream, record);
  for (size_t i = 0; i < tunnels_.size(); ++i) {
    Tunnel& t = *tunnels_[i];
    if (t.done) continue;
    if (!t.open) {
      progress |= step_open(t, record);
      continue;
    }
    progress |= relay(t, 0, record);
    progress |= relay(t, 1, record);
    progress |= step_end(t, record);
  }
  const size_t before = tunnels_.size();
  std::erase_if(tunnels_, [](const std::unique_ptr<Tunnel>& t) { return t->done; });
  return progress || tunnels_.size() != before;
}

// The second side's open: toward the host for direct-tcpip, toward the caller for
// forwarded-tcpip; then the first side's open is accepted.
bool Forwarding::step_open(Tunnel& t, const ForwardRecorder& record) {
  ssh_channel second = t.direct ? t.upstream : t.client;
  int rc = SSH_ERROR;
  if (second != nullptr) {
    rc = t.agent    ? ssh_channel_open_auth_agent(second)
         : t.x11    ? ssh_channel_open_x11(second, t.origin_host.c_str(), int(t.origin_port))
         : t.direct ? ssh_channel_open_forward(second, t.target_host.c_str(), int(t.target_port),
                                               t.origin_host.c_str(), int(t.origin_port))
                    : ssh_channel_open_reverse_forward(second, t.target_host.c_str(), int(t.target_port),
                                                       t.origin_host.c_str(), int(t.origin_port));
  }
  if (rc == SSH_AGAIN) return false;
  if (rc != SSH_OK) {
    ssh_message_reply_default(t.open_request.get());
    t.open_request.reset();
    const std::string target = target_text(t.target_host, t.target_port);
    record_error(record,
                 t.agent    ? std::string("the caller refused the auth-agent channel")
                 : t.x11    ? std::string("the caller refused the x11 channel")
                 : t.direct ? fmt::format("the host refused direct-tcpip to {}", target)
                            : fmt::format("the caller refused forwarded-tcpip from the host's {}", target),
                 t.direct ? "upstream" : "client",
                 second != nullptr ? ssh_get_error(ssh_channel_get_session(second)) : "out of memory", t.channel);
    free_channel(t.client, t.client_callbacks);
    free_channel(t.upstream, t.upstream_callbacks);
    t.done = true;
    return true;
  }
  ssh_channel first = ssh_message_channel_request_open_reply_accept(t.open_request.get());
  t.open_request.reset();
  (t.direct ? t.client : t.upstream) = first;
  if (first == nullptr) {
    free_channel(t.client, t.client_callbacks);
    free_channel(t.upstream, t.upstream_callbacks);
    t.done = true;
    return true;
  }
  install_callbacks(t);
  t.open = true;
  return true;
}

// One chunk one way, recorded within the direction's budget.
bool Forwarding::relay(Tunnel& t, int direction, const ForwardRecorder& record) {
  ssh_channel from = t.from(direction);
  ssh_channel to = t.to(direction);
  if (t.closed(to)) return false;
  // Back-pressure: nothing more for a socket that has not taken the last bytes yet; the windows
  // then stay closed and the sender waits (RFC 4254 section 5.2).
  if (ssh_blocking_flush(ssh_channel_get_session(to), 0) == SSH_AGAIN) return false;
  bool progress = false;
  std::string& carry = t.carry[direction];
  if (!carry.empty()) {
    if (!write_to(to, carry)) return false;
    progress = true;
  }
  const uint32_t window = ssh_channel_window_size(to);
  if (window == 0) return progress;
  const int n = ssh_channel_read_nonblocking(from, relay_.data(),
                                             std::min<uint32_t>(window, uint32_t(relay_.size())), 0);
  if (n <= 0) return progress;
  const std::string_view bytes(relay_.data(), size_t(n));
  t.bytes[direction] += uint64_t(n);
  const uint64_t budget = limits_.recorded_stream_bytes_max;
  const uint64_t room = budget - std::min(budget, t.recorded[direction]);
  if (room > 0) {
    const std::string_view kept = bytes.substr(0, size_t(std::min<uint64_t>(room, bytes.size())));
    t.recorded[direction] += kept.size();
    record(EventType::kForwardData, std::initializer_list<Field>{{FieldTag::kChannel, t.channel},
                                                                 {FieldTag::kDirection, kDirectionNames[direction]},
                                                                 {FieldTag::kText, kept}});
  }
  carry.assign(bytes);
  write_to(to, carry);
  return true;
}

// EOF is passed on once everything before it went through; a side's close ends the forward once
// what it sent was passed on.
bool Forwarding::step_end(Tunnel& t, const ForwardRecorder& record) {
  bool progress = false;
  bool drained_closed = false;
  for (int direction = 0; direction < 2; ++direction) {
    ssh_channel from = t.from(direction);
    ssh_channel to = t.to(direction);
    // The end is taken before the buffer is looked at (a poll may read the last data with the
    // EOF; see step_channel_end in session.cpp).
    const bool closed = t.closed(from);
    const bool ended = closed || ssh_channel_is_eof(from);
    const bool read = ssh_channel_poll(from, 0) <= 0;
    const bool drained = read && t.carry[direction].empty();
    if (ended && drained && !t.eof_sent[direction] && !t.closed(to)) {
      ssh_channel_send_eof(to);
      t.eof_sent[direction] = true;
      progress = true;
    }
    if (closed && (drained || t.closed(to))) drained_closed = true;
  }
  if (drained_closed) {
    finish(t, record);
    progress = true;
  }
  return progress;
}

void Forwarding::finish(Tunnel& t, const ForwardRecorder& record) {
  if (t.done) return;
  if (t.open) {
    const std::string to_target = std::to_string(t.bytes[0]);
    const std::string from_target = std::to_string(t.bytes[1]);
    record(EventType::kCompletion, std::initializer_list<Field>{{FieldTag::kTag, "closed"},
                                                                {FieldTag::kChannel, t.channel},
                                                                {FieldTag::kBytesToTarget, to_target},
                                                                {FieldTag::kBytesFromTarget, from_target}});
  } else if (t.open_request) {
    ssh_message_reply_default(t.open_request.get());
    t.open_request.reset();
  }
  t.open = false;
  t.done = true;
  free_channel(t.client, t.client_callbacks);
  free_channel(t.upstream, t.upstream_callbacks);
}

// The head of the caller's global requests, on the host's session; the caller gets the host's
// answer.
bool Forwarding::step_global(ssh_session upstream, const ForwardRecorder& record) {
  if (globals_.empty()) return false;
  GlobalRequest& g = globals_.front();
  const char* address = g.address.empty() ? nullptr : g.address.c_str();
  const int rc = g.cancel ? ssh_channel_cancel_forward(upstream, address, int(g.port))
                          : ssh_channel_listen_forward(upstream, address, int(g.port), nullptr);
  if (rc == SSH_AGAIN) return false;
  const std::string where = target_text(g.address, g.port);
  if (rc == SSH_OK) {
    ssh_message_global_request_reply_success(g.message.get(), uint16_t(g.port));
    if (g.cancel) {
      std::erase(remote_ports_, g.port);
    } else {
      remote_ports_.push_back(g.port);
    }
    record(EventType::kCompletion, std::initializer_list<Field>{{FieldTag::kTag, g.cancel ? "cancelled" : "listening"}});
  } else {
    ssh_message_reply_default(g.message.get());
    record_error(record,
                 fmt::format("the host refused {} of {}", g.cancel ? "cancel-tcpip-forward" : "tcpip-forward", where),
                 "upstream", ssh_get_error(upstream));
  }
  globals_.pop_front();
  return true;
}

void Forwarding::release(const ForwardRecorder& record) {
  for (auto& t : tunnels_) finish(*t, record);
  tunnels_.clear();
  for (auto& g : globals_) ssh_message_reply_default(g.message.get());
  globals_.clear();
}

}  // namespace gh::ssh
