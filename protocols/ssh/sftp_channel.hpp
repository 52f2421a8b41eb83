// The audit of an SFTP subsystem channel: the bytes relayed one to one both ways are followed by
// the sans-I/O tracker, and its file operations become trail records (file_operation).
// Must not do I/O or touch libssh: the session hands it the bytes it relayed.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "protocols/ssh/codec/sftp_tracker.hpp"
#include "record/event.hpp"

namespace gh::ssh {

class SftpAudit {
 public:
  explicit SftpAudit(uint32_t channel) : channel_(std::to_string(channel)) {}

  // Requests the caller sent and answers the host sent, in the order each was relayed. `emit`
  // gets the fields of each file_operation record completed (std::span<const rec::Field>, valid
  // while it runs).
  template <class Emit>
  void from_client(std::string_view bytes, Emit&& emit) {
    tracker_.client_bytes(as_bytes(bytes));
    drain(emit);
  }
  template <class Emit>
  void from_host(std::string_view bytes, Emit&& emit) {
    tracker_.server_bytes(as_bytes(bytes));
    drain(emit);
  }
  // The channel ended: files left open and unanswered requests are recorded as such.
  template <class Emit>
  void finish(Emit&& emit) {
    tracker_.finish();
    drain(emit);
  }
  // Why the channel's SFTP can no longer be followed, or empty.
  std::string_view failure() const { return tracker_.failure(); }
  uint64_t untracked() const { return tracker_.untracked(); }

 private:
  // The fields of one operation's record; views into `op` and into this.
  struct Record {
    rec::Field fields[10];
    size_t count = 0;
    std::string flags, read, written, entries;
  };
  static std::span<const std::byte> as_bytes(std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
  }
  void fill(const sftp::FileOp& op, Record& out) const;
  template <class Emit>
  void drain(Emit& emit) {
    for (const sftp::FileOp& op : tracker_.completed()) {
      fill(op, record_);
      emit(std::span<const rec::Field>(record_.fields, record_.count));
    }
    tracker_.completed().clear();
  }

  std::string channel_;
  sftp::Tracker tracker_;
  Record record_;
};

}  // namespace gh::ssh
