// Helpers shared by the record tests: temporary trail directories, owned events, pushing with
// back-pressure. Test-only; must not be used by gh_record itself.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "record/event.hpp"
#include "record/flusher.hpp"
#include "record/keys.hpp"
#include "record/ring.hpp"

namespace gh::rec {
// Readable failure messages for event comparisons.
inline void PrintTo(const StoredEvent& e, std::ostream* os) {
  *os << "{type " << static_cast<int>(e.type) << ", session " << e.session_id << ", seq "
      << e.sequence << ", t " << e.time_ns << ",";
  for (const StoredField& f : e.fields) {
    *os << " " << static_cast<int>(f.tag) << "=\"" << f.value << "\"";
  }
  *os << "}";
}
}  // namespace gh::rec

namespace gh::rec::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "gh-record-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// An Event viewing its own copy of a StoredEvent (so a temporary may be passed in).
struct EventView {
  explicit EventView(StoredEvent e) : owned(std::move(e)) {
    for (const StoredField& f : owned.fields) fields.push_back(Field{f.tag, f.value});
    event = Event{owned.type, owned.session_id, owned.sequence, owned.time_ns, fields};
  }
  EventView(const EventView&) = delete;
  EventView& operator=(const EventView&) = delete;
  StoredEvent owned;
  std::vector<Field> fields;
  Event event{};
};

inline constexpr uint64_t kBaseTimeNs = 1'700'000'000'000'000'000ull;

// A statement event whose text is derived from (session, sequence) so readers can check it.
inline StoredEvent statement(uint64_t session, uint32_t sequence, size_t text_bytes = 40) {
  std::string text = "SELECT " + std::to_string(session) + "." + std::to_string(sequence) + " ";
  while (text.size() < text_bytes) text.push_back(static_cast<char>('a' + text.size() % 26));
  text.resize(std::max(text_bytes, size_t{1}));
  return StoredEvent{EventType::kStatement,
                     session,
                     sequence,
                     kBaseTimeNs + sequence * 1'000'000ull,
                     {{FieldTag::kStatementKind, "query"}, {FieldTag::kText, std::move(text)}}};
}

// Pushes, waiting out back-pressure as a paused connection would; fails the test after `wait`.
inline bool push_blocking(Ring& ring, const StoredEvent& stored,
                          std::chrono::milliseconds wait = std::chrono::seconds(20)) {
  EventView view(stored);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    const PushStatus status = ring.try_push(view.event);
    if (status == PushStatus::kPushed) return true;
    if (status == PushStatus::kTooLarge) return false;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds wait = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// One node key for every test of a binary (generating is cheap, but one key keeps trails of one
// test verifiable together).
inline std::shared_ptr<const NodeKey> test_key() {
  static const std::shared_ptr<const NodeKey> key = *NodeKey::generate();
  return key;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline FlusherOptions test_options(const std::string& dir, uint16_t shards = 1) {
  FlusherOptions options;
  options.key = test_key();
  options.dir = dir;
  options.node_id = "test-node";
  options.shard_count = shards;
  options.ring_bytes = limits::ring_bytes_min;
  options.segment_bytes_max = limits::segment_bytes_default;
  options.flush_interval_ms = 5;
  options.poll_interval_us = 100;
  options.retry_interval_ms = 10;
  return options;
}

}  // namespace gh::rec::testing
