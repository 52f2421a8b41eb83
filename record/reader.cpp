// Reading a trail back: record iteration, verification, session summaries and session loading.
// Reads segment files with blocking I/O (CLI and admin paths); never used by shard threads.
#include "record/reader.hpp"

#include "record/control.hpp"
#include "record/merkle.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_set>

namespace gh::rec {

namespace {

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty() || a.back() == '/') return a + b;
  return a + "/" + b;
}

// Node ids come from the files: never print their control characters raw.
std::string escape_text(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out;
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
    case FindingKind::kBadControl:
      return "bad_control_record";
    case FindingKind::kBadSignature:
      return "bad_signature";
    case FindingKind::kUnknownKey:
      return "unknown_key";
    case FindingKind::kForeignSegment:
      return "foreign_segment";
    case FindingKind::kUnsealed:
      return "unsealed_segment";
    case FindingKind::kAnchorMismatch:
      return "anchor_mismatch";
    case FindingKind::kBadAnchor:
      return "bad_anchor";
  }
  return "unknown";
}

namespace {

// What verify remembers of a segment for the next segment's link and for the anchor file.
struct SegmentFacts {
  uint64_t records = 0;       // intact records
  uint64_t end_offset = 0;    // just after the last intact record
  uint64_t file_bytes = 0;
  ChainHash header_digest{};
  ChainHash last_hash{};
  MerkleHash merkle_root{};   // over all intact records
  bool sealed = false;        // its last record is its seal
  std::map<uint64_t, ChainHash> control_hashes;  // record index -> chain hash, control records
};

std::string hex_of(const ChainHash& h) { return to_hex(h).substr(0, 16); }

}  // namespace

Result<VerifyReport> verify_trail(const std::string& dir, const VerifyOptions& options) {
  auto shards = list_shards(dir);
  if (!shards) return std::unexpected(shards.error());
  VerifyReport report;
  report.signatures_checked = options.keyring != nullptr;
  std::unordered_set<uint64_t> sessions;
  std::optional<VerifyFinding> torn_candidate;
  std::map<std::pair<uint16_t, uint64_t>, SegmentFacts> facts;  // (shard, sequence)
  std::map<uint16_t, uint64_t> newest;                          // shard -> newest sequence

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
    uint32_t last_checkpoint = 0;  // checkpoint numbers run on across the shard's segments
    // Where the previous segment ended, when it ended inside a record.
    struct Torn {
      uint64_t sequence;
      uint64_t index;
      uint64_t offset;
      std::string reason;
    };
    std::optional<Torn> previous_torn;
    const SegmentFacts* previous = nullptr;

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
      if (report.node_id.empty()) report.node_id = header->node_id;
      if (header->node_id != report.node_id) {
        here.byte_offset = 16;
        return found(FindingKind::kForeignSegment,
                     fmt::format("written by node '{}', the trail belongs to node '{}'",
                                 escape_text(header->node_id), escape_text(report.node_id)));
      }
      const KeyringEntry* key = nullptr;
      if (options.keyring != nullptr) {
        key = options.keyring->find(header->key_id);
        here.byte_offset = 132;
        if (key == nullptr) {
          return found(FindingKind::kUnknownKey,
                       fmt::format("signing key {} is not in the keyring", key_id_hex(header->key_id)));
        }
        if (key->node_id != header->node_id) {
          return found(FindingKind::kForeignSegment,
                       fmt::format("signing key {} belongs to node '{}', not '{}'",
                                   key_id_hex(header->key_id), escape_text(key->node_id),
                                   escape_text(header->node_id)));
        }
        here.byte_offset = 0;
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

      SegmentFacts& seg = facts[{shard, sequence}];
      seg.header_digest = header_digest(*bytes);
      seg.file_bytes = bytes->size();
      MerkleBuilder merkle;
      ChainHash before = header->previous_hash;  // chain hash of the record before the current
      std::optional<VerifyFinding> control_finding;
      const auto control_fails = [&](const ScannedRecord& r, FindingKind kind, std::string what) {
        here.record_index = r.index;
        here.byte_offset = r.offset;
        here.kind = kind;
        here.what = std::move(what);
        control_finding = here;
        return false;
      };
      const SegmentScan scan = scan_segment_records(
          *bytes, header->previous_hash, true, [&](const ScannedRecord& r) {
            const RecordView& view = r.view;
            if (seg.sealed) {
              return control_fails(r, FindingKind::kBadControl,
                                   "a record follows the segment's seal");
            }
            // The first record of a segment after an unsealed one must be its recovery record.
            if (r.index == 0 && previous != nullptr &&
                previous->sealed == (view.type == EventType::kRecovery)) {
              return control_fails(
                  r, previous->sealed ? FindingKind::kBadControl : FindingKind::kUnsealed,
                  previous->sealed
                      ? fmt::format("recovery record, but segment {:08} ends with its seal",
                                    sequence - 1)
                      : fmt::format("segment {:08} ends without a seal and this segment does "
                                    "not begin with a recovery record",
                                    sequence - 1));
            }
            if (!is_control_type(view.type)) {
              sessions.insert(view.session_id);
            } else {
              auto control = decode_control(view);
              if (!control) return control_fails(r, FindingKind::kBadControl, control.error().message);
              const ControlRecord& c = *control;
              const std::string_view what = event_type_name(c.type);
              if (c.shard != shard || c.segment != sequence) {
                return control_fails(r, FindingKind::kBadControl,
                                     fmt::format("{} names shard {} segment {:08}", what, c.shard,
                                                 c.segment));
              }
              if (c.header_digest != seg.header_digest) {
                return control_fails(r, FindingKind::kBadControl,
                                     fmt::format("{} was made for another segment header", what));
              }
              if (c.key_id != header->key_id) {
                return control_fails(r, FindingKind::kBadControl,
                                     fmt::format("{} is signed by key {}, the header names {}",
                                                 what, key_id_hex(c.key_id),
                                                 key_id_hex(header->key_id)));
              }
              if (key != nullptr && !control_signature_valid(view.body, key->public_key)) {
                return control_fails(r, FindingKind::kBadSignature,
                                     fmt::format("{} signature does not verify with key {}", what,
                                                 key_id_hex(c.key_id)));
              }
              if (c.type == EventType::kRecovery) {
                if (r.index != 0 || previous == nullptr) {
                  return control_fails(r, FindingKind::kBadControl,
                                       "a recovery record that does not open a segment after an "
                                       "unsealed one");
                }
                if (c.previous_header_digest != previous->header_digest ||
                    c.records != previous->records || c.last_hash != previous->last_hash ||
                    c.merkle_root != previous->merkle_root ||
                    c.end_offset != previous->end_offset ||
                    c.cut_bytes != previous->file_bytes - previous->end_offset) {
                  return control_fails(
                      r, FindingKind::kBadControl,
                      fmt::format("recovery record states {} records ending at {} (+{} cut) for "
                                  "segment {:08}, which holds {} ending at {} of {} bytes",
                                  c.records, c.end_offset, c.cut_bytes, sequence - 1,
                                  previous->records, previous->end_offset, previous->file_bytes));
                }
              } else {
                if (c.records != r.index || c.last_hash != before) {
                  return control_fails(
                      r, FindingKind::kBadControl,
                      fmt::format("{} covers {} records ending in hash {}, the segment has {} "
                                  "before it ending in {}",
                                  what, c.records, hex_of(c.last_hash), r.index, hex_of(before)));
                }
                if (c.merkle_root != merkle.root()) {
                  return control_fails(r, FindingKind::kBadControl,
                                       fmt::format("{} Merkle root does not match the segment's "
                                                   "records",
                                                   what));
                }
              }
              if (c.type == EventType::kCheckpoint) {
                if (last_checkpoint != 0 && c.number != last_checkpoint + 1) {
                  return control_fails(
                      r, FindingKind::kBadControl,
                      c.number > last_checkpoint + 1
                          ? fmt::format("checkpoint {} follows checkpoint {}: {} missing",
                                        c.number, last_checkpoint, c.number - last_checkpoint - 1)
                          : fmt::format("checkpoint {} follows checkpoint {}", c.number,
                                        last_checkpoint));
                }
                last_checkpoint = c.number;
                ++report.checkpoints;
                if (c.heartbeat) ++report.heartbeats;
              }
              if (c.type == EventType::kSeal) {
                seg.sealed = true;
                ++report.seals;
              }
              seg.control_hashes[r.index] = view.stored_hash;
              ++report.control_records;
            }
            merkle.add(view.stored_hash);
            before = view.stored_hash;
            return true;
          });
      if (control_finding) {
        report.records += scan.records;
        return finish(control_finding);
      }
      report.records += scan.records;
      previous_torn.reset();
      if (scan.end == ScanEnd::kDamaged) {
        here.record_index = scan.records;
        here.byte_offset = scan.end_offset;
        return found(scan.reason == "chain hash mismatch" ? FindingKind::kChainMismatch
                                                          : FindingKind::kBadRecord,
                     scan.reason);
      }
      // A segment without records says nothing about its predecessor: the next one must still
      // carry the recovery record.
      if (scan.records == 0 && previous != nullptr && !previous->sealed && !last) {
        return found(FindingKind::kUnsealed,
                     fmt::format("segment {:08} ends without a seal and this segment holds no "
                                 "recovery record",
                                 sequence - 1));
      }
      seg.records = scan.records;
      seg.end_offset = scan.end_offset;
      seg.last_hash = scan.last_hash;
      seg.merkle_root = merkle.root();
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
      if (last && !seg.sealed) {
        report.notes.push_back(fmt::format(
            "{}: not sealed (the newest segment of a running gateway, or the writer stopped "
            "without sealing: check it against the anchor file)",
            name));
      }
      previous = &seg;
      chain = scan.last_hash;
      ++expected;
    }
    if (!sequences->empty()) newest[shard] = sequences->back();
  }

  if (options.anchor_file.empty()) return finish(std::nullopt);
  auto text = read_whole_file(options.anchor_file);
  if (!text) return std::unexpected(text.error());
  report.anchors_checked = true;
  const std::string_view all(reinterpret_cast<const char*>(text->data()), text->size());
  uint64_t line_number = 0;
  for (size_t at = 0; at < all.size();) {
    size_t end = all.find('\n', at);
    const bool complete = end != std::string_view::npos;
    if (!complete) end = all.size();
    const std::string_view line = all.substr(at, end - at);
    at = end + 1;
    ++line_number;
    if (line.empty()) continue;
    VerifyFinding here;
    here.segment_file = options.anchor_file;
    const auto bad_anchor = [&](std::string what) {
      here.kind = FindingKind::kBadAnchor;
      here.what = fmt::format("anchor file line {}: {}", line_number, what);
      return finish(here);
    };
    auto parsed = parse_anchor_line(line);
    if (!parsed) {
      // An append torn by a crash leaves an incomplete last line; the writer goes on after it.
      if (!complete) break;
      return bad_anchor(parsed.error().message);
    }
    const AnchorRecord& a = parsed->anchor;
    here.shard = a.shard;
    here.segment_file = relative_segment(a.shard, a.segment);
    here.segment_sequence = a.segment;
    here.record_index = a.index;
    auto view = decode_record(a.record);
    auto control = view ? decode_control(*view) : Result<ControlRecord>(std::unexpected(view.error()));
    if (!control) return bad_anchor(control.error().message);
    if (control->shard != a.shard || control->segment != a.segment) {
      return bad_anchor("the record names another shard or segment than the line");
    }
    if (options.keyring != nullptr) {
      const KeyringEntry* key = options.keyring->find(control->key_id);
      if (key == nullptr || !control_signature_valid(view->body, key->public_key)) {
        return bad_anchor(fmt::format("{} signature does not verify", event_type_name(a.type)));
      }
    }
    if (!report.node_id.empty() && parsed->node_id != report.node_id) {
      continue;  // another node's anchors may share the file
    }
    ++report.anchors;
    const std::string what =
        a.type == EventType::kCheckpoint
            ? fmt::format("anchored checkpoint {}", control->number)
            : fmt::format("anchored {}", event_type_name(a.type));
    const auto it = facts.find({a.shard, a.segment});
    if (it == facts.end()) {
      return finish(VerifyFinding{
          .kind = FindingKind::kAnchorMismatch,
          .shard = a.shard,
          .segment_file = here.segment_file,
          .segment_sequence = a.segment,
          .record_index = a.index,
          .byte_offset = 0,
          .what = fmt::format("{} is missing: the segment is not in the trail{}", what,
                              newest.contains(a.shard) && a.segment > newest[a.shard]
                                  ? " (segments were deleted from the end)"
                                  : ""),
      });
    }
    const SegmentFacts& seg = it->second;
    const auto hash = seg.control_hashes.find(a.index);
    if (hash == seg.control_hashes.end()) {
      here.kind = FindingKind::kAnchorMismatch;
      here.what = a.index >= seg.records
                      ? fmt::format("{} is missing: the segment holds {} intact records, the "
                                    "anchor is record {} (records were cut from the end)",
                                    what, seg.records, a.index)
                      : fmt::format("{} is missing: record {} is not a control record", what,
                                    a.index);
      return finish(here);
    }
    ChainHash stored{};
    std::memcpy(stored.data(), a.record.data() + a.record.size() - stored.size(), stored.size());
    if (hash->second != stored) {
      here.kind = FindingKind::kAnchorMismatch;
      here.what = fmt::format("{} differs from the record in the trail", what);
      return finish(here);
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
    case EventType::kAuthFailure:
    case EventType::kAdmin: {
      const bool chain_known = !s.chain.empty();
      const bool groups_known = !s.groups.empty();
      const bool claims_known = !s.claims.empty();
      const bool lineage_known = !s.lineage.empty();
      std::string action, outcome, reason;
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
            if (type == EventType::kAdmin) reason = value;
            break;
          case FieldTag::kClaim:
            if (!claims_known) {
              const size_t eq = value.find('=');
              s.claims.emplace_back(value.substr(0, eq), eq == std::string_view::npos
                                                             ? std::string_view()
                                                             : value.substr(eq + 1));
            }
            break;
          case FieldTag::kTokenLineage:
            if (!lineage_known) s.lineage.emplace_back(value);
            break;
          case FieldTag::kAction:
            action = value;
            break;
          case FieldTag::kOutcome:
            outcome = value;
            break;
          default:
            break;
        }
      });
      // An admin request is a one-event "session": it ends with its outcome.
      if (type == EventType::kAdmin) {
        s.protocol = "admin";
        s.ended = true;
        if (outcome != "granted") ++s.errors;
        if (s.end_reason.empty()) {
          s.end_reason = action + " " + outcome;
          if (!reason.empty()) s.end_reason += ": " + reason;
        }
      }
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
    case EventType::kError: {
      ++s.errors;
      bool by_rule = false;
      for_each_field([&](FieldTag tag, std::string_view) { by_rule |= tag == FieldTag::kRule; });
      if (by_rule) ++s.refused;  // a guardrail's refusal names its rule
      break;
    }
    case EventType::kMaskedRow:
      ++s.masked_rows;
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
  for (const auto& wanted : filter.claims) {
    if (std::find(s.claims.begin(), s.claims.end(), wanted) == s.claims.end()) return false;
  }
  if (filter.from_ns && s.end_ns < *filter.from_ns) return false;
  if (filter.to_ns && s.start_ns > *filter.to_ns) return false;
  return true;
}

void fold_record(SessionSummary& s, const RecordView& view, uint16_t shard, uint64_t segment) {
  if (s.events == 0) {
    s.session_id = view.session_id;
    s.shard = shard;
  }
  // Records come in segment order, so a new segment is the last one listed or a later one.
  const SegmentRef ref{shard, segment};
  if (s.segments.empty() || s.segments.back() < ref) s.segments.push_back(ref);
  accumulate(s, view.type, view.time_ns, [&](auto&& fn) {
    view.for_each_field([&](const Field& field) { fn(field.tag, field.value); });
  });
}

Result<std::vector<SessionSummary>> list_sessions(const std::string& dir,
                                                  const SessionFilter& filter) {
  std::map<uint64_t, SessionSummary> by_id;
  auto walked = for_each_record(dir, [&](const TrailRecord& r) {
    const RecordView& view = r.record.view;
    if (filter.session_id && *filter.session_id != view.session_id) return true;
    if (is_control_type(view.type)) return true;  // trail control records belong to no session
    fold_record(by_id[view.session_id], view, r.shard, r.segment_sequence);
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
    if (r.record.view.session_id == session_id && !is_control_type(r.record.view.type)) {
      events.push_back(to_stored(r.record.view));
    }
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
