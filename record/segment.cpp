// Segment files: header codec, file naming, record scanning and the append-only shard writer.
// Blocking file I/O lives here and runs on the flusher thread only, never on a shard thread.
#include "record/segment.hpp"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <utility>

#include "core/assert.hpp"
#include "record/le.hpp"

namespace gh::rec {

namespace {

// Header offsets (record/FORMAT.md, "Segment header").
constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 8;
constexpr size_t kOffHeaderBytes = 10;
constexpr size_t kOffShard = 12;
constexpr size_t kOffNodeIdLength = 14;
constexpr size_t kOffNodeId = 16;
constexpr size_t kOffSequence = kOffNodeId + limits::node_id_bytes_max;
constexpr size_t kOffCreated = kOffSequence + 8;
constexpr size_t kOffPreviousHash = kOffCreated + 8;
constexpr size_t kOffFlags = kOffPreviousHash + limits::chain_hash_bytes;
constexpr size_t kOffKeyId = kOffFlags + 4;
constexpr size_t kOffReserved = kOffKeyId + limits::key_id_bytes;
static_assert(kOffSequence == 80 && kOffPreviousHash == 96 && kOffKeyId == 132 &&
              kOffReserved == 148);
static_assert(kOffReserved < limits::segment_header_bytes);

std::string errno_text(int err) { return std::strerror(err); }

bool all_zero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty() || a.back() == '/') return a + b;
  return a + "/" + b;
}

template <class T>
std::optional<T> parse_digits(std::string_view text, size_t digits_min) {
  if (text.size() < digits_min || text.size() > 20) return std::nullopt;
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

Result<void> make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0750) == 0 || errno == EEXIST) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return fail(fmt::format("{}: not a directory", path));
    }
    return {};
  }
  return fail(fmt::format("{}: cannot create directory: {}", path, errno_text(errno)));
}

}  // namespace

Result<void> make_directories(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    if (::mkdir(prefix.c_str(), 0750) != 0 && errno != EEXIST) {
      return fail(fmt::format("{}: cannot create directory: {}", prefix, errno_text(errno)));
    }
  }
  return make_dir(path);
}

namespace {

Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return fail(fmt::format("{}: cannot read: {}", path, errno_text(errno)));
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(dir);
  return names;
}

// Why `prefix` (shorter than `length`) cannot be the start of a record of `length` bytes, or
// nullopt when it can.
std::optional<std::string> prefix_inconsistency(std::span<const std::byte> prefix,
                                                uint32_t length) {
  const size_t body_end = length - limits::chain_hash_bytes;
  if (prefix.size() > 4 && prefix[4] == std::byte{0}) return "record type 0";
  if (prefix.size() < limits::record_prefix_bytes) return std::nullopt;
  const uint16_t field_count = le::load<uint16_t>(prefix.data() + 25);
  if (field_count > limits::record_field_count_max) return "too many fields";
  size_t at = limits::record_prefix_bytes;
  for (uint16_t i = 0; i < field_count; ++i) {
    if (prefix.size() < at + limits::field_header_bytes) return std::nullopt;
    if (le::load<uint16_t>(prefix.data() + at) == 0) return "a field has tag 0";
    const uint64_t field_end =
        at + limits::field_header_bytes + le::load<uint32_t>(prefix.data() + at + 2);
    if (field_end > body_end) return "a field runs past the record end";
    at = static_cast<size_t>(field_end);
  }
  if (at != body_end) return "the fields end before the record does";
  return std::nullopt;
}

class PosixSegmentIo final : public SegmentIo {
 public:
  int open_new(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    return fd >= 0 ? fd : -errno;
  }
  ssize_t write(int fd, std::span<const std::byte> bytes) override {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    return n >= 0 ? n : -errno;
  }
  int fdatasync(int fd) override { return ::fdatasync(fd) == 0 ? 0 : -errno; }
  int close(int fd) override { return ::close(fd) == 0 ? 0 : -errno; }
  int rename(const std::string& from, const std::string& to) override {
    // Never replace a segment: another writer on the same directory would fork the chain.
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL) return -errno;
    // File systems without RENAME_NOREPLACE: link() refuses an existing target as well.
    if (::link(from.c_str(), to.c_str()) != 0) return -errno;
    return ::unlink(from.c_str()) == 0 ? 0 : -errno;
  }
  int unlink(const std::string& path) override { return ::unlink(path.c_str()) == 0 ? 0 : -errno; }
  int sync_dir(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    const int rc = ::fsync(fd) == 0 ? 0 : -errno;
    ::close(fd);
    return rc;
  }
};

}  // namespace

std::array<std::byte, limits::segment_header_bytes> encode_segment_header(const SegmentHeader& h) {
  GH_ASSERT(!h.node_id.empty() && h.node_id.size() <= limits::node_id_bytes_max);
  GH_ASSERT((h.flags & ~kHeaderFlagsKnown) == 0);
  std::array<std::byte, limits::segment_header_bytes> out{};
  std::memcpy(out.data() + kOffMagic, kSegmentMagic.data(), kSegmentMagic.size());
  le::store<uint16_t>(out.data() + kOffVersion, h.format_version);
  le::store<uint16_t>(out.data() + kOffHeaderBytes, limits::segment_header_bytes);
  le::store<uint16_t>(out.data() + kOffShard, h.shard);
  le::store<uint16_t>(out.data() + kOffNodeIdLength, static_cast<uint16_t>(h.node_id.size()));
  std::memcpy(out.data() + kOffNodeId, h.node_id.data(), h.node_id.size());
  le::store<uint64_t>(out.data() + kOffSequence, h.sequence);
  le::store<uint64_t>(out.data() + kOffCreated, h.created_ns);
  std::memcpy(out.data() + kOffPreviousHash, h.previous_hash.data(), h.previous_hash.size());
  le::store<uint32_t>(out.data() + kOffFlags, h.flags);
  std::memcpy(out.data() + kOffKeyId, h.key_id.data(), h.key_id.size());
  return out;
}

ChainHash header_digest(std::span<const std::byte> bytes) {
  GH_ASSERT(bytes.size() >= limits::segment_header_bytes);
  return sha256(bytes.first(limits::segment_header_bytes));
}

Result<SegmentHeader> parse_segment_header(std::span<const std::byte> bytes) {
  if (bytes.size() < limits::segment_header_bytes) {
    return fail(fmt::format("header truncated: {} of {} bytes", bytes.size(),
                            limits::segment_header_bytes));
  }
  if (std::memcmp(bytes.data() + kOffMagic, kSegmentMagic.data(), kSegmentMagic.size()) != 0) {
    return fail("bad magic (not a gatehouse trail segment)");
  }
  SegmentHeader h;
  h.format_version = le::load<uint16_t>(bytes.data() + kOffVersion);
  // Version 1 (unsigned, before seals and checkpoints) is refused: its segments prove nothing
  // about who wrote them.
  if (h.format_version != kFormatVersion) {
    return fail(fmt::format("unsupported format version {} (this build reads {})",
                            h.format_version, kFormatVersion));
  }
  const uint16_t header_bytes = le::load<uint16_t>(bytes.data() + kOffHeaderBytes);
  if (header_bytes != limits::segment_header_bytes) {
    return fail(
        fmt::format("header size {} is not {}", header_bytes, limits::segment_header_bytes));
  }
  h.shard = le::load<uint16_t>(bytes.data() + kOffShard);
  const uint16_t node_id_length = le::load<uint16_t>(bytes.data() + kOffNodeIdLength);
  if (node_id_length == 0 || node_id_length > limits::node_id_bytes_max) {
    return fail(fmt::format("node id length {} is out of [1, {}]", node_id_length,
                            limits::node_id_bytes_max));
  }
  h.node_id.assign(reinterpret_cast<const char*>(bytes.data() + kOffNodeId), node_id_length);
  if (!all_zero(
          bytes.subspan(kOffNodeId + node_id_length, limits::node_id_bytes_max - node_id_length))) {
    return fail("node id padding is not zero");
  }
  h.sequence = le::load<uint64_t>(bytes.data() + kOffSequence);
  if (h.sequence == 0) return fail("segment sequence 0 is not valid");
  h.created_ns = le::load<uint64_t>(bytes.data() + kOffCreated);
  std::memcpy(h.previous_hash.data(), bytes.data() + kOffPreviousHash, h.previous_hash.size());
  h.flags = le::load<uint32_t>(bytes.data() + kOffFlags);
  if ((h.flags & ~kHeaderFlagsKnown) != 0) {
    return fail(fmt::format("unknown header flags {:#x}", h.flags & ~kHeaderFlagsKnown));
  }
  const size_t reserved_at = kOffReserved;
  std::memcpy(h.key_id.data(), bytes.data() + kOffKeyId, h.key_id.size());
  const auto reserved = bytes.subspan(reserved_at, limits::segment_header_bytes - reserved_at);
  if (!all_zero(reserved)) {
    const auto it = std::find_if(reserved.begin(), reserved.end(),
                                 [](std::byte b) { return b != std::byte{0}; });
    return fail(fmt::format("header padding is not zero at byte {}",
                            reserved_at + static_cast<size_t>(it - reserved.begin())));
  }
  return h;
}

std::string shard_dir_name(uint16_t shard) { return fmt::format("shard-{:02}", shard); }
std::string segment_file_name(uint64_t sequence) { return fmt::format("{:08}.seg", sequence); }

std::optional<uint16_t> parse_shard_dir_name(std::string_view name) {
  constexpr std::string_view kPrefix = "shard-";
  if (!name.starts_with(kPrefix)) return std::nullopt;
  return parse_digits<uint16_t>(name.substr(kPrefix.size()), 2);
}

std::optional<uint64_t> parse_segment_file_name(std::string_view name) {
  constexpr std::string_view kSuffix = ".seg";
  if (!name.ends_with(kSuffix)) return std::nullopt;
  return parse_digits<uint64_t>(name.substr(0, name.size() - kSuffix.size()), 8);
}

Result<std::vector<uint16_t>> list_shards(const std::string& trail_dir) {
  auto names = list_dir(trail_dir);
  if (!names) return std::unexpected(names.error());
  std::vector<uint16_t> shards;
  for (const std::string& name : *names) {
    if (auto shard = parse_shard_dir_name(name)) shards.push_back(*shard);
  }
  std::sort(shards.begin(), shards.end());
  return shards;
}

Result<std::vector<uint64_t>> list_segments(const std::string& shard_dir) {
  auto names = list_dir(shard_dir);
  if (!names) return std::unexpected(names.error());
  std::vector<uint64_t> sequences;
  for (const std::string& name : *names) {
    if (auto sequence = parse_segment_file_name(name)) sequences.push_back(*sequence);
  }
  std::sort(sequences.begin(), sequences.end());
  return sequences;
}

Result<std::vector<std::string>> list_partial_files(const std::string& shard_dir) {
  auto names = list_dir(shard_dir);
  if (!names) return std::unexpected(names.error());
  std::vector<std::string> partials;
  for (std::string& name : *names) {
    if (name.ends_with(".seg.partial")) partials.push_back(std::move(name));
  }
  std::sort(partials.begin(), partials.end());
  return partials;
}

Result<std::vector<std::byte>> read_whole_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(fmt::format("{}: cannot open: {}", path, errno_text(errno)));
  std::vector<std::byte> bytes;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) bytes.reserve(static_cast<size_t>(st.st_size));
  std::array<std::byte, 64 * 1024> chunk;
  for (;;) {
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail(fmt::format("{}: read failed: {}", path, errno_text(err)));
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  ::close(fd);
  return bytes;
}

Result<std::vector<std::byte>> read_file_prefix(const std::string& path, size_t bytes_max) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(fmt::format("{}: cannot open: {}", path, errno_text(errno)));
  std::vector<std::byte> bytes(bytes_max);
  size_t have = 0;
  while (have < bytes_max) {
    const ssize_t n = ::read(fd, bytes.data() + have, bytes_max - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail(fmt::format("{}: read failed: {}", path, errno_text(err)));
    }
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  ::close(fd);
  bytes.resize(have);
  return bytes;
}

SegmentScan scan_segment_records(std::span<const std::byte> file, const ChainHash& start_hash,
                                 bool check_hashes,
                                 const std::function<bool(const ScannedRecord&)>& on_record) {
  GH_ASSERT(file.size() >= limits::segment_header_bytes);
  SegmentScan scan;
  scan.last_hash = start_hash;
  scan.end_offset = limits::segment_header_bytes;
  std::optional<ChainHasher> hasher;
  if (check_hashes) hasher.emplace();
  uint64_t offset = limits::segment_header_bytes;
  while (offset < file.size()) {
    const std::span<const std::byte> rest = file.subspan(offset);
    const auto torn = [&](std::string reason) {
      scan.end = ScanEnd::kTornTail;
      scan.reason = std::move(reason);
      return scan;
    };
    if (rest.size() < 4) {
      return torn(
          fmt::format("truncated record: {} bytes left, too few for a length", rest.size()));
    }
    // A crash can leave a zero-filled tail (space allocated, data never written).
    if (all_zero(rest)) return torn(fmt::format("truncated record: {} zero bytes", rest.size()));
    const uint32_t length = le::load<uint32_t>(rest.data());
    if (length < limits::record_bytes_min || length > limits::record_bytes_max) {
      scan.end = ScanEnd::kDamaged;
      scan.reason = fmt::format("invalid record length {}", length);
      return scan;
    }
    if (length > rest.size()) {
      // A torn write leaves a prefix of a real record. A length word altered to reach past the
      // end of the file gives itself away when the bytes present do not frame that way.
      if (auto why = prefix_inconsistency(rest, length)) {
        scan.end = ScanEnd::kDamaged;
        scan.reason = fmt::format("invalid record length {}: {}", length, *why);
        return scan;
      }
      return torn(
          fmt::format("truncated record: length {} but {} bytes left", length, rest.size()));
    }
    auto view = decode_record(rest.first(length));
    if (!view) {
      scan.end = ScanEnd::kDamaged;
      scan.reason = fmt::format("malformed record: {}", view.error().message);
      return scan;
    }
    if (check_hashes) {
      const ChainHash expected = hasher->next(scan.last_hash, view->body);
      if (expected != view->stored_hash) {
        scan.end = ScanEnd::kDamaged;
        scan.reason = "chain hash mismatch";
        return scan;
      }
    }
    if (on_record && !on_record(ScannedRecord{scan.records, offset, *view})) return scan;
    scan.last_hash = view->stored_hash;
    offset += length;
    scan.end_offset = offset;
    ++scan.records;
  }
  return scan;
}

int SegmentIo::truncate(int fd, uint64_t bytes) {
  return ::ftruncate(fd, static_cast<off_t>(bytes)) == 0 ? 0 : -errno;
}

SegmentIo& posix_segment_io() {
  static PosixSegmentIo io;
  return io;
}


// ShardWriter

namespace {
// Control records go into the staged batch after a full batch of session records.
constexpr size_t kStagedSlackBytes = 16 * 1024;
}  // namespace

ShardWriter::ShardWriter(ShardWriterOptions options)
    : options_(std::move(options)),
      io_(options_.io != nullptr ? options_.io : &posix_segment_io()),
      shard_dir_(join_path(options_.trail_dir, shard_dir_name(options_.shard))),
      key_(options_.key) {
  staged_.reserve(limits::write_batch_bytes_max + kStagedSlackBytes);
}

ShardWriter::~ShardWriter() {
  if (fd_ >= 0) {
    (void)io_->fdatasync(fd_);
    (void)io_->close(fd_);
  }
}

Result<std::unique_ptr<ShardWriter>> ShardWriter::open(ShardWriterOptions options) {
  if (options.node_id.empty() || options.node_id.size() > limits::node_id_bytes_max) {
    return fail(fmt::format("node_id must be 1..{} bytes", limits::node_id_bytes_max));
  }
  if (options.segment_bytes_max < limits::segment_bytes_min ||
      options.segment_bytes_max > limits::segment_bytes_max) {
    return fail(fmt::format("segment_bytes_max {} is out of [{}, {}]", options.segment_bytes_max,
                            limits::segment_bytes_min, limits::segment_bytes_max));
  }
  if (!options.key) return fail("a node key is required to sign the trail");
  std::unique_ptr<ShardWriter> writer(new ShardWriter(std::move(options)));
  if (auto made = make_directories(writer->shard_dir_); !made) return std::unexpected(made.error());

  // A .partial file is a rotation that crashed before its rename: it holds a header at most.
  auto partials = list_partial_files(writer->shard_dir_);
  if (!partials) return std::unexpected(partials.error());
  for (const std::string& name : *partials) {
    (void)writer->io_->unlink(join_path(writer->shard_dir_, name));
  }

  auto sequences = list_segments(writer->shard_dir_);
  if (!sequences) return std::unexpected(sequences.error());
  if (sequences->empty()) return writer;

  const uint64_t last = sequences->back();
  const std::string path = join_path(writer->shard_dir_, segment_file_name(last));
  auto bytes = read_whole_file(path);
  if (!bytes) return std::unexpected(bytes.error());
  auto header = parse_segment_header(*bytes);
  if (!header) {
    return fail(
        fmt::format("{}: cannot resume after this segment: {}", path, header.error().message));
  }
  if (header->shard != writer->options_.shard || header->sequence != last) {
    return fail(fmt::format("{}: header says shard {} segment {}; refusing to resume", path,
                            header->shard, header->sequence));
  }
  // Framing only: the link must reach the last intact record; judging the hashes is verify's job.
  MerkleBuilder merkle;
  EventType last_type{};
  uint32_t last_checkpoint = 0;
  const SegmentScan scan =
      scan_segment_records(*bytes, header->previous_hash, false, [&](const ScannedRecord& r) {
        merkle.add(r.view.stored_hash);
        last_type = r.view.type;
        if (r.view.type == EventType::kCheckpoint) last_checkpoint = r.view.sequence;
        return true;
      });
  // Checkpoint numbers run on across segments and restarts: find the newest one.
  for (size_t i = sequences->size() - 1; last_checkpoint == 0 && i-- > 0;) {
    auto older = read_whole_file(join_path(writer->shard_dir_, segment_file_name((*sequences)[i])));
    if (!older) break;
    auto older_header = parse_segment_header(*older);
    if (!older_header) break;
    (void)scan_segment_records(*older, older_header->previous_hash, false,
                               [&](const ScannedRecord& r) {
                                 if (r.view.type == EventType::kCheckpoint) {
                                   last_checkpoint = r.view.sequence;
                                 }
                                 return true;
                               });
  }
  ResumeInfo& resume = writer->resume_;
  resume.previous_sequence = last;
  resume.last_checkpoint = last_checkpoint;
  resume.previous_sealed =
      scan.end == ScanEnd::kClean && scan.records > 0 && last_type == EventType::kSeal;
  writer->chain_ = scan.last_hash;
  writer->staged_chain_ = scan.last_hash;
  writer->next_sequence_ = last + 1;
  writer->checkpoint_ = last_checkpoint;
  if (!resume.previous_sealed) {
    Recovery r;
    r.sequence = last;
    r.header_digest = header_digest(*bytes);
    r.records = scan.records;
    r.last_hash = scan.last_hash;
    r.merkle_root = merkle.root();
    r.end_offset = scan.end_offset;
    r.cut_bytes = bytes->size() - scan.end_offset;
    if (scan.end != ScanEnd::kClean) {
      resume.previous_tail_torn = true;
      resume.torn_bytes = r.cut_bytes;
      r.reason = fmt::format(
          "segment {:08} ended without a seal (the writer stopped: crash); {} bytes after record "
          "{} at offset {} are not intact ({}) and are cut off",
          last, r.cut_bytes, scan.records, scan.end_offset, scan.reason);
    } else {
      r.reason = fmt::format(
          "segment {:08} ended without a seal (the writer stopped: crash); its {} records end "
          "intact at offset {}",
          last, scan.records, scan.end_offset);
    }
    resume.note = fmt::format("{}: {}", path, r.reason);
    writer->recovery_ = std::move(r);
  }
  return writer;
}

uint64_t ShardWriter::staged_base_offset() const {
  const uint64_t on_file = fd_ >= 0 ? file_bytes_ : limits::segment_header_bytes;
  return on_file - staged_written_;
}

bool ShardWriter::fits(size_t record_bytes) const {
  if (!segment_started_) return true;
  if (sealed_) return false;
  if (segment_records_ == 0) return true;
  return staged_base_offset() + staged_.size() + record_bytes +
             control_record_bytes(EventType::kSeal) <=
         options_.segment_bytes_max;
}

Result<void> ShardWriter::begin_segment() {
  GH_ASSERT(!segment_started_ && staged_.empty() && fd_ < 0);
  header_ = SegmentHeader{};
  header_.format_version = kFormatVersion;
  header_.shard = options_.shard;
  header_.node_id = options_.node_id;
  header_.sequence = next_sequence_;
  header_.created_ns = realtime_now_ns();
  header_.previous_hash = chain_;
  header_.key_id = key_->id();
  if (recovery_ && recovery_->cut_bytes > 0) header_.flags |= kHeaderFlagPreviousTailTorn;
  header_bytes_ = encode_segment_header(header_);
  header_digest_ = header_digest(header_bytes_);
  segment_key_ = key_;
  segment_started_ = true;
  sealed_ = false;
  file_bytes_ = 0;
  segment_records_ = 0;
  merkle_.clear();
  staged_chain_ = chain_;
  written_ = Mark{limits::segment_header_bytes, 0, chain_, MerkleBuilder{}, checkpoint_};
  synced_ = written_;
  ++next_sequence_;
  if (recovery_) {
    ControlRecord r;
    r.type = EventType::kRecovery;
    r.time_ns = header_.created_ns;
    r.previous_header_digest = recovery_->header_digest;
    r.records = recovery_->records;
    r.last_hash = recovery_->last_hash;
    r.merkle_root = recovery_->merkle_root;
    r.end_offset = recovery_->end_offset;
    r.cut_bytes = recovery_->cut_bytes;
    r.reason = recovery_->reason;
    if (auto staged = stage_control(r); !staged) {
      // Signing failed: undo, so that the next attempt starts this segment again.
      segment_started_ = false;
      --next_sequence_;
      return staged;
    }
    recovery_bytes_ = staged_.size();
    recovery_mark_ = Mark{limits::segment_header_bytes + staged_.size(), segment_records_,
                          staged_chain_, merkle_, checkpoint_};
  }
  return {};
}

void ShardWriter::stage_record(std::span<const std::byte> body, bool control) {
  GH_ASSERT(staged_written_ == 0);
  GH_ASSERT(segment_started_ && !sealed_);
  GH_ASSERT(staged_.size() + body.size() + limits::chain_hash_bytes <= staged_.capacity());
  // Only record bodies may reach a ring handed to the flusher (Ring::try_push(const Event&)).
  GH_ASSERT(body.size() >= limits::record_prefix_bytes &&
            le::load<uint32_t>(body.data()) == body.size() + limits::chain_hash_bytes);
  staged_chain_ = hasher_.next(staged_chain_, body);
  const auto* hash = reinterpret_cast<const std::byte*>(staged_chain_.data());
  staged_.insert(staged_.end(), body.begin(), body.end());
  staged_.insert(staged_.end(), hash, hash + staged_chain_.size());
  ++staged_records_;
  ++segment_records_;
  merkle_.add(staged_chain_);
  if (!control) session_records_since_checkpoint_ = true;
}

Result<void> ShardWriter::stage_control(ControlRecord& r) {
  r.shard = options_.shard;
  r.segment = header_.sequence;
  r.header_digest = header_digest_;
  auto body = encode_control(r, *segment_key_);
  if (!body) return std::unexpected(body.error());
  const uint64_t index = segment_records_;
  stage_record(*body, true);
  AnchorRecord anchor{options_.shard, header_.sequence, index, r.type, r.time_ns, std::move(*body)};
  const auto* hash = reinterpret_cast<const std::byte*>(staged_chain_.data());
  anchor.record.insert(anchor.record.end(), hash, hash + staged_chain_.size());
  pending_anchors_.push_back(
      PendingAnchor{staged_base_offset() + staged_.size(), std::move(anchor)});
  return {};
}

Result<void> ShardWriter::stage(std::span<const std::byte> body) {
  if (!segment_started_) {
    if (auto begun = begin_segment(); !begun) return begun;
  }
  stage_record(body, false);
  return {};
}

Result<void> ShardWriter::stage_checkpoint(uint64_t time_ns) {
  GH_ASSERT(staged_written_ == 0);
  if (!segment_started_) {
    if (auto begun = begin_segment(); !begun) return begun;
  }
  ControlRecord r;
  r.type = EventType::kCheckpoint;
  r.time_ns = time_ns;
  r.number = checkpoint_ + 1;
  r.records = segment_records_;
  r.last_hash = staged_chain_;
  r.merkle_root = merkle_.root();
  r.heartbeat = !session_records_since_checkpoint_;
  if (auto staged = stage_control(r); !staged) return staged;
  ++checkpoint_;
  session_records_since_checkpoint_ = false;
  return {};
}

Result<void> ShardWriter::begin_pending_recovery() {
  if (segment_started_ || !recovery_) return {};
  return begin_segment();
}

Result<void> ShardWriter::stage_seal(uint64_t time_ns) {
  GH_ASSERT(segment_started_ && !sealed_ && staged_written_ == 0);
  ControlRecord r;
  r.type = EventType::kSeal;
  r.time_ns = time_ns;
  r.records = segment_records_;
  r.last_hash = staged_chain_;
  r.merkle_root = merkle_.root();
  if (auto staged = stage_control(r); !staged) return staged;
  sealed_ = true;
  return {};
}

Result<void> ShardWriter::open_segment() {
  GH_ASSERT(fd_ < 0 && segment_started_ && staged_written_ == 0);
  const std::string path = join_path(shard_dir_, segment_file_name(header_.sequence));
  const std::string partial = path + ".partial";
  // A recovery record goes to disk with the header, before the rename: a segment file that
  // exists always carries its recovery record, even when the segment is abandoned right after.
  const size_t with_header = recovery_ ? recovery_bytes_ : 0;
  GH_ASSERT(with_header <= staged_.size());

  int fd = io_->open_new(partial);
  if (fd == -EEXIST) {
    (void)io_->unlink(partial);  // our own earlier attempt that failed half-way
    fd = io_->open_new(partial);
  }
  if (fd < 0) {
    last_errno_ = -fd;
    return fail(fmt::format("{}: cannot create: {}", partial, errno_text(-fd)));
  }
  const auto abandon_partial = [&](std::string what, int err) -> Result<void> {
    last_errno_ = err;
    (void)io_->close(fd);
    (void)io_->unlink(partial);
    return fail(fmt::format("{}: {}: {}", partial, what, errno_text(err)));
  };
  const auto write_all = [&](std::span<const std::byte> bytes) -> int {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = io_->write(fd, bytes.subspan(done));
      if (n == -EINTR) continue;
      if (n < 0) return static_cast<int>(-n);
      if (n == 0) return EIO;
      done += static_cast<size_t>(n);
    }
    return 0;
  };
  if (const int err = write_all(header_bytes_); err != 0) {
    return abandon_partial("header write failed", err);
  }
  if (with_header > 0) {
    if (const int err = write_all(std::span(staged_).first(with_header)); err != 0) {
      return abandon_partial("recovery record write failed", err);
    }
  }
  // Synced before the rename so that a crash never leaves a .seg with a torn header.
  if (const int rc = io_->fdatasync(fd); rc < 0) return abandon_partial("fdatasync failed", -rc);
  ++fsyncs_;
  if (const int rc = io_->rename(partial, path); rc < 0) return abandon_partial("rename failed", -rc);
  fd_ = fd;
  file_bytes_ = header_bytes_.size() + with_header;
  dir_dirty_ = true;
  if (with_header > 0) {
    // The recovery record is on disk and synced: it leaves the staged batch.
    staged_.erase(staged_.begin(), staged_.begin() + static_cast<ptrdiff_t>(with_header));
    --staged_records_;
    bytes_written_ += with_header;
    ++records_written_;
    GH_ASSERT(recovery_mark_.offset == file_bytes_);
    written_ = recovery_mark_;
    synced_ = recovery_mark_;
    chain_ = recovery_mark_.chain;
    recovery_.reset();
  }
  opened_ = synced_;
  return {};
}

Result<void> ShardWriter::write_staged() {
  if (staged_.empty()) return {};
  if (fd_ < 0) {
    if (auto opened = open_segment(); !opened) return opened;
    if (staged_.empty()) return {};
  }
  while (staged_written_ < staged_.size()) {
    const ssize_t n = io_->write(fd_, std::span(staged_).subspan(staged_written_));
    if (n == -EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? static_cast<int>(-n) : EIO;
      last_errno_ = err;
      return fail(fmt::format("{}/{}: write failed after {} of {} bytes: {}", shard_dir_,
                              segment_file_name(header_.sequence), staged_written_, staged_.size(),
                              errno_text(err)));
    }
    staged_written_ += static_cast<size_t>(n);
    file_bytes_ += static_cast<uint64_t>(n);
    bytes_written_ += static_cast<uint64_t>(n);
    dirty_ = true;
  }
  records_written_ += staged_records_;
  chain_ = staged_chain_;
  written_ = Mark{file_bytes_, segment_records_, staged_chain_, merkle_, checkpoint_};
  if (options_.on_written) options_.on_written(options_.shard, header_.sequence, staged_);
  staged_.clear();
  staged_records_ = 0;
  staged_written_ = 0;
  return {};
}

Result<void> ShardWriter::sync() {
  if (dirty_ && fd_ >= 0) {
    if (const int rc = io_->fdatasync(fd_); rc < 0) {
      last_errno_ = -rc;
      const std::string why =
          fmt::format("{}/{}: fdatasync failed: {}", shard_dir_,
                      segment_file_name(header_.sequence), errno_text(-rc));
      abandon_segment(synced_, "fdatasync", why);
      return fail(why + "; segment abandoned, records written since the last good fdatasync "
                        "are lost, the next ones go to a new segment");
    }
    ++fsyncs_;
    dirty_ = false;
    synced_ = written_;
  }
  if (dir_dirty_) {
    if (const int rc = io_->sync_dir(shard_dir_); rc < 0) {
      // The segment's name may not be on disk, and a retry could report clean what was never
      // written, as for fdatasync: nothing in the segment beyond what open_segment() synced
      // before the rename counts as durable. It is abandoned back to that point; the next
      // segment's rename dirties the directory again, and its fsync covers both names.
      last_errno_ = -rc;
      const std::string why = fmt::format("{}: directory fsync failed: {}", shard_dir_,
                                          errno_text(-rc));
      if (fd_ >= 0) {
        abandon_segment(opened_, "directory fsync", why);
        return fail(why + "; segment abandoned, records written to it are lost, the next ones "
                          "go to a new segment");
      }
      dir_dirty_ = false;
      return fail(why);
    }
    dir_dirty_ = false;
  }
  // Control records are anchored once they are durable, the directory entry included.
  size_t ready = 0;
  while (ready < pending_anchors_.size() && pending_anchors_[ready].end_offset <= synced_.offset) {
    ready_anchors_.push_back(std::move(pending_anchors_[ready].anchor));
    ++ready;
  }
  pending_anchors_.erase(pending_anchors_.begin(),
                         pending_anchors_.begin() + static_cast<ptrdiff_t>(ready));
  return {};
}

Result<void> ShardWriter::close_segment() {
  GH_ASSERT(sealed_ && staged_.empty());
  if (auto synced = sync(); !synced) return synced;
  GH_ASSERT(pending_anchors_.empty());
  if (fd_ >= 0) {
    (void)io_->close(fd_);
    fd_ = -1;
  }
  segment_started_ = false;
  sealed_ = false;
  file_bytes_ = 0;
  return {};
}

void ShardWriter::abandon_segment(Mark kept, std::string_view failed, const std::string& why) {
  GH_ASSERT(fd_ >= 0 && segment_started_);
  ++broken_segments_;
  // What stays of the segment: its records up to `kept`, the last point known durable. Cutting
  // the rest off makes the file say what the recovery record says; if even that fails, the
  // recovery record counts the bytes after it as cut, and verify reports the difference.
  const bool cut = io_->truncate(fd_, kept.offset) == 0;
  (void)io_->fdatasync(fd_);  // best effort: its result proves nothing after a failure
  (void)io_->close(fd_);
  fd_ = -1;
  Recovery r;
  r.sequence = header_.sequence;
  r.header_digest = header_digest_;
  r.records = kept.records;
  r.last_hash = kept.chain;
  r.merkle_root = kept.merkle.root();
  r.end_offset = kept.offset;
  r.cut_bytes = cut ? 0 : file_bytes_ - kept.offset;
  r.reason = fmt::format(
      "segment {:08} abandoned after a failed {} ({}); it ends at its last durable record "
      "({} records, offset {}); the {} bytes written after it are not part of the trail",
      header_.sequence, failed, why, kept.records, kept.offset, file_bytes_ - kept.offset);
  recovery_ = std::move(r);
  // Batches the hook saw were cut off with the rest: an empty call says so.
  if (options_.on_written && written_.offset > kept.offset) {
    options_.on_written(options_.shard, header_.sequence, {});
  }
  // Control records after the cut are gone (checkpoint numbers are taken again).
  std::erase_if(pending_anchors_,
                [&](const PendingAnchor& a) { return a.end_offset > kept.offset; });
  chain_ = kept.chain;
  checkpoint_ = kept.checkpoint;
  // A staged batch is dropped: its session records are still in the flusher's ring and are
  // staged again for the new segment; staged control records were made for this segment only.
  staged_.clear();
  staged_records_ = 0;
  staged_written_ = 0;
  staged_chain_ = chain_;
  segment_started_ = false;
  sealed_ = false;
  file_bytes_ = 0;
  dirty_ = false;
  dir_dirty_ = false;  // set again by the next segment's rename
}

std::vector<AnchorRecord> ShardWriter::take_anchors() { return std::exchange(ready_anchors_, {}); }

}  // namespace gh::rec
