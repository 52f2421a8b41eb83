// SSH keys as gatehouse uses them: the gateway's host key (created by `gatehouse keygen
// --ssh-host-key`), upstream login keys and pinned upstream host keys. Thin owners over libssh's
// ssh_key; no socket I/O.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.hpp"

struct ssh_key_struct;

namespace gh::ssh {

struct KeyDeleter {
  void operator()(ssh_key_struct* key) const;
};
using Key = std::unique_ptr<ssh_key_struct, KeyDeleter>;

// Writes a new Ed25519 private key (OpenSSH format, mode 0600) to `file` and its public key to
// `file`.pub; refuses to replace an existing key. Returns the SHA256 fingerprint.
Result<std::string> generate_host_key(const std::filesystem::path& file);

// An unencrypted private key file (OpenSSH or PEM).
Result<Key> load_private_key(const std::filesystem::path& file);
// "ssh-ed25519 AAAA... [comment]": a .pub file's line or a known_hosts line without the host.
Result<Key> parse_public_key(std::string_view line);
// "SHA256:..." as OpenSSH prints it.
std::string fingerprint(ssh_key_struct* key);
// The host key algorithms to offer so that a server presents this key's type, e.g. "ssh-ed25519"
// or "rsa-sha2-512,rsa-sha2-256".
std::string host_key_algorithms(ssh_key_struct* key);

}  // namespace gh::ssh
