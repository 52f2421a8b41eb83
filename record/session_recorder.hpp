// One session's records on their way into its shard's ring: numbered per session, values cut so
// that every event fits the ring, and kept in order when the ring is full (nothing is dropped;
// the session pauses its connection until flush() has pushed them). Shard thread only.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "record/event.hpp"
#include "record/ring.hpp"

namespace gh::rec {

class SessionRecorder {
 public:
  explicit SessionRecorder(uint64_t session_id) : session_id_(session_id) {}

  // Pushes the event, or queues an owned copy behind the ones queued already. False when it was
  // queued: the caller pauses its connection.
  [[nodiscard]] bool record(Ring& ring, EventType type, std::span<const Field> fields);
  // Pushes what is queued, oldest first. True when nothing is queued any more.
  [[nodiscard]] bool flush(Ring& ring);
  bool pending() const { return !pending_.empty(); }
  // Field bytes of the queued events (a bound on the session's memory while the ring is full).
  size_t pending_bytes() const { return pending_bytes_; }
  uint64_t session_id() const { return session_id_; }

 private:
  struct PendingRecord {
    EventType type;
    uint32_t sequence;
    uint64_t time_ns;
    std::vector<std::pair<FieldTag, std::string>> fields;
  };

  uint64_t session_id_;
  uint32_t sequence_ = 0;
  std::vector<PendingRecord> pending_;
  size_t pending_bytes_ = 0;
};

}  // namespace gh::rec
