// SFTP packets built byte by byte for the decoder and tracker tests (draft-ietf-secsh-filexfer-02
// section 3: uint32 big-endian, strings with a uint32 length). Test support only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "protocols/ssh/codec/sftp.hpp"

namespace gh::ssh::sftp::test {

// The body of one packet (type byte first); packet() adds the length word.
class Body {
 public:
  explicit Body(Type type) { bytes_.push_back(char(type)); }
  Body& u32(uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes_.push_back(char((v >> shift) & 0xff));
    return *this;
  }
  Body& u64(uint64_t v) { return u32(uint32_t(v >> 32)).u32(uint32_t(v)); }
  Body& str(std::string_view s) {
    u32(uint32_t(s.size()));
    bytes_.append(s);
    return *this;
  }
  Body& raw(std::string_view s) {
    bytes_.append(s);
    return *this;
  }
  std::string packet() const {
    std::string out;
    const uint32_t n = uint32_t(bytes_.size());
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(char((n >> shift) & 0xff));
    return out + bytes_;
  }

 private:
  std::string bytes_;
};

inline std::string open_req(uint32_t id, std::string_view path, uint32_t pflags) {
  return Body(Type::kOpen).u32(id).str(path).u32(pflags).u32(0).packet();  // empty attrs
}
inline std::string handle_reply(uint32_t id, std::string_view handle) {
  return Body(Type::kHandle).u32(id).str(handle).packet();
}
inline std::string write_req(uint32_t id, std::string_view handle, uint64_t offset, std::string_view data) {
  return Body(Type::kWrite).u32(id).str(handle).u64(offset).str(data).packet();
}
inline std::string read_req(uint32_t id, std::string_view handle, uint64_t offset, uint32_t n) {
  return Body(Type::kRead).u32(id).str(handle).u64(offset).u32(n).packet();
}
inline std::string data_reply(uint32_t id, std::string_view data) {
  return Body(Type::kData).u32(id).str(data).packet();
}
inline std::string status_reply(uint32_t id, uint32_t code, std::string_view message = "") {
  return Body(Type::kStatus).u32(id).u32(code).str(message).str("").packet();
}
inline std::string close_req(uint32_t id, std::string_view handle) {
  return Body(Type::kClose).u32(id).str(handle).packet();
}
inline std::string path_req(Type type, uint32_t id, std::string_view path) {
  return Body(type).u32(id).str(path).packet();
}

inline std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

}  // namespace gh::ssh::sftp::test
