// One session's records into its shard's ring (see session_recorder.hpp).
#include "record/session_recorder.hpp"

#include <algorithm>

namespace gh::rec {

bool SessionRecorder::record(Ring& ring, EventType type, std::span<const Field> fields) {
  const uint64_t now = realtime_now_ns();
  const uint32_t sequence = sequence_++;
  // Statement text is cut before it gets here; any other oversized value (an upstream error
  // message, say) is cut too, so that an event always fits the ring.
  const size_t value_bytes_max =
      ring.payload_bytes_max() / (2 * std::max<size_t>(fields.size(), 1));
  bool oversized = false;
  for (const Field& f : fields) oversized |= f.value.size() > value_bytes_max;
  std::vector<Field> cut;
  if (oversized) {
    for (const Field& f : fields) cut.push_back(Field{f.tag, f.value.substr(0, value_bytes_max)});
    fields = cut;
  }
  if (pending_.empty()) {
    const Event event{type, session_id_, sequence, now, fields};
    if (ring.try_push(event) == PushStatus::kPushed) return true;
  }
  PendingRecord p{type, sequence, now, {}};
  for (const Field& f : fields) {
    p.fields.emplace_back(f.tag, std::string(f.value));
    pending_bytes_ += f.value.size();
  }
  pending_.push_back(std::move(p));
  return false;
}

bool SessionRecorder::flush(Ring& ring) {
  while (!pending_.empty()) {
    const PendingRecord& p = pending_.front();
    std::vector<Field> fields;
    for (const auto& [tag, value] : p.fields) fields.push_back(Field{tag, value});
    const Event event{p.type, session_id_, p.sequence, p.time_ns, fields};
    if (ring.try_push(event) != PushStatus::kPushed) return false;
    for (const auto& field : p.fields) pending_bytes_ -= field.second.size();
    pending_.erase(pending_.begin());
  }
  return true;
}

}  // namespace gh::rec
