// asciicast v2 rendering of a recorded SSH terminal channel. Pure function over loaded events.
#include "record/asciicast.hpp"

#include <charconv>
#include <string_view>

#include <fmt/format.h>

namespace gh::rec {
namespace {

// Appends `text` as the body of a JSON string (RFC 8259 section 7), given valid UTF-8.
void append_json_chars(std::string& out, std::string_view text) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out.push_back(c);
    }
  }
}

// Length of the UTF-8 sequence starting with `lead` (RFC 3629 section 4), 0 when it cannot lead.
size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

bool valid_sequence(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  for (size_t i = 1; i < s.size(); ++i) {
    if ((b(i) & 0xc0) != 0x80) return false;
  }
  if (s.size() >= 2) {
    // Overlong forms, surrogates and code points above U+10FFFF (RFC 3629 section 4 table).
    if (b(0) == 0xe0 && b(1) < 0xa0) return false;
    if (b(0) == 0xed && b(1) > 0x9f) return false;
    if (b(0) == 0xf0 && b(1) < 0x90) return false;
    if (b(0) == 0xf4 && b(1) > 0x8f) return false;
  }
  return true;
}

// Turns a byte stream split into chunks into valid UTF-8 per chunk: an incomplete sequence at a
// chunk's end waits for the next chunk; anything invalid becomes U+FFFD.
class Utf8Stream {
 public:
  std::string take(std::string_view chunk) {
    std::string bytes = std::move(carry_);
    carry_.clear();
    bytes.append(chunk);
    std::string out;
    size_t i = 0;
    while (i < bytes.size()) {
      const size_t n = sequence_length(static_cast<unsigned char>(bytes[i]));
      if (n == 0) {
        out += "\xef\xbf\xbd";
        ++i;
        continue;
      }
      if (i + n > bytes.size()) {
        if (valid_sequence(std::string_view(bytes).substr(i))) {
          carry_ = bytes.substr(i);
          break;
        }
        out += "\xef\xbf\xbd";
        ++i;
        continue;
      }
      const std::string_view sequence = std::string_view(bytes).substr(i, n);
      if (!valid_sequence(sequence)) {
        out += "\xef\xbf\xbd";
        ++i;
        continue;
      }
      out.append(sequence);
      i += n;
    }
    return out;
  }

 private:
  std::string carry_;
};

// A decimal u32 that is the whole of `text`.
bool parse_number(std::string_view text, uint32_t& value) {
  uint32_t v = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size()) return false;
  value = v;
  return true;
}

}  // namespace

Result<std::string> format_asciicast(std::span<const StoredEvent> events,
                                     std::optional<std::string> channel) {
  // The terminal channel: the one asked for, or the first with a pty or a shell.
  if (!channel) {
    for (const StoredEvent& e : events) {
      if (e.type != EventType::kTerminal) continue;
      const std::string_view request = e.first(FieldTag::kRequest);
      if (request == "pty-req" || request == "shell") {
        channel = std::string(e.first(FieldTag::kChannel));
        break;
      }
    }
    if (!channel) return fail("the session has no terminal (no channel asked for a pty or a shell)");
  }
  uint32_t cols = 80;
  uint32_t rows = 24;
  std::string term;
  uint64_t start_ns = 0;
  bool found = false;
  for (const StoredEvent& e : events) {
    if (e.first(FieldTag::kChannel) != *channel) continue;
    if (!found) start_ns = e.time_ns;
    found = true;
    if (e.type == EventType::kTerminal && e.first(FieldTag::kRequest) == "pty-req") {
      parse_number(e.first(FieldTag::kColumns), cols);
      parse_number(e.first(FieldTag::kRows), rows);
      term = std::string(e.first(FieldTag::kTerminalType));
      break;
    }
  }
  if (!found) return fail(fmt::format("the session has no channel {}", *channel));

  std::string out = fmt::format("{{\"version\": 2, \"width\": {}, \"height\": {}, \"timestamp\": {}",
                                cols, rows, start_ns / 1'000'000'000ull);
  if (!term.empty()) {
    out += ", \"env\": {\"TERM\": \"";
    Utf8Stream clean;
    append_json_chars(out, clean.take(term));
    out += "\"}";
  }
  out += ", \"title\": \"gatehouse channel ";
  Utf8Stream title;
  append_json_chars(out, title.take(*channel));
  out += "\"}\n";

  Utf8Stream output[2];
  Utf8Stream input;
  for (const StoredEvent& e : events) {
    if (e.first(FieldTag::kChannel) != *channel) continue;
    // CLOCK_REALTIME may step backwards; asciinema wants non-decreasing times.
    const uint64_t at_ns = e.time_ns > start_ns ? e.time_ns - start_ns : 0;
    const std::string time = fmt::format("{}.{:06}", at_ns / 1'000'000'000ull, (at_ns / 1000) % 1'000'000);
    const auto event = [&](std::string_view code, std::string_view text) {
      if (text.empty()) return;
      out += fmt::format("[{}, \"{}\", \"", time, code);
      append_json_chars(out, text);
      out += "\"]\n";
    };
    if (e.type == EventType::kOutput) {
      event("o", output[e.first(FieldTag::kStream) == "err" ? 1 : 0].take(e.first(FieldTag::kText)));
    } else if (e.type == EventType::kInput) {
      event("i", input.take(e.first(FieldTag::kText)));
    } else if (e.type == EventType::kError && !e.first(FieldTag::kRule).empty()) {  // a refused line
      Utf8Stream message;
      event("o", message.take(fmt::format("\r\n{}\r\n", e.first(FieldTag::kMessage))));
    } else if (e.type == EventType::kTerminal && e.first(FieldTag::kRequest) == "window-change") {
      uint32_t c = 0;
      uint32_t r = 0;
      if (!parse_number(e.first(FieldTag::kColumns), c) || !parse_number(e.first(FieldTag::kRows), r)) continue;
      event("r", fmt::format("{}x{}", c, r));
    }
  }
  return out;
}

}  // namespace gh::rec
