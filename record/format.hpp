// Text and JSON renderings of sessions, replays and verify reports for the command line.
// Pure functions over already loaded data: no I/O.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "record/event.hpp"
#include "record/reader.hpp"

namespace gh::rec {

std::string format_session_id(uint64_t session_id);               // 16 lowercase hex digits
std::optional<uint64_t> parse_session_id(std::string_view text);  // 1..16 hex digits
std::string format_time_utc(uint64_t time_ns);                    // "2026-11-23T09:19:34.123Z"
std::string format_chain(std::span<const std::string> chain);     // "alice → ci-runner"
// The chain, then the connection it reached: "alice → ci-runner → deploy-svc → db-prod".
std::string format_path(std::span<const std::string> chain, std::string_view connection);
// Control characters (an auditor's terminal must not run escape sequences found in a trail)
// become \n, \t, \xHH.
std::string escape_for_terminal(std::string_view text);

// One header line, then one line per session.
std::string format_sessions_table(std::span<const SessionSummary> sessions);
// A session as a readable transcript: a header with identity and connection, then one line per
// event with its time relative to the first ("+0.012s").
std::string format_replay(std::span<const StoredEvent> events);
// "ok: ..." or the finding with its location, plus notes.
std::string format_verify(const VerifyReport& report);

nlohmann::json session_to_json(const SessionSummary& session);
nlohmann::json sessions_to_json(std::span<const SessionSummary> sessions);
nlohmann::json event_to_json(const StoredEvent& event, uint64_t first_time_ns);
nlohmann::json replay_to_json(std::span<const StoredEvent> events);
nlohmann::json verify_to_json(const VerifyReport& report);
// Serializes without throwing: bytes that are not UTF-8 become U+FFFD (trail values are
// arbitrary bytes; nlohmann's default dump would throw on them).
std::string dump_json(const nlohmann::json& value, int indent = -1);

}  // namespace gh::rec
