// SSH port forwarding through the gateway, for connections that enable it (`forwarding:`):
// direct-tcpip channels (`ssh -L`, `ssh -W`) are opened as the same direct-tcpip channel on the
// host, whose sshd makes the TCP connection; tcpip-forward requests (`ssh -R`) go to the host's
// sshd, and the forwarded-tcpip channels it opens are opened back to the caller; likewise an
// auth-agent-req (`ssh -A`) or x11-req (`ssh -X`) and the host's auth-agent or x11 channels. Both channels of
// a forward are relayed byte for byte and recorded: the open (statement), the bytes each way
// (forward_data, up to Limits::recorded_stream_bytes_max per direction) and the close with byte
// totals (completion). What a connection does not enable is refused and recorded.
// Must not open sockets of its own: every byte goes through the session's two libssh sessions.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "protocols/ssh/session.hpp"
#include "record/event.hpp"

struct ssh_message_struct;
struct ssh_session_struct;
struct ssh_channel_struct;

namespace gh::ssh {

struct ForwardMessageFree {
  void operator()(ssh_message_struct* m) const;
};
using ForwardMessage = std::unique_ptr<ssh_message_struct, ForwardMessageFree>;

// Where a forward's records go (the session's recorder; it pauses the connection when the ring
// is full, nothing is dropped).
using ForwardRecorder = std::function<void(rec::EventType, std::span<const rec::Field>)>;

struct Tunnel;

// All forwarding of one SSH session. Used by the session's pump only.
class Forwarding {
 public:
  Forwarding(const config::SshForwarding& config, const Limits& limits, std::vector<char>& relay);
  ~Forwarding();
  Forwarding(const Forwarding&) = delete;
  Forwarding& operator=(const Forwarding&) = delete;

  // The caller's direct-tcpip CHANNEL_OPEN: opened on the host when the connection allows it
  // (answered as the host answers), else refused and recorded. `number` numbers the channel in
  // the session's records.
  void open_direct(ssh_session_struct* upstream, ForwardMessage open, uint32_t number,
                   const ForwardRecorder& record);
  // The caller's tcpip-forward or cancel-tcpip-forward global request: passed to the host when
  // the connection allows it, else refused and recorded. False for other global requests (not
  // taken).
  bool global_request(ForwardMessage& request, const ForwardRecorder& record);
  // A CHANNEL_OPEN from the host: forwarded-tcpip for a forward the caller asked for is opened
  // back to the caller. False when not taken (the session refuses it).
  bool host_channel_open(ssh_session_struct* client, ForwardMessage& open, uint32_t number,
                         const ForwardRecorder& record);
  // The caller's auth-agent-req on a session channel (`upstream` its twin on the host): passed
  // on when the connection allows agent forwarding; false when not (the session refuses it).
  bool request_agent(ssh_channel_struct* upstream, uint32_t channel, const ForwardRecorder& record);
  // The caller's x11-req on a session channel: whether the connection relays X11.
  bool x11_enabled() const { return config_.x11; }
  // Passes an x11-req (`request`, the caller's, answered here as the host answers) to the host;
  // SSH_AGAIN while the host's answer is awaited (call again with the same request).
  int request_x11(ssh_channel_struct* upstream, ssh_message_struct* request, uint32_t channel,
                  const ForwardRecorder& record);
  // Opens, relays and ends forwards, and sends the queued global requests; true on progress.
  bool step(ssh_session_struct* upstream, const ForwardRecorder& record);
  // The session ends: every forward is recorded as closed and its channels freed (before the
  // sessions are disconnected, which frees their channels).
  void release(const ForwardRecorder& record);
  // Forwarded connections opening or open (they count toward Limits::channels_max).
  uint32_t live() const;

 private:
  bool step_open(Tunnel& t, const ForwardRecorder& record);
  bool relay(Tunnel& t, int direction, const ForwardRecorder& record);
  bool step_end(Tunnel& t, const ForwardRecorder& record);
  void finish(Tunnel& t, const ForwardRecorder& record);
  bool step_global(ssh_session_struct* upstream, const ForwardRecorder& record);

  struct GlobalRequest {
    ForwardMessage message;
    bool cancel = false;
    std::string address;
    uint32_t port = 0;
  };

  const config::SshForwarding& config_;
  const Limits& limits_;
  std::vector<char>& relay_;
  std::vector<std::unique_ptr<Tunnel>> tunnels_;
  std::deque<GlobalRequest> globals_;  // one at a time on the host's session (libssh's rule)
  std::vector<uint32_t> remote_ports_;  // ports the host listens on for the caller
  bool agent_forwarded_ = false;        // an auth-agent-req went to the host
  bool x11_forwarded_ = false;          // the host accepted an x11-req
};

}  // namespace gh::ssh
