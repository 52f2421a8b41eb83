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
#include "record/control.hpp"
#include "record/keys.hpp"
#include "record/limits.hpp"
#include "record/merkle.hpp"

namespace gh::rec {

inline constexpr std::array<char, 8> kSegmentMagic = {'G', 'H', 'T', 'R', 'A', 'I', 'L', '\0'};
// Version 2 adds the signing key id, seals, checkpoints and recovery records (record/FORMAT.md).
inline constexpr uint16_t kFormatVersion = 2;
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
  KeyId key_id{};  // the key that signs this segment's control records
};

std::array<std::byte, limits::segment_header_bytes> encode_segment_header(const SegmentHeader& h);
// Checks magic, version, header size, node id, flags and that every reserved byte is zero.
[[nodiscard]] Result<SegmentHeader> parse_segment_header(std::span<const std::byte> bytes);
// SHA-256 of the first segment_header_bytes of `bytes`: what control records bind themselves to.
ChainHash header_digest(std::span<const std::byte> bytes);

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
// The first `bytes_max` bytes (or fewer when the file is shorter).
[[nodiscard]] Result<std::vector<std::byte>> read_file_prefix(const std::string& path,
                                                              size_t bytes_max);

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
  // Cuts an abandoned segment back to its last durable byte (ShardWriter::sync).
  virtual int truncate(int fd, uint64_t bytes);
};
SegmentIo& posix_segment_io();

// Told of every batch once write_staged() put it on the segment file (synced or not): whole
// records, control records included, of segment `segment`. An empty `records` says that batches
// told before were cut off when `segment` was abandoned (a failed fdatasync). Runs on the
// writer's thread and must not block (the session catalog's feed, record/catalog.hpp).
using WrittenRecordsHook =
    std::function<void(uint16_t shard, uint64_t segment, std::span<const std::byte> records)>;

struct ShardWriterOptions {
  std::string trail_dir;
  std::string node_id;
  uint16_t shard = 0;
  uint64_t segment_bytes_max = limits::segment_bytes_default;
  std::shared_ptr<const NodeKey> key;  // required: signs seals, checkpoints, recovery records
  SegmentIo* io = nullptr;             // posix_segment_io() when null
  WrittenRecordsHook on_written;       // may be empty
};

// How the writer picked up an existing shard directory.
struct ResumeInfo {
  uint64_t previous_sequence = 0;  // 0: the shard had no segment
  bool previous_sealed = false;    // the newest segment ends with its seal (a clean stop)
  bool previous_tail_torn = false;
  uint64_t torn_bytes = 0;
  uint32_t last_checkpoint = 0;    // the number of the newest checkpoint found; 0: none
  std::string note;  // human-readable, empty when nothing noteworthy
};

// Appends records of one shard: stage() a batch (hashing it and adding it to the segment's
// Merkle tree), write_staged() it with as few write(2) calls as possible, sync() on the flusher's
// schedule, seal and close by size or age. Never rewrites a byte of a segment: a failed write
// leaves the batch staged and the next write_staged() continues exactly where the kernel stopped.
// A new segment is written as <seq>.seg.partial, synced and renamed, so a segment file never has
// a torn header. One thread only.
class ShardWriter {
 public:
  // Creates the shard directory if needed, removes leftover .partial files, and links to the
  // last intact record of the newest existing segment. The next record opens a NEW segment; when
  // the newest one was not sealed (a crash), that segment starts with a recovery record.
  static Result<std::unique_ptr<ShardWriter>> open(ShardWriterOptions options);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  const ResumeInfo& resume_info() const { return resume_; }
  const std::string& shard_dir() const { return shard_dir_; }

  // The key for segments begun from now on; the current segment keeps its own until sealed.
  void set_key(std::shared_ptr<const NodeKey> key) { key_ = std::move(key); }
  const KeyId& key_id() const { return key_->id(); }

  // A segment has records staged or written and has not been sealed and closed yet.
  bool segment_started() const { return segment_started_; }
  uint64_t segment_created_ns() const { return header_.created_ns; }
  const KeyId& segment_key_id() const { return header_.key_id; }
  bool sealed() const { return sealed_; }  // the current segment's seal is staged or written

  // Whether a record of `record_bytes` (hash included) belongs in the current segment after what
  // is staged, keeping room for the seal, or the segment must be sealed first. A segment always
  // takes its first session record.
  bool fits(size_t record_bytes) const;
  // Appends `body` (a record without its hash) and its chain hash to the staged batch, beginning
  // a segment first if none is started. Not allowed while a partly written batch is pending or
  // after the seal.
  [[nodiscard]] Result<void> stage(std::span<const std::byte> body);
  // Signed checkpoint of everything staged so far (a heartbeat when no session record came since
  // the previous one). Begins a segment if none is started.
  [[nodiscard]] Result<void> stage_checkpoint(uint64_t time_ns);
  // When the newest segment found at open() was not sealed and no record came since, begins the
  // next segment (its recovery record staged), so that a clean stop can seal it: after a clean
  // stop, every segment of the shard is accounted for.
  [[nodiscard]] Result<void> begin_pending_recovery();
  // The segment's signed seal: its last record. Requires a started segment.
  [[nodiscard]] Result<void> stage_seal(uint64_t time_ns);
  bool has_staged() const { return !staged_.empty(); }
  size_t staged_bytes() const { return staged_.size(); }
  size_t staged_records() const { return staged_records_; }
  bool partly_written() const { return staged_written_ > 0; }

  // Opens the segment file if needed, then writes what is staged. On error the rest stays
  // staged (call again later); on success the batch is on the file and the chain advances.
  [[nodiscard]] Result<void> write_staged();
  // fdatasync when anything was written since the last sync (and the directory after a new
  // segment). Control records become anchors (take_anchors) once synced.
  // A failed fdatasync is never retried: the kernel may have dropped the pages it could not
  // write and report the next fdatasync clean. The segment is abandoned instead: cut back to the
  // last durable record, closed, and the next record begins a new segment whose recovery record
  // states where the abandoned one ends (as after a crash). A failed fsync of the directory after
  // a new segment's rename abandons it the same way, back to what was synced before the rename. Records written since the last good
  // sync are gone from the trail (broken_segments() counts these events); a staged batch is
  // dropped too (the caller stages its records again from their source).
  [[nodiscard]] Result<void> sync();
  // After the seal is written and synced: closes the file; the next record begins segment + 1.
  [[nodiscard]] Result<void> close_segment();
  bool dirty() const { return dirty_ || dir_dirty_; }
  uint64_t unsynced_bytes() const { return file_bytes_ - synced_.offset; }
  // Control records made durable since the last call, in trail order.
  std::vector<AnchorRecord> take_anchors();

  const ChainHash& chain() const { return chain_; }
  uint64_t next_sequence() const { return next_sequence_; }
  bool segment_open() const { return fd_ >= 0; }
  uint64_t segment_bytes() const { return file_bytes_; }  // of the open segment, header included
  uint64_t records_written() const { return records_written_; }
  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t fsyncs() const { return fsyncs_; }
  uint64_t broken_segments() const { return broken_segments_; }
  int last_errno() const { return last_errno_; }  // of the last failed operation; 0: none yet

 private:
  // What a recovery record states about the segment before the one it opens.
  struct Recovery {
    uint64_t sequence = 0;
    ChainHash header_digest{};
    uint64_t records = 0;
    ChainHash last_hash{};
    MerkleHash merkle_root{};
    uint64_t end_offset = 0;
    uint64_t cut_bytes = 0;
    std::string reason;
  };
  // The writer's position after some prefix of the segment.
  struct Mark {
    uint64_t offset = 0;  // file offset just after it
    uint64_t records = 0;
    ChainHash chain{};
    MerkleBuilder merkle;
    uint32_t checkpoint = 0;
  };
  struct PendingAnchor {
    uint64_t end_offset;  // durable once synced up to here
    AnchorRecord anchor;
  };

  explicit ShardWriter(ShardWriterOptions options);
  Result<void> open_segment();
  [[nodiscard]] Result<void> begin_segment();
  void stage_record(std::span<const std::byte> body, bool control);
  [[nodiscard]] Result<void> stage_control(ControlRecord& record);
  uint64_t staged_base_offset() const;
  // `failed` names the call that failed ("fdatasync"), for the recovery record's reason.
  void abandon_segment(Mark kept, std::string_view failed, const std::string& why);

  ShardWriterOptions options_;
  SegmentIo* io_;
  std::string shard_dir_;
  ResumeInfo resume_;
  std::shared_ptr<const NodeKey> key_;
  ChainHasher hasher_;

  // The current segment.
  bool segment_started_ = false;
  bool sealed_ = false;
  SegmentHeader header_;
  std::array<std::byte, limits::segment_header_bytes> header_bytes_{};
  ChainHash header_digest_{};
  std::shared_ptr<const NodeKey> segment_key_;
  int fd_ = -1;
  uint64_t next_sequence_ = 1;  // the sequence the next begin_segment() takes
  uint64_t file_bytes_ = 0;     // bytes in the open segment file, header included
  uint64_t segment_records_ = 0;  // staged and written
  MerkleBuilder merkle_;          // over every record staged into the segment
  uint32_t checkpoint_ = 0;       // number of the last checkpoint staged
  bool session_records_since_checkpoint_ = false;
  std::optional<Recovery> recovery_;  // to write first in the next segment
  size_t recovery_bytes_ = 0;         // its bytes at the front of staged_, once begun
  Mark recovery_mark_;                // the position after it

  ChainHash chain_{};         // hash of the last record written (or the segment link)
  ChainHash staged_chain_{};  // hash of the last staged record
  std::vector<std::byte> staged_;
  size_t staged_records_ = 0;
  size_t staged_written_ = 0;
  Mark written_;  // after the last completely written batch
  Mark synced_;   // after the last successful fdatasync
  Mark opened_;   // after what open_segment() synced before the rename (header, recovery record)
  bool dirty_ = false;
  bool dir_dirty_ = false;
  std::vector<PendingAnchor> pending_anchors_;
  std::vector<AnchorRecord> ready_anchors_;

  uint64_t records_written_ = 0;
  uint64_t bytes_written_ = 0;
  uint64_t fsyncs_ = 0;
  uint64_t broken_segments_ = 0;
  int last_errno_ = 0;
};

}  // namespace gh::rec
