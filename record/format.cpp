// Text and JSON renderings of sessions, replays and verify reports for the command line.
// Pure functions over already loaded data: no I/O.
#include "record/format.hpp"

#include <fmt/format.h>
#include <time.h>

#include <charconv>

namespace gh::rec {

std::string format_session_id(uint64_t session_id) { return fmt::format("{:016x}", session_id); }

std::optional<uint64_t> parse_session_id(std::string_view text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string format_time_utc(uint64_t time_ns) {
  const time_t seconds = static_cast<time_t>(time_ns / 1'000'000'000ull);
  tm parts{};
  gmtime_r(&seconds, &parts);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", parts.tm_year + 1900,
                     parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
                     (time_ns / 1'000'000ull) % 1000);
}

std::string format_chain(std::span<const std::string> chain) {
  std::string out;
  for (const std::string& member : chain) {
    if (!out.empty()) out += " → ";
    out += escape_for_terminal(member);
  }
  return out;
}

std::string format_path(std::span<const std::string> chain, std::string_view connection) {
  std::string out = format_chain(chain);
  if (!connection.empty()) {
    if (!out.empty()) out += " → ";
    out += escape_for_terminal(connection);
  }
  return out;
}

std::string escape_for_terminal(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

namespace {

std::string relative_seconds(uint64_t time_ns, uint64_t first_ns) {
  // CLOCK_REALTIME may step backwards between events.
  const int64_t delta = static_cast<int64_t>(time_ns - first_ns);
  const char sign = delta < 0 ? '-' : '+';
  const uint64_t magnitude = static_cast<uint64_t>(delta < 0 ? -delta : delta);
  return fmt::format("{}{}.{:03}s", sign, magnitude / 1'000'000'000ull,
                     (magnitude / 1'000'000ull) % 1000);
}

std::string duration_text(const SessionSummary& s) {
  const uint64_t ms = (s.end_ns - s.start_ns) / 1'000'000ull;
  return fmt::format("{}.{:03}s", ms / 1000, ms % 1000);
}

std::string join(std::span<const std::string> values, std::string_view separator) {
  std::string out;
  for (const std::string& value : values) {
    if (!out.empty()) out += separator;
    out += escape_for_terminal(value);
  }
  return out;
}

// Terminal cells of UTF-8 text, counting every code point as one cell (enough for "→").
size_t display_width(std::string_view text) {
  size_t width = 0;
  for (const char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;
  }
  return width;
}

std::string pad(std::string_view text, size_t width) {
  std::string out(text);
  const size_t have = display_width(text);
  if (have < width) out.append(width - have, ' ');
  return out;
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  size_t at = 0;
  while (true) {
    const size_t end = text.find(separator, at);
    out.emplace_back(text.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
    if (end == std::string_view::npos) return out;
    at = end + 1;
  }
}

// A value cut to `width` terminal cells (the last one an ellipsis), at a UTF-8 boundary.
std::string cut_cell(std::string text, size_t width) {
  if (display_width(text) <= width) return text;
  size_t cells = 0;
  size_t at = 0;
  for (; at < text.size(); ++at) {
    if ((static_cast<unsigned char>(text[at]) & 0xC0) != 0x80 && ++cells == width) break;
  }
  text.resize(at);
  return text + "…";
}

bool is_row(const StoredEvent& e) {
  return e.type == EventType::kResultRow || e.type == EventType::kMaskedRow;
}

// Consecutive recorded rows of one result as a table under their column names (when the trail
// has them), each value cut at kCellWidthMax cells; masked rows name the rules that fired.
constexpr size_t kCellWidthMax = 40;
std::string format_rows(std::span<const StoredEvent> rows, std::string_view indent) {
  std::vector<std::vector<std::string>> table;
  const std::string_view columns = rows.front().first(FieldTag::kResultColumns);
  const bool header = !columns.empty();
  if (header) table.push_back(split(columns, '\t'));
  std::vector<const StoredEvent*> row_events;  // the event each table line comes from
  for (const StoredEvent& row : rows) {
    for (std::string_view text : row.all(FieldTag::kText)) {
      std::vector<std::string> cells = split(text, '\t');
      if (cells.empty()) cells.emplace_back();
      for (std::string& cell : cells) cell = cut_cell(escape_for_terminal(cell), kCellWidthMax);
      table.push_back(std::move(cells));
      row_events.push_back(&row);
    }
  }
  std::vector<size_t> widths;
  for (const auto& line : table) {
    if (widths.size() < line.size()) widths.resize(line.size(), 0);
    for (size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], display_width(line[i]));
  }
  std::string out;
  const auto emit = [&](const std::vector<std::string>& line, std::string_view suffix) {
    std::string text(indent);
    for (size_t i = 0; i < line.size(); ++i) {
      text += i > 0 ? " | " : "";
      text += i + 1 == line.size() ? line[i] : pad(line[i], widths[i]);
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + std::string(suffix) + "\n";
  };
  size_t at = 0;
  if (header) {
    for (auto& name : table[0]) name = escape_for_terminal(name);
    emit(table[0], "");
    std::string rule(indent);
    for (size_t i = 0; i < widths.size(); ++i) {
      rule += (i > 0 ? "-+-" : "") + std::string(std::max<size_t>(widths[i], 1), '-');
    }
    out += rule + "\n";
    at = 1;
  }
  for (size_t r = 0; r < row_events.size(); ++r) {
    std::string suffix;
    if (row_events[r]->type == EventType::kMaskedRow) {
      std::vector<std::string> rules;
      for (auto v : row_events[r]->all(FieldTag::kRule)) rules.emplace_back(v);
      suffix = "   (masked: " + join(rules, ",") + ")";
    }
    emit(table[at + r], suffix);
  }
  return out;
}

std::string describe_event(const StoredEvent& e) {
  const auto f = [&](FieldTag tag) { return escape_for_terminal(e.first(tag)); };
  switch (e.type) {
    case EventType::kSessionStart: {
      std::vector<std::string> chain, groups;
      for (auto v : e.all(FieldTag::kChainMember)) chain.emplace_back(v);
      for (auto v : e.all(FieldTag::kGroup)) groups.emplace_back(v);
      std::string text = fmt::format("session start  {}", format_chain(chain));
      if (!e.first(FieldTag::kConnection).empty()) text += " via " + f(FieldTag::kConnection);
      if (!e.first(FieldTag::kClientAddress).empty()) {
        text += " from " + f(FieldTag::kClientAddress);
      }
      std::vector<std::string> details;
      if (!e.first(FieldTag::kProtocol).empty()) details.push_back(f(FieldTag::kProtocol));
      if (!e.first(FieldTag::kUser).empty()) details.push_back("user " + f(FieldTag::kUser));
      if (!e.first(FieldTag::kDatabase).empty()) {
        details.push_back("database " + f(FieldTag::kDatabase));
      }
      if (!groups.empty()) details.push_back("groups " + join(groups, ","));
      if (!details.empty()) text += " (" + join(details, ", ") + ")";
      std::vector<std::string> claims;
      for (auto v : e.all(FieldTag::kClaim)) claims.push_back(escape_for_terminal(v));
      if (!claims.empty()) text += " [" + join(claims, ", ") + "]";
      return text;
    }
    case EventType::kStatement: {
      std::string kind = f(FieldTag::kStatementKind);
      if (kind.empty()) kind = "statement";
      std::string text = fmt::format("{} {}", kind, f(FieldTag::kText));
      if (!e.first(FieldTag::kOriginator).empty()) text += " from " + f(FieldTag::kOriginator);
      if (!e.first(FieldTag::kTextBytes).empty()) {
        text += fmt::format(" … [truncated, {} bytes in full]", f(FieldTag::kTextBytes));
      }
      return text;
    }
    case EventType::kCompletion: {
      std::string text = fmt::format("completed {}", f(FieldTag::kTag));
      if (!e.first(FieldTag::kBytesToTarget).empty()) {
        text += fmt::format(" ({} B to the target, {} B back)", f(FieldTag::kBytesToTarget),
                            f(FieldTag::kBytesFromTarget));
      }
      if (!e.first(FieldTag::kResultRows).empty()) {
        text += fmt::format(" ({} rows, {} bytes", f(FieldTag::kResultRows),
                            f(FieldTag::kResultBytes));
        if (!e.first(FieldTag::kResultRowsCut).empty()) {
          text += fmt::format("; {} rows recorded, {} more cut at the statement's result "
                              "budget",
                              f(FieldTag::kResultRowsRecorded), f(FieldTag::kResultRowsCut));
        }
        text += ")";
      }
      return text;
    }
    case EventType::kError: {
      std::string text = "error";
      if (!e.first(FieldTag::kSqlState).empty()) text += " " + f(FieldTag::kSqlState);
      if (!e.first(FieldTag::kMessage).empty()) text += " " + f(FieldTag::kMessage);
      if (!e.first(FieldTag::kOrigin).empty()) text += " (" + f(FieldTag::kOrigin) + ")";
      if (!e.first(FieldTag::kRule).empty()) text += " rule " + f(FieldTag::kRule);
      return text;
    }
    case EventType::kMaskedRow: {
      std::vector<std::string> rules;
      for (auto v : e.all(FieldTag::kRule)) rules.push_back(escape_for_terminal(v));
      return fmt::format("masked row [{}] {}", join(rules, ","), f(FieldTag::kText));
    }
    case EventType::kResultRow: {
      std::vector<std::string> texts;
      for (auto v : e.all(FieldTag::kText)) texts.push_back(escape_for_terminal(v));
      if (texts.size() == 1) return "row " + texts.front();
      return fmt::format("{} rows: {}", texts.size(), join(texts, " / "));
    }
    case EventType::kExecute: {
      // "execute SELECT $1 (statement s1, portal p) [$1='42', $2=NULL]".
      std::string text = fmt::format("execute {}", f(FieldTag::kText));
      if (!e.first(FieldTag::kTextBytes).empty()) {
        text += fmt::format(" … [truncated, {} bytes in full]", f(FieldTag::kTextBytes));
      }
      std::vector<std::string> names;
      if (!e.first(FieldTag::kStatementName).empty()) {
        names.push_back("statement " + f(FieldTag::kStatementName));
      }
      if (!e.first(FieldTag::kPortal).empty()) names.push_back("portal " + f(FieldTag::kPortal));
      if (!names.empty()) text += " (" + join(names, ", ") + ")";
      const auto values = e.all(FieldTag::kParameter);
      const std::vector<std::string> sizes = split(e.first(FieldTag::kParameterSizes), ',');
      const std::vector<std::string> formats = split(e.first(FieldTag::kParameterFormats), ',');
      std::vector<std::string> shown;
      for (size_t i = 0; i < sizes.size(); ++i) {
        std::string one = fmt::format("${}=", i + 1);
        const std::string_view value = i < values.size() ? values[i] : std::string_view();
        if (sizes[i] == "-1") {
          one += "NULL";
        } else if (i >= values.size()) {
          one += fmt::format("[{} bytes, not recorded]", sizes[i]);
        } else {
          one += "'" + escape_for_terminal(value) + "'";
          // Binary values are shown as \x and two hex digits a byte.
          const bool hex = i < formats.size() && formats[i] == "1";
          const size_t shown_bytes = hex ? (value.size() - 2) / 2 : value.size();
          if (sizes[i] != std::to_string(shown_bytes)) one += fmt::format("… [{} bytes]", sizes[i]);
        }
        shown.push_back(std::move(one));
      }
      if (!shown.empty()) {
        text += " [";
        for (size_t i = 0; i < shown.size(); ++i) text += (i > 0 ? ", " : "") + shown[i];
        text += "]";
      }
      return text;
    }
    case EventType::kNotice:
      return fmt::format("notice {}", f(FieldTag::kMessage));
    case EventType::kOutput: {
      std::string text = fmt::format("output {} {}", f(FieldTag::kStream), f(FieldTag::kText));
      if (!e.first(FieldTag::kTextBytes).empty())
        text += fmt::format(" … [{} bytes in all]", f(FieldTag::kTextBytes));
      return text;
    }
    case EventType::kFileOperation: {
      // "sftp close /srv/a.bin [write,create,truncate] (read 0 B, written 104857600 B): ok".
      std::string text = fmt::format("sftp {} {}", f(FieldTag::kFileOperation), f(FieldTag::kPath));
      if (!e.first(FieldTag::kTargetPath).empty()) text += " -> " + f(FieldTag::kTargetPath);
      if (!e.first(FieldTag::kOpenFlags).empty()) text += " [" + f(FieldTag::kOpenFlags) + "]";
      if (!e.first(FieldTag::kBytesRead).empty()) {
        text += fmt::format(" (read {} B, written {} B)", f(FieldTag::kBytesRead), f(FieldTag::kBytesWritten));
      }
      if (!e.first(FieldTag::kEntries).empty()) text += fmt::format(" ({} entries)", f(FieldTag::kEntries));
      return text + ": " + f(FieldTag::kFileStatus);
    }
    case EventType::kInput: {
      std::string text = fmt::format("input {}", f(FieldTag::kText));
      if (!e.first(FieldTag::kTextBytes).empty())
        text += fmt::format(" … [{} bytes in all]", f(FieldTag::kTextBytes));
      return text;
    }
    case EventType::kTerminal: {
      // "terminal pty-req xterm 80x24", "terminal window-change 100x30", "terminal signal INT".
      std::string text = "terminal " + f(FieldTag::kRequest);
      if (!e.first(FieldTag::kTerminalType).empty()) text += " " + f(FieldTag::kTerminalType);
      if (!e.first(FieldTag::kColumns).empty()) text += fmt::format(" {}x{}", f(FieldTag::kColumns), f(FieldTag::kRows));
      if (!e.first(FieldTag::kText).empty()) text += " " + f(FieldTag::kText);
      return text;
    }
    case EventType::kForwardData:
      return fmt::format("forward {} {}", f(FieldTag::kDirection), f(FieldTag::kText));
    case EventType::kReview: {
      // "review r-… requested (rule schema-changes, sha256 …)", "review r-… approved by bob".
      std::string text = fmt::format("review {} {}", f(FieldTag::kReviewId), f(FieldTag::kOutcome));
      std::vector<std::string> approvers;
      for (auto v : e.all(FieldTag::kApprover)) approvers.push_back(escape_for_terminal(v));
      if (!approvers.empty()) text += " by " + join(approvers, ", ");
      if (!e.first(FieldTag::kReason).empty()) text += ": " + f(FieldTag::kReason);
      std::vector<std::string> details;
      if (!e.first(FieldTag::kRule).empty()) details.push_back("rule " + f(FieldTag::kRule));
      if (!e.first(FieldTag::kStatementHash).empty()) {
        details.push_back("sha256 " + f(FieldTag::kStatementHash));
      }
      if (!details.empty()) text += " (" + join(details, ", ") + ")";
      return text;
    }
    case EventType::kAdmin: {
      std::vector<std::string> chain, details;
      for (auto v : e.all(FieldTag::kChainMember)) chain.emplace_back(v);
      for (auto v : e.all(FieldTag::kDetail)) details.push_back(escape_for_terminal(v));
      std::string text = fmt::format("admin {} {}", f(FieldTag::kAction), f(FieldTag::kOutcome));
      if (!e.first(FieldTag::kHttpStatus).empty()) text += " (" + f(FieldTag::kHttpStatus) + ")";
      if (!chain.empty()) text += " for " + format_chain(chain);
      if (!e.first(FieldTag::kReason).empty()) text += ": " + f(FieldTag::kReason);
      if (!details.empty()) text += " [" + join(details, ", ") + "]";
      return text;
    }
    case EventType::kSessionEnd: {
      const std::string reason = f(FieldTag::kReason);
      return reason.empty() ? std::string("session end") : "session end: " + reason;
    }
    case EventType::kAuthFailure: {
      std::vector<std::string> chain;
      for (auto v : e.all(FieldTag::kChainMember)) chain.emplace_back(v);
      std::string text = "authentication failed";
      if (!chain.empty()) text += " for " + format_chain(chain);
      if (!e.first(FieldTag::kReason).empty()) text += ": " + f(FieldTag::kReason);
      return text;
    }
    case EventType::kSeal:
    case EventType::kCheckpoint:
    case EventType::kRecovery:
      return fmt::format("{} (trail control record)", event_type_name(e.type));
  }
  return fmt::format("event type {}", static_cast<unsigned>(e.type));
}

}  // namespace

std::string format_sessions_table(std::span<const SessionSummary> sessions) {
  struct Row {
    std::array<std::string, 9> cells;
  };
  const std::array<std::string, 9> header = {"SESSION", "START", "DURATION", "CHAIN", "CONNECTION",
                                             "CLIENT",  "STMTS", "ERRORS",   "END"};
  std::vector<Row> rows;
  for (const SessionSummary& s : sessions) {
    std::string end = s.ended ? escape_for_terminal(s.end_reason) : std::string("(open)");
    if (s.ended && end.empty()) end = "ended";
    rows.push_back(Row{{format_session_id(s.session_id), format_time_utc(s.start_ns),
                        duration_text(s), format_path(s.chain, s.connection), escape_for_terminal(s.connection),
                        escape_for_terminal(s.client_address), std::to_string(s.statements),
                        std::to_string(s.errors), end}});
  }
  std::array<size_t, 9> widths{};
  for (size_t c = 0; c < header.size(); ++c) widths[c] = display_width(header[c]);
  for (const Row& row : rows) {
    for (size_t c = 0; c < header.size(); ++c) {
      widths[c] = std::max(widths[c], display_width(row.cells[c]));
    }
  }
  const auto line = [&](const std::array<std::string, 9>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      out += c + 1 == cells.size() ? cells[c] : pad(cells[c], widths[c]) + "  ";
    }
    out += "\n";
    return out;
  };
  std::string out = line(header);
  for (const Row& row : rows) out += line(row.cells);
  return out;
}

std::string format_replay(std::span<const StoredEvent> events) {
  if (events.empty()) return "(no events)\n";
  const SessionSummary s = summarize_session(events);
  std::string out = fmt::format("session {}", format_session_id(s.session_id));
  if (!s.chain.empty()) out += "  " + format_path(s.chain, s.connection);
  out += "\n";
  out += fmt::format("started {}", format_time_utc(s.start_ns));
  if (!s.connection.empty()) out += "  connection " + escape_for_terminal(s.connection);
  if (!s.client_address.empty()) out += "  client " + escape_for_terminal(s.client_address);
  out += "\n";
  if (!s.claims.empty()) {
    std::vector<std::string> claims;
    for (const auto& [name, value] : s.claims) claims.push_back(escape_for_terminal(name + "=" + value));
    out += "provenance " + join(claims, ", ") + "\n";
  }
  if (!s.lineage.empty()) out += "exchanged from tokens " + escape_for_terminal(join(s.lineage, " → ")) + "\n";
  const uint64_t first = events.front().time_ns;
  for (size_t i = 0; i < events.size(); ++i) {
    const StoredEvent& event = events[i];
    if (is_row(event)) {
      // Rows of one result: a table, until the next event that is not a row or names columns.
      size_t end = i + 1;
      while (end < events.size() && is_row(events[end]) &&
             events[end].first(FieldTag::kResultColumns).empty())
        ++end;
      size_t rows = 0;
      for (size_t r = i; r < end; ++r) rows += events[r].all(FieldTag::kText).size();
      out += fmt::format("{:>9}  {} recorded {}\n", relative_seconds(event.time_ns, first), rows,
                         rows == 1 ? "row" : "rows");
      out += format_rows(events.subspan(i, end - i), std::string(11, ' '));
      i = end - 1;
      continue;
    }
    out +=
        fmt::format("{:>9}  {}\n", relative_seconds(event.time_ns, first), describe_event(event));
  }
  if (!s.ended) out += "(session has no end record yet)\n";
  return out;
}

std::string format_verify(const VerifyReport& r) {
  std::string out;
  if (r.ok()) {
    out = fmt::format(
        "ok: {} shards, {} segments, {} records ({} of {} sessions, {} seals, {} checkpoints of "
        "which {} heartbeats), node {}, {}, {}\n",
        r.shards, r.segments, r.records, r.records - r.control_records, r.sessions, r.seals,
        r.checkpoints, r.heartbeats, escape_for_terminal(r.node_id),
        r.signatures_checked ? "signatures verified" : "signatures NOT checked (no --keys)",
        r.anchors_checked ? fmt::format("{} anchors matched", r.anchors) : std::string("no anchor file"));
  } else {
    const VerifyFinding& f = *r.finding;
    out = fmt::format("{}: {}", f.tampering() ? "FAILED" : "TRUNCATED TAIL", f.segment_file);
    if (f.record_index) out += fmt::format(" record {}", *f.record_index);
    out += fmt::format(" at byte {}: {}\n", f.byte_offset, f.what);
    out += fmt::format("checked before it: {} segments, {} records\n", r.segments, r.records);
  }
  for (const std::string& note : r.notes) out += "note: " + note + "\n";
  return out;
}

static nlohmann::json claims_to_json(const std::vector<std::pair<std::string, std::string>>& claims) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, value] : claims) out[name] = value;
  return out;
}

// Segment references as the trail names the files: "shard-00/00000003.seg".
static nlohmann::json segments_to_json(const std::vector<SegmentRef>& segments) {
  nlohmann::json out = nlohmann::json::array();
  for (const SegmentRef& ref : segments) {
    out.push_back(shard_dir_name(ref.shard) + "/" + segment_file_name(ref.segment));
  }
  return out;
}

nlohmann::json session_to_json(const SessionSummary& s) {
  return nlohmann::json{
      {"session_id", format_session_id(s.session_id)},
      {"shard", s.shard},
      {"start", format_time_utc(s.start_ns)},
      {"start_ns", s.start_ns},
      {"end_ns", s.end_ns},
      {"ended", s.ended},
      {"chain", s.chain},
      {"groups", s.groups},
      {"protocol", s.protocol},
      {"connection", s.connection},
      {"client_address", s.client_address},
      {"user", s.user},
      {"database", s.database},
      {"token_id", s.token_id},
      {"issuer", s.issuer},
      {"path", format_path(s.chain, s.connection)},
      {"claims", claims_to_json(s.claims)},
      {"lineage", s.lineage},
      {"events", s.events},
      {"statements", s.statements},
      {"errors", s.errors},
      {"verdicts", {{"allowed", s.allowed()}, {"refused", s.refused}, {"masked_rows", s.masked_rows}}},
      {"end_reason", s.end_reason},
      {"segments", segments_to_json(s.segments)},
  };
}

nlohmann::json sessions_to_json(std::span<const SessionSummary> sessions) {
  nlohmann::json out = nlohmann::json::array();
  for (const SessionSummary& s : sessions) out.push_back(session_to_json(s));
  return out;
}

nlohmann::json event_to_json(const StoredEvent& e, uint64_t first_time_ns) {
  nlohmann::json fields = nlohmann::json::object();
  for (const StoredField& field : e.fields) {
    std::string name(field_tag_name(field.tag));
    if (name.empty()) name = fmt::format("tag_{}", static_cast<unsigned>(field.tag));
    if (field.tag == FieldTag::kChainMember || field.tag == FieldTag::kGroup) {
      name = field.tag == FieldTag::kChainMember ? "chain" : "groups";
      fields[name].push_back(field.value);
    } else if (fields.contains(name)) {
      // A repeated tag that is not meant to repeat: keep every value rather than the last.
      if (!fields[name].is_array()) fields[name] = nlohmann::json::array({fields[name]});
      fields[name].push_back(field.value);
    } else {
      fields[name] = field.value;
    }
  }
  const int64_t offset_ns = static_cast<int64_t>(e.time_ns - first_time_ns);
  return nlohmann::json{
      {"type", event_type_name(e.type)},
      {"sequence", e.sequence},
      {"time", format_time_utc(e.time_ns)},
      {"time_ns", e.time_ns},
      {"offset_s", static_cast<double>(offset_ns) / 1e9},
      {"fields", std::move(fields)},
  };
}

nlohmann::json replay_to_json(std::span<const StoredEvent> events) {
  nlohmann::json list = nlohmann::json::array();
  const uint64_t first = events.empty() ? 0 : events.front().time_ns;
  for (const StoredEvent& e : events) list.push_back(event_to_json(e, first));
  nlohmann::json out =
      events.empty() ? nlohmann::json::object() : session_to_json(summarize_session(events));
  out["events"] = std::move(list);
  return out;
}

nlohmann::json verify_to_json(const VerifyReport& r) {
  nlohmann::json out{
      {"ok", r.ok()},         {"shards", r.shards},     {"segments", r.segments},
      {"records", r.records}, {"sessions", r.sessions}, {"notes", r.notes},
      {"seals", r.seals},     {"checkpoints", r.checkpoints}, {"heartbeats", r.heartbeats},
      {"anchors", r.anchors}, {"signatures_checked", r.signatures_checked},
      {"anchors_checked", r.anchors_checked}, {"control_records", r.control_records},
      {"node_id", r.node_id},
  };
  if (r.finding) {
    const VerifyFinding& f = *r.finding;
    out["finding"] = nlohmann::json{
        {"kind", finding_kind_name(f.kind)},
        {"tampering", f.tampering()},
        {"shard", f.shard},
        {"segment_file", f.segment_file},
        {"segment_sequence", f.segment_sequence},
        {"record_index", f.record_index ? nlohmann::json(*f.record_index) : nlohmann::json()},
        {"byte_offset", f.byte_offset},
        {"what", f.what},
    };
  }
  return out;
}

std::string dump_json(const nlohmann::json& value, int indent) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gh::rec
