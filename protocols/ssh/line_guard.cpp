// Line reconstruction for the shell guardrail (see line_guard.hpp for what is followed).
#include "protocols/ssh/line_guard.hpp"

namespace gh::ssh {

namespace {

constexpr char kCtrlC = 0x03;
constexpr char kCtrlD = 0x04;
constexpr char kBackspace = 0x08;
constexpr char kCtrlL = 0x0c;
constexpr char kCtrlU = 0x15;
constexpr char kCtrlW = 0x17;
constexpr char kEscape = 0x1b;
constexpr char kDelete = 0x7f;
// Bracketed paste's markers (xterm; readline asks for them with ESC[?2004h).
constexpr std::string_view kPasteStart = "\x1b[200~";
constexpr std::string_view kPasteEnd = "\x1b[201~";

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xc0) == 0x80; }

}  // namespace

void LineGuard::filter(std::string_view input, const Judge& judge, std::string& out,
                       std::vector<Refusal>& refused) {
  for (const char c : input) {
    if (!escape_.empty()) {
      out.push_back(c);
      escape(c);
      continue;
    }
    if ((c == '\r' || c == '\n') && !pasting_) {
      std::optional<std::string> rule = judge_line(judge);
      if (rule) {
        refused.push_back(Refusal{line_, std::move(*rule)});
        out.push_back(kKillLine);
      } else {
        out.push_back(c);
      }
      line_.clear();
      lost_ = false;
      continue;
    }
    out.push_back(c);
    take(c);
  }
}

// One byte of the line being typed (or pasted).
void LineGuard::take(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (c == kEscape) {
    escape_.push_back(c);
  } else if (pasting_) {
    append(c == '\r' ? '\n' : c);  // readline inserts what is pasted as text, line breaks too
  } else if (c == kCtrlC || c == kCtrlU) {
    // Readline and the line discipline both drop the line; it is known (empty) again.
    line_.clear();
    lost_ = false;
  } else if (lost_ || c == kCtrlD || c == kCtrlL) {
    // Nothing to follow, or no change to the line.
  } else if (c == kBackspace || c == kDelete) {
    erase_character();
  } else if (c == kCtrlW) {
    erase_word();
  } else if (u < 0x20) {
    // Tab completion, history search, cursor moves: the line on the host is no longer what
    // was typed here.
    lose();
  } else {
    append(c);
  }
}

void LineGuard::append(std::string_view text) {
  if (lost_) return;
  if (line_.size() + text.size() > line_bytes_max_) return lose();
  line_.append(text);
}

// A byte of an escape sequence: the paste markers are followed, anything else loses the line.
void LineGuard::escape(char c) {
  escape_.push_back(c);
  const std::string_view marker = pasting_ ? kPasteEnd : kPasteStart;
  if (escape_ == marker) {
    pasting_ = !pasting_;
    escape_.clear();
  } else if (!marker.starts_with(escape_)) {
    if (pasting_) {
      append(escape_);  // pasted text, as readline inserts it
    } else {
      lose();  // a cursor or editing key
    }
    escape_.clear();
  }
}

void LineGuard::lose() {
  lost_ = true;
  line_.clear();
}

// The rule refusing the line or one of its pasted lines; empty lines are not judged.
std::optional<std::string> LineGuard::judge_line(const Judge& judge) const {
  if (lost_ || line_.empty()) return std::nullopt;
  std::string_view rest = line_;
  while (true) {
    const size_t end = rest.find('\n');
    const std::string_view one = rest.substr(0, end);
    if (!one.empty()) {
      if (auto rule = judge(one)) return rule;
    }
    if (end == std::string_view::npos) return std::nullopt;
    rest.remove_prefix(end + 1);
  }
}

// One character: a UTF-8 sequence's continuation bytes go with its first byte.
void LineGuard::erase_character() {
  while (!line_.empty() && is_continuation(line_.back())) line_.pop_back();
  if (!line_.empty()) line_.pop_back();
}

// Readline's unix-word-rubout and the line discipline's WERASE: blanks, then non-blanks.
void LineGuard::erase_word() {
  while (!line_.empty() && (line_.back() == ' ' || line_.back() == '\t')) line_.pop_back();
  while (!line_.empty() && line_.back() != ' ' && line_.back() != '\t') line_.pop_back();
}

}  // namespace gh::ssh
