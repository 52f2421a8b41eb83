// Segment files: header codec, file naming, record scanning and the append-only shard writer.
// Blocking file I/O lives here and runs on the flusher thread only, never on a shard thread.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "record/event.hpp"
#include "record/hash.hpp"
#include "record/limits.hpp"

namespace gh::rec {

inline constexpr std::array<char, 8> kSegmentMagic = {'G', 'H', 'T', 'R', 'A', 'I', 'L', '\0'};
inline constexpr uint16_t kFormatVersion = 1;
// The previous segment ends in a torn record; previous_hash links to its last intact record.
inline constexpr uint32_t kHeaderFlagPreviousTailTorn = 1u << 0;
inline constexpr uint32_t kHeaderFlagsKnown = kHeaderFlagPreviousTailTorn;

struct SegmentHeader {
  uint16_t format_version = kFormatVersion;
  uint16_t shard = 0;
  std::string node_id;    // 1..node_id_bytes_max bytes
  uint64_t sequence = 0;  // first segment of a shard is 1
  uint64_t created_ns = 0;
  ChainHash previous_hash{};  // zeros for the first segment
  uint32_t flags = 0;
};

std::array<std::byte, limits::segment_header_bytes> encode_segment_header(const SegmentHeader& h);
// Checks magic, version, header size, node id, flags and that every reserved byte is zero.
[[nodiscard]] Result<SegmentHeader> parse_segment_header(std::span<const std::byte> bytes);

std::string shard_dir_name(uint16_t shard);        // "shard-00"
std::string segment_file_name(uint64_t sequence);  // "00000001.seg"
std::optional<uint16_t> parse_shard_dir_name(std::string_view name);
std::optional<uint64_t> parse_segment_file_name(std::string_view name);

// mkdir -p with mode 0750.
[[nodiscard]] Result<void> make_directories(const std::string& path);
// Shards present under a trail directory, ascending. Fails when `trail_dir` cannot be read.
[[nodiscard]] Result<std::vector<uint16_t>> list_shards(const std::string& trail_dir);
// Segment sequences present in a shard directory, ascending.
[[nodiscard]] Result<std::vector<uint64_t>> list_segments(const std::string& shard_dir);
// "<seq>.seg.partial" names: a rotation interrupted before its rename (a header at most).
[[nodiscard]] Result<std::vector<std::string>> list_partial_files(const std::string& shard_dir);
[[nodiscard]] Result<std::vector<std::byte>> read_whole_file(const std::string& path);

// Walking the records of one segment held in memory.
enum class ScanEnd : uint8_t {
  kClean,     // the last record ends exactly at the end of the file
  kTornTail,  // the file ends inside a record, or in zero bytes: what a crash leaves
  kDamaged,   // framing or (when checked) chain hash is wrong: corruption or tampering
};

struct ScannedRecord {
  uint64_t index = 0;   // within the segment, from 0
  uint64_t offset = 0;  // byte offset in the file
  RecordView view;      // views into the scanned bytes
};

struct SegmentScan {
  ScanEnd end = ScanEnd::kClean;
  uint64_t records = 0;     // intact records before `end`
  uint64_t end_offset = 0;  // offset just after the last intact record
  ChainHash last_hash{};    // chain hash of the last intact record (or the start hash)
  std::string reason;       // what is wrong when end != kClean, at `end_offset`
};

// Scans records starting at `limits::segment_header_bytes`. With `check_hashes` every chain hash
// is recomputed from `start_hash`; without, only framing is checked and stored hashes are
// trusted. `on_record` (may be empty) returns false to stop early; the scan then ends kClean
// at that record. Views passed to it are valid while `file` is.
SegmentScan scan_segment_records(std::span<const std::byte> file, const ChainHash& start_hash,
                                 bool check_hashes,
                                 const std::function<bool(const ScannedRecord&)>& on_record = {});

// The file operations the writer needs, so tests can inject failures (ENOSPC, EIO, partial
// writes). Each returns what the syscall returns, with -errno instead of -1.
class SegmentIo {
 public:
  virtual ~SegmentIo() = default;
  virtual int open_new(const std::string& path) = 0;  // O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC
  virtual ssize_t write(int fd, std::span<const std::byte> bytes) = 0;
  virtual int fdatasync(int fd) = 0;
  virtual int close(int fd) = 0;
  virtual int rename(const std::string& from, const std::string& to) = 0;  // never replaces `to`
  virtual int unlink(const std::string& path) = 0;
  virtual int sync_dir(const std::string& path) = 0;
};
SegmentIo& posix_segment_io();

struct ShardWriterOptions {
  std::string trail_dir;
  std::string node_id;
  uint16_t shard = 0;
  uint64_t segment_bytes_max = limits::segment_bytes_default;
  SegmentIo* io = nullptr;  // posix_segment_io() when null
};

// How the writer picked up an existing shard directory.
struct ResumeInfo {
  uint64_t previous_sequence = 0;  // 0: the shard had no segment
  bool previous_tail_torn = false;
  uint64_t torn_bytes = 0;
  std::string note;  // human-readable, empty when nothing noteworthy
};

// Appends records of one shard: stage() a batch (hashing it), write_staged() it with as few
// write(2) calls as possible, rotate() by size, sync() on the flusher's schedule. Never rewrites a
// byte of a segment: a failed write leaves the batch staged and the next write_staged() continues
// exactly where the kernel stopped. A new segment is written as <seq>.seg.partial, synced and
// renamed, so a segment file never has a torn header. One thread only.
class ShardWriter {
 public:
  // Creates the shard directory if needed, removes leftover .partial files, and links to the
  // last intact record of the newest existing segment. The next write opens a NEW segment.
  static Result<std::unique_ptr<ShardWriter>> open(ShardWriterOptions options);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  const ResumeInfo& resume_info() const { return resume_; }
  const std::string& shard_dir() const { return shard_dir_; }

  // Whether a record of `record_bytes` (hash included) belongs in the current segment after what
  // is staged, or the segment must rotate first. A segment always takes its first record.
  bool fits(size_t record_bytes) const;
  // Appends `body` (a record without its hash) and its chain hash to the staged batch. Not
  // allowed while a partly written batch is pending.
  void stage(std::span<const std::byte> body);
  bool has_staged() const { return !staged_.empty(); }
  size_t staged_bytes() const { return staged_.size(); }
  size_t staged_records() const { return staged_records_; }
  bool partly_written() const { return staged_written_ > 0; }

  // Opens the next segment if none is open, then writes what is staged. On error the rest stays
  // staged (call again later); on success the batch is on the file and the chain advances.
  [[nodiscard]] Result<void> write_staged();
  // fdatasync + close of the current segment; the next write_staged() opens the next one.
  [[nodiscard]] Result<void> rotate();
  // fdatasync when anything was written since the last sync.
  [[nodiscard]] Result<void> sync();
  bool dirty() const { return dirty_; }

  const ChainHash& chain() const { return chain_; }
  uint64_t next_sequence() const { return next_sequence_; }
  bool segment_open() const { return fd_ >= 0; }
  uint64_t records_written() const { return records_written_; }
  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t fsyncs() const { return fsyncs_; }

 private:
  explicit ShardWriter(ShardWriterOptions options);
  Result<void> open_segment();

  ShardWriterOptions options_;
  SegmentIo* io_;
  std::string shard_dir_;
  ResumeInfo resume_;
  ChainHasher hasher_;

  int fd_ = -1;
  uint64_t next_sequence_ = 1;  // the sequence the next open_segment() creates
  uint64_t segment_bytes_ = 0;  // of the open segment, header included
  uint64_t segment_records_ = 0;
  bool first_segment_after_resume_ = true;

  ChainHash chain_{};         // hash of the last record on file (or the segment link)
  ChainHash staged_chain_{};  // hash of the last staged record
  std::vector<std::byte> staged_;
  size_t staged_records_ = 0;
  size_t staged_written_ = 0;
  bool dirty_ = false;
  bool dir_dirty_ = false;

  uint64_t records_written_ = 0;
  uint64_t bytes_written_ = 0;
  uint64_t fsyncs_ = 0;
};

}  // namespace gh::rec
