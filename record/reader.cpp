// Reading a trail back: record iteration, verification, session summaries and session loading.
// Reads segment files with blocking I/O (CLI and admin paths); never used by shard threads.
#include "record/reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_set>

namespace gh::rec {

namespace {

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty() || a.back() == '/') return a + b;
  return a + "/" + b;
}

std::string relative_segment(uint16_t shard, uint64_t sequence) {
  return shard_dir_name(shard) + "/" + segment_file_name(sequence);
}

// Notes .partial leftovers of an interrupted rotation; they never hold records.
void note_partials(const std::string& shard_dir, uint16_t shard, VerifyReport& report) {
  auto partials = list_partial_files(shard_dir);
  if (!partials) return;
  for (const std::string& name : *partials) {
    report.notes.push_back(fmt::format("{}/{}: left by an interrupted rotation (no records)",
                                       shard_dir_name(shard), name));
  }
}

}  // namespace

std::string_view finding_kind_name(FindingKind kind) {
  switch (kind) {
    case FindingKind::kTruncatedTail:
      return "truncated_tail";
    case FindingKind::kUnreadable:
      return "unreadable";
    case FindingKind::kBadHeader:
      return "bad_header";
    case FindingKind::kMissingSegment:
      return "missing_segment";
    case FindingKind::kSegmentLink:
      return "segment_link";
    case FindingKind::kBadRecord:
      return "bad_record";
    case FindingKind::kChainMismatch:
      return "chain_mismatch";
  }
  return "unknown";
}

Result<VerifyReport> verify_trail(const std::string& dir) {
  auto shards = list_shards(dir);
  if (!shards) return std::unexpected(shards.error());
  VerifyReport report;
  std::unordered_set<uint64_t> sessions;
  std::optional<VerifyFinding> torn_candidate;

  const auto finish = [&](std::optional<VerifyFinding> finding) {
    report.sessions = sessions.size();
    report.finding = finding ? std::move(finding) : std::move(torn_candidate);
    return report;
  };

  for (const uint16_t shard : *shards) {
    const std::string shard_dir = join_path(dir, shard_dir_name(shard));
    auto sequences = list_segments(shard_dir);
    if (!sequences) {
      VerifyFinding unreadable;
      unreadable.kind = FindingKind::kUnreadable;
      unreadable.shard = shard;
      unreadable.segment_file = shard_dir_name(shard);
      unreadable.what = sequences.error().message;
      return finish(unreadable);
    }
    ++report.shards;
    note_partials(shard_dir, shard, report);

    ChainHash chain{};
    uint64_t expected = 1;
    // Where the previous segment ended, when it ended inside a record.
    struct Torn {
      uint64_t sequence;
      uint64_t index;
      uint64_t offset;
      std::string reason;
    };
    std::optional<Torn> previous_torn;

    for (size_t i = 0; i < sequences->size(); ++i) {
      const uint64_t sequence = (*sequences)[i];
      const bool last = i + 1 == sequences->size();
      const std::string name = relative_segment(shard, sequence);
      VerifyFinding here;
      here.shard = shard;
      here.segment_file = name;
      here.segment_sequence = sequence;
      const auto found = [&](FindingKind kind, std::string what) {
        here.kind = kind;
        here.what = std::move(what);
        return finish(here);
      };
      if (sequence != expected) {
        here.segment_file = relative_segment(shard, expected);
        here.segment_sequence = expected;
        return found(FindingKind::kMissingSegment,
                     sequence > expected + 1
                         ? fmt::format("segments {:08} to {:08} missing", expected, sequence - 1)
                         : fmt::format("segment {:08} missing", expected));
      }
      auto bytes = read_whole_file(join_path(dir, name));
      if (!bytes) return found(FindingKind::kUnreadable, bytes.error().message);
      auto header = parse_segment_header(*bytes);
      if (!header) return found(FindingKind::kBadHeader, header.error().message);
      if (header->shard != shard) {
        return found(FindingKind::kBadHeader, fmt::format("header names shard {}, file is in {}",
                                                          header->shard, shard_dir_name(shard)));
      }
      if (header->sequence != sequence) {
        return found(FindingKind::kBadHeader,
                     fmt::format("header names segment {:08}", header->sequence));
      }
      ++report.segments;

      const bool says_torn = (header->flags & kHeaderFlagPreviousTailTorn) != 0;
      if (previous_torn && !says_torn) {
        // A cut inside the trail that no crash recovery accounts for.
        here.segment_file = relative_segment(shard, previous_torn->sequence);
        here.segment_sequence = previous_torn->sequence;
        here.record_index = previous_torn->index;
        here.byte_offset = previous_torn->offset;
        return found(FindingKind::kBadRecord,
                     fmt::format("{} inside the trail, and segment {:08} does not acknowledge it",
                                 previous_torn->reason, sequence));
      }
      if (says_torn && !previous_torn) {
        return found(FindingKind::kBadHeader,
                     sequence == 1 ? std::string("first segment claims a torn previous tail")
                                   : fmt::format("header claims a torn tail in segment {:08}, "
                                                 "which ends cleanly",
                                                 sequence - 1));
      }
      if (previous_torn) {
        report.notes.push_back(fmt::format(
            "{}: torn tail after record {} at offset {} ({}); {} links to the last intact record",
            relative_segment(shard, previous_torn->sequence), previous_torn->index,
            previous_torn->offset, previous_torn->reason, segment_file_name(sequence)));
      }
      if (header->previous_hash != chain) {
        here.byte_offset = 96;
        return found(FindingKind::kSegmentLink,
                     sequence == 1
                         ? std::string("first segment's previous-segment hash is not zero")
                         : fmt::format("previous-segment hash does not match the last record of "
                                       "segment {:08}",
                                       sequence - 1));
      }

      const SegmentScan scan = scan_segment_records(*bytes, header->previous_hash, true,
                                                    [&](const ScannedRecord& record) {
                                                      sessions.insert(record.view.session_id);
                                                      return true;
                                                    });
      report.records += scan.records;
      previous_torn.reset();
      if (scan.end == ScanEnd::kDamaged) {
        here.record_index = scan.records;
        here.byte_offset = scan.end_offset;
        return found(scan.reason == "chain hash mismatch" ? FindingKind::kChainMismatch
                                                          : FindingKind::kBadRecord,
                     scan.reason);
      }
      if (scan.end == ScanEnd::kTornTail) {
        if (last) {
          if (!torn_candidate) {
            here.kind = FindingKind::kTruncatedTail;
            here.record_index = scan.records;
            here.byte_offset = scan.end_offset;
            here.what = scan.reason;
            torn_candidate = here;
          }
        } else {
          previous_torn = Torn{sequence, scan.records, scan.end_offset, scan.reason};
        }
      }
      chain = scan.last_hash;
      ++expected;
    }
  }
  return finish(std::nullopt);
}

Result<void> for_each_record(const std::string& dir,
                             const std::function<bool(const TrailRecord&)>& on_record) {
  auto shards = list_shards(dir);
  if (!shards) return std::unexpected(shards.error());
  for (const uint16_t shard : *shards) {
    const std::string shard_dir = join_path(dir, shard_dir_name(shard));
    auto sequences = list_segments(shard_dir);
    if (!sequences) return std::unexpected(sequences.error());
    bool shard_damaged = false;
    for (const uint64_t sequence : *sequences) {
      if (shard_damaged) break;
      auto bytes = read_whole_file(join_path(shard_dir, segment_file_name(sequence)));
      if (!bytes) return std::unexpected(bytes.error());
      auto header = parse_segment_header(*bytes);
      if (!header) break;
      bool stopped = false;
      const SegmentScan scan = scan_segment_records(
          *bytes, header->previous_hash, false, [&](const ScannedRecord& record) {
            if (!on_record(TrailRecord{shard, sequence, record})) stopped = true;
            return !stopped;
          });
      if (stopped) return {};
      shard_damaged = scan.end == ScanEnd::kDamaged;
    }
  }
  return {};
}

namespace {

// Folds one event into a summary. `for_each_field(fn)` calls fn(FieldTag, std::string_view).
template <class ForEachField>
void accumulate(SessionSummary& s, EventType type, uint64_t time_ns,
                ForEachField&& for_each_field) {
  if (s.events == 0 || time_ns < s.start_ns) s.start_ns = time_ns;
  if (s.events == 0 || time_ns > s.end_ns) s.end_ns = time_ns;
  ++s.events;
  const auto set_once = [](std::string& slot, std::string_view value) {
    if (slot.empty()) slot = value;
  };
  switch (type) {
    case EventType::kSessionStart:
    case EventType::kAuthFailure: {
      const bool chain_known = !s.chain.empty();
      const bool groups_known = !s.groups.empty();
      for_each_field([&](FieldTag tag, std::string_view value) {
        switch (tag) {
          case FieldTag::kChainMember:
            if (!chain_known) s.chain.emplace_back(value);
            break;
          case FieldTag::kGroup:
            if (!groups_known) s.groups.emplace_back(value);
            break;
          case FieldTag::kProtocol:
            set_once(s.protocol, value);
            break;
          case FieldTag::kConnection:
            set_once(s.connection, value);
            break;
          case FieldTag::kClientAddress:
            set_once(s.client_address, value);
            break;
          case FieldTag::kUser:
            set_once(s.user, value);
            break;
          case FieldTag::kDatabase:
            set_once(s.database, value);
            break;
          case FieldTag::kTokenId:
            set_once(s.token_id, value);
            break;
          case FieldTag::kIssuer:
            set_once(s.issuer, value);
            break;
          case FieldTag::kReason:
            if (type == EventType::kAuthFailure) set_once(s.end_reason, value);
            break;
          default:
            break;
        }
      });
      if (type == EventType::kAuthFailure) {
        ++s.errors;
        s.ended = true;
        if (s.end_reason.empty()) s.end_reason = "authentication failed";
      }
      break;
    }
    case EventType::kStatement:
      ++s.statements;
      break;
    case EventType::kError:
      ++s.errors;
      break;
    case EventType::kSessionEnd:
      s.ended = true;
      for_each_field([&](FieldTag tag, std::string_view value) {
        if (tag == FieldTag::kReason) s.end_reason = value;
      });
      break;
    default:
      break;
  }
}

}  // namespace

bool matches(const SessionFilter& filter, const SessionSummary& s) {
  if (filter.session_id && *filter.session_id != s.session_id) return false;
  if (!filter.chain_member.empty() &&
      std::find(s.chain.begin(), s.chain.end(), filter.chain_member) == s.chain.end()) {
    return false;
  }
  if (!filter.user.empty() && filter.user != s.user) return false;
  if (!filter.connection.empty() && filter.connection != s.connection) return false;
  if (filter.from_ns && s.end_ns < *filter.from_ns) return false;
  if (filter.to_ns && s.start_ns > *filter.to_ns) return false;
  return true;
}

Result<std::vector<SessionSummary>> list_sessions(const std::string& dir,
                                                  const SessionFilter& filter) {
  std::map<uint64_t, SessionSummary> by_id;
  auto walked = for_each_record(dir, [&](const TrailRecord& r) {
    const RecordView& view = r.record.view;
    if (filter.session_id && *filter.session_id != view.session_id) return true;
    auto [it, inserted] = by_id.try_emplace(view.session_id);
    SessionSummary& s = it->second;
    if (inserted) {
      s.session_id = view.session_id;
      s.shard = r.shard;
    }
    accumulate(s, view.type, view.time_ns, [&](auto&& fn) {
      view.for_each_field([&](const Field& field) { fn(field.tag, field.value); });
    });
    return true;
  });
  if (!walked) return std::unexpected(walked.error());
  std::vector<SessionSummary> out;
  for (auto& [id, summary] : by_id) {
    if (matches(filter, summary)) out.push_back(std::move(summary));
  }
  std::sort(out.begin(), out.end(), [](const SessionSummary& a, const SessionSummary& b) {
    return a.start_ns != b.start_ns ? a.start_ns < b.start_ns : a.session_id < b.session_id;
  });
  if (filter.limit > 0 && out.size() > filter.limit) out.resize(filter.limit);
  return out;
}

Result<std::vector<StoredEvent>> load_session(const std::string& dir, uint64_t session_id) {
  std::vector<StoredEvent> events;
  auto walked = for_each_record(dir, [&](const TrailRecord& r) {
    if (r.record.view.session_id == session_id) events.push_back(to_stored(r.record.view));
    return true;
  });
  if (!walked) return std::unexpected(walked.error());
  if (events.empty()) {
    return fail(fmt::format("session {:016x} not found in {}", session_id, dir));
  }
  std::stable_sort(events.begin(), events.end(), [](const StoredEvent& a, const StoredEvent& b) {
    return a.sequence < b.sequence;
  });
  return events;
}

SessionSummary summarize_session(std::span<const StoredEvent> events) {
  SessionSummary s;
  if (!events.empty()) s.session_id = events.front().session_id;
  for (const StoredEvent& event : events) {
    accumulate(s, event.type, event.time_ns, [&](auto&& fn) {
      for (const StoredField& field : event.fields) fn(field.tag, field.value);
    });
  }
  return s;
}

}  // namespace gh::rec
